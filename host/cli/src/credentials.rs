//! `m365sync credentials`: the secrets and certificates of each `[[app]]` that names its
//! `home_tenant_id`, read from Graph (Application.Read.All in that tenant), with their end
//! dates; those ending within 30 days, or ended, are warned about.

use std::sync::Arc;

use super::{CredentialsArgs, Failure, Output};
use m365sync_config::ConfigFile;
use m365sync_runtime::TracingSink;
use m365sync_service::expiry::{WARN_DAYS, app_credentials};

pub async fn run(args: CredentialsArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let runtime = super::sync::load_runtime(&config).await?;
    let apps = app_credentials(
        &runtime,
        &config,
        m365sync_service::expiry::now(),
        Arc::new(TracingSink),
    )
    .await;
    if output.json {
        outln!("{}", serde_json::to_string(&apps).map_err(Failure::run)?);
        return Ok(());
    }
    if apps.is_empty() {
        outln!("No [[app]] names its home_tenant_id: nothing to read.");
    }
    for app in &apps {
        outln!("App {} (home tenant {})", app.app, app.home_tenant_id);
        if let Some(error) = &app.error {
            outln!("  cannot read its credentials: {error}");
        }
        for c in &app.credentials {
            let name = c.display_name.as_deref().unwrap_or("(no name)");
            let end = c.end_date_time.as_deref().unwrap_or("never");
            let left = c
                .days_left
                .map(|d| format!(" ({d} days)"))
                .unwrap_or_default();
            let warn = if c.warn {
                format!("  WARNING: ends within {WARN_DAYS} days or has ended")
            } else {
                String::new()
            };
            outln!("  {} {name} {}: ends {end}{left}{warn}", c.kind, c.key_id);
        }
    }
    Ok(())
}
