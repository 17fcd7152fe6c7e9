//! `m365sync preview`: what a sync of each tenant would do with the config's filter, match
//! key, removal policy and field map — who would be created, updated, linked, left
//! unchanged or removed, and which filter or conflict leaves the others out. The engine
//! runs the users phase as a full dry run; the store is opened read-only (an in-memory
//! empty one when there is no database yet), so nothing is written.

use std::sync::Arc;

use super::progress::TerminalProgress;
use super::{Failure, Output, PreviewArgs};
use m365sync::config::ConfigFile;
use m365sync::{SqliteStore, TenantStore, report};

pub async fn run(args: PreviewArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let tenants = super::selected_tenants(&config, args.tenant.as_deref())?;
    let db = super::database_path(args.db.as_ref(), Some(&config));
    let runtime = super::sync::load_runtime(&config)?;
    let mut all = Vec::new();
    for tenant in tenants {
        let run = config.resolve(tenant);
        super::sync::effective_field_map(&runtime, &args.config, tenant, &run).await?;
        let store: Box<dyn TenantStore> = if db.exists() {
            Box::new(SqliteStore::open_read_only(&db, &run.tenant.key).map_err(Failure::run)?)
        } else {
            Box::new(SqliteStore::in_memory(&run.tenant.key).map_err(Failure::run)?)
        };
        let progress = Arc::new(TerminalProgress::new());
        let result = runtime.preview(&run, store, progress.clone()).await;
        progress.finish();
        let preview = result.map_err(super::engine_failure)?;
        if output.json {
            all.push(report::preview_json(&preview));
        } else {
            if !db.exists() {
                outln!(
                    "(no database at {}: compared with an empty store)",
                    db.display()
                );
            }
            out!("{}", report::preview_text(&preview));
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(all));
    }
    Ok(())
}
