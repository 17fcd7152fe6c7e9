//! The sync log: every run of a tenant into the SQLite store, whatever its outcome.
//!
//! A successful run's report is committed by the engine itself, with the run's last batch
//! (`batch.run`). A failed run commits no report, so [`sync_logged`] records it: when it
//! started, the mode that ran, how long it took, what kind of failure, the error in words
//! (never a secret: the tenant's client secret is masked should it ever appear), and what
//! the engine reported it did until then. A run stopped by its [`CancelToken`] is recorded
//! as `interrupted`; a run refused because another process holds the tenant's lock (see
//! [`lock_tenant`]) as `refused`, at once or, while the holder has a write transaction open,
//! through a spool (`<db>.spool/`) that the next sync or `m365sync logs` moves into the log
//! ([`record_spooled_runs`]). Dry runs write nothing and take no lock, so neither their
//! reports nor their failures are logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::log::EventSink;
use crate::config::{SecretSource, TenantRun};
use crate::error::RunError;
use crate::report;
use crate::runtime::bindings::types::{SyncError, SyncReport};
use crate::runtime::{CancelToken, Runtime};
use crate::store::sqlite::{
    FailedRun, LOCK_BUSY_TIMEOUT, LockError, OpenError, RunStatus, SqliteStore, lock_tenant,
};

/// Why a logged sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// The store could not be opened: nothing ran, nothing was logged.
    #[error("tenant {tenant}: {error}")]
    Open { tenant: String, error: OpenError },
    /// The run did not start: the tenant's lock is held by another process (then the run
    /// is in the sync log as `refused`, `run_id`, unless recording it failed too), or it
    /// could not be taken.
    #[error("{error}{}", not_recorded(log_error))]
    Locked {
        error: LockError,
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
            SyncFailure::Locked {
                error: LockError::Held { .. },
                ..
            } => "locked",
            SyncFailure::Locked { .. } | SyncFailure::Open { .. } => "store",
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
            SyncFailure::Locked {
                error: LockError::Held { .. },
                ..
            } => RunStatus::Refused,
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

/// Sync `run` into the SQLite database at `db`, and record the run in the sync log when
/// it fails (the engine records successful runs).
pub async fn sync_logged(
    runtime: &Runtime,
    run: &TenantRun,
    db: &Path,
    sink: Arc<dyn EventSink>,
) -> Result<SyncReport, SyncFailure> {
    sync_logged_cancellable(runtime, run, db, sink, &CancelToken::new()).await
}

/// [`sync_logged`] for a run `cancel` can stop: it then ends at its next batch boundary
/// and is recorded as `interrupted`. The tenant's lock is held for the run (not by dry
/// runs, which write nothing); a run refused for it is recorded as `refused`.
pub async fn sync_logged_cancellable(
    runtime: &Runtime,
    run: &TenantRun,
    db: &Path,
    sink: Arc<dyn EventSink>,
    cancel: &CancelToken,
) -> Result<SyncReport, SyncFailure> {
    let started_at = now_rfc3339();
    let clock = Instant::now();
    let tenant = run.tenant.key.clone();
    let lock = if run.options.dry_run {
        None
    } else {
        match lock_tenant(db, &tenant) {
            Ok(lock) => Some(lock),
            Err(LockError::Open { source: error, .. }) => {
                return Err(SyncFailure::Open { tenant, error });
            }
            Err(error @ LockError::Held { .. }) => {
                let refused = FailedRun {
                    status: RunStatus::Refused,
                    started_at,
                    mode: report::mode_name(run.options.mode).to_string(),
                    elapsed_ms: clock.elapsed().as_millis() as u64,
                    report: None,
                    dry_run: false,
                    error_kind: "locked".to_string(),
                    error: error.to_string(),
                };
                let (run_id, log_error) = record(db, &tenant, &refused);
                return Err(SyncFailure::Locked {
                    error,
                    run_id,
                    log_error,
                });
            }
            Err(error) => {
                return Err(SyncFailure::Locked {
                    error,
                    run_id: None,
                    log_error: None,
                });
            }
        }
    };
    record_spooled_runs(db);
    let mut store = SqliteStore::open(db, &tenant).map_err(|error| SyncFailure::Open {
        tenant: tenant.clone(),
        error,
    })?;
    if let Some(lock) = &lock {
        store.write_under(lock);
    }
    let limits = runtime.limits();
    let result = runtime
        .sync_cancellable(run, Box::new(store), sink, limits, cancel)
        .await;
    // Runs refused while this one held its write transactions.
    record_spooled_runs(db);
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
                mode: report::mode_name(partial.as_ref().map_or(run.options.mode, |r| r.mode))
                    .to_string(),
                elapsed_ms: clock.elapsed().as_millis() as u64,
                report: partial,
                dry_run: run.options.dry_run,
                error_kind: error.kind().to_string(),
                error: redact(&error.to_string(), &run.client_secret),
            };
            let (run_id, log_error) = record(db, &tenant, &failed);
            Err(SyncFailure::Run {
                error,
                run_id,
                log_error,
            })
        }
    }
}

/// Record a run that did not succeed; its id, or why it could not be recorded.
fn record(db: &Path, tenant: &str, failed: &FailedRun) -> (Option<i64>, Option<String>) {
    let recorded = SqliteStore::open(db, tenant)
        .map_err(|e| e.to_string())
        .and_then(|mut store| {
            if failed.status == RunStatus::Refused {
                // A refused run is told at once, not after SQLite's 30 s busy timeout.
                store
                    .connection()
                    .busy_timeout(LOCK_BUSY_TIMEOUT)
                    .map_err(|e| e.to_string())?;
            }
            store
                .record_failed_run(failed)
                .map_err(|e| format!("{e:?}"))
        });
    match recorded {
        Ok(id) => (Some(id), None),
        // The holder of the tenant's lock keeps a write transaction open across a few
        // pages: the refused run waits in the spool until the database is free.
        Err(_) if failed.status == RunStatus::Refused => match spool(db, tenant, failed) {
            Ok(()) => (None, None),
            Err(e) => (None, Some(e)),
        },
        Err(e) => (None, Some(e)),
    }
}

/// The spool of refused runs not yet in the sync log: `<db>.spool/`, one JSON file a run.
fn spool_dir(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".spool");
    std::path::PathBuf::from(name)
}

fn spool(db: &Path, tenant: &str, failed: &FailedRun) -> Result<(), String> {
    let dir = spool_dir(db);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let entry = serde_json::json!({
        "tenant": tenant,
        "started_at": failed.started_at,
        "mode": failed.mode,
        "elapsed_ms": failed.elapsed_ms,
        "error_kind": failed.error_kind,
        "error": failed.error,
    });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path = dir.join(format!("{}-{nanos}.json", std::process::id()));
    // Written whole, then renamed: a reader never sees half an entry.
    let partial = path.with_extension("part");
    std::fs::write(&partial, entry.to_string())
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Move the refused runs waiting in the spool of `db` into its sync log (as `refused`);
/// how many. Done when a sync takes or releases a tenant's lock and before `m365sync logs`
/// lists runs; an entry that cannot be recorded yet stays for the next time.
pub fn record_spooled_runs(db: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(spool_dir(db)) else {
        return 0;
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut recorded = 0;
    for path in paths {
        let Some(entry) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        else {
            continue;
        };
        let text = |key: &str| entry[key].as_str().unwrap_or_default().to_string();
        let failed = FailedRun {
            status: RunStatus::Refused,
            started_at: text("started_at"),
            mode: text("mode"),
            elapsed_ms: entry["elapsed_ms"].as_u64().unwrap_or(0),
            report: None,
            dry_run: false,
            error_kind: text("error_kind"),
            error: text("error"),
        };
        let stored = SqliteStore::open(db, &text("tenant")).is_ok_and(|mut store| {
            store.connection().busy_timeout(LOCK_BUSY_TIMEOUT).is_ok()
                && store.record_failed_run(&failed).is_ok()
        });
        if stored {
            let _ = std::fs::remove_file(&path);
            recorded += 1;
        }
    }
    recorded
}

/// `text` with the tenant's client secret masked, should it appear in it.
pub fn redact(text: &str, secret: &SecretSource) -> String {
    // Read as the run reads it: a FIFO or /dev/zero must not hang or grow the host here.
    let value = crate::capabilities::secrets::read(secret).ok();
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
