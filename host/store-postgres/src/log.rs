//! The sync log in PostgreSQL: recording the runs the engine does not (failed,
//! interrupted, refused), and listing them. Unlike SQLite's, nothing waits in a spool: a
//! run's open transaction never keeps another connection from inserting a row, so a
//! refused run is recorded at once.

use deadpool_postgres::GenericClient;
use m365sync_store::log_entry::RunReport;
use m365sync_store::model::{FailedRun, RunRecord, stored_integer};
use m365sync_wit::StorageError;
use tokio_postgres::Row;

use crate::error::{refused, unavailable};
use crate::values::no_nul;

const RUN_COLUMNS: &str = "id, tenant, started_at, mode, status, elapsed_ms, requests, retries, \
                           dry_run, error_kind, error, report";

/// A count as stored (never negative), read back as the model has it.
fn count(value: Option<i64>) -> Option<u64> {
    value.map(|v| u64::try_from(v).unwrap_or(0))
}

fn run_from_row(row: &Row) -> Result<RunRecord, tokio_postgres::Error> {
    let report: Option<String> = row.try_get(11)?;
    Ok(RunRecord {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        started_at: row.try_get(2)?,
        mode: row.try_get(3)?,
        status: row.try_get(4)?,
        elapsed_ms: count(row.try_get(5)?),
        requests: count(row.try_get(6)?),
        retries: count(row.try_get(7)?),
        dry_run: row.try_get(8)?,
        error_kind: row.try_get(9)?,
        error: row.try_get(10)?,
        report: report.as_deref().and_then(RunReport::from_stored),
    })
}

/// The sync log, newest first: at most `limit` runs, of one tenant or of all.
pub(crate) async fn list_runs(
    client: &impl GenericClient,
    tenant: Option<&str>,
    limit: u32,
) -> Result<Vec<RunRecord>, StorageError> {
    let what = "reading the sync log";
    let rows = client
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR tenant = $1)
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&tenant, &i64::from(limit)],
        )
        .await
        .map_err(|e| unavailable(what, &e))?;
    rows.iter()
        .map(|row| run_from_row(row).map_err(|e| unavailable(what, &e)))
        .collect()
}

/// One run of the sync log, by id.
pub(crate) async fn get_run(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<RunRecord>, StorageError> {
    let what = "reading the sync log";
    let row = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(|e| unavailable(what, &e))?;
    row.map(|row| run_from_row(&row).map_err(|e| unavailable(what, &e)))
        .transpose()
}

/// Record a run the host records (failed, interrupted, refused); its id.
pub(crate) async fn record_failed_run(
    client: &impl GenericClient,
    tenant: &str,
    failed: &FailedRun,
) -> Result<i64, StorageError> {
    let what = format!("recording the failed run of tenant {tenant}");
    let invalid = |e: StorageError| m365sync_store::model::at_origin(&what, e);
    for (field, value) in [
        ("its start", failed.started_at.as_str()),
        ("its mode", &failed.mode),
        ("its error kind", &failed.error_kind),
        ("its error", &failed.error),
    ] {
        no_nul(field, value).map_err(invalid)?;
    }
    let elapsed_ms = stored_integer("its elapsed_ms", failed.elapsed_ms).map_err(invalid)?;
    let partial = failed.report.as_ref();
    let row = client
        .query_one(
            "INSERT INTO runs (tenant, started_at, mode, status, elapsed_ms, requests, retries,
                               dry_run, error_kind, error, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING id",
            &[
                &tenant,
                &failed.started_at,
                &failed.mode,
                &failed.status.name(),
                &elapsed_ms,
                &partial.map(|r| i64::from(r.requests)),
                &partial.map(|r| i64::from(r.retries)),
                &failed.dry_run,
                &failed.error_kind,
                &failed.error,
                &partial.map(|r| RunReport::from(r).to_stored()),
            ],
        )
        .await
        .map_err(|e| refused(&what, &e))?;
    row.try_get(0).map_err(|e| unavailable(&what, &e))
}
