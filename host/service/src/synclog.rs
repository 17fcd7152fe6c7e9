//! The sync log: every run of a tenant into a store, whatever its outcome.
//!
//! A successful run's report is committed by the engine itself, with the run's last batch
//! (`batch.run`). A failed run commits no report, so [`sync_logged`] records it: when it
//! started, the mode that ran, how long it took, what kind of failure, the error in words
//! (never a secret: the tenant's client secret is masked should it ever appear), and what
//! the engine reported it did until then. A run stopped by its [`CancelToken`] is recorded
//! as `interrupted`; a run refused because another process holds the tenant's lock as
//! `refused`. Dry runs write nothing and take no lock, so neither their reports nor their
//! failures are logged.

use std::sync::Arc;
use std::time::Instant;

use m365sync_config::{SecretSource, TenantRun};
use m365sync_runtime::capabilities::log::EventSink;
use m365sync_runtime::error::RunError;
use m365sync_runtime::{CancelToken, Runtime};
use m365sync_store::model::{FailedRun, RunStatus};
use m365sync_store::time::now_rfc3339;
use m365sync_store::{Access, Store, StoreError};
use m365sync_wit::names::WitName;
use m365sync_wit::types::{SyncError, SyncReport};

/// Why a logged sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The store could not be opened: nothing ran, nothing was logged.
    #[error("tenant {tenant}: {error}")]
    Open { tenant: String, error: StoreError },
    /// The run did not start: the tenant's lock is held by another process (then the run
    /// is in the sync log as `refused`, `run_id`, unless recording it failed too).
    #[error("{error}{}", not_recorded(log_error))]
    Locked {
        error: StoreError,
        run_id: Option<i64>,
        log_error: Option<String>,
    },
    /// The run failed; it is in the sync log as `run_id` unless recording it failed too.
    #[error("{error}{}", not_recorded(log_error))]
    Run {
        error: RunError,
        run_id: Option<i64>,
        log_error: Option<String>,
    },
}

fn not_recorded(log_error: &Option<String>) -> String {
    log_error
        .as_ref()
        .map(|e| format!(" (and the failure could not be recorded in the sync log: {e})"))
        .unwrap_or_default()
}

impl SyncFailure {
    /// The run's error, when the run started.
    pub fn run_error(&self) -> Option<&RunError> {
        match self {
            SyncFailure::Run { error, .. } => Some(error),
            SyncFailure::Open { .. } | SyncFailure::Locked { .. } => None,
        }
    }

    /// A stable name of the kind of failure: the run's ([`RunError::kind`]), "locked" when
    /// another process holds the tenant's lock, "store" when the store could not be used.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncFailure::Run { error, .. } => error.kind(),
            SyncFailure::Locked { .. } => "locked",
            SyncFailure::Open { .. } => "store",
        }
    }

    /// The run's entry in the sync log, when it was recorded.
    pub fn run_id(&self) -> Option<i64> {
        match self {
            SyncFailure::Run { run_id, .. } | SyncFailure::Locked { run_id, .. } => *run_id,
            SyncFailure::Open { .. } => None,
        }
    }

    /// How the run is logged: interrupted, refused (the tenant's lock is held) or failed.
    pub fn status(&self) -> RunStatus {
        match self {
            SyncFailure::Locked { .. } => RunStatus::Refused,
            _ if self.interrupted() => RunStatus::Interrupted,
            _ => RunStatus::Failed,
        }
    }

    /// True when the run was stopped by its cancellation (a signal).
    pub fn interrupted(&self) -> bool {
        matches!(
            self.run_error().and_then(RunError::engine_error),
            Some(SyncError::Cancelled(_))
        )
    }
}

/// Sync `run` into `store`, and record the run in the sync log when it fails (the engine
/// records successful runs).
pub async fn sync_logged(
    runtime: &Runtime,
    run: &TenantRun,
    store: &dyn Store,
    sink: Arc<dyn EventSink>,
) -> Result<SyncReport, SyncFailure> {
    sync_logged_cancellable(runtime, run, store, sink, &CancelToken::new()).await
}

/// [`sync_logged`] for a run `cancel` can stop: it then ends at its next batch boundary
/// and is recorded as `interrupted`. The tenant's lock is held for the run (not by dry
/// runs, which write nothing); a run refused for it is recorded as `refused`.
pub async fn sync_logged_cancellable(
    runtime: &Runtime,
    run: &TenantRun,
    store: &dyn Store,
    sink: Arc<dyn EventSink>,
    cancel: &CancelToken,
) -> Result<SyncReport, SyncFailure> {
    let started_at = now_rfc3339();
    let clock = Instant::now();
    let tenant = run.tenant.key.clone();
    let access = if run.options.dry_run {
        Access::ReadOnly
    } else {
        Access::Sync
    };
    let tenant_store = match store.open_tenant(&tenant, access).await {
        Ok(tenant_store) => tenant_store,
        Err(error @ StoreError::Locked { .. }) => {
            let refused = FailedRun {
                status: RunStatus::Refused,
                started_at,
                mode: run.options.mode.name().to_string(),
                elapsed_ms: clock.elapsed().as_millis() as u64,
                report: None,
                dry_run: false,
                error_kind: "locked".to_string(),
                error: error.to_string(),
            };
            let (run_id, log_error) = record(store, &tenant, &refused).await;
            return Err(SyncFailure::Locked {
                error,
                run_id,
                log_error,
            });
        }
        Err(error) => return Err(SyncFailure::Open { tenant, error }),
    };
    let limits = runtime.limits();
    let result = runtime
        .sync_cancellable(run, tenant_store, sink, limits, cancel)
        .await;
    match result {
        Ok(report) => Ok(report),
        Err(error) if run.options.dry_run => Err(SyncFailure::Run {
            error,
            run_id: None,
            log_error: None,
        }),
        Err(error) => {
            // The engine's report of what the run did says the mode that ran and counts
            // its requests; a run the host stopped (memory, deadline) has none.
            let partial = error.report().cloned();
            let cancelled = matches!(error.engine_error(), Some(SyncError::Cancelled(_)));
            let failed = FailedRun {
                status: if cancelled && cancel.is_cancelled() {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Failed
                },
                started_at,
                mode: partial
                    .as_ref()
                    .map_or(run.options.mode, |r| r.mode)
                    .name()
                    .to_string(),
                elapsed_ms: clock.elapsed().as_millis() as u64,
                report: partial,
                dry_run: run.options.dry_run,
                error_kind: error.kind().to_string(),
                error: match run.credential.client_secret() {
                    Some(secret) => redact(&error.to_string(), secret),
                    None => error.to_string(),
                },
            };
            let (run_id, log_error) = record(store, &tenant, &failed).await;
            Err(SyncFailure::Run {
                error,
                run_id,
                log_error,
            })
        }
    }
}

/// Record a run of `run` that was not started because the tenant must not run (`why`, a
/// notice's message: its partner's relationships ended); its id in the sync log, when it
/// could be recorded.
pub async fn record_stopped(store: &dyn Store, run: &TenantRun, why: &str) -> Option<i64> {
    let stopped = FailedRun {
        status: RunStatus::Failed,
        started_at: now_rfc3339(),
        mode: run.options.mode.name().to_string(),
        elapsed_ms: 0,
        report: None,
        dry_run: run.options.dry_run,
        error_kind: "stopped".to_string(),
        error: why.to_string(),
    };
    let (run_id, log_error) = record(store, &run.tenant.key, &stopped).await;
    if let Some(error) = log_error {
        tracing::warn!(
            "recording the stopped run of {} in the sync log: {error}",
            run.tenant.key
        );
    }
    run_id
}

/// Record a run that did not succeed; its id (none while it waits to be recorded), or why
/// it could not be recorded.
async fn record(
    store: &dyn Store,
    tenant: &str,
    failed: &FailedRun,
) -> (Option<i64>, Option<String>) {
    match store.record_failed_run(tenant, failed).await {
        Ok(id) => (id, None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// `text` with the tenant's client secret masked, should it appear in it.
pub fn redact(text: &str, secret: &SecretSource) -> String {
    // Read as the run reads it: a FIFO or /dev/zero must not hang or grow the host here.
    let value = m365sync_runtime::capabilities::secrets::read(secret).ok();
    match value {
        Some(value) if value.trim().len() >= 4 && text.contains(value.trim()) => {
            text.replace(value.trim(), "[redacted]")
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_the_secret_value_only() {
        let secret = SecretSource::Value("s3cr3t-value".into());
        assert_eq!(
            redact("bad s3cr3t-value here", &secret),
            "bad [redacted] here"
        );
        assert_eq!(redact("nothing here", &secret), "nothing here");
        assert_eq!(
            redact("x", &SecretSource::Env("M365SYNC_TEST_NO_SUCH_VAR".into())),
            "x"
        );
    }
}
