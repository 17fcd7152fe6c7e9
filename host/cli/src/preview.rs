//! `m365sync preview`: what a sync of each tenant would do with the config's filter, match
//! key, removal policy and field map — who would be created, updated, linked, left
//! unchanged or removed, and which filter or conflict leaves the others out. The engine
//! runs the users phase as a full dry run; the store is opened read-only (an empty
//! in-memory one when there is no store yet), so nothing is written.

use std::sync::Arc;

use super::progress::TerminalProgress;
use super::{Failure, Output, PreviewArgs};
use crate::report;
use m365sync_config::ConfigFile;
use m365sync_service::ReviewError;
use m365sync_store::{Store, StoreError};

pub async fn run(args: PreviewArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let tenants = super::selected_tenants(&config, args.tenant.as_deref())?;
    let db = super::store_location(args.db.as_deref(), Some(&config));
    let runtime = super::sync::load_runtime(&config).await?;
    // Without a store yet, everybody would be created: compare with an empty one.
    let store: Option<Box<dyn Store>> = match m365sync_service::open_store_existing(&db).await {
        Ok(store) => Some(store),
        Err(StoreError::Empty(_)) => {
            if !output.json {
                outln!("(no store at {db}: compared with an empty store)");
            }
            None
        }
        Err(error) => return Err(Failure::run(error)),
    };
    let mut all = Vec::new();
    for tenant in tenants {
        let run = config.resolve(tenant);
        super::sync::effective_field_map(&runtime, &args.config, tenant, &run).await?;
        let progress = Arc::new(TerminalProgress::new());
        let result =
            m365sync_service::preview(&runtime, &run, store.as_deref(), progress.clone()).await;
        progress.finish(&run.tenant.key);
        let preview = result.map_err(review_failure)?;
        if output.json {
            all.push(report::preview_json(&preview));
        } else {
            out!("{}", report::preview_text(&preview));
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(all));
    }
    Ok(())
}

/// A preview's or a review's failure: the engine refusing the request is exit 2 (see
/// [`super::engine_failure`]), a store that cannot be opened exit 1.
pub fn review_failure(error: ReviewError) -> Failure {
    match error {
        ReviewError::Run(error) => super::engine_failure(error),
        error @ ReviewError::Store { .. } => Failure::run(error),
    }
}
