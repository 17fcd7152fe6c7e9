//! The sync log: every run of a tenant into the SQLite store, successful or failed.
//!
//! A successful run's report is committed by the engine itself, with the run's last batch
//! (`batch.run`). A failed run commits no report, so [`sync_logged`] records it: when it
//! started, the mode asked for, how long it took, what kind of failure, and the error in
//! words (never a secret: the tenant's client secret is masked should it ever appear).
//! Dry runs write nothing, so neither their reports nor their failures are logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::log::EventSink;
use crate::config::{SecretSource, TenantRun};
use crate::error::RunError;
use crate::report;
use crate::runtime::Runtime;
use crate::runtime::bindings::types::SyncReport;
use crate::store::sqlite::{FailedRun, OpenError, SqliteStore};

/// Why a logged sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The store could not be opened: nothing ran, nothing was logged.
    #[error("tenant {tenant}: {error}")]
    Open { tenant: String, error: OpenError },
    /// The run failed; it is in the sync log as `run_id` unless recording it failed too.
    #[error("{error}{}", log_error.as_ref().map(|e| format!(" (and the failure could not be recorded in the sync log: {e})")).unwrap_or_default())]
    Run {
        error: RunError,
        run_id: Option<i64>,
        log_error: Option<String>,
    },
}

impl SyncFailure {
    /// The run's error, when the run started.
    pub fn run_error(&self) -> Option<&RunError> {
        match self {
            SyncFailure::Run { error, .. } => Some(error),
            SyncFailure::Open { .. } => None,
        }
    }
}

/// Sync `run` into the SQLite database at `db`, and record the run in the sync log when
/// it fails (the engine records successful runs).
pub async fn sync_logged(
    runtime: &Runtime,
    run: &TenantRun,
    db: &Path,
    sink: Arc<dyn EventSink>,
) -> Result<SyncReport, SyncFailure> {
    let store = SqliteStore::open(db, &run.tenant.key).map_err(|error| SyncFailure::Open {
        tenant: run.tenant.key.clone(),
        error,
    })?;
    let started_at = now_rfc3339();
    let clock = Instant::now();
    match runtime.sync(run, Box::new(store), sink).await {
        Ok(report) => Ok(report),
        Err(error) if run.options.dry_run => Err(SyncFailure::Run {
            error,
            run_id: None,
            log_error: None,
        }),
        Err(error) => {
            let failed = FailedRun {
                started_at,
                mode: report::mode_name(run.options.mode).to_string(),
                elapsed_ms: clock.elapsed().as_millis() as u64,
                dry_run: run.options.dry_run,
                error_kind: error.kind().to_string(),
                error: redact(&error.to_string(), &run.client_secret),
            };
            let recorded = SqliteStore::open(db, &run.tenant.key)
                .map_err(|e| e.to_string())
                .and_then(|mut store| {
                    store
                        .record_failed_run(&failed)
                        .map_err(|e| format!("{e:?}"))
                });
            let (run_id, log_error) = match recorded {
                Ok(id) => (Some(id), None),
                Err(e) => (None, Some(e)),
            };
            Err(SyncFailure::Run {
                error,
                run_id,
                log_error,
            })
        }
    }
}

/// `text` with the tenant's client secret masked, should it appear in it.
pub fn redact(text: &str, secret: &SecretSource) -> String {
    let value = match secret {
        SecretSource::Value(value) => Some(value.clone()),
        SecretSource::Env(var) => std::env::var(var).ok(),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim_end_matches(['\r', '\n']).to_string()),
    };
    match value {
        Some(value) if value.trim().len() >= 4 && text.contains(value.trim()) => {
            text.replace(value.trim(), "[redacted]")
        }
        _ => text.to_string(),
    }
}

/// The current time, RFC 3339 UTC with milliseconds (as the engine writes `started-at`).
pub fn now_rfc3339() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs() as i64, since.subsec_millis())
}

fn rfc3339(seconds: i64, millis: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_767_225_599, 999), "2025-12-31T23:59:59.999Z");
        assert!(now_rfc3339().starts_with("20"));
    }

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
