//! `m365sync permissions`: the least-privileged Graph application permissions each tenant's
//! enabled features need, with the endpoints that need them. Asks the engine, so the list
//! is always the one the engine itself checks against.

use anyhow::anyhow;
use serde_json::json;

use super::{Failure, Output, PermissionsArgs};
use m365sync::config::ConfigFile;

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
    let runtime = super::sync::load_runtime(&config)?;
    let mut all = Vec::new();
    for tenant in tenants {
        let run = config.resolve(tenant);
        let permissions = runtime
            .required_permissions(run.options.features)
            .await
            .map_err(Failure::run)?;
        if output.json {
            all.push(json!({
                "tenant": tenant.name,
                "permissions": permissions.iter().map(|p| json!({
                    "name": p.name,
                    "endpoints": p.endpoints,
                })).collect::<Vec<_>>(),
            }));
        } else {
            println!(
                "Tenant {}: application permissions (Microsoft Graph, all read-only)",
                tenant.name
            );
            for permission in &permissions {
                println!("  {}", permission.name);
                for endpoint in &permission.endpoints {
                    println!("      {endpoint}");
                }
            }
        }
    }
    if output.json {
        println!("{}", serde_json::Value::Array(all));
    }
    Ok(())
}
