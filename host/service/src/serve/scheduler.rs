//! The scheduler: every tick, tenants another process registered are served here too, and
//! each served tenant that is not paused and whose next run is
//! due gets a scheduled job, and its next run is moved on to the schedule's next time after
//! now; a tenant served for the first time that never ran is synced at once. A tenant's next run is kept in the store, so a run missed while no worker was up is
//! caught up once (not once per missed time) when one starts. Every worker runs this loop;
//! moving a due run on is a compare-and-set in the store, so exactly one of them queues it.

use std::sync::Arc;

use jiff::Timestamp;
use m365sync_store::queue::{JobKind, NewJob, TenantState};

use super::{Service, now_ms};

/// Queue due tenants every tick, until the service stops.
pub(crate) async fn schedule_loop(service: Arc<Service>) {
    loop {
        if let Err(error) = tick(&service).await {
            tracing::warn!("scheduling: {error}");
        }
        tokio::select! {
            () = service.stopping.cancelled() => return,
            () = tokio::time::sleep(service.options.schedule_tick) => {}
        }
    }
}

/// One look at every tenant.
async fn tick(service: &Service) -> Result<(), m365sync_store::StoreError> {
    service.learn_registered().await?;
    let now = now_ms();
    let mut queued = false;
    for state in service.store.tenant_states(now).await? {
        if let Some(next) = due(service, &state, now).await? {
            let job = NewJob {
                tenant: state.tenant.clone(),
                app: state.app.clone(),
                kind: JobKind::Scheduled,
                run_after_ms: next,
                attempt: 1,
            };
            service.store.enqueue(&job).await?;
            queued = true;
        }
    }
    if queued {
        service.wake.notify_one();
    }
    Ok(())
}

/// When the tenant's scheduled run is due now: its due time (and its next one is stored).
/// A tenant without a next run yet gets one, the schedule's first after now.
async fn due(
    service: &Service,
    state: &TenantState,
    now: i64,
) -> Result<Option<i64>, m365sync_store::StoreError> {
    let Some(served) = service.served(&state.tenant) else {
        return Ok(None);
    };
    if state.paused {
        return Ok(None);
    }
    let next_after = |ms: i64| {
        Timestamp::from_millisecond(ms)
            .ok()
            .and_then(|at| served.schedule.next_after(at))
            .map(|at| at.as_millisecond())
    };
    // Moved on with a compare-and-set: of the workers that see the run due, the one that
    // moves it on queues it.
    let moved = |expected| {
        service
            .store
            .set_next_run(&state.tenant, expected, next_after(now))
    };
    match state.next_run_ms {
        Some(due) if due <= now => Ok(moved(Some(due)).await?.then_some(due)),
        Some(_) => Ok(None),
        // A tenant that never ran is synced now, as a new connection is: its first
        // scheduled time may be a day away.
        None => Ok((moved(None).await? && state.last_run_ms.is_none()).then_some(now)),
    }
}
