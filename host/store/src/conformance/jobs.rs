//! Conformance cases of the job queue (the rules in `queue.rs`'s module docs): one queued
//! job per tenant and manual merges, claim order, due times, paused tenants, one running
//! job per tenant, the per-app and global limits, leases lapsing, renewed and held, how
//! jobs end, served tenants coming and going, and listing jobs.

use m365sync_wit::StorageError;

use super::Subject;
use super::serve_fixtures::*;
use crate::StoreError;
use crate::queue::{ClaimRequest, Enqueued, Job, JobEnd, JobKind, JobState, NewJob};

pub async fn enqueue_keeps_one_queued_job_per_tenant(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP), ("b", APP)]).await;
    let id = queued(store, &job("a", JobKind::Scheduled, 1_000)).await;
    let stored = job_of(store, id).await;
    assert!(stored.created_ms > 0, "created now: {stored:?}");
    assert_eq!(
        stored,
        Job {
            id,
            tenant: "a".to_string(),
            app: APP.to_string(),
            kind: JobKind::Scheduled,
            state: JobState::Queued,
            run_after_ms: 1_000,
            attempt: 1,
            worker: None,
            lease_until_ms: None,
            created_ms: stored.created_ms,
            started_ms: None,
            finished_ms: None,
            run_id: None,
            error: None,
        }
    );
    // A scheduled or retry enqueue while one is queued does nothing.
    let again = enqueue(store, &job("a", JobKind::Scheduled, 500)).await;
    assert_eq!(again, Enqueued::AlreadyQueued(id));
    let retry = NewJob {
        attempt: 2,
        ..job("a", JobKind::Retry, 100)
    };
    assert_eq!(enqueue(store, &retry).await, Enqueued::AlreadyQueued(id));
    assert_eq!(
        job_of(store, id).await,
        stored,
        "the queued job is unchanged"
    );
    let other = queued(store, &job("b", JobKind::Scheduled, 1_000)).await;
    assert!(other > id, "ids grow: {id} then {other}");
    // Only a served tenant's jobs are queued.
    let refused = store.enqueue(&job("nobody", JobKind::Manual, 0)).await;
    let Err(StoreError::Storage(StorageError::Invalid(message))) = &refused else {
        panic!("a tenant not served is refused as invalid: {refused:?}");
    };
    assert!(message.contains("nobody"), "{message}");
    let again = subject.reopen().await;
    let listed: Vec<i64> = (again.jobs(Some(&[JobState::Queued]), 10).await)
        .expect("listing jobs")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, vec![other, id], "another handle sees both");
}

pub async fn a_manual_enqueue_merges_into_the_queued_job_and_makes_it_due(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    let id = queued(store, &job("a", JobKind::Scheduled, 5_000)).await;
    let manual = job("a", JobKind::Manual, 1_000);
    assert_eq!(enqueue(store, &manual).await, Enqueued::Merged(id));
    let merged = job_of(store, id).await;
    assert_eq!(
        (
            merged.kind,
            merged.state,
            merged.run_after_ms,
            merged.attempt
        ),
        (JobKind::Manual, JobState::Queued, 1_000, 1)
    );
    // A manual enqueue never makes the queued job later.
    let later = job("a", JobKind::Manual, 3_000);
    assert_eq!(enqueue(store, &later).await, Enqueued::Merged(id));
    assert_eq!(job_of(store, id).await.run_after_ms, 1_000);
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(id), "due now");
    // While it runs, a manual enqueue queues a job of its own.
    let next = enqueue(store, &job("a", JobKind::Manual, 1_500)).await;
    let Enqueued::Queued(next) = next else {
        panic!("a job runs, none is queued: expected a new job, got {next:?}");
    };
    assert_ne!(next, id);
}

pub async fn claims_take_manual_jobs_first_then_the_earliest_due_then_the_oldest(
    subject: &Subject,
) {
    let store = &*subject.store;
    let tenants = ["a", "b", "c", "d", "e"];
    serve(store, &tenants.map(|t| (t, APP))).await;
    let a = queued(store, &job("a", JobKind::Scheduled, 300)).await;
    let b = queued(store, &job("b", JobKind::Retry, 100)).await;
    let c = queued(store, &job("c", JobKind::Scheduled, 100)).await;
    let d = queued(store, &job("d", JobKind::Manual, 900)).await;
    let e = queued(store, &job("e", JobKind::Manual, 800)).await;
    let mut order = Vec::new();
    for worker in ["w1", "w2", "w3", "w4", "w5", "w6"] {
        order.extend(claimed_id(store, worker, 1_000).await);
    }
    assert_eq!(order, vec![e, d, b, c, a]);
}

pub async fn a_job_not_yet_due_is_not_claimed(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    let id = queued(store, &job("a", JobKind::Scheduled, 2_000)).await;
    assert_eq!(claimed_id(store, "w1", 1_999).await, None);
    assert_eq!(job_of(store, id).await.state, JobState::Queued);
    let claimed = claim(store, &request("w1", 2_000)).await.expect("due");
    assert_eq!(
        claimed,
        job_of(store, id).await,
        "the claim returns the job as stored"
    );
    assert_eq!(
        (
            claimed.id,
            claimed.state,
            claimed.worker.as_deref(),
            claimed.lease_until_ms,
            claimed.started_ms,
            claimed.attempt,
        ),
        (
            id,
            JobState::Running,
            Some("w1"),
            Some(2_000 + LEASE_MS),
            Some(2_000),
            1
        )
    );
}

pub async fn a_paused_tenant_is_skipped_and_claimable_once_resumed(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP), ("b", APP)]).await;
    let paused = store.set_paused("a", true, 0).await.expect("pausing");
    assert!(paused.expect("a is served").paused);
    let a = queued(store, &job("a", JobKind::Manual, 100)).await;
    let b = queued(store, &job("b", JobKind::Scheduled, 200)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(b));
    assert_eq!(claimed_id(store, "w2", 1_000).await, None, "a is paused");
    assert_eq!(job_of(store, a).await.state, JobState::Queued, "kept");
    let resumed = store.set_paused("a", false, 1_000).await.expect("resuming");
    assert!(!resumed.expect("a is served").paused);
    assert_eq!(claimed_id(store, "w2", 1_000).await, Some(a));
    let unknown = store.set_paused("nobody", true, 0).await.expect("pausing");
    assert_eq!(unknown, None, "not served");
}

pub async fn a_tenant_runs_one_job_at_a_time(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP), ("b", APP)]).await;
    let first = queued(store, &job("a", JobKind::Scheduled, 0)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(first));
    // The running job is not queued: the next one is.
    let second = queued(store, &job("a", JobKind::Manual, 0)).await;
    let b = queued(store, &job("b", JobKind::Scheduled, 500)).await;
    assert_eq!(
        claimed_id(store, "w2", 1_000).await,
        Some(b),
        "a is running"
    );
    assert_eq!(claimed_id(store, "w3", 1_000).await, None);
    assert!(end(store, first, "w1", succeeded(), 2_000).await);
    assert_eq!(claimed_id(store, "w3", 2_000).await, Some(second));
}

pub async fn the_per_app_and_global_limits_bound_running_jobs(subject: &Subject) {
    let store = &*subject.store;
    let tenants = [
        ("a", "one"),
        ("b", "one"),
        ("c", "one"),
        ("d", "two"),
        ("e", "two"),
    ];
    serve(store, &tenants).await;
    let mut ids = Vec::new();
    for (tenant, app) in tenants {
        let new = NewJob {
            app: app.to_string(),
            ..job(tenant, JobKind::Scheduled, 0)
        };
        ids.push(queued(store, &new).await);
    }
    let [a, b, c, d, e] = ids[..] else {
        panic!("five jobs: {ids:?}");
    };
    let limited = |worker: &str, global: Option<u32>| ClaimRequest {
        per_app: 2,
        global,
        ..request(worker, 1_000)
    };
    let mut taken = Vec::new();
    for worker in ["w1", "w2", "w3", "w4"] {
        taken.extend(claim(store, &limited(worker, Some(3))).await.map(|j| j.id));
    }
    assert_eq!(
        taken,
        vec![a, b, d],
        "two of app one, then the fleet's three"
    );
    assert!(end(store, a, "w1", succeeded(), 1_000).await);
    let next = claim(store, &limited("w5", Some(3))).await.map(|j| j.id);
    assert_eq!(next, Some(c), "app one has room again");
    assert_eq!(claim(store, &limited("w6", Some(3))).await, None);
    let next = claim(store, &limited("w6", None)).await.map(|j| j.id);
    assert_eq!(next, Some(e), "no global limit: app two has room");
    // Lapsed leases count against no limit.
    let strict = ClaimRequest {
        per_app: 1,
        global: Some(1),
        ..request("w7", 1_000 + LEASE_MS)
    };
    let retaken = claim(store, &strict).await.expect("every lease has lapsed");
    assert_eq!((retaken.id, retaken.attempt), (b, 2));
}

pub async fn a_lapsed_lease_is_claimed_again_by_another_worker_as_the_next_attempt(
    subject: &Subject,
) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    let id = queued(store, &job("a", JobKind::Scheduled, 0)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(id));
    assert_eq!(claimed_id(store, "w2", 1_000 + LEASE_MS - 1).await, None);
    let taken = claim(store, &request("w2", 1_000 + LEASE_MS))
        .await
        .expect("the lease lapsed");
    assert_eq!(
        (
            taken.id,
            taken.attempt,
            taken.worker.as_deref(),
            taken.started_ms,
            taken.lease_until_ms,
        ),
        (
            id,
            2,
            Some("w2"),
            Some(1_000 + LEASE_MS),
            Some(1_000 + 2 * LEASE_MS)
        )
    );
    // The first worker's calls change nothing now.
    assert!(!renew(store, id, "w1", 99_000).await);
    assert!(!end(store, id, "w1", succeeded(), 11_500).await);
    let failed = JobEnd::Failed {
        run_id: None,
        error: "late".to_string(),
    };
    assert!(!end(store, id, "w1", failed, 11_500).await);
    assert_eq!(job_of(store, id).await, taken);
    assert!(renew(store, id, "w2", 30_000).await);
    assert_eq!(job_of(store, id).await.lease_until_ms, Some(30_000));
}

pub async fn renewing_extends_the_lease(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    let id = queued(store, &job("a", JobKind::Scheduled, 0)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(id));
    assert!(renew(store, id, "w1", 20_000).await);
    assert_eq!(claimed_id(store, "w2", 15_000).await, None);
    assert!(state_of(store, "a", 15_000).await.running);
    // A lapsed lease is still its worker's until another worker claims the job.
    assert!(renew(store, id, "w1", 25_000).await);
    assert_eq!(claimed_id(store, "w2", 24_999).await, None);
    let taken = claim(store, &request("w2", 25_000)).await.expect("lapsed");
    assert_eq!((taken.id, taken.attempt), (id, 2));
    assert!(!renew(store, id, "nobody", 90_000).await);
    assert!(!renew(store, id + 1_000, "w2", 90_000).await, "no such job");
}

pub async fn an_ended_job_keeps_its_outcome(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP), ("b", APP)]).await;
    let a = queued(store, &job("a", JobKind::Scheduled, 0)).await;
    let b = queued(store, &job("b", JobKind::Scheduled, 0)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(a));
    assert_eq!(claimed_id(store, "w2", 1_000).await, Some(b));
    let ok = JobEnd::Succeeded { run_id: Some(7) };
    assert!(end(store, a, "w1", ok, 5_000).await);
    let succeeded_job = job_of(store, a).await;
    assert_eq!(
        (
            succeeded_job.state,
            succeeded_job.run_id,
            succeeded_job.finished_ms,
            succeeded_job.error.as_deref(),
            succeeded_job.lease_until_ms,
            succeeded_job.worker.as_deref(),
            succeeded_job.started_ms,
        ),
        (
            JobState::Succeeded,
            Some(7),
            Some(5_000),
            None,
            None,
            Some("w1"),
            Some(1_000)
        )
    );
    let failed = JobEnd::Failed {
        run_id: Some(8),
        error: "sign-in failed".to_string(),
    };
    assert!(end(store, b, "w2", failed.clone(), 6_000).await);
    let failed_job = job_of(store, b).await;
    assert_eq!(
        (
            failed_job.state,
            failed_job.run_id,
            failed_job.finished_ms,
            failed_job.error.as_deref(),
            failed_job.lease_until_ms,
        ),
        (
            JobState::Failed,
            Some(8),
            Some(6_000),
            Some("sign-in failed"),
            None
        )
    );
    // An ended job is nobody's.
    assert!(!end(store, a, "w1", failed, 7_000).await);
    assert!(!renew(store, a, "w1", 90_000).await);
    assert_eq!(job_of(store, a).await, succeeded_job);
    assert!(!state_of(store, "a", 5_000).await.running);
}

pub async fn a_released_job_is_queued_again_due_at_its_time(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP)]).await;
    let id = queued(store, &job("a", JobKind::Scheduled, 0)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(id));
    let release = JobEnd::Released {
        run_after_ms: 5_000,
    };
    assert!(end(store, id, "w1", release, 2_000).await);
    let released = job_of(store, id).await;
    assert_eq!(
        (
            released.state,
            released.run_after_ms,
            released.lease_until_ms,
            released.attempt
        ),
        (JobState::Queued, 5_000, None, 1)
    );
    assert!(!renew(store, id, "w1", 90_000).await, "no longer held");
    assert_eq!(claimed_id(store, "w2", 4_999).await, None);
    let again = claim(store, &request("w2", 5_000))
        .await
        .expect("due again");
    assert_eq!(
        (again.id, again.attempt, again.worker.as_deref()),
        (id, 1, Some("w2")),
        "a release is not a new attempt"
    );
    // Released while another job of the tenant is queued: that one runs instead.
    let next = queued(store, &job("a", JobKind::Scheduled, 9_000)).await;
    let release = JobEnd::Released {
        run_after_ms: 6_000,
    };
    assert!(end(store, id, "w2", release, 5_500).await);
    let cancelled = job_of(store, id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.error.is_some(), "says why: {cancelled:?}");
    let merged = job_of(store, next).await;
    assert_eq!(
        (merged.state, merged.kind, merged.run_after_ms),
        (JobState::Queued, JobKind::Scheduled, 6_000)
    );
    let queued_ids: Vec<i64> = (store.jobs(Some(&[JobState::Queued]), 10).await)
        .expect("listing")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(queued_ids, vec![next]);
}

pub async fn serving_tenants_adds_keeps_and_drops_them(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("b", "one"), ("a", "one")]).await;
    let states = store.tenant_states(0).await.expect("reading states");
    let fresh = |tenant: &str, app: &str| crate::queue::rules::new_tenant(tenant, app);
    assert_eq!(
        states,
        vec![fresh("a", "one"), fresh("b", "one")],
        "by name"
    );
    assert!(
        store
            .set_paused("b", true, 0)
            .await
            .expect("pausing")
            .is_some()
    );
    record_run_end(store, "a", &run_end(false, 3, 100, Some("grant consent"))).await;
    let dropped = NewJob {
        app: "one".to_string(),
        ..job("b", JobKind::Scheduled, 0)
    };
    let dropped = queued(store, &dropped).await;
    serve(store, &[("a", "two"), ("c", "one")]).await;
    let again = subject.reopen().await;
    let states = again.tenant_states(0).await.expect("reading states");
    let names: Vec<&str> = states.iter().map(|s| s.tenant.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    let a = &states[0];
    assert_eq!(a.app, "two", "the app is updated");
    assert_eq!(
        (
            a.consecutive_failures,
            a.attention.as_deref(),
            a.last_run_id,
            a.last_run_ms,
            a.last_run_ok
        ),
        (1, Some("grant consent"), Some(3), Some(100), Some(false)),
        "a known tenant keeps its state"
    );
    assert_eq!(states[1], fresh("c", "one"));
    assert_eq!(again.tenant_state("b", 0).await.expect("reading"), None);
    let cancelled = job_of(&*again, dropped).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    let error = cancelled.error.unwrap_or_default();
    assert!(error.contains("tenant b"), "{error}");
    // Served again, a dropped tenant starts afresh.
    serve(store, &[("a", "two"), ("b", "one"), ("c", "one")]).await;
    assert_eq!(state_of(store, "b", 0).await, fresh("b", "one"));
}

pub async fn jobs_are_listed_newest_first_by_state(subject: &Subject) {
    let store = &*subject.store;
    serve(store, &[("a", APP), ("b", APP), ("c", APP)]).await;
    let a = queued(store, &job("a", JobKind::Scheduled, 0)).await;
    let b = queued(store, &job("b", JobKind::Scheduled, 10)).await;
    let c = queued(store, &job("c", JobKind::Scheduled, 5_000)).await;
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(a));
    assert!(end(store, a, "w1", succeeded(), 1_000).await);
    assert_eq!(claimed_id(store, "w1", 1_000).await, Some(b));
    let ids = |jobs: Vec<Job>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    let listed = |states: Option<&'static [JobState]>, limit: u32| async move {
        ids(store.jobs(states, limit).await.expect("listing jobs"))
    };
    assert_eq!(listed(None, 10).await, vec![c, b, a]);
    assert_eq!(listed(Some(&[JobState::Queued]), 10).await, vec![c]);
    let ran: &'static [JobState] = &[JobState::Running, JobState::Succeeded];
    assert_eq!(listed(Some(ran), 10).await, vec![b, a]);
    assert_eq!(listed(None, 2).await, vec![c, b]);
    assert_eq!(listed(Some(&[]), 10).await, Vec::<i64>::new());
    assert_eq!(
        listed(Some(&[JobState::Failed]), 10).await,
        Vec::<i64>::new()
    );
    assert_eq!(store.job(c + 1_000).await.expect("reading"), None);
}
