//! What `m365sync serve` workers share through the store, with no coordinator of their own:
//! the tenants they serve and each one's state (paused, consecutive failures, what needs an
//! admin's attention, when it is next due), a durable job queue whose claims hold leases,
//! the workers themselves, and webhook delivery positions.
//!
//! Times are Unix milliseconds given by the caller (`now_ms`), so the rules are testable with
//! a fixed clock and a database's own clock never decides anything.
//!
//! The queue's rules, which every back end must keep:
//! - At most one *queued* job per tenant. Enqueueing a scheduled or retry job while one is
//!   queued does nothing ([`Enqueued::AlreadyQueued`]); enqueueing a manual ("sync now")
//!   job while one is queued turns that job into a manual one, due now
//!   ([`Enqueued::Merged`]).
//! - A claim takes the queued job that is due (`run_after_ms <= now_ms`) first in priority
//!   (manual before scheduled and retry), then `run_after_ms`, then id; never a job of a
//!   paused tenant, nor of a tenant that has a running job with a live lease; never more
//!   running jobs of one app than `per_app`, nor more in all than `global` when set. A
//!   running job whose lease has expired (its worker died) is claimable again, as a retry
//!   of the same job (`attempt` + 1). Two workers never hold the same job: on a server
//!   database, claims take row locks with `SKIP LOCKED` and the limits are checked under a
//!   lock that serializes claims.
//! - Only the worker holding a job (its id and a live or renewed lease) may renew or end
//!   it; anyone else's call changes nothing and answers `false`.
//! - A second worker on a store that only one process may serve (SQLite) is refused at
//!   [`Queue::join`] with [`StoreError::Busy`](crate::StoreError::Busy).
//!
//! Where the rules above are silent, every back end does this ([`rules`] holds each
//! decision as a function, which the back ends apply):
//! - Only a served tenant's jobs are queued: enqueueing for a tenant that is not served is
//!   refused (`invalid`). Setting the next run of, or recording a run's end for, a tenant
//!   that is not served does nothing.
//! - A manual enqueue merged into the queued job keeps that job's id and attempt; it is
//!   due at the earlier of the two times.
//! - A lease is live up to, not including, `lease_until_ms`. A worker whose lease lapsed
//!   still holds its job (may renew or end it) until another worker claims it.
//! - A job released while another job of its tenant is queued (enqueued while it ran) is
//!   cancelled, saying so, and the queued job runs instead: due at the earlier of the two
//!   times, manual if either was. A released job is not a new attempt; one taken over
//!   after a lapsed lease is.
//! - `created_ms`, and the `finished_ms` of a job cancelled by `serve_tenants`, are the
//!   host's clock: they are shown, and decide nothing.
//! - A successful delivery clears the webhook's `last_error` with its failures.
//! - `workers` lists by id; `jobs` newest (highest id) first; `tenant_states` by name.
//! - Resetting a tenant keeps what this module holds of it (its state, jobs) and its
//!   events in the change feed: they are the service's and the consumers' history, not
//!   the tenant's synced data.

pub mod rules;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use async_trait::async_trait;

use crate::StoreError;

/// Why a job was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobKind {
    /// "Sync now": first in the queue.
    Manual,
    /// Due by the tenant's schedule.
    Scheduled,
    /// A failed run tried again after a backoff.
    Retry,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Manual, JobKind::Scheduled, JobKind::Retry];

    pub fn name(self) -> &'static str {
        match self {
            JobKind::Manual => "manual",
            JobKind::Scheduled => "scheduled",
            JobKind::Retry => "retry",
        }
    }

    pub fn from_name(name: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Claim order: lower first.
    pub fn priority(self) -> i32 {
        match self {
            JobKind::Manual => 0,
            JobKind::Scheduled | JobKind::Retry => 1,
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Dropped without running: its tenant is no longer served.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub tenant: String,
    /// The app registration (client id) the tenant's runs sign in as: Graph throttles per
    /// app, so the queue bounds the running jobs per app.
    pub app: String,
    pub kind: JobKind,
    /// Not claimed before this time (Unix ms).
    pub run_after_ms: i64,
    /// The attempt this job is (1 for a first try; a retry counts on from the failure).
    pub attempt: u32,
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job, with its id.
    Queued(i64),
    /// A manual enqueue that made the tenant's queued job manual and due now.
    Merged(i64),
    /// The tenant has a queued job already (a scheduled or retry enqueue does nothing).
    AlreadyQueued(i64),
}

impl Enqueued {
    /// The id of the job that will run.
    pub fn id(self) -> i64 {
        match self {
            Enqueued::Queued(id) | Enqueued::Merged(id) | Enqueued::AlreadyQueued(id) => id,
        }
    }
}

/// A job of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: i64,
    pub tenant: String,
    pub app: String,
    pub kind: JobKind,
    pub state: JobState,
    pub run_after_ms: i64,
    pub attempt: u32,
    /// The worker holding it (running), or that last held it.
    pub worker: Option<String>,
    /// Until when its holder's lease runs (Unix ms), while running.
    pub lease_until_ms: Option<i64>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The run's entry in the sync log, once it ended.
    pub run_id: Option<i64>,
    /// Why it failed (or was cancelled), in words.
    pub error: Option<String>,
}

/// A worker's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub worker: String,
    pub now_ms: i64,
    /// How long the claim holds before it must be renewed.
    pub lease: Duration,
    /// Running jobs of one app at most (fleet-wide).
    pub per_app: u32,
    /// Running jobs at most in all (fleet-wide), when set.
    pub global: Option<u32>,
}

/// How a held job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded {
        run_id: Option<i64>,
    },
    Failed {
        run_id: Option<i64>,
        error: String,
    },
    /// Back to the queue, due at `run_after_ms` (a worker shutting down, a run refused
    /// because another process holds the tenant): the same job, claimable again.
    Released {
        run_after_ms: i64,
    },
}

/// A tenant served by the workers, as the config (or onboarding) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedTenant {
    pub tenant: String,
    pub app: String,
}

/// A tenant's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub tenant: String,
    pub app: String,
    pub paused: bool,
    /// Failed runs since the last successful one.
    pub consecutive_failures: u32,
    /// What an admin must fix before runs can succeed (an expired secret, missing consent),
    /// in words naming the fix; cleared by a successful run.
    pub attention: Option<String>,
    /// When the next scheduled run is due (Unix ms).
    pub next_run_ms: Option<i64>,
    /// The last run that ended: its sync-log id, when it ended, and whether it succeeded.
    pub last_run_id: Option<i64>,
    pub last_run_ms: Option<i64>,
    pub last_run_ok: Option<bool>,
    /// A job of the tenant is running under a live lease.
    pub running: bool,
}

/// How a tenant looks, for the API and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TenantStatus {
    Healthy,
    Running,
    Failing,
    NeedsAttention,
    Paused,
}

impl TenantStatus {
    pub const ALL: [TenantStatus; 5] = [
        TenantStatus::Healthy,
        TenantStatus::Running,
        TenantStatus::Failing,
        TenantStatus::NeedsAttention,
        TenantStatus::Paused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TenantStatus::Healthy => "healthy",
            TenantStatus::Running => "running",
            TenantStatus::Failing => "failing",
            TenantStatus::NeedsAttention => "needs-attention",
            TenantStatus::Paused => "paused",
        }
    }
}

impl TenantState {
    /// The tenant's status: paused, else running, else needs-attention, else failing
    /// (`failing_after` consecutive failures or more), else healthy.
    pub fn status(&self, failing_after: u32) -> TenantStatus {
        if self.paused {
            TenantStatus::Paused
        } else if self.running {
            TenantStatus::Running
        } else if self.attention.is_some() {
            TenantStatus::NeedsAttention
        } else if self.consecutive_failures >= failing_after.max(1) {
            TenantStatus::Failing
        } else {
            TenantStatus::Healthy
        }
    }
}

/// How a tenant's run ended, for its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub ok: bool,
    pub run_id: Option<i64>,
    pub at_ms: i64,
    /// For a failure retrying cannot fix: what needs an admin's attention.
    pub attention: Option<String>,
}

/// A worker of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique per process (e.g. `host:pid:start`).
    pub id: String,
    pub pid: u32,
    pub host: String,
    pub started_ms: i64,
    /// Its last heartbeat (Unix ms).
    pub heartbeat_ms: i64,
}

/// Where a webhook's deliveries stand.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookState {
    pub name: String,
    /// The last feed cursor delivered (0: none yet).
    pub cursor: i64,
    pub delivered: u64,
    /// Deliveries that failed since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
    /// When a delivery last succeeded (Unix ms).
    pub last_delivered_ms: Option<i64>,
    /// The worker delivering it, and until when (a lease, as jobs have).
    pub worker: Option<String>,
    pub lease_until_ms: Option<i64>,
}

/// A webhook delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// `events` events up to `cursor` were delivered: the webhook's cursor moves there and
    /// its failures are cleared.
    Delivered { cursor: i64, events: u64 },
    /// The attempt failed: one more failure, and its error.
    Failed { error: String },
}

/// The service's shared state (see the module docs for the rules).
#[async_trait]
pub trait Queue: Send + Sync {
    /// Register a worker (or refresh its heartbeat). A store only one process may serve
    /// refuses a second live worker with `StoreError::Busy` naming the first.
    async fn join(&self, worker: &WorkerInfo) -> Result<(), StoreError>;
    /// Remove a worker (it stops).
    async fn leave(&self, worker_id: &str) -> Result<(), StoreError>;
    /// The workers whose heartbeat is younger than `stale_after`.
    async fn workers(
        &self,
        now_ms: i64,
        stale_after: Duration,
    ) -> Result<Vec<WorkerInfo>, StoreError>;

    /// Make `tenants` the served ones: new ones are added (not paused, no failures), known
    /// ones keep their state (their app is updated), others are dropped with their queued
    /// jobs (cancelled). Their stored data is not touched.
    async fn serve_tenants(&self, tenants: &[ServedTenant]) -> Result<(), StoreError>;
    /// Every served tenant's state, by name.
    async fn tenant_states(&self, now_ms: i64) -> Result<Vec<TenantState>, StoreError>;
    /// One served tenant's state (None: not served).
    async fn tenant_state(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError>;
    /// Pause or resume a served tenant (None: not served). A paused tenant is not claimed
    /// and keeps its queued job for when it is resumed.
    async fn set_paused(
        &self,
        tenant: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError>;
    /// Move the tenant's next scheduled run from `expected` to `next`, if it still is
    /// `expected` (a compare-and-set): true when this call moved it. Of several workers
    /// seeing the same run due, exactly one moves it on, and only that one queues the run.
    /// False for a tenant not served.
    async fn set_next_run(
        &self,
        tenant: &str,
        expected: Option<i64>,
        next: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Note how a run of the tenant ended: a success clears its failures and attention; a
    /// failure counts one more, and sets the attention when it has one.
    async fn record_run_end(&self, tenant: &str, end: &RunEnd) -> Result<(), StoreError>;

    /// Queue a job (see the module docs for the one-queued-job rule).
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError>;
    /// Claim the next job the rules allow, if any, leased to the claiming worker until
    /// `now_ms + lease`.
    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Job>, StoreError>;
    /// Extend a held job's lease; false when the worker no longer holds it.
    async fn renew(
        &self,
        job_id: i64,
        worker: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// End a held job; false when the worker no longer holds it (nothing changes).
    async fn end(
        &self,
        job_id: i64,
        worker: &str,
        end: &JobEnd,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Jobs, newest first: of these states (all when None), at most `limit`.
    async fn jobs(&self, states: Option<&[JobState]>, limit: u32) -> Result<Vec<Job>, StoreError>;
    /// One job.
    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError>;

    /// A webhook's delivery state (a new webhook starts at the feed's current end, so that
    /// it gets what happens from now on, not the whole history).
    async fn webhook_state(&self, name: &str) -> Result<WebhookState, StoreError>;
    /// Take the webhook's delivery lease (false: another worker holds a live one).
    async fn claim_webhook(
        &self,
        name: &str,
        worker: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<bool, StoreError>;
    /// Record a delivery attempt by the lease holder. False when the worker no longer holds
    /// the lease (nothing changes).
    async fn record_delivery(
        &self,
        name: &str,
        worker: &str,
        delivery: &Delivery,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}
