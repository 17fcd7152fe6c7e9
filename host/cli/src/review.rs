//! `m365sync review`: each tenant's organization match — its state (matched, suggested,
//! unmatched, ignored), the matched organization, and ranked suggestions with their
//! scores — and a reviewer's decision on it: `accept ID`, `change ID`, `ignore`, `create`.
//! The engine computes the match and checks the decision (it refuses `create` while any
//! organization matches or is suggested); the store keeps the decision.

use std::sync::Arc;

use anyhow::anyhow;

use super::{Failure, Output, ReviewArgs, ReviewCommand};
use crate::report;
use m365sync_config::ConfigFile;
use m365sync_runtime::TracingSink;
use m365sync_wit::types::ReviewAction;

use super::preview::review_failure;

pub async fn run(args: ReviewArgs, output: Output) -> Result<(), Failure> {
    let Some(path) = &args.config else {
        return Err(Failure::usage(anyhow!(
            "review needs the tenants' config: pass --config FILE"
        )));
    };
    let config = ConfigFile::load(path).map_err(Failure::usage)?;
    let db = super::store_location(args.db.as_deref(), Some(&config));
    let store = super::open_existing_store(&db).await?;
    let runtime = super::sync::load_runtime(&config).await?;

    // The config's tenants and those onboarding registered in the store.
    let runs = m365sync_service::onboarding::tenant_runs(&config, store.as_ref())
        .await
        .map_err(Failure::run)?;
    let named = |name: &str| {
        runs.iter().find(|r| r.tenant.key == name).ok_or_else(|| {
            Failure::usage(anyhow!(
                "no tenant is named {name:?} in the config or among the onboarded tenants"
            ))
        })
    };
    if let Some(command) = &args.action {
        let run = match (&args.tenant, runs.as_slice()) {
            (Some(name), _) => named(name)?,
            (None, [only]) => only,
            (None, _) => {
                return Err(Failure::usage(anyhow!(
                    "there are several tenants: name the one to decide for with --tenant"
                )));
            }
        };
        let action = match command {
            ReviewCommand::Accept { id } => ReviewAction::Accept(id.trim().to_string()),
            ReviewCommand::Change { id } => ReviewAction::Change(id.trim().to_string()),
            ReviewCommand::Ignore => ReviewAction::Ignore,
            ReviewCommand::Create => ReviewAction::Create,
        };
        // A decision is a write: refused while a sync of the tenant runs.
        let result = m365sync_service::decide(
            &runtime,
            run,
            &action,
            store.as_ref(),
            Arc::new(TracingSink),
        )
        .await
        .map_err(review_failure)?;
        if output.json {
            let mut value = report::organization_json(&result);
            if let Some(object) = value.as_object_mut() {
                object.insert("decision".into(), report::action_text(&action).into());
            }
            outln!("{value}");
        } else {
            outln!(
                "Decision \"{}\" stored for tenant {}:",
                report::action_text(&action),
                run.tenant.key
            );
            out!("{}", report::organization_text(&result, "  "));
        }
        return Ok(());
    }

    let selected: Vec<&m365sync_config::TenantRun> = match &args.tenant {
        Some(name) => vec![named(name)?],
        None => runs.iter().collect(),
    };
    let mut all = Vec::new();
    for run in selected {
        let result = m365sync_service::review(&runtime, run, store.as_ref(), Arc::new(TracingSink))
            .await
            .map_err(review_failure)?;
        if output.json {
            all.push(report::organization_json(&result));
        } else {
            out!("{}", report::organization_text(&result, ""));
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(all));
    } else {
        outln!(
            "\nDecide with: m365sync review --config {} --tenant NAME accept ID | change ID | ignore | create",
            path.display()
        );
    }
    Ok(())
}
