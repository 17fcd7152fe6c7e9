//! Syncing many tenants at once, within a bound: each tenant in its own sandbox, logged as
//! [`sync_logged_cancellable`] logs it, at most `concurrency` at a time. Outcomes come in
//! the order the runs were given, each as soon as it and those before it are done.

use std::sync::Arc;

use futures::stream::{self, Stream, StreamExt};
use m365sync_config::TenantRun;
use m365sync_runtime::{CancelToken, EventSink, Runtime};
use m365sync_store::Store;
use m365sync_wit::types::SyncReport;

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
pub fn sync_many<'a>(
    runtime: &'a Runtime,
    runs: &'a [TenantRun],
    store: &'a dyn Store,
    concurrency: usize,
    sink: Arc<dyn EventSink>,
    cancel: &'a CancelToken,
) -> impl Stream<Item = TenantOutcome> + 'a {
    stream::iter(runs)
        .map(move |run| {
            let sink = sink.clone();
            async move {
                let tenant = run.tenant.key.clone();
                if cancel.is_cancelled() {
                    return TenantOutcome {
                        tenant,
                        result: None,
                    };
                }
                let result = sync_logged_cancellable(runtime, run, store, sink, cancel).await;
                TenantOutcome {
                    tenant,
                    result: Some(result),
                }
            }
        })
        .buffered(concurrency.max(1))
}
