//! The worker: claims jobs while it has room (`workers` runs at once, and the fleet-wide
//! limits the claim checks), runs each as a logged sync under its lease (renewed a few
//! times per lease; a run whose lease is lost is cancelled: another worker has its job),
//! and after each run updates the tenant's state and the queue: a success ends the job; a
//! failure retries after the backoff or marks the tenant as needing an admin; a run that
//! could not start (another process syncs the tenant) or was stopped by this worker's
//! shutdown goes back to the queue, and its next run carries on from its checkpoints.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use m365sync_runtime::{CancelToken, TracingSink};
use m365sync_store::queue::{ClaimRequest, Job, JobEnd, JobKind, NewJob, RunEnd};
use m365sync_wit::types::SyncReport;

use super::outcome::{FailureAction, classify, retry_delay};
use super::{Service, now_ms};
use crate::synclog::{SyncFailure, sync_logged_cancellable};

/// How often a worker's heartbeat is written.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Claim jobs while there is room, until the service stops.
pub(crate) async fn claim_loop(service: Arc<Service>) {
    loop {
        while room(&service) > 0 && !service.is_stopping() {
            match service.store.claim(&claim_request(&service)).await {
                Ok(Some(job)) => start(&service, job),
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!("claiming a job: {error}");
                    break;
                }
            }
        }
        tokio::select! {
            () = service.stopping.cancelled() => return,
            () = service.wake.notified() => {}
            () = tokio::time::sleep(service.options.poll) => {}
        }
    }
}

/// Refresh this worker's heartbeat in the store, until the service stops.
pub(crate) async fn heartbeat_loop(service: Arc<Service>) {
    loop {
        tokio::select! {
            () = service.stopping.cancelled() => return,
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
        let mut worker = service.worker.clone();
        worker.heartbeat_ms = now_ms();
        if let Err(error) = service.store.join(&worker).await {
            tracing::warn!("refreshing this worker's heartbeat: {error}");
        }
    }
}

fn room(service: &Service) -> usize {
    let running = service
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    service.options.workers.saturating_sub(running)
}

fn claim_request(service: &Service) -> ClaimRequest {
    ClaimRequest {
        worker: service.worker.id.clone(),
        now_ms: now_ms(),
        lease: service.options.lease,
        per_app: service.options.per_app,
        global: service.options.max_running,
    }
}

/// Run a claimed job on a task of its own.
fn start(service: &Arc<Service>, job: Job) {
    let cancel = CancelToken::with_grace(service.options.shutdown_grace);
    service
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(job.id, cancel.clone());
    let service = service.clone();
    service.clone().tasks.spawn(async move {
        let id = job.id;
        run_job(&service, job, &cancel).await;
        service
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        // Room for the next job.
        service.wake.notify_one();
    });
}

/// One job: the tenant's sync under the job's lease, then its end.
async fn run_job(service: &Arc<Service>, job: Job, cancel: &CancelToken) {
    if service.served(&job.tenant).is_none() {
        // Registered by another process since this one last looked?
        if let Err(error) = service.learn_registered().await {
            tracing::warn!("reading the registered tenants: {error}");
        }
    }
    let Some(served) = service.served(&job.tenant) else {
        // Served by another worker's config, not this one's: leave it to them.
        let end = JobEnd::Released {
            run_after_ms: now_ms() + millis(service.options.locked_retry),
        };
        end_job(service, &job, &end).await;
        return;
    };
    match crate::notices::stopped(service.store.as_ref(), &job.tenant).await {
        Ok(Some(why)) => return stopped(service, &job, &served.run, &why).await,
        Ok(None) => {}
        // The sync itself meets the store's trouble and says so.
        Err(error) => tracing::warn!("reading the notices of {}: {error}", job.tenant),
    }
    let clock = Instant::now();
    let renewing = service
        .tasks
        .spawn(renew_lease(service.clone(), job.id, cancel.clone()));
    let result = sync_logged_cancellable(
        &service.runtime,
        &served.run,
        service.store.as_ref(),
        Arc::new(TracingSink),
        cancel,
    )
    .await;
    renewing.abort();
    let elapsed = clock.elapsed();
    match result {
        Ok(report) => succeeded(service, &job, &report, elapsed).await,
        Err(failure) => failed(service, &job, &failure, elapsed).await,
    }
}

/// Renew the job's lease a few times per lease; a lease lost (another worker took the job
/// over after this one stalled) cancels the run.
async fn renew_lease(service: Arc<Service>, job_id: i64, cancel: CancelToken) {
    let every = service.options.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let until = now_ms() + millis(service.options.lease);
        match service.store.renew(job_id, &service.worker.id, until).await {
            Ok(true) => {}
            Ok(false) => {
                cancel.cancel(format!(
                    "job {job_id} was taken over by another worker (this one lost its lease)"
                ));
                return;
            }
            // The store may come back before the lease runs out.
            Err(error) => tracing::warn!("renewing the lease of job {job_id}: {error}"),
        }
    }
}

async fn succeeded(service: &Service, job: &Job, report: &SyncReport, elapsed: Duration) {
    service.metrics.run_ended("ok", elapsed, Some(report));
    // The engine recorded the run with its last batch: the tenant's newest entry.
    let run_id = match service.store.list_runs(Some(&job.tenant), 1).await {
        Ok(runs) => runs.first().map(|r| r.id),
        Err(error) => {
            tracing::warn!("reading the sync log of {}: {error}", job.tenant);
            None
        }
    };
    let end = RunEnd {
        ok: true,
        run_id,
        at_ms: now_ms(),
        attention: None,
    };
    record_run_end(service, &job.tenant, &end).await;
    end_job(service, job, &JobEnd::Succeeded { run_id }).await;
}

async fn failed(service: &Service, job: &Job, failure: &SyncFailure, elapsed: Duration) {
    let action = classify(failure);
    let status = failure.status().name();
    service.metrics.run_ended(
        status,
        elapsed,
        failure.run_error().and_then(|e| e.report()),
    );
    let error = failure.to_string();
    match action {
        FailureAction::Release => {
            let wait = match failure {
                SyncFailure::Locked { .. } => service.options.locked_retry,
                _ => Duration::ZERO,
            };
            tracing::info!(
                "job {} of {} goes back to the queue: {error}",
                job.id,
                job.tenant
            );
            let end = JobEnd::Released {
                run_after_ms: now_ms() + millis(wait),
            };
            end_job(service, job, &end).await;
        }
        FailureAction::Retry | FailureAction::Attention(_) => {
            let attention = match &action {
                FailureAction::Attention(fix) => Some(fix.clone()),
                _ => None,
            };
            tracing::warn!("job {} of {} failed: {error}", job.id, job.tenant);
            let end = RunEnd {
                ok: false,
                run_id: failure.run_id(),
                at_ms: now_ms(),
                attention,
            };
            record_run_end(service, &job.tenant, &end).await;
            let ended = JobEnd::Failed {
                run_id: failure.run_id(),
                error,
            };
            if !end_job(service, job, &ended).await {
                return;
            }
            if action == FailureAction::Retry {
                retry(service, job).await;
            }
        }
    }
}

/// A job of a tenant that must not run (a notice says why): logged as refused, the tenant
/// needs an admin, and no retry is queued.
async fn stopped(service: &Service, job: &Job, run: &m365sync_config::TenantRun, why: &str) {
    tracing::warn!("job {} of {} is not run: {why}", job.id, job.tenant);
    let run_id = crate::synclog::record_stopped(service.store.as_ref(), run, why).await;
    let end = RunEnd {
        ok: false,
        run_id,
        at_ms: now_ms(),
        attention: Some(why.to_string()),
    };
    record_run_end(service, &job.tenant, &end).await;
    let ended = JobEnd::Failed {
        run_id,
        error: why.to_string(),
    };
    end_job(service, job, &ended).await;
}

/// Queue the next try of a failed job after its backoff step, if any is left.
async fn retry(service: &Service, job: &Job) {
    let Some(delay) = retry_delay(&service.options.retry_backoff, job.attempt) else {
        tracing::info!(
            "{} failed {} times in a row: the next try is its next scheduled run",
            job.tenant,
            job.attempt
        );
        return;
    };
    let retry = NewJob {
        tenant: job.tenant.clone(),
        app: job.app.clone(),
        kind: JobKind::Retry,
        run_after_ms: now_ms() + millis(delay),
        attempt: job.attempt + 1,
    };
    if let Err(error) = service.store.enqueue(&retry).await {
        tracing::warn!("queueing a retry of {}: {error}", job.tenant);
    }
}

async fn record_run_end(service: &Service, tenant: &str, end: &RunEnd) {
    if let Err(error) = service.store.record_run_end(tenant, end).await {
        tracing::warn!("recording the end of a run of {tenant}: {error}");
    }
}

/// End a job this worker holds; false when it no longer held it.
async fn end_job(service: &Service, job: &Job, end: &JobEnd) -> bool {
    match service
        .store
        .end(job.id, &service.worker.id, end, now_ms())
        .await
    {
        Ok(held) => {
            if !held {
                tracing::warn!(
                    "job {} of {} was taken over by another worker before it ended here",
                    job.id,
                    job.tenant
                );
            }
            held
        }
        Err(error) => {
            // Its lease runs out and another worker takes it over.
            tracing::warn!("ending job {} of {}: {error}", job.id, job.tenant);
            false
        }
    }
}

/// A duration in whole milliseconds (saturating).
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
