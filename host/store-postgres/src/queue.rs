//! What `m365sync serve` shares, in PostgreSQL: the [`Queue`] of the store, for many
//! workers on many machines. Jobs are here; tenant states, workers and webhooks in
//! `served.rs`.
//!
//! A claim is one round trip: `BEGIN`, a transaction-level advisory lock that serializes
//! claims (keyed by the schema, as the migration lock is, with another key) so that the
//! per-app and global counts cannot race, the claim itself (the next allowed job picked
//! `FOR UPDATE SKIP LOCKED` and updated), and `COMMIT`. Every statement reads a snapshot
//! taken after the lock is granted, so it counts the previous claim's job. The claim's SQL
//! is the one rule of the queue written twice ([`rules::pick`] and [`rules::claimed`] are
//! the other): the conformance suite holds both to the same cases. Every other call reads
//! its rows `FOR UPDATE` in a transaction and decides by the shared rules.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};
use m365sync_store::StoreError;
use m365sync_store::queue::rules::{self, Ended, EnqueuePlan};
use m365sync_store::queue::{
    ClaimRequest, Delivery, Enqueued, Job, JobEnd, JobState, NewJob, Queue, RunEnd, ServedTenant,
    TenantState, WebhookState, WorkerInfo,
};
use m365sync_store::time::unix_now_ms;
use m365sync_wit::StorageError;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::PostgresStore;
use crate::pipeline::{self, Step};
use crate::served;

/// Why a queue call failed: the server, a rule refusing it, or a value read back that is
/// not what it may be.
pub(crate) enum Failed {
    Sql(tokio_postgres::Error),
    Refused(StoreError),
    Bad(String),
}

impl From<tokio_postgres::Error> for Failed {
    fn from(error: tokio_postgres::Error) -> Self {
        Failed::Sql(error)
    }
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Failed::Refused(error)
    }
}

impl Failed {
    /// The error of `what` on the store at `place`.
    pub(crate) fn into_store(self, what: &str, place: &str) -> StoreError {
        let what = format!("{what} in {place}");
        match self {
            Failed::Sql(error) => StoreError::Storage(crate::error::refused(&what, &error)),
            Failed::Refused(error) => error,
            Failed::Bad(why) => {
                StoreError::Storage(StorageError::Unavailable(format!("{what}: {why}")))
            }
        }
    }
}

/// Column `index` of `row`.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, Failed> {
    Ok(row.try_get(index)?)
}

/// Column `index` of `row` (a `bigint` named `column`) as the unsigned count it holds.
pub(crate) fn count<T: TryFrom<i64>>(row: &Row, index: usize, column: &str) -> Result<T, Failed> {
    let value: i64 = get(row, index)?;
    T::try_from(value).map_err(|_| Failed::Bad(format!("{column} holds {value}, out of range")))
}

/// A count as stored (`bigint`).
pub(crate) fn stored_count(value: impl Into<u64>, field: &str) -> Result<i64, Failed> {
    m365sync_store::model::stored_integer(field, value.into())
        .map_err(|e| Failed::Refused(StoreError::Storage(e)))
}

impl PostgresStore {
    /// The error of `what` on this store.
    fn queue_error(&self, what: &str) -> impl FnOnce(Failed) -> StoreError + '_ {
        let what = what.to_string();
        move |failed| failed.into_store(&what, &self.target.described)
    }
}

const JOB_COLUMNS: &str = "id, tenant, app, kind, state, run_after_ms, attempt, worker, \
    lease_until_ms, created_ms, started_ms, finished_ms, run_id, error";

pub(crate) fn job_from_row(row: &Row) -> Result<Job, Failed> {
    let kind: String = get(row, 3)?;
    let state: String = get(row, 4)?;
    Ok(Job {
        id: get(row, 0)?,
        tenant: get(row, 1)?,
        app: get(row, 2)?,
        kind: rules::stored_kind(&kind).map_err(Failed::Bad)?,
        state: rules::stored_state(&state).map_err(Failed::Bad)?,
        run_after_ms: get(row, 5)?,
        attempt: count(row, 6, "jobs.attempt")?,
        worker: get(row, 7)?,
        lease_until_ms: get(row, 8)?,
        created_ms: get(row, 9)?,
        started_ms: get(row, 10)?,
        finished_ms: get(row, 11)?,
        run_id: get(row, 12)?,
        error: get(row, 13)?,
    })
}

fn jobs_from_rows(rows: &[Row]) -> Result<Vec<Job>, Failed> {
    rows.iter().map(job_from_row).collect()
}

/// One job; `FOR UPDATE` locks it until the transaction ends.
async fn job(
    client: &impl GenericClient,
    id: i64,
    for_update: bool,
) -> Result<Option<Job>, Failed> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1{lock}");
    let rows = client.query(&sql, &[&id]).await?;
    rows.first().map(job_from_row).transpose()
}

/// The tenant's queued job, locked until the transaction ends.
async fn queued_of(client: &impl GenericClient, tenant: &str) -> Result<Option<Job>, Failed> {
    let sql =
        format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND state = 'queued' FOR UPDATE");
    let rows = client.query(&sql, &[&tenant]).await?;
    rows.first().map(job_from_row).transpose()
}

/// The jobs in `state`, by id; `FOR UPDATE` locks them until the transaction ends.
pub(crate) async fn jobs_in(
    client: &impl GenericClient,
    state: JobState,
    for_update: bool,
) -> Result<Vec<Job>, Failed> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 ORDER BY id{lock}");
    jobs_from_rows(&client.query(&sql, &[&state.name()]).await?)
}

/// Write `job` back as the rules left it (its id, tenant and creation never change).
pub(crate) async fn update_job(client: &impl GenericClient, job: &Job) -> Result<(), Failed> {
    let attempt = stored_count(job.attempt, "the job's attempt")?;
    client
        .execute(
            "UPDATE jobs SET app = $2, kind = $3, priority = $4, state = $5, run_after_ms = $6,
               attempt = $7, worker = $8, lease_until_ms = $9, started_ms = $10,
               finished_ms = $11, run_id = $12, error = $13
             WHERE id = $1",
            &[
                &job.id,
                &job.app,
                &job.kind.name(),
                &job.kind.priority(),
                &job.state.name(),
                &job.run_after_ms,
                &attempt,
                &job.worker,
                &job.lease_until_ms,
                &job.started_ms,
                &job.finished_ms,
                &job.run_id,
                &job.error,
            ],
        )
        .await?;
    Ok(())
}

/// Queue a new job; its id.
async fn insert_job(client: &impl GenericClient, new: &NewJob) -> Result<i64, Failed> {
    let job = rules::new_job(0, new, unix_now_ms());
    let attempt = stored_count(job.attempt, "the job's attempt")?;
    let row = client
        .query_one(
            "INSERT INTO jobs (tenant, app, kind, priority, state, run_after_ms, attempt,
                               created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &job.tenant,
                &job.app,
                &job.kind.name(),
                &job.kind.priority(),
                &job.state.name(),
                &job.run_after_ms,
                &attempt,
                &job.created_ms,
            ],
        )
        .await?;
    get(&row, 0)
}

async fn enqueue(client: &mut Object, new: &NewJob) -> Result<Enqueued, Failed> {
    let transaction = client.transaction().await?;
    // The tenant's row, locked: enqueues of one tenant take turns, and a tenant dropped
    // meanwhile is not found.
    if served::state(&transaction, &new.tenant, true)
        .await?
        .is_none()
    {
        return Err(rules::not_served(&new.tenant).into());
    }
    let queued = queued_of(&transaction, &new.tenant).await?;
    let enqueued = match (rules::plan_enqueue(queued.as_ref(), new), queued) {
        (EnqueuePlan::Merge(merged), _) => {
            update_job(&transaction, &merged).await?;
            Enqueued::Merged(merged.id)
        }
        (EnqueuePlan::Keep, Some(queued)) => Enqueued::AlreadyQueued(queued.id),
        (EnqueuePlan::Insert | EnqueuePlan::Keep, _) => {
            Enqueued::Queued(insert_job(&transaction, new).await?)
        }
    };
    transaction.commit().await?;
    Ok(enqueued)
}

/// Claims take turns under this lock (see the module's comment).
const CLAIM_LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('m365sync claims ' || current_schema(), 0))";

/// The claim, as [`rules::pick`] and [`rules::claimed`] say: `$1` now, `$2` the per-app
/// limit, `$3` the global one (or NULL), `$4` the worker, `$5` the lease's end.
static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    let returned: Vec<String> = JOB_COLUMNS
        .split(", ")
        .map(|c| format!("jobs.{c}"))
        .collect();
    format!(
        "WITH live AS (
             SELECT tenant, app FROM jobs WHERE state = 'running' AND lease_until_ms > $1
         ), picked AS (
             SELECT j.id FROM jobs j
             JOIN served_tenants s ON s.tenant = j.tenant AND NOT s.paused
             WHERE ((j.state = 'queued' AND j.run_after_ms <= $1)
                    OR (j.state = 'running'
                        AND (j.lease_until_ms IS NULL OR j.lease_until_ms <= $1)))
               AND NOT EXISTS (SELECT 1 FROM live WHERE live.tenant = j.tenant)
               AND (SELECT COUNT(*) FROM live WHERE live.app = j.app) < $2
               AND ($3::bigint IS NULL OR (SELECT COUNT(*) FROM live) < $3::bigint)
             ORDER BY j.priority, j.run_after_ms, j.id
             LIMIT 1
             FOR UPDATE OF j SKIP LOCKED
         )
         UPDATE jobs SET state = 'running',
             attempt = CASE WHEN jobs.state = 'running' THEN jobs.attempt + 1
                            ELSE jobs.attempt END,
             worker = $4, lease_until_ms = $5, started_ms = $1, finished_ms = NULL,
             run_id = NULL, error = NULL
         FROM picked WHERE jobs.id = picked.id
         RETURNING {}",
        returned.join(", ")
    )
});

async fn claim(
    client: &Object,
    place: &str,
    request: &ClaimRequest,
) -> Result<Option<Job>, StorageError> {
    let statement = pipeline::prepare(client, &[CLAIM_SQL.as_str()])
        .await?
        .pop()
        .ok_or_else(|| StorageError::Unavailable("the claim was not prepared".to_string()))?;
    let now = request.now_ms;
    let per_app = i64::from(request.per_app);
    let global = request.global.map(i64::from);
    let lease_until = rules::lease_end(now, request.lease);
    let what = format!("claiming a job in {place}");
    let what = what.as_str();
    let failed = |e: tokio_postgres::Error| crate::error::unavailable(what, &e);
    let steps: Vec<Step<'_, Vec<Row>>> = vec![
        Box::pin(async {
            client
                .batch_execute("BEGIN")
                .await
                .map(|()| vec![])
                .map_err(failed)
        }),
        Box::pin(async {
            client
                .batch_execute(CLAIM_LOCK_SQL)
                .await
                .map(|()| vec![])
                .map_err(failed)
        }),
        Box::pin(async {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&now, &per_app, &global, &request.worker, &lease_until];
            client.query(&statement, &params).await.map_err(failed)
        }),
        // After a failed claim, the aborted transaction's COMMIT rolls it back.
        Box::pin(async {
            client
                .batch_execute("COMMIT")
                .await
                .map(|()| vec![])
                .map_err(failed)
        }),
    ];
    let mut answers = pipeline::in_order(steps).await?;
    let rows = answers.swap_remove(2);
    match rows.first().map(job_from_row).transpose() {
        Ok(job) => Ok(job),
        Err(Failed::Bad(why)) => Err(StorageError::Unavailable(format!("{what}: {why}"))),
        Err(Failed::Sql(e)) => Err(failed(e)),
        Err(Failed::Refused(e)) => Err(StorageError::Unavailable(format!("{what}: {e}"))),
    }
}

/// The job `worker` holds, locked, if it does.
async fn held(client: &impl GenericClient, id: i64, worker: &str) -> Result<Option<Job>, Failed> {
    Ok(job(client, id, true)
        .await?
        .filter(|j| rules::held_by(j, worker)))
}

async fn renew(client: &mut Object, id: i64, worker: &str, until_ms: i64) -> Result<bool, Failed> {
    let transaction = client.transaction().await?;
    let Some(job) = held(&transaction, id, worker).await? else {
        return Ok(false);
    };
    let renewed = Job {
        lease_until_ms: Some(until_ms),
        ..job
    };
    update_job(&transaction, &renewed).await?;
    transaction.commit().await?;
    Ok(true)
}

async fn end(
    client: &mut Object,
    id: i64,
    worker: &str,
    end: &JobEnd,
    now_ms: i64,
) -> Result<bool, Failed> {
    let transaction = client.transaction().await?;
    let Some(job) = held(&transaction, id, worker).await? else {
        return Ok(false);
    };
    let queued = match end {
        JobEnd::Released { .. } => queued_of(&transaction, &job.tenant).await?,
        _ => None,
    };
    let Ended { job, queued } = rules::ended(&job, end, queued.as_ref(), now_ms);
    // The released job leaves `queued` (cancelled) before the other job changes.
    update_job(&transaction, &job).await?;
    if let Some(queued) = queued {
        update_job(&transaction, &queued).await?;
    }
    transaction.commit().await?;
    Ok(true)
}

async fn list_jobs(
    client: &Object,
    states: Option<&[JobState]>,
    limit: u32,
) -> Result<Vec<Job>, Failed> {
    let limit = i64::from(limit);
    let rows = match states {
        None => {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1");
            client.query(&sql, &[&limit]).await?
        }
        Some(states) => {
            let names: Vec<&str> = states.iter().map(|s| s.name()).collect();
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = ANY($2::text[])
                 ORDER BY id DESC LIMIT $1"
            );
            client.query(&sql, &[&limit, &names]).await?
        }
    };
    jobs_from_rows(&rows)
}

#[async_trait]
impl Queue for PostgresStore {
    async fn join(&self, worker: &WorkerInfo) -> Result<(), StoreError> {
        let what = "registering the worker";
        let client = self.client(what).await?;
        served::join(&client, worker)
            .await
            .map_err(self.queue_error(what))
    }

    async fn leave(&self, worker_id: &str) -> Result<(), StoreError> {
        let what = "removing the worker";
        let client = self.client(what).await?;
        served::leave(&client, worker_id)
            .await
            .map_err(self.queue_error(what))
    }

    async fn workers(
        &self,
        now_ms: i64,
        stale_after: Duration,
    ) -> Result<Vec<WorkerInfo>, StoreError> {
        let what = "listing the workers";
        let client = self.client(what).await?;
        let workers = served::workers(&client)
            .await
            .map_err(self.queue_error(what))?;
        Ok(workers
            .into_iter()
            .filter(|w| rules::worker_fresh(w, now_ms, stale_after))
            .collect())
    }

    async fn serve_tenants(&self, tenants: &[ServedTenant]) -> Result<(), StoreError> {
        let what = "setting the served tenants";
        let mut client = self.client(what).await?;
        served::serve_tenants(&mut client, tenants)
            .await
            .map_err(self.queue_error(what))
    }

    async fn tenant_states(&self, now_ms: i64) -> Result<Vec<TenantState>, StoreError> {
        let what = "reading the tenants' states";
        let client = self.client(what).await?;
        served::states(&client, None, now_ms)
            .await
            .map_err(self.queue_error(what))
    }

    async fn tenant_state(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError> {
        let what = "reading the tenant's state";
        let client = self.client(what).await?;
        let states = served::states(&client, Some(tenant), now_ms).await;
        Ok(states.map_err(self.queue_error(what))?.pop())
    }

    async fn set_paused(
        &self,
        tenant: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError> {
        let what = "pausing or resuming the tenant";
        let client = self.client(what).await?;
        served::set_paused(&client, tenant, paused)
            .await
            .map_err(self.queue_error(what))?;
        let states = served::states(&client, Some(tenant), now_ms).await;
        Ok(states.map_err(self.queue_error(what))?.pop())
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        expected: Option<i64>,
        next: Option<i64>,
    ) -> Result<bool, StoreError> {
        let what = "setting the tenant's next run";
        let client = self.client(what).await?;
        served::set_next_run(&client, tenant, expected, next)
            .await
            .map_err(self.queue_error(what))
    }

    async fn record_run_end(&self, tenant: &str, end: &RunEnd) -> Result<(), StoreError> {
        let what = "recording the end of the tenant's run";
        let mut client = self.client(what).await?;
        served::record_run_end(&mut client, tenant, end)
            .await
            .map_err(self.queue_error(what))
    }

    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        let what = "queueing a job";
        let mut client = self.client(what).await?;
        enqueue(&mut client, job)
            .await
            .map_err(self.queue_error(what))
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Job>, StoreError> {
        let client = self.client("claiming a job").await?;
        Ok(claim(&client, &self.target.described, request).await?)
    }

    async fn renew(
        &self,
        job_id: i64,
        worker: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let what = "renewing the job's lease";
        let mut client = self.client(what).await?;
        renew(&mut client, job_id, worker, lease_until_ms)
            .await
            .map_err(self.queue_error(what))
    }

    async fn end(
        &self,
        job_id: i64,
        worker: &str,
        how: &JobEnd,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let what = "ending the job";
        let mut client = self.client(what).await?;
        end(&mut client, job_id, worker, how, now_ms)
            .await
            .map_err(self.queue_error(what))
    }

    async fn jobs(&self, states: Option<&[JobState]>, limit: u32) -> Result<Vec<Job>, StoreError> {
        let what = "listing jobs";
        let client = self.client(what).await?;
        list_jobs(&client, states, limit)
            .await
            .map_err(self.queue_error(what))
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let what = "reading the job";
        let client = self.client(what).await?;
        job(&client, id, false)
            .await
            .map_err(self.queue_error(what))
    }

    async fn webhook_state(&self, name: &str) -> Result<WebhookState, StoreError> {
        let what = "reading the webhook's state";
        let mut client = self.client(what).await?;
        served::webhook_state(&mut client, name)
            .await
            .map_err(self.queue_error(what))
    }

    async fn claim_webhook(
        &self,
        name: &str,
        worker: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let what = "claiming the webhook";
        let mut client = self.client(what).await?;
        let take = |state: &WebhookState| rules::webhook_taken(state, worker, now_ms, lease);
        served::update_webhook(&mut client, name, take)
            .await
            .map_err(self.queue_error(what))
    }

    async fn record_delivery(
        &self,
        name: &str,
        worker: &str,
        delivery: &Delivery,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let what = "recording the webhook's delivery";
        let mut client = self.client(what).await?;
        let record = |state: &WebhookState| rules::delivered(state, worker, delivery, now_ms);
        served::update_webhook(&mut client, name, record)
            .await
            .map_err(self.queue_error(what))
    }
}
