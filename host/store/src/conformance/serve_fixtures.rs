//! What the conformance cases of `serve` (the queue, tenant states, workers, webhooks, the
//! change feed) build and read: jobs, claims, workers, and helpers that fail with a message
//! naming what they were doing. Times are fixed Unix milliseconds, never the clock.

use std::time::Duration;

use crate::StoreBackend;
use crate::feed::ChangeEvent;
use crate::queue::{
    ClaimRequest, Enqueued, Job, JobEnd, JobKind, NewJob, RunEnd, ServedTenant, TenantState,
    WorkerInfo,
};

/// The app the cases' tenants sign in as, unless a case says otherwise.
pub const APP: &str = "app-1";
/// The lease of the cases' claims.
pub const LEASE: Duration = Duration::from_secs(10);
/// [`LEASE`] in milliseconds.
pub const LEASE_MS: i64 = 10_000;

/// Serve exactly `tenants` (name, app).
pub async fn serve(store: &dyn StoreBackend, tenants: &[(&str, &str)]) {
    let tenants: Vec<ServedTenant> = tenants
        .iter()
        .map(|(tenant, app)| ServedTenant {
            tenant: tenant.to_string(),
            app: app.to_string(),
        })
        .collect();
    if let Err(error) = store.serve_tenants(&tenants).await {
        panic!("serving {tenants:?}: {error}");
    }
}

/// A first try of `kind` for `tenant` (app [`APP`]), due at `run_after_ms`.
pub fn job(tenant: &str, kind: JobKind, run_after_ms: i64) -> NewJob {
    NewJob {
        tenant: tenant.to_string(),
        app: APP.to_string(),
        kind,
        run_after_ms,
        attempt: 1,
    }
}

pub async fn enqueue(store: &dyn StoreBackend, job: &NewJob) -> Enqueued {
    match store.enqueue(job).await {
        Ok(enqueued) => enqueued,
        Err(error) => panic!("enqueueing {job:?}: {error}"),
    }
}

/// The id of a job that must be new.
pub async fn queued(store: &dyn StoreBackend, job: &NewJob) -> i64 {
    match enqueue(store, job).await {
        Enqueued::Queued(id) => id,
        other => panic!("enqueueing {job:?}: expected a new job, got {other:?}"),
    }
}

/// A claim by `worker` at `now_ms` for a [`LEASE`], with limits that never bind.
pub fn request(worker: &str, now_ms: i64) -> ClaimRequest {
    ClaimRequest {
        worker: worker.to_string(),
        now_ms,
        lease: LEASE,
        per_app: 100,
        global: None,
    }
}

pub async fn claim(store: &dyn StoreBackend, request: &ClaimRequest) -> Option<Job> {
    match store.claim(request).await {
        Ok(claimed) => claimed,
        Err(error) => panic!("claiming {request:?}: {error}"),
    }
}

/// The id of the job `worker` claims at `now_ms` (no limits), if any.
pub async fn claimed_id(store: &dyn StoreBackend, worker: &str, now_ms: i64) -> Option<i64> {
    claim(store, &request(worker, now_ms)).await.map(|j| j.id)
}

/// A job that must exist.
pub async fn job_of(store: &dyn StoreBackend, id: i64) -> Job {
    match store.job(id).await {
        Ok(Some(job)) => job,
        Ok(None) => panic!("job {id} is not found"),
        Err(error) => panic!("reading job {id}: {error}"),
    }
}

pub async fn end(
    store: &dyn StoreBackend,
    id: i64,
    worker: &str,
    end: JobEnd,
    now_ms: i64,
) -> bool {
    match store.end(id, worker, &end, now_ms).await {
        Ok(ended) => ended,
        Err(error) => panic!("ending job {id} as {worker} ({end:?}): {error}"),
    }
}

pub async fn renew(store: &dyn StoreBackend, id: i64, worker: &str, until_ms: i64) -> bool {
    match store.renew(id, worker, until_ms).await {
        Ok(renewed) => renewed,
        Err(error) => panic!("renewing job {id} as {worker}: {error}"),
    }
}

/// A succeeded end without a run.
pub fn succeeded() -> JobEnd {
    JobEnd::Succeeded { run_id: None }
}

/// A served tenant's state at `now_ms`.
pub async fn state_of(store: &dyn StoreBackend, tenant: &str, now_ms: i64) -> TenantState {
    match store.tenant_state(tenant, now_ms).await {
        Ok(Some(state)) => state,
        Ok(None) => panic!("tenant {tenant} is not served"),
        Err(error) => panic!("reading the state of tenant {tenant}: {error}"),
    }
}

/// A run's end at `at_ms`.
pub fn run_end(ok: bool, run_id: i64, at_ms: i64, attention: Option<&str>) -> RunEnd {
    RunEnd {
        ok,
        run_id: Some(run_id),
        at_ms,
        attention: attention.map(str::to_string),
    }
}

pub async fn record_run_end(store: &dyn StoreBackend, tenant: &str, end: &RunEnd) {
    if let Err(error) = store.record_run_end(tenant, end).await {
        panic!("recording the end of a run of {tenant}: {error}");
    }
}

/// A worker that started and last beat at `heartbeat_ms`.
pub fn worker(id: &str, host: &str, pid: u32, heartbeat_ms: i64) -> WorkerInfo {
    WorkerInfo {
        id: id.to_string(),
        pid,
        host: host.to_string(),
        started_ms: heartbeat_ms,
        heartbeat_ms,
    }
}

/// The feed's events after `after` (all of them, in pages of 2: paging must not matter).
pub async fn events(
    store: &dyn StoreBackend,
    after: i64,
    tenant: Option<&str>,
) -> Vec<ChangeEvent> {
    let mut all: Vec<ChangeEvent> = Vec::new();
    let mut cursor = after;
    loop {
        let page = match store.changes(cursor, 2, tenant).await {
            Ok(page) => page,
            Err(error) => panic!("reading the feed after {cursor} of {tenant:?}: {error}"),
        };
        let Some(last) = page.last() else {
            return all;
        };
        assert!(page.len() <= 2, "a page holds at most its limit: {page:?}");
        cursor = last.cursor;
        all.extend(page);
    }
}

/// Each event's tenant, kind and object.
pub fn what(events: &[ChangeEvent]) -> Vec<(String, &'static str, String)> {
    events
        .iter()
        .map(|e| (e.tenant.clone(), e.kind.name(), e.object_id.clone()))
        .collect()
}

/// Panics unless the events' cursors grow strictly.
pub fn assert_cursors_grow(events: &[ChangeEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].cursor < pair[1].cursor,
            "cursors grow in feed order: {} then {}",
            pair[0].cursor,
            pair[1].cursor
        );
    }
    if let Some(first) = events.first() {
        assert!(first.cursor > 0, "cursors start above 0: {}", first.cursor);
    }
}

pub async fn last_cursor(store: &dyn StoreBackend) -> i64 {
    store
        .last_cursor()
        .await
        .expect("reading the feed's last cursor")
}
