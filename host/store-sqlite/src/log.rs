//! The sync log in SQLite: recording the runs the engine does not (failed, interrupted,
//! refused), listing them, and the spool of refused runs: a run refused while the lock's
//! holder has a write transaction open (a delta round's pages wait in one) cannot write the
//! log at once, so it waits in `<db>.spool/` until the next sync or listing moves it in.

use std::path::{Path, PathBuf};

use m365sync_store::StoreError;
use m365sync_store::log_entry::RunReport;
use m365sync_store::model::{FailedRun, RunRecord, RunStatus, stored_elapsed_ms};
use m365sync_wit::StorageError;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::lock::LOCK_BUSY_TIMEOUT;
use crate::schema::open_database;
use crate::tenant::unavailable;

pub(crate) const RUN_COLUMNS: &str = "id, tenant, started_at, mode, status, elapsed_ms, requests, retries, \
                           dry_run, error_kind, error, report";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let report: Option<String> = row.get(11)?;
    Ok(RunRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        started_at: row.get(2)?,
        mode: row.get(3)?,
        status: row.get(4)?,
        // Read as stored: a negative count is an error naming its column, not a 0.
        elapsed_ms: row.get(5)?,
        requests: row.get(6)?,
        retries: row.get(7)?,
        dry_run: row.get(8)?,
        error_kind: row.get(9)?,
        error: row.get(10)?,
        report: report.as_deref().and_then(RunReport::from_stored),
    })
}

/// The sync log, newest first: at most `limit` runs, of one tenant or of all.
pub fn list_runs(
    connection: &Connection,
    tenant: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<RunRecord>> {
    connection
        .prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR tenant = ?1)
             ORDER BY id DESC LIMIT ?2"
        ))?
        .query_map(params![tenant, limit], run_from_row)?
        .collect()
}

/// One run of the sync log, by id.
pub fn get_run(connection: &Connection, id: i64) -> rusqlite::Result<Option<RunRecord>> {
    connection
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            params![id],
            run_from_row,
        )
        .optional()
}

/// Insert a run the host records; its id.
fn insert_failed_run(
    connection: &Connection,
    tenant: &str,
    failed: &FailedRun,
) -> Result<i64, StorageError> {
    let elapsed_ms = stored_elapsed_ms(failed.elapsed_ms)?;
    let partial = failed.report.as_ref();
    connection
        .prepare_cached(
            "INSERT INTO runs (tenant, started_at, mode, status, elapsed_ms, requests, retries,
                               dry_run, error_kind, error, report)
             VALUES (?1, ?2, ?3, ?11, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                failed.started_at,
                failed.mode,
                elapsed_ms,
                partial.map(|r| r.requests),
                partial.map(|r| r.retries),
                failed.dry_run,
                failed.error_kind,
                failed.error,
                partial.map(|r| RunReport::from(r).to_stored()),
                failed.status.name(),
            ])
        })
        .map(|_| connection.last_insert_rowid())
        .map_err(|e| unavailable("recording the failed run", e))
}

/// Record a run that did not succeed. A refused run is told at once, not after SQLite's
/// 30 s busy timeout, and waits in the spool when the database is busy (`Ok(None)`).
pub(crate) fn record_failed_run(
    db: &Path,
    tenant: &str,
    failed: &FailedRun,
) -> Result<Option<i64>, StoreError> {
    // A run the log cannot hold is refused here, before it could wait in the spool.
    stored_elapsed_ms(failed.elapsed_ms)?;
    let recorded = open_database(db).map_err(StoreError::from).and_then(|c| {
        if failed.status == RunStatus::Refused {
            c.busy_timeout(LOCK_BUSY_TIMEOUT)
                .map_err(|e| StoreError::Storage(unavailable("recording the run", e)))?;
        }
        Ok(insert_failed_run(&c, tenant, failed)?)
    });
    match recorded {
        Ok(id) => Ok(Some(id)),
        Err(_) if failed.status == RunStatus::Refused => spool(db, tenant, failed)
            .map(|()| None)
            .map_err(|e| StoreError::Storage(StorageError::Unavailable(e))),
        Err(e) => Err(e),
    }
}

/// A refused run waiting in the spool.
#[derive(Serialize, Deserialize)]
struct SpooledRun {
    tenant: String,
    started_at: String,
    mode: String,
    elapsed_ms: u64,
    error_kind: String,
    error: String,
}

/// The spool of refused runs not yet in the sync log: `<db>.spool/`, one JSON file a run.
fn spool_dir(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".spool");
    PathBuf::from(name)
}

fn spool(db: &Path, tenant: &str, failed: &FailedRun) -> Result<(), String> {
    let dir = spool_dir(db);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let entry = SpooledRun {
        tenant: tenant.to_string(),
        started_at: failed.started_at.clone(),
        mode: failed.mode.clone(),
        elapsed_ms: failed.elapsed_ms,
        error_kind: failed.error_kind.clone(),
        error: failed.error.clone(),
    };
    let text = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path = dir.join(format!("{}-{nanos}.json", std::process::id()));
    // Written whole, then renamed: a reader never sees half an entry.
    let partial = path.with_extension("part");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Move the refused runs waiting in the spool of `db` into its sync log (as `refused`);
/// how many. Done when a sync takes or releases a tenant's lock and before the sync log is
/// listed; an entry that cannot be recorded yet stays for the next time.
pub(crate) fn record_spooled_runs(db: &Path) -> usize {
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
            .and_then(|text| serde_json::from_str::<SpooledRun>(&text).ok())
        else {
            continue;
        };
        let failed = FailedRun {
            status: RunStatus::Refused,
            started_at: entry.started_at,
            mode: entry.mode,
            elapsed_ms: entry.elapsed_ms,
            report: None,
            dry_run: false,
            error_kind: entry.error_kind,
            error: entry.error,
        };
        let stored = open_database(db).is_ok_and(|c| {
            c.busy_timeout(LOCK_BUSY_TIMEOUT).is_ok()
                && insert_failed_run(&c, &entry.tenant, &failed).is_ok()
        });
        if stored {
            let _ = std::fs::remove_file(&path);
            recorded += 1;
        }
    }
    recorded
}
