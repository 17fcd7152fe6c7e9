//! `m365sync:engine/storage`: the engine's checkpoints and the platform records of the
//! one tenant a sandbox runs for, behind a trait so a server database can follow SQLite.
//!
//! Contract (what any implementation must guarantee): every call is scoped to the tenant
//! the store was opened for; `commit` applies a batch's changes, checkpoints and run log
//! atomically, all or nothing. A `change.upsert-person` of kind `link` re-keys the record
//! stored under `previous-object-id` to the new object id within that batch, keeping the
//! record (its identity on the platform) rather than deleting one and creating another.

use crate::runtime::bindings::storage::StorageError;
use crate::runtime::bindings::types::{
    Batch, MatchDecision, PersonKey, PlatformOrganization, StoredPerson,
};

/// One tenant's view of the platform store.
pub trait TenantStore: Send {
    fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError>;
    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError>;
    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError>;
    /// The stored people whose manager is `manager_id`.
    fn find_direct_reports(&mut self, manager_id: &str) -> Result<Vec<StoredPerson>, StorageError>;
    fn commit(&mut self, batch: Batch) -> Result<(), StorageError>;
    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError>;
    /// Create a platform organization with this name and a fresh id (review action
    /// `create`). Organizations are the platform's, shared by every tenant of the store.
    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError>;
    fn get_decision(&mut self, tenant_key: &str) -> Result<Option<MatchDecision>, StorageError>;
    fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError>;
}
