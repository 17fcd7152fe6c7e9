//! `m365sync permissions`: the least-privileged Graph application permissions each tenant's
//! enabled features need, with the endpoints that need them; with `--check`, signs in as
//! the tenant's app and says which of them are granted and which are missing. Asks the
//! engine, so the list is always the one the engine itself checks against. Each tenant
//! also says which app it signs in with, how, and why that app (see `m365sync_config::app`:
//! the least privileged app covering its features, unless it names one).

use std::sync::Arc;

use anyhow::anyhow;
use serde_json::json;

use super::{Failure, Output, PermissionsArgs};
use m365sync_config::{AppChoice, ConfigFile, TenantConfig, TenantRun};
use m365sync_runtime::TracingSink;

pub async fn run(args: PermissionsArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let tenants = match &args.tenant {
        Some(name) => vec![
            config
                .tenant(Some(name))
                .map_err(|e| Failure::usage(anyhow!(e)))?,
        ],
        None => config.tenants.iter().collect(),
    };
    let runtime = super::sync::load_runtime(&config).await?;
    let mut all = Vec::new();
    let mut missing_any = false;
    for tenant in tenants {
        let run = config.resolve(tenant);
        let permissions = runtime
            .required_permissions(run.options.features)
            .await
            .map_err(Failure::run)?;
        let check = if args.check {
            Some(
                runtime
                    .check_permissions(&run, Arc::new(TracingSink))
                    .await
                    .map_err(Failure::run)?,
            )
        } else {
            None
        };
        let is_missing = |name: &str| {
            check
                .as_ref()
                .is_some_and(|c| c.missing.iter().any(|m| m.permission == name))
        };
        missing_any |= check.as_ref().is_some_and(|c| !c.missing.is_empty());
        let (app_name, why) = app_reason(&config, tenant, &run);
        if output.json {
            all.push(json!({
                "tenant": tenant.name,
                "app": app_name,
                "client_id": run.tenant.client_id,
                "credential": run.credential.kind().to_string(),
                "app_reason": why,
                "permissions": permissions.iter().map(|p| json!({
                    "name": p.name,
                    "endpoints": p.endpoints,
                    "granted": check.as_ref().map(|_| !is_missing(&p.name)),
                })).collect::<Vec<_>>(),
                "granted_roles": check.as_ref().map(|c| c.granted.clone()),
                "missing": check.as_ref().map(|c| c.missing.iter().map(|m| json!({
                    "permission": m.permission,
                    "feature": m.feature,
                    "message": m.message,
                })).collect::<Vec<_>>()),
            }));
            continue;
        }
        outln!(
            "Tenant {}: application permissions (Microsoft Graph, all read-only)",
            tenant.name
        );
        outln!("  Signs in as {why}");
        for permission in &permissions {
            let state = match &check {
                None => "",
                Some(_) if is_missing(&permission.name) => "  MISSING",
                Some(_) => "  granted",
            };
            outln!("  {}{state}", permission.name);
            for endpoint in &permission.endpoints {
                outln!("      {endpoint}");
            }
        }
        if let Some(check) = &check {
            outln!("  Roles in the app's token: {}", check.granted.join(", "));
            for missing in &check.missing {
                outln!("  missing: {}", missing.message);
            }
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(all));
    }
    if missing_any {
        return Err(Failure::run(anyhow!(
            "some permissions the enabled features need are not granted"
        )));
    }
    Ok(())
}

/// The tenant's app by name (none: its own client id), and why it signs in with it, in
/// words: which app, its credential, and for an app chosen by features the others
/// considered.
fn app_reason(
    config: &ConfigFile,
    tenant: &TenantConfig,
    run: &TenantRun,
) -> (Option<String>, String) {
    let credential = run.credential.describe();
    let client = &run.tenant.client_id;
    match config.app_choice(tenant) {
        AppChoice::Own => (None, format!("its own app {client}, with a {credential}")),
        AppChoice::Named(app) => {
            let why = format!("app {app:?} ({client}, with a {credential}), named by the tenant");
            (Some(app), why)
        }
        AppChoice::LeastPrivileged { app, considered } => {
            let others: Vec<String> = considered
                .iter()
                .filter(|(name, _, _)| *name != app)
                .map(|(name, features, covers)| {
                    let features = m365sync_wit::names::feature_names(*features).join(", ");
                    if *covers {
                        format!("{name} also covers them but grants more ({features})")
                    } else {
                        format!("{name} does not cover them ({features})")
                    }
                })
                .collect();
            let mut why = format!(
                "app {app:?} ({client}, with a {credential}): the least privileged app covering \
                 the tenant's features"
            );
            if !others.is_empty() {
                why += &format!("; {}", others.join("; "));
            }
            (Some(app), why)
        }
    }
}
