//! The in-memory reference store (see [`MemoryStore`]): the contract of the crate docs
//! with nothing in the way, for tests, previews with no database yet, benchmarks and
//! embedders; and the store every other back end is checked against by the conformance
//! suite.

mod feed;
mod notices;
mod onboarding;
mod queue;
mod read;
mod rows;
mod tenant;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use m365sync_wit::StorageError;
use m365sync_wit::names::WitName;
use m365sync_wit::types::{MatchDecision, PlatformOrganization, SyncReport};

use crate::log_entry::RunReport;
use crate::model::{
    FailedRun, LockHolder, OrganizationImport, OrganizationRow, ResetOutcome, RunRecord,
    organization_exists, organization_to_create, plan_organization_import, stored_elapsed_ms,
};
use crate::time::now_rfc3339;
use crate::{Access, Store, StoreError, TenantStore};

use rows::TenantRows;
use tenant::MemoryTenant;

/// A store in memory: many tenants' rows, the sync log, the platform's organizations, the
/// change feed, the service's queue, what onboarding keeps and the notices, behind one
/// handle that clones cheaply (every clone is the same store, as another connection to a
/// database would be). Each batch is committed at once (nothing is deferred); a failing
/// batch is undone whole. Nothing outlives the last handle.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Mutex<Shared>>,
}

/// What every handle of a memory store shares.
#[derive(Default)]
struct Shared {
    tenants: BTreeMap<String, TenantRows>,
    /// The tenants a sync holds, with the token of the tenant store that holds each.
    locks: HashMap<String, (LockHolder, u64)>,
    next_lock: u64,
    /// The sync log, oldest first; a run's id is its position from 1.
    runs: Vec<RunRecord>,
    /// The platform's organizations: id → name.
    organizations: BTreeMap<String, String>,
    /// The change feed, appended by commits.
    feed: feed::Feed,
    /// What `serve` workers share.
    service: queue::ServiceRows,
    /// What onboarding keeps.
    onboarding: onboarding::OnboardingRows,
    /// What an admin must act on (kept by a reset, as `service` is).
    notices: notices::NoticeRows,
}

impl Shared {
    /// Read one tenant's rows (a tenant with nothing stored reads as empty).
    fn read_tenant<T>(&self, tenant: &str, read: impl FnOnce(&TenantRows) -> T) -> T {
        match self.tenants.get(tenant) {
            Some(rows) => read(rows),
            None => read(&TenantRows::default()),
        }
    }

    /// The id the next run of the sync log gets.
    fn next_run_id(&self) -> i64 {
        i64::try_from(self.runs.len()).map_or(i64::MAX, |n| n.saturating_add(1))
    }

    fn push_run(&mut self, mut run: RunRecord) -> i64 {
        run.id = self.next_run_id();
        let id = run.id;
        self.runs.push(run);
        id
    }

    fn create_organization(
        &mut self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PlatformOrganization, StorageError> {
        let organization = organization_to_create(name, id)?;
        if self.organizations.contains_key(&organization.id) {
            return Err(organization_exists(&organization.id));
        }
        self.organizations
            .insert(organization.id.clone(), organization.name.clone());
        Ok(organization)
    }

    /// Every organization, by name (then id).
    fn list_organizations(&self) -> Vec<PlatformOrganization> {
        let mut all: Vec<PlatformOrganization> = (self.organizations.iter())
            .map(|(id, name)| PlatformOrganization {
                id: id.clone(),
                name: name.clone(),
            })
            .collect();
        all.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        all
    }

    /// Release `tenant`'s lock if the tenant store with `token` holds it.
    fn release(&mut self, tenant: &str, token: u64) {
        if self.locks.get(tenant).is_some_and(|(_, t)| *t == token) {
            self.locks.remove(tenant);
        }
    }
}

/// A successful run as the sync log keeps it (the engine's report, status `ok`).
fn ok_run(tenant: &str, report: &SyncReport) -> Result<RunRecord, StorageError> {
    stored_elapsed_ms(report.elapsed_ms)?;
    Ok(RunRecord {
        id: 0,
        tenant: tenant.to_string(),
        started_at: report.started_at.clone(),
        mode: report.mode.name().to_string(),
        status: "ok".to_string(),
        elapsed_ms: Some(report.elapsed_ms),
        requests: Some(report.requests.into()),
        retries: Some(report.retries.into()),
        dry_run: report.dry_run,
        error_kind: None,
        error: None,
        report: Some(RunReport::from(report)),
    })
}

/// The poisoned lock of a store a thread panicked in.
fn poisoned<T>(_: PoisonError<T>) -> StorageError {
    StorageError::Unavailable(
        "the in-memory store is unusable: a thread panicked while using it".to_string(),
    )
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn shared(&self) -> Result<MutexGuard<'_, Shared>, StorageError> {
        self.shared.lock().map_err(poisoned)
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn describe(&self) -> String {
        "in-memory store".to_string()
    }

    async fn open_tenant(
        &self,
        tenant: &str,
        access: Access,
    ) -> Result<Box<dyn TenantStore>, StoreError> {
        let lock = match access {
            Access::ReadOnly => None,
            Access::Sync => {
                let mut shared = self.shared()?;
                if let Some((holder, _)) = shared.locks.get(tenant) {
                    return Err(StoreError::Locked {
                        tenant: tenant.to_string(),
                        holder: holder.clone(),
                    });
                }
                shared.next_lock += 1;
                let token = shared.next_lock;
                shared
                    .locks
                    .insert(tenant.to_string(), (LockHolder::this_process(), token));
                Some(token)
            }
        };
        Ok(Box::new(MemoryTenant::new(
            self.shared.clone(),
            tenant,
            lock,
        )))
    }

    async fn lock_holder(&self, tenant: &str) -> Result<Option<LockHolder>, StoreError> {
        let shared = self.shared()?;
        Ok(shared.locks.get(tenant).map(|(holder, _)| holder.clone()))
    }

    async fn record_failed_run(
        &self,
        tenant: &str,
        run: &FailedRun,
    ) -> Result<Option<i64>, StoreError> {
        stored_elapsed_ms(run.elapsed_ms)?;
        let partial = run.report.as_ref();
        let record = RunRecord {
            id: 0,
            tenant: tenant.to_string(),
            started_at: run.started_at.clone(),
            mode: run.mode.clone(),
            status: run.status.name().to_string(),
            elapsed_ms: Some(run.elapsed_ms),
            requests: partial.map(|r| r.requests.into()),
            retries: partial.map(|r| r.retries.into()),
            dry_run: run.dry_run,
            error_kind: Some(run.error_kind.clone()),
            error: Some(run.error.clone()),
            report: partial.map(RunReport::from),
        };
        Ok(Some(self.shared()?.push_run(record)))
    }

    async fn list_runs(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let shared = self.shared()?;
        Ok((shared.runs.iter().rev())
            .filter(|run| tenant.is_none_or(|t| run.tenant == t))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn get_run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let shared = self.shared()?;
        let index = usize::try_from(id.saturating_sub(1)).ok();
        Ok(index
            .and_then(|i| shared.runs.get(i))
            .filter(|run| run.id == id)
            .cloned())
    }

    async fn list_organizations(&self) -> Result<Vec<PlatformOrganization>, StoreError> {
        Ok(self.shared()?.list_organizations())
    }

    async fn create_organization(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PlatformOrganization, StoreError> {
        Ok(self.shared()?.create_organization(name, id)?)
    }

    async fn import_organizations(
        &self,
        rows: &[OrganizationRow],
    ) -> Result<OrganizationImport, StoreError> {
        let mut shared = self.shared()?;
        let plan = plan_organization_import(rows, &shared.list_organizations())?;
        for organization in plan.created.iter().chain(&plan.renamed) {
            (shared.organizations).insert(organization.id.clone(), organization.name.clone());
        }
        Ok(plan)
    }

    async fn get_decision(&self, tenant: &str) -> Result<Option<MatchDecision>, StoreError> {
        let shared = self.shared()?;
        Ok(shared.tenants.get(tenant).and_then(|t| t.decision.clone()))
    }

    async fn reset_tenant(&self, tenant: &str) -> Result<ResetOutcome, StoreError> {
        let mut shared = self.shared()?;
        if let Some((holder, _)) = shared.locks.get(tenant) {
            return Err(StoreError::Locked {
                tenant: tenant.to_string(),
                holder: holder.clone(),
            });
        }
        let rows = shared.tenants.remove(tenant).unwrap_or_default();
        let deleted = rows.counts();
        let note = ResetOutcome::note(&deleted);
        let run_id = shared.push_run(RunRecord {
            id: 0,
            tenant: tenant.to_string(),
            started_at: now_rfc3339(),
            mode: "reset".to_string(),
            status: "reset".to_string(),
            elapsed_ms: None,
            requests: None,
            retries: None,
            dry_run: false,
            error_kind: Some("reset".to_string()),
            error: Some(note),
            report: None,
        });
        Ok(ResetOutcome { deleted, run_id })
    }
}
