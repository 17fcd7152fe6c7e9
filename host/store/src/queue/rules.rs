//! The queue's rules as plain functions over the model ([`Job`], [`TenantState`],
//! [`WebhookState`], [`WorkerInfo`]): what an enqueue, a claim, an end, a run's end or a
//! delivery makes of the rows it reads. The memory and SQLite stores apply them to the rows
//! they read in one transaction; PostgreSQL applies them too, to rows it reads `FOR UPDATE`,
//! except for the claim, which it must make in SQL (row locks with `SKIP LOCKED`) and which
//! the conformance suite holds to [`pick`]. One rule, one place: a back end never decides
//! these things itself.

use std::time::Duration;

use m365sync_wit::StorageError;

use super::{
    ClaimRequest, Delivery, Job, JobEnd, JobKind, JobState, NewJob, RunEnd, TenantState,
    WebhookState, WorkerInfo,
};
use crate::StoreError;
use crate::model::{LOCK_STALE_AFTER, host_name, process_alive};

/// Whether a lease that runs until `lease_until_ms` is live at `now_ms` (it runs up to,
/// not including, its end).
pub fn lease_live(lease_until_ms: Option<i64>, now_ms: i64) -> bool {
    lease_until_ms.is_some_and(|until| until > now_ms)
}

/// When a lease of `lease` taken at `now_ms` ends (saturating: a lease never wraps).
pub fn lease_end(now_ms: i64, lease: Duration) -> i64 {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_add(lease_ms)
}

/// A duration in milliseconds as stored (saturating).
pub fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `worker` holds `job`: it runs under that worker's claim (live, or lapsed and not
/// yet taken by another: a lapsed lease is lost only when another worker claims the job).
pub fn held_by(job: &Job, worker: &str) -> bool {
    job.state == JobState::Running && job.worker.as_deref() == Some(worker)
}

/// Whether `job` runs under a live lease at `now_ms`.
pub fn running_live(job: &Job, now_ms: i64) -> bool {
    job.state == JobState::Running && lease_live(job.lease_until_ms, now_ms)
}

/// A new queued job (its id is the store's; `created_ms` the host's clock: it decides
/// nothing).
pub fn new_job(id: i64, job: &NewJob, created_ms: i64) -> Job {
    Job {
        id,
        tenant: job.tenant.clone(),
        app: job.app.clone(),
        kind: job.kind,
        state: JobState::Queued,
        run_after_ms: job.run_after_ms,
        attempt: job.attempt,
        worker: None,
        lease_until_ms: None,
        created_ms,
        started_ms: None,
        finished_ms: None,
        run_id: None,
        error: None,
    }
}

/// What an enqueue does, given the tenant's queued job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueuePlan {
    /// No job is queued: queue this one.
    Insert,
    /// A manual enqueue: the queued job becomes this (manual, due at the earlier of the
    /// two times; it keeps its id and attempt) — [`super::Enqueued::Merged`].
    Merge(Job),
    /// A scheduled or retry enqueue while one is queued: nothing changes
    /// ([`super::Enqueued::AlreadyQueued`]).
    Keep,
}

/// The one-queued-job rule (see the module docs of [`super`]).
pub fn plan_enqueue(queued: Option<&Job>, job: &NewJob) -> EnqueuePlan {
    match queued {
        None => EnqueuePlan::Insert,
        Some(queued) if job.kind == JobKind::Manual => EnqueuePlan::Merge(Job {
            kind: JobKind::Manual,
            run_after_ms: queued.run_after_ms.min(job.run_after_ms),
            ..queued.clone()
        }),
        Some(_) => EnqueuePlan::Keep,
    }
}

/// The refusal of an enqueue for a tenant that is not served.
pub fn not_served(tenant: &str) -> StoreError {
    StoreError::Storage(StorageError::Invalid(format!(
        "cannot queue a job of tenant {tenant}: it is not served (serve it first)"
    )))
}

/// Claim order: priority (manual first), then when due, then id.
pub fn claim_order(job: &Job) -> (i32, i64, i64) {
    (job.kind.priority(), job.run_after_ms, job.id)
}

/// Whether `job` may be claimed at all at `now_ms`, leaving aside its tenant and the
/// limits: queued and due, or running under a lapsed lease.
pub fn claimable(job: &Job, now_ms: i64) -> bool {
    match job.state {
        JobState::Queued => job.run_after_ms <= now_ms,
        JobState::Running => !lease_live(job.lease_until_ms, now_ms),
        _ => false,
    }
}

/// The job a claim takes among `jobs` (every queued and running job will do; others are
/// ignored), or none: the first in [`claim_order`] that is [`claimable`], whose tenant is
/// served and not paused (`paused`: None when not served), has no job running under a
/// live lease, and whose app and the fleet are under the request's limits.
pub fn pick<'a>(
    jobs: impl IntoIterator<Item = &'a Job>,
    paused: impl Fn(&str) -> Option<bool>,
    request: &ClaimRequest,
) -> Option<&'a Job> {
    let jobs: Vec<&Job> = jobs.into_iter().collect();
    let now = request.now_ms;
    let live: Vec<&&Job> = jobs.iter().filter(|j| running_live(j, now)).collect();
    let global_full = request
        .global
        .is_some_and(|global| live.len() >= usize::try_from(global).unwrap_or(usize::MAX));
    if global_full {
        return None;
    }
    let per_app = usize::try_from(request.per_app).unwrap_or(usize::MAX);
    let mut candidates: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| claimable(j, now))
        .filter(|j| paused(&j.tenant) == Some(false))
        .filter(|j| !live.iter().any(|l| l.tenant == j.tenant))
        .filter(|j| live.iter().filter(|l| l.app == j.app).count() < per_app)
        .collect();
    candidates.sort_by_key(|j| claim_order(j));
    candidates.first().copied()
}

/// `job` as a claim leaves it: running, held by the request's worker until its lease
/// ends; a job taken over from a worker whose lease lapsed is its next attempt.
pub fn claimed(job: &Job, request: &ClaimRequest) -> Job {
    let attempt = match job.state {
        JobState::Running => job.attempt.saturating_add(1),
        _ => job.attempt,
    };
    Job {
        state: JobState::Running,
        attempt,
        worker: Some(request.worker.clone()),
        lease_until_ms: Some(lease_end(request.now_ms, request.lease)),
        started_ms: Some(request.now_ms),
        finished_ms: None,
        run_id: None,
        error: None,
        ..job.clone()
    }
}

/// What ending a held job changes: the job itself, and for a release while another job of
/// the tenant is queued, that job too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub job: Job,
    /// The tenant's queued job, merged with the released one.
    pub queued: Option<Job>,
}

/// `job` (held) ended as `end` says at `now_ms`; `queued` is the tenant's queued job, if
/// any (only a release needs it). A released job goes back to the queue, unless another
/// job of the tenant was queued meanwhile: at most one is queued, so the released job is
/// cancelled and the queued one runs instead — at the earlier of the two times, manual
/// if either was.
pub fn ended(job: &Job, end: &JobEnd, queued: Option<&Job>, now_ms: i64) -> Ended {
    let finished = |state, run_id: &Option<i64>, error: Option<String>| Job {
        state,
        lease_until_ms: None,
        finished_ms: Some(now_ms),
        run_id: *run_id,
        error,
        ..job.clone()
    };
    match end {
        JobEnd::Succeeded { run_id } => Ended {
            job: finished(JobState::Succeeded, run_id, None),
            queued: None,
        },
        JobEnd::Failed { run_id, error } => Ended {
            job: finished(JobState::Failed, run_id, Some(error.clone())),
            queued: None,
        },
        JobEnd::Released { run_after_ms } => match queued.filter(|q| q.id != job.id) {
            None => Ended {
                job: Job {
                    state: JobState::Queued,
                    run_after_ms: *run_after_ms,
                    lease_until_ms: None,
                    ..job.clone()
                },
                queued: None,
            },
            Some(queued) => {
                let kind = if job.kind.priority() < queued.kind.priority() {
                    job.kind
                } else {
                    queued.kind
                };
                Ended {
                    job: finished(
                        JobState::Cancelled,
                        &None,
                        Some(format!(
                            "released while job {} of tenant {} was queued; that job runs \
                             instead",
                            queued.id, job.tenant
                        )),
                    ),
                    queued: Some(Job {
                        kind,
                        run_after_ms: queued.run_after_ms.min(*run_after_ms),
                        ..queued.clone()
                    }),
                }
            }
        },
    }
}

/// A queued job of a tenant no longer served, as `serve_tenants` leaves it.
pub fn cancelled(job: &Job, now_ms: i64) -> Job {
    Job {
        state: JobState::Cancelled,
        finished_ms: Some(now_ms),
        error: Some(format!("tenant {} is no longer served", job.tenant)),
        ..job.clone()
    }
}

/// A tenant newly served: not paused, no failures, nothing run yet.
pub fn new_tenant(tenant: &str, app: &str) -> TenantState {
    TenantState {
        tenant: tenant.to_string(),
        app: app.to_string(),
        paused: false,
        consecutive_failures: 0,
        attention: None,
        next_run_ms: None,
        last_run_id: None,
        last_run_ms: None,
        last_run_ok: None,
        running: false,
    }
}

/// `state` after a run that ended as `end` says: a success clears the failures and the
/// attention; a failure counts one more and sets the attention when it has one (else the
/// attention stays).
pub fn run_ended(state: &TenantState, end: &RunEnd) -> TenantState {
    let (consecutive_failures, attention) = if end.ok {
        (0, None)
    } else {
        (
            state.consecutive_failures.saturating_add(1),
            end.attention.clone().or_else(|| state.attention.clone()),
        )
    };
    TenantState {
        consecutive_failures,
        attention,
        last_run_id: end.run_id,
        last_run_ms: Some(end.at_ms),
        last_run_ok: Some(end.ok),
        ..state.clone()
    }
}

/// A webhook seen for the first time: it starts at the feed's end (`last_cursor`).
pub fn new_webhook(name: &str, last_cursor: i64) -> WebhookState {
    WebhookState {
        name: name.to_string(),
        cursor: last_cursor,
        ..WebhookState::default()
    }
}

/// `state` with its delivery lease taken by `worker` until `now_ms + lease`, or None when
/// another worker holds a live one. The holder taking it again renews it.
pub fn webhook_taken(
    state: &WebhookState,
    worker: &str,
    now_ms: i64,
    lease: Duration,
) -> Option<WebhookState> {
    let other_holds = state.worker.as_deref().is_some_and(|w| w != worker)
        && lease_live(state.lease_until_ms, now_ms);
    (!other_holds).then(|| WebhookState {
        worker: Some(worker.to_string()),
        lease_until_ms: Some(lease_end(now_ms, lease)),
        ..state.clone()
    })
}

/// `state` after `worker`'s delivery attempt, or None when `worker` does not hold the
/// lease (as for jobs: a lapsed lease is lost only when another worker takes it). A
/// delivery moves the cursor, counts its events and clears the failures and their error;
/// a failure counts one more and keeps its error.
pub fn delivered(
    state: &WebhookState,
    worker: &str,
    delivery: &Delivery,
    now_ms: i64,
) -> Option<WebhookState> {
    if state.worker.as_deref() != Some(worker) {
        return None;
    }
    Some(match delivery {
        Delivery::Delivered { cursor, events } => WebhookState {
            cursor: *cursor,
            delivered: state.delivered.saturating_add(*events),
            failures: 0,
            last_error: None,
            last_delivered_ms: Some(now_ms),
            ..state.clone()
        },
        Delivery::Failed { error } => WebhookState {
            failures: state.failures.saturating_add(1),
            last_error: Some(error.clone()),
            ..state.clone()
        },
    })
}

/// Whether `worker`, met by a worker joining at `now_ms`, still serves a store that one
/// process may serve: by the rule of tenant locks ([`crate::model::LockHolder::is_stale`]),
/// a worker on this host lives as long as its process does; one on another host while
/// its heartbeat is younger than [`LOCK_STALE_AFTER`].
pub fn worker_live(worker: &WorkerInfo, now_ms: i64) -> bool {
    if worker.host == host_name() {
        return process_alive(worker.pid);
    }
    now_ms.saturating_sub(worker.heartbeat_ms) < duration_ms(LOCK_STALE_AFTER)
}

/// The refusal of a second process serving `store` (described), which `first` serves.
pub fn served_by_another(store: &str, first: &WorkerInfo) -> StoreError {
    let since = jiff::Timestamp::from_millisecond(first.started_ms)
        .map(crate::time::rfc3339)
        .unwrap_or_else(|_| format!("{} ms after the Unix epoch", first.started_ms));
    StoreError::Busy(format!(
        "{store} is served by m365sync serve (pid {} on {}) since {since}; one process serves \
         a SQLite store: stop it, or use PostgreSQL for several workers",
        first.pid, first.host
    ))
}

/// Whether `worker`'s heartbeat is younger than `stale_after` at `now_ms` (the workers
/// [`super::Queue::workers`] lists).
pub fn worker_fresh(worker: &WorkerInfo, now_ms: i64, stale_after: Duration) -> bool {
    now_ms.saturating_sub(worker.heartbeat_ms) < duration_ms(stale_after)
}

/// What is wrong with a value read back from a store that is none of the names it may
/// hold, naming where it was (`jobs.kind`).
pub fn unknown_value(column: &str, value: &str) -> String {
    format!("{column} holds {value:?}, which this m365sync does not know")
}

/// A job kind as stored, or what is wrong with it.
pub fn stored_kind(name: &str) -> Result<super::JobKind, String> {
    JobKind::from_name(name).ok_or_else(|| unknown_value("jobs.kind", name))
}

/// A job state as stored, or what is wrong with it.
pub fn stored_state(name: &str) -> Result<JobState, String> {
    JobState::from_name(name).ok_or_else(|| unknown_value("jobs.state", name))
}

/// A change kind as stored, or what is wrong with it.
pub fn stored_change_kind(name: &str) -> Result<crate::feed::ChangeKind, String> {
    crate::feed::ChangeKind::from_name(name)
        .ok_or_else(|| unknown_value("change_events.kind", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, tenant: &str, kind: JobKind, run_after_ms: i64) -> Job {
        let new = NewJob {
            tenant: tenant.to_string(),
            app: "app".to_string(),
            kind,
            run_after_ms,
            attempt: 1,
        };
        new_job(id, &new, 0)
    }

    fn request(now_ms: i64) -> ClaimRequest {
        ClaimRequest {
            worker: "w".to_string(),
            now_ms,
            lease: Duration::from_secs(10),
            per_app: 10,
            global: None,
        }
    }

    #[test]
    fn leases_run_up_to_their_end_and_never_wrap() {
        assert!(lease_live(Some(10), 9));
        assert!(!lease_live(Some(10), 10));
        assert!(!lease_live(None, 0));
        assert_eq!(lease_end(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
    }

    #[test]
    fn a_pick_takes_manual_then_due_then_id_and_skips_the_rest() {
        let jobs = [
            job(1, "a", JobKind::Scheduled, 5),
            job(2, "b", JobKind::Retry, 5),
            job(3, "c", JobKind::Manual, 9),
            job(4, "d", JobKind::Manual, 11),
            job(5, "e", JobKind::Scheduled, 1),
        ];
        let served = |t: &str| (t != "e").then_some(false);
        let picked = pick(&jobs, served, &request(10)).map(|j| j.id);
        assert_eq!(picked, Some(3));
        let without_manual = &jobs[..2];
        assert_eq!(
            pick(without_manual, served, &request(10)).map(|j| j.id),
            Some(1)
        );
        assert_eq!(pick(&jobs, served, &request(4)).map(|j| j.id), None);
    }

    #[test]
    fn a_release_while_another_job_is_queued_folds_into_it() {
        let running = claimed(&job(1, "a", JobKind::Manual, 0), &request(0));
        let queued = job(2, "a", JobKind::Scheduled, 500);
        let end = JobEnd::Released { run_after_ms: 100 };
        let Ended { job, queued } = ended(&running, &end, Some(&queued), 50);
        assert_eq!(job.state, JobState::Cancelled);
        let queued = queued.expect("merged");
        assert_eq!((queued.kind, queued.run_after_ms), (JobKind::Manual, 100));
    }

    #[test]
    fn a_worker_elsewhere_is_live_while_its_heartbeat_is_young() {
        let worker = WorkerInfo {
            id: "w".to_string(),
            pid: 1,
            host: "elsewhere.example".to_string(),
            started_ms: 0,
            heartbeat_ms: 1_000,
        };
        let stale = 1_000 + duration_ms(LOCK_STALE_AFTER);
        assert!(worker_live(&worker, stale - 1));
        assert!(!worker_live(&worker, stale));
    }
}
