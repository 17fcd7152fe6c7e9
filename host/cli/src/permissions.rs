//! `m365sync permissions`: the least-privileged Graph application permissions each tenant's
//! enabled features need, with the endpoints that need them; with `--check`, signs in as
//! the tenant's app and says which of them are granted and which are missing. Asks the
//! engine, so the list is always the one the engine itself checks against.

use std::sync::Arc;

use anyhow::anyhow;
use serde_json::json;

use super::{Failure, Output, PermissionsArgs};
use m365sync_config::ConfigFile;
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
        if output.json {
            all.push(json!({
                "tenant": tenant.name,
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
