//! What `m365sync serve` shares, in SQLite: the [`Queue`] of the store, each call one
//! short write transaction (`BEGIN IMMEDIATE`) that reads the rows it needs, decides by the
//! shared rules ([`m365sync_store::queue::rules`]) and writes the result. Jobs are here;
//! tenant states, workers and webhooks in `served.rs`.
//!
//! One process serves a SQLite store: `join` refuses a second live worker with
//! [`StoreError::Busy`] (live by the rule of tenant locks, [`rules::worker_live`]). Claims
//! then never race another process; the transactions keep them right within one.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use m365sync_store::queue::rules::{self, Ended, EnqueuePlan};
use m365sync_store::queue::{
    ClaimRequest, Delivery, Enqueued, Job, JobEnd, JobState, NewJob, Queue, RunEnd, ServedTenant,
    TenantState, WebhookState, WorkerInfo,
};
use m365sync_store::time::unix_now_ms;
use m365sync_store::{Store, StoreError};
use m365sync_wit::StorageError;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::{SqliteStore, served};

/// Why a queue call failed: SQLite failed, or a rule refused it.
pub(crate) enum Failed {
    Sql(rusqlite::Error),
    Refused(StoreError),
}

impl From<rusqlite::Error> for Failed {
    fn from(error: rusqlite::Error) -> Self {
        Failed::Sql(error)
    }
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Refused(error)
    }
}

impl SqliteStore {
    /// `error` of `what`, naming the database.
    pub(crate) fn failed(&self, what: &str, error: rusqlite::Error) -> StoreError {
        StoreError::Storage(StorageError::Unavailable(format!(
            "{what} in {}: {error}",
            self.describe()
        )))
    }

    /// Run `work` in a write transaction, committed when it succeeds (rolled back when it
    /// fails).
    pub(crate) async fn write<T>(
        &self,
        what: &str,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, Failed>,
    ) -> Result<T, StoreError> {
        let _writing = self.gate.lock().await;
        let mut connection = self.connection()?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.failed(what, e))?;
        let done = match work(&transaction) {
            Ok(done) => done,
            Err(Failed::Sql(error)) => return Err(self.failed(what, error)),
            Err(Failed::Refused(error)) => return Err(error),
        };
        transaction.commit().map_err(|e| self.failed(what, e))?;
        Ok(done)
    }

    /// Run `read` on a connection of its own.
    pub(crate) fn read<T>(
        &self,
        what: &str,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let connection = self.read_connection()?;
        read(&connection).map_err(|e| self.failed(what, e))
    }
}

/// A value read back that is not what it may be, as SQLite's error naming the column.
pub(crate) fn bad_value(column: usize, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, why.into())
}

const JOB_COLUMNS: &str = "id, tenant, app, kind, state, run_after_ms, attempt, worker, \
    lease_until_ms, created_ms, started_ms, finished_ms, run_id, error";

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let kind: String = row.get(3)?;
    let state: String = row.get(4)?;
    Ok(Job {
        id: row.get(0)?,
        tenant: row.get(1)?,
        app: row.get(2)?,
        kind: rules::stored_kind(&kind).map_err(|e| bad_value(3, e))?,
        state: rules::stored_state(&state).map_err(|e| bad_value(4, e))?,
        run_after_ms: row.get(5)?,
        attempt: row.get(6)?,
        worker: row.get(7)?,
        lease_until_ms: row.get(8)?,
        created_ms: row.get(9)?,
        started_ms: row.get(10)?,
        finished_ms: row.get(11)?,
        run_id: row.get(12)?,
        error: row.get(13)?,
    })
}

/// One job.
fn job(connection: &Connection, id: i64) -> rusqlite::Result<Option<Job>> {
    connection
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row(params![id], job_from_row)
        .optional()
}

/// The jobs in `state`, by id.
pub(crate) fn jobs_in(connection: &Connection, state: JobState) -> rusqlite::Result<Vec<Job>> {
    connection
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 ORDER BY id"
        ))?
        .query_map(params![state.name()], job_from_row)?
        .collect()
}

/// The tenant's queued job, if any.
fn queued_of(connection: &Connection, tenant: &str) -> rusqlite::Result<Option<Job>> {
    connection
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ?1 AND state = 'queued'"
        ))?
        .query_row(params![tenant], job_from_row)
        .optional()
}

/// Write `job` back as the rules left it (its id, tenant and creation never change).
pub(crate) fn update_job(connection: &Connection, job: &Job) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "UPDATE jobs SET app = ?2, kind = ?3, state = ?4, run_after_ms = ?5, attempt = ?6,
               worker = ?7, lease_until_ms = ?8, started_ms = ?9, finished_ms = ?10,
               run_id = ?11, error = ?12
             WHERE id = ?1",
        )?
        .execute(params![
            job.id,
            job.app,
            job.kind.name(),
            job.state.name(),
            job.run_after_ms,
            job.attempt,
            job.worker,
            job.lease_until_ms,
            job.started_ms,
            job.finished_ms,
            job.run_id,
            job.error,
        ])
        .map(drop)
}

/// Queue a new job; its id.
fn insert_job(connection: &Connection, new: &NewJob) -> rusqlite::Result<i64> {
    let job = rules::new_job(0, new, unix_now_ms());
    connection
        .prepare_cached(
            "INSERT INTO jobs (tenant, app, kind, state, run_after_ms, attempt, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            job.tenant,
            job.app,
            job.kind.name(),
            job.state.name(),
            job.run_after_ms,
            job.attempt,
            job.created_ms,
        ])?;
    Ok(connection.last_insert_rowid())
}

/// The job `worker` holds, if it does.
fn held(connection: &Connection, id: i64, worker: &str) -> rusqlite::Result<Option<Job>> {
    Ok(job(connection, id)?.filter(|j| rules::held_by(j, worker)))
}

fn enqueue(transaction: &Connection, new: &NewJob) -> Result<Enqueued, Failed> {
    if served::state(transaction, &new.tenant)?.is_none() {
        return Err(rules::not_served(&new.tenant).into());
    }
    let queued = queued_of(transaction, &new.tenant)?;
    Ok(match (rules::plan_enqueue(queued.as_ref(), new), queued) {
        (EnqueuePlan::Merge(merged), _) => {
            update_job(transaction, &merged)?;
            Enqueued::Merged(merged.id)
        }
        (EnqueuePlan::Keep, Some(queued)) => Enqueued::AlreadyQueued(queued.id),
        (EnqueuePlan::Insert | EnqueuePlan::Keep, _) => {
            Enqueued::Queued(insert_job(transaction, new)?)
        }
    })
}

fn claim(transaction: &Connection, request: &ClaimRequest) -> rusqlite::Result<Option<Job>> {
    let mut jobs = jobs_in(transaction, JobState::Queued)?;
    jobs.extend(jobs_in(transaction, JobState::Running)?);
    let paused: HashMap<String, bool> = served::paused(transaction)?;
    let paused = |tenant: &str| paused.get(tenant).copied();
    let Some(picked) = rules::pick(&jobs, paused, request) else {
        return Ok(None);
    };
    let claimed = rules::claimed(picked, request);
    update_job(transaction, &claimed)?;
    Ok(Some(claimed))
}

fn end(
    transaction: &Connection,
    id: i64,
    worker: &str,
    end: &JobEnd,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let Some(job) = held(transaction, id, worker)? else {
        return Ok(false);
    };
    let queued = match end {
        JobEnd::Released { .. } => queued_of(transaction, &job.tenant)?,
        _ => None,
    };
    let Ended { job, queued } = rules::ended(&job, end, queued.as_ref(), now_ms);
    // The released job leaves `queued` (cancelled) before the other job changes.
    update_job(transaction, &job)?;
    if let Some(queued) = queued {
        update_job(transaction, &queued)?;
    }
    Ok(true)
}

fn list_jobs(
    connection: &Connection,
    states: Option<&[JobState]>,
    limit: u32,
) -> rusqlite::Result<Vec<Job>> {
    match states {
        None => connection
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?1"
            ))?
            .query_map(params![limit], job_from_row)?
            .collect(),
        Some(states) => {
            // The states as a JSON list: one statement, whatever the set.
            let names: Vec<&str> = states.iter().map(|s| s.name()).collect();
            let names = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_string());
            connection
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs
                     WHERE state IN (SELECT value FROM json_each(?2)) ORDER BY id DESC LIMIT ?1"
                ))?
                .query_map(params![limit, names], job_from_row)?
                .collect()
        }
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn join(&self, worker: &WorkerInfo) -> Result<(), StoreError> {
        let store = self.describe();
        self.write("registering the worker", |t| {
            served::join(t, &store, worker)
        })
        .await
    }

    async fn leave(&self, worker_id: &str) -> Result<(), StoreError> {
        self.write("removing the worker", |t| Ok(served::leave(t, worker_id)?))
            .await
    }

    async fn workers(
        &self,
        now_ms: i64,
        stale_after: Duration,
    ) -> Result<Vec<WorkerInfo>, StoreError> {
        let workers = self.read("listing the workers", served::workers)?;
        Ok(workers
            .into_iter()
            .filter(|w| rules::worker_fresh(w, now_ms, stale_after))
            .collect())
    }

    async fn serve_tenants(&self, tenants: &[ServedTenant]) -> Result<(), StoreError> {
        self.write("setting the served tenants", |t| {
            Ok(served::serve_tenants(t, tenants)?)
        })
        .await
    }

    async fn tenant_states(&self, now_ms: i64) -> Result<Vec<TenantState>, StoreError> {
        self.read("reading the tenants' states", |c| served::states(c, now_ms))
    }

    async fn tenant_state(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError> {
        self.read("reading the tenant's state", |c| {
            served::state_at(c, tenant, now_ms)
        })
    }

    async fn set_paused(
        &self,
        tenant: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError> {
        self.write("pausing or resuming the tenant", |t| {
            served::set_paused(t, tenant, paused)?;
            Ok(served::state_at(t, tenant, now_ms)?)
        })
        .await
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        expected: Option<i64>,
        next: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.write("setting the tenant's next run", |t| {
            Ok(served::set_next_run(t, tenant, expected, next)?)
        })
        .await
    }

    async fn record_run_end(&self, tenant: &str, end: &RunEnd) -> Result<(), StoreError> {
        self.write("recording the end of the tenant's run", |t| {
            Ok(served::record_run_end(t, tenant, end)?)
        })
        .await
    }

    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        self.write("queueing a job", |t| enqueue(t, job)).await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Job>, StoreError> {
        self.write("claiming a job", |t| Ok(claim(t, request)?))
            .await
    }

    async fn renew(
        &self,
        job_id: i64,
        worker: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write("renewing the job's lease", |t| {
            let Some(job) = held(t, job_id, worker)? else {
                return Ok(false);
            };
            let renewed = Job {
                lease_until_ms: Some(lease_until_ms),
                ..job
            };
            update_job(t, &renewed)?;
            Ok(true)
        })
        .await
    }

    async fn end(
        &self,
        job_id: i64,
        worker: &str,
        how: &JobEnd,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write("ending the job", |t| {
            Ok(end(t, job_id, worker, how, now_ms)?)
        })
        .await
    }

    async fn jobs(&self, states: Option<&[JobState]>, limit: u32) -> Result<Vec<Job>, StoreError> {
        self.read("listing jobs", |c| list_jobs(c, states, limit))
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.read("reading the job", |c| job(c, id))
    }

    async fn webhook_state(&self, name: &str) -> Result<WebhookState, StoreError> {
        self.write("reading the webhook's state", |t| served::webhook(t, name))
            .await
    }

    async fn claim_webhook(
        &self,
        name: &str,
        worker: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.write("claiming the webhook", |t| {
            let state = served::webhook(t, name)?;
            let Some(taken) = rules::webhook_taken(&state, worker, now_ms, lease) else {
                return Ok(false);
            };
            served::put_webhook(t, &taken)?;
            Ok(true)
        })
        .await
    }

    async fn record_delivery(
        &self,
        name: &str,
        worker: &str,
        delivery: &Delivery,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write("recording the webhook's delivery", |t| {
            let state = served::webhook(t, name)?;
            let Some(recorded) = rules::delivered(&state, worker, delivery, now_ms) else {
                return Ok(false);
            };
            served::put_webhook(t, &recorded)?;
            Ok(true)
        })
        .await
    }
}
