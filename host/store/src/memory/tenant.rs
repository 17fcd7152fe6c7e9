//! One tenant's view of the memory store for the engine ([`MemoryTenant`]): scoped to its
//! tenant, holding the tenant's lock when opened for a sync, refusing writes when opened
//! read-only.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use m365sync_wit::StorageError;
use m365sync_wit::types::{Batch, MatchDecision, PersonKey, PlatformOrganization, StoredPerson};

use super::rows::TenantRows;
use super::{Shared, ok_run, poisoned};
use crate::TenantStore;
use crate::feed::events_of;
use crate::model::refuse_if_read_only;

/// A tenant's rows in a [`MemoryStore`](super::MemoryStore).
pub(super) struct MemoryTenant {
    shared: Arc<Mutex<Shared>>,
    tenant: String,
    /// The token of the tenant's lock, while this store holds it; None when opened
    /// read-only (every write is refused) or once finished.
    lock: Option<u64>,
    read_only: bool,
}

impl MemoryTenant {
    pub(super) fn new(shared: Arc<Mutex<Shared>>, tenant: &str, lock: Option<u64>) -> Self {
        MemoryTenant {
            shared,
            tenant: tenant.to_string(),
            read_only: lock.is_none(),
            lock,
        }
    }

    fn shared(&self) -> Result<MutexGuard<'_, Shared>, StorageError> {
        self.shared.lock().map_err(poisoned)
    }

    /// Read the tenant's rows (a tenant with nothing stored reads as empty).
    fn read<T>(&self, read: impl FnOnce(&TenantRows) -> T) -> Result<T, StorageError> {
        Ok(self.shared()?.read_tenant(&self.tenant, read))
    }

    fn refuse_if_read_only(&self, what: &str) -> Result<(), StorageError> {
        refuse_if_read_only(self.read_only, what, &self.tenant)
    }

    fn release(&mut self) {
        if let Some(token) = self.lock.take() {
            // Released even if a panic poisoned the store: the lock must not outlive us.
            let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            shared.release(&self.tenant, token);
        }
    }
}

impl Drop for MemoryTenant {
    fn drop(&mut self) {
        self.release();
    }
}

#[async_trait]
impl TenantStore for MemoryTenant {
    async fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        self.read(|rows| rows.checkpoints.get(key).cloned())
    }

    async fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        self.read(|rows| keys.iter().map(|key| rows.find(key).cloned()).collect())
    }

    async fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.read(|rows| {
            let after = after.map_or(Unbounded, Excluded);
            (rows.people.range::<str, _>((after, Unbounded)))
                .take(limit)
                .map(|(id, _)| id.clone())
                .collect()
        })
    }

    async fn find_direct_reports(
        &mut self,
        manager_id: &str,
    ) -> Result<Vec<StoredPerson>, StorageError> {
        self.read(|rows| rows.direct_reports(manager_id).cloned().collect())
    }

    async fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        self.refuse_if_read_only("committing a batch")?;
        let mut shared = self.shared()?;
        // The run is checked first: a batch whose run cannot be logged applies nothing.
        let run = match &batch.run {
            Some(report) => Some(ok_run(&self.tenant, report)?),
            None => None,
        };
        // The events of what the batch commits, appended only once it has (a failing
        // batch is undone whole and leaves none).
        let events = events_of(&batch);
        let rows = shared.tenants.entry(self.tenant.clone()).or_default();
        rows.apply(batch)?;
        shared.feed.append(&self.tenant, events);
        if let Some(run) = run {
            shared.push_run(run);
        }
        Ok(())
    }

    async fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        Ok(self.shared()?.list_organizations())
    }

    async fn create_organization(
        &mut self,
        name: &str,
    ) -> Result<PlatformOrganization, StorageError> {
        self.refuse_if_read_only("creating an organization")?;
        self.shared()?.create_organization(name, None)
    }

    async fn get_decision(
        &mut self,
        tenant_key: &str,
    ) -> Result<Option<MatchDecision>, StorageError> {
        if tenant_key != self.tenant {
            return Err(StorageError::Invalid(format!(
                "tenant {:?} cannot read the decision of tenant {tenant_key:?}",
                self.tenant
            )));
        }
        self.read(|rows| rows.decision.clone())
    }

    async fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError> {
        if decision.tenant_key != self.tenant {
            return Err(StorageError::Invalid(format!(
                "a decision for tenant {:?} cannot be stored by tenant {:?}",
                decision.tenant_key, self.tenant
            )));
        }
        self.refuse_if_read_only("storing the review decision")?;
        let mut shared = self.shared()?;
        let rows = shared.tenants.entry(self.tenant.clone()).or_default();
        rows.decision = Some(decision);
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), StorageError> {
        // Nothing is deferred: every batch was committed when it came.
        self.release();
        Ok(())
    }
}
