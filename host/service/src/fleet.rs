//! Syncing many tenants at once, within a bound: each tenant in its own sandbox, logged as
//! [`sync_logged_cancellable`] logs it, at most `concurrency` at a time. Outcomes come in
//! the order the runs were given, each as soon as it and those before it are done.

use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt};
use m365sync_config::TenantRun;
use m365sync_runtime::{CancelToken, EventSink, Runtime};
use m365sync_store::Store;
use m365sync_wit::types::SyncReport;
use tokio_util::task::AbortOnDropHandle;

use crate::synclog::{SyncFailure, sync_logged_cancellable};

/// How many tenants sync at once unless told otherwise: Graph throttles per app and tenant,
/// so runs of different tenants do not slow each other down at Microsoft; the bound is the
/// host's own (sandboxes, connections, the store's writers).
pub const DEFAULT_CONCURRENCY: u16 = 4;

/// How one tenant's run ended.
#[derive(Debug)]
pub struct TenantOutcome {
    pub tenant: String,
    /// None when the run was not started: `cancel` fired before its turn.
    pub result: Option<Result<SyncReport, SyncFailure>>,
}

/// Sync every run into `store`, at most `concurrency` (at least 1) at a time, until `cancel`
/// stops them: running syncs end at their next batch boundary (logged as interrupted) and
/// runs not started yet are not started.
///
/// Each run is a task of its own on the caller's tokio runtime, started when its turn
/// comes, so that runs use the runtime's threads side by side: the engine's work is CPU
/// (parsing, matching, the store's writes), and runs polled together in the caller's task
/// took turns on one thread (a fleet of 300 tenants into one SQLite database used one
/// core of two). Dropping the stream aborts the runs still going.
pub fn sync_many(
    runtime: Arc<Runtime>,
    runs: Vec<TenantRun>,
    store: Arc<dyn Store>,
    concurrency: usize,
    sink: Arc<dyn EventSink>,
    cancel: CancelToken,
) -> impl Stream<Item = TenantOutcome> + Send + 'static {
    stream::iter(runs)
        .map(move |run| {
            let tenant = run.tenant.key.clone();
            let (runtime, store, sink, cancel) =
                (runtime.clone(), store.clone(), sink.clone(), cancel.clone());
            let task = AbortOnDropHandle::new(tokio::spawn(async move {
                if cancel.is_cancelled() {
                    return None;
                }
                Some(sync_logged_cancellable(&runtime, &run, store.as_ref(), sink, &cancel).await)
            }));
            async move {
                let result = match task.await {
                    Ok(result) => result,
                    // A run that panicked panics here, as it did in the caller's task.
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    // Aborted: the runtime is shutting down.
                    Err(_) => None,
                };
                TenantOutcome { tenant, result }
            }
        })
        .buffered(concurrency.max(1))
}
