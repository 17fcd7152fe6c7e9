//! The memory store's share of `serve` ([`Queue`]): served tenants and their states, the
//! job queue, workers and webhook positions, each call one step under the store's lock,
//! deciding by the shared [`rules`]. Any number of workers may join (they share the store
//! by cloning it, in one process).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{MemoryStore, Shared};
use crate::StoreError;
use crate::queue::rules::{self, Ended, EnqueuePlan};
use crate::queue::{
    ClaimRequest, Delivery, Enqueued, Job, JobEnd, JobState, NewJob, Queue, RunEnd, ServedTenant,
    TenantState, WebhookState, WorkerInfo,
};
use crate::time::unix_now_ms;

/// What the workers share.
#[derive(Default)]
pub(super) struct ServiceRows {
    /// Served tenants by name (`running` is computed when read).
    tenants: BTreeMap<String, TenantState>,
    /// Every job, by id (ids from 1).
    jobs: BTreeMap<i64, Job>,
    workers: BTreeMap<String, WorkerInfo>,
    webhooks: BTreeMap<String, WebhookState>,
}

impl ServiceRows {
    fn queued_of(&self, tenant: &str) -> Option<&Job> {
        (self.jobs.values()).find(|j| j.tenant == tenant && j.state == JobState::Queued)
    }

    fn next_job_id(&self) -> i64 {
        self.jobs
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1))
    }

    /// A tenant's state as read at `now_ms`.
    fn state(&self, tenant: &str, now_ms: i64) -> Option<TenantState> {
        let state = self.tenants.get(tenant)?;
        let running =
            (self.jobs.values()).any(|j| j.tenant == tenant && rules::running_live(j, now_ms));
        Some(TenantState {
            running,
            ..state.clone()
        })
    }

    fn put(&mut self, job: Job) {
        self.jobs.insert(job.id, job);
    }
}

impl Shared {
    fn webhook(&mut self, name: &str) -> &mut WebhookState {
        let last = self.feed.last_cursor();
        (self.service.webhooks)
            .entry(name.to_string())
            .or_insert_with(|| rules::new_webhook(name, last))
    }
}

#[async_trait]
impl Queue for MemoryStore {
    async fn join(&self, worker: &WorkerInfo) -> Result<(), StoreError> {
        let mut shared = self.shared()?;
        (shared.service.workers).insert(worker.id.clone(), worker.clone());
        Ok(())
    }

    async fn leave(&self, worker_id: &str) -> Result<(), StoreError> {
        self.shared()?.service.workers.remove(worker_id);
        Ok(())
    }

    async fn workers(
        &self,
        now_ms: i64,
        stale_after: Duration,
    ) -> Result<Vec<WorkerInfo>, StoreError> {
        let shared = self.shared()?;
        Ok((shared.service.workers.values())
            .filter(|w| rules::worker_fresh(w, now_ms, stale_after))
            .cloned()
            .collect())
    }

    async fn serve_tenants(&self, tenants: &[ServedTenant]) -> Result<(), StoreError> {
        let mut shared = self.shared()?;
        let service = &mut shared.service;
        let served: BTreeMap<&str, &str> = tenants
            .iter()
            .map(|t| (t.tenant.as_str(), t.app.as_str()))
            .collect();
        service
            .tenants
            .retain(|tenant, _| served.contains_key(tenant.as_str()));
        for (tenant, app) in &served {
            let state = (service.tenants)
                .entry(tenant.to_string())
                .or_insert_with(|| rules::new_tenant(tenant, app));
            state.app = app.to_string();
        }
        let now_ms = unix_now_ms();
        for job in service.jobs.values_mut() {
            if job.state == JobState::Queued && !served.contains_key(job.tenant.as_str()) {
                *job = rules::cancelled(job, now_ms);
            }
        }
        Ok(())
    }

    async fn tenant_states(&self, now_ms: i64) -> Result<Vec<TenantState>, StoreError> {
        let shared = self.shared()?;
        let service = &shared.service;
        Ok((service.tenants.keys())
            .filter_map(|tenant| service.state(tenant, now_ms))
            .collect())
    }

    async fn tenant_state(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError> {
        Ok(self.shared()?.service.state(tenant, now_ms))
    }

    async fn set_paused(
        &self,
        tenant: &str,
        paused: bool,
        now_ms: i64,
    ) -> Result<Option<TenantState>, StoreError> {
        let mut shared = self.shared()?;
        let Some(state) = shared.service.tenants.get_mut(tenant) else {
            return Ok(None);
        };
        state.paused = paused;
        Ok(shared.service.state(tenant, now_ms))
    }

    async fn set_next_run(
        &self,
        tenant: &str,
        expected: Option<i64>,
        next: Option<i64>,
    ) -> Result<bool, StoreError> {
        match self.shared()?.service.tenants.get_mut(tenant) {
            Some(state) if state.next_run_ms == expected => {
                state.next_run_ms = next;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_run_end(&self, tenant: &str, end: &RunEnd) -> Result<(), StoreError> {
        if let Some(state) = self.shared()?.service.tenants.get_mut(tenant) {
            *state = rules::run_ended(state, end);
        }
        Ok(())
    }

    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError> {
        let mut shared = self.shared()?;
        let service = &mut shared.service;
        if !service.tenants.contains_key(&job.tenant) {
            return Err(rules::not_served(&job.tenant));
        }
        let queued = service.queued_of(&job.tenant);
        Ok(
            match (rules::plan_enqueue(queued, job), queued.map(|q| q.id)) {
                (EnqueuePlan::Merge(merged), _) => {
                    let id = merged.id;
                    service.put(merged);
                    Enqueued::Merged(id)
                }
                (EnqueuePlan::Keep, Some(id)) => Enqueued::AlreadyQueued(id),
                (EnqueuePlan::Insert | EnqueuePlan::Keep, _) => {
                    let id = service.next_job_id();
                    service.put(rules::new_job(id, job, unix_now_ms()));
                    Enqueued::Queued(id)
                }
            },
        )
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Job>, StoreError> {
        let mut shared = self.shared()?;
        let service = &mut shared.service;
        let paused = |tenant: &str| service.tenants.get(tenant).map(|s| s.paused);
        let Some(picked) = rules::pick(service.jobs.values(), paused, request) else {
            return Ok(None);
        };
        let claimed = rules::claimed(picked, request);
        service.put(claimed.clone());
        Ok(Some(claimed))
    }

    async fn renew(
        &self,
        job_id: i64,
        worker: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut shared = self.shared()?;
        match shared.service.jobs.get_mut(&job_id) {
            Some(job) if rules::held_by(job, worker) => {
                job.lease_until_ms = Some(lease_until_ms);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn end(
        &self,
        job_id: i64,
        worker: &str,
        end: &JobEnd,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut shared = self.shared()?;
        let service = &mut shared.service;
        let Some(job) = service
            .jobs
            .get(&job_id)
            .filter(|j| rules::held_by(j, worker))
        else {
            return Ok(false);
        };
        let queued = service.queued_of(&job.tenant);
        let Ended { job, queued } = rules::ended(job, end, queued, now_ms);
        service.put(job);
        if let Some(queued) = queued {
            service.put(queued);
        }
        Ok(true)
    }

    async fn jobs(&self, states: Option<&[JobState]>, limit: u32) -> Result<Vec<Job>, StoreError> {
        let shared = self.shared()?;
        Ok((shared.service.jobs.values().rev())
            .filter(|j| states.is_none_or(|s| s.contains(&j.state)))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        Ok(self.shared()?.service.jobs.get(&id).cloned())
    }

    async fn webhook_state(&self, name: &str) -> Result<WebhookState, StoreError> {
        Ok(self.shared()?.webhook(name).clone())
    }

    async fn claim_webhook(
        &self,
        name: &str,
        worker: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut shared = self.shared()?;
        let state = shared.webhook(name);
        match rules::webhook_taken(state, worker, now_ms, lease) {
            Some(taken) => {
                *state = taken;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn record_delivery(
        &self,
        name: &str,
        worker: &str,
        delivery: &Delivery,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut shared = self.shared()?;
        let state = shared.webhook(name);
        match rules::delivered(state, worker, delivery, now_ms) {
            Some(recorded) => {
                *state = recorded;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
