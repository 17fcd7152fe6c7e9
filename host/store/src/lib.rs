//! The storage contract of m365sync hosts, back-end neutral.
//!
//! - [`TenantStore`]: the engine's storage import, for one tenant (async: a server database
//!   is a network round trip away).
//! - [`Store`]: a database of many tenants: opening a tenant (under its lock, or read-only),
//!   the sync log, the platform's organizations, resets, and the read models the CLI and
//!   the server show.
//! - [`model`]: what those calls take and return; [`log_entry`]: the sync log's stored
//!   report, a versioned serde type; [`policy`]: when deferred batches are committed.
//! - [`queue::Queue`]: what `serve` workers share (tenant states, the job queue with
//!   leases, workers, webhook positions); [`feed`]: the change feed every commit appends to.
//! - [`memory::MemoryStore`]: the reference implementation, and `conformance` (cargo
//!   feature `conformance`): the suite every back end runs.
//!
//! Contract of a [`TenantStore`] (what any implementation must guarantee): every call is
//! scoped to the tenant the store was opened for; `commit` applies a batch's changes,
//! checkpoints and run log atomically, all or nothing; a batch without checkpoints may be
//! folded into the next one that has some ([`policy`]), so a failing batch, or a crash,
//! may undo the batches since the last checkpoint too (the engine redoes them from it). A
//! `change.upsert-person` of kind `link` re-keys the record stored under
//! `previous-object-id` to the new object id within that batch, keeping the record (its
//! identity on the platform) rather than deleting one and creating another.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod feed;
pub mod log_entry;
pub mod memory;
pub mod model;
pub mod notices;
pub mod onboarding;
pub mod policy;
pub mod queue;
pub mod read;
pub mod time;

use async_trait::async_trait;
use m365sync_wit::StorageError;
use m365sync_wit::types::{Batch, MatchDecision, PersonKey, PlatformOrganization, StoredPerson};

pub use model::{
    FailedRun, LockHolder, OrganizationImport, OrganizationRow, ResetOutcome, RunRecord, RunStatus,
};

/// One tenant's view of the platform store: the engine's storage import.
#[async_trait]
pub trait TenantStore: Send {
    async fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError>;
    /// One answer per key, in the keys' order (None for a miss). Keys are compared as
    /// stored (the engine's `email-key`/`upn-key`, never normalised by a store); a key
    /// several stored people share finds the first of them by object id.
    async fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError>;
    async fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError>;
    /// The stored people whose manager is `manager_id` (any status), by object id.
    async fn find_direct_reports(
        &mut self,
        manager_id: &str,
    ) -> Result<Vec<StoredPerson>, StorageError>;
    async fn commit(&mut self, batch: Batch) -> Result<(), StorageError>;
    async fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError>;
    /// Create a platform organization with this name and a fresh id (review action
    /// `create`). Organizations are the platform's, shared by every tenant of the store.
    async fn create_organization(
        &mut self,
        name: &str,
    ) -> Result<PlatformOrganization, StorageError>;
    async fn get_decision(
        &mut self,
        tenant_key: &str,
    ) -> Result<Option<MatchDecision>, StorageError>;
    async fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError>;
    /// Commit what is deferred and release the tenant's lock if this store holds it. A
    /// store dropped without it keeps the guarantees (nothing half-written) but may lose
    /// the batches since the last checkpoint, and its lock lapses when its lease expires.
    async fn finish(&mut self) -> Result<(), StorageError>;
}

/// How a tenant is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// For a sync that writes: the tenant's lock is taken first (refused while another run
    /// holds it) and held until the store is finished or dropped.
    Sync,
    /// Reads only (previews, reviews, dry runs): no lock; every write is refused.
    ReadOnly,
}

/// Why a store could not be opened or used outside the engine's calls.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, created or migrated.
    #[error("{0}")]
    Open(String),
    /// The database has nothing of m365sync's yet (a read-only open of a new database).
    #[error("{0} has no m365sync tables: run `m365sync sync` first")]
    Empty(String),
    /// Another run holds the tenant's lock.
    #[error(
        "tenant {tenant} is being synced by another process (pid {} on {}) since {}; {}",
        holder.pid, holder.host, holder.since, holder.takeover_hint()
    )]
    Locked { tenant: String, holder: LockHolder },
    /// Another process serves this store, and it can have only one (SQLite's `serve`).
    #[error("{0}")]
    Busy(String),
    /// A read or write failed.
    #[error("{}", m365sync_wit::storage_message(.0))]
    Storage(#[from] StorageError),
}

impl StoreError {
    /// The holder of the lock, when the tenant was locked.
    pub fn lock_holder(&self) -> Option<&LockHolder> {
        match self {
            StoreError::Locked { holder, .. } => Some(holder),
            _ => None,
        }
    }
}

/// A store back end as a host uses it: the engine's side ([`Store`]), the read side
/// ([`read::ReadModels`]), and what `serve` workers share ([`queue::Queue`],
/// [`feed::ChangeFeed`]), what onboarding keeps ([`onboarding::Onboarding`]), and what an
/// admin must act on ([`notices::Notices`]).
pub trait StoreBackend:
    Store
    + read::ReadModels
    + queue::Queue
    + feed::ChangeFeed
    + onboarding::Onboarding
    + notices::Notices
{
}

impl<T> StoreBackend for T where
    T: Store
        + read::ReadModels
        + queue::Queue
        + feed::ChangeFeed
        + onboarding::Onboarding
        + notices::Notices
{
}

/// A database of many tenants' rows, shared by every tenant of a host (and, for a server
/// database, by several hosts).
#[async_trait]
pub trait Store: Send + Sync {
    /// What the store is, for messages ("SQLite database ./m365sync.db",
    /// "PostgreSQL database test on 127.0.0.1:5432"); never a password.
    fn describe(&self) -> String;

    /// Open `tenant`'s rows for the engine.
    async fn open_tenant(
        &self,
        tenant: &str,
        access: Access,
    ) -> Result<Box<dyn TenantStore>, StoreError>;

    /// The live holder of `tenant`'s lock, if a run holds it.
    async fn lock_holder(&self, tenant: &str) -> Result<Option<LockHolder>, StoreError>;

    /// Record a run that failed, was interrupted or refused (the engine records successful
    /// runs with their last batch). Returns its id in the sync log, or None when the back
    /// end queued it to be recorded later (SQLite, while another process holds the write
    /// lock: a refused run is told at once and logged by the next sync or listing).
    async fn record_failed_run(
        &self,
        tenant: &str,
        run: &FailedRun,
    ) -> Result<Option<i64>, StoreError>;

    /// The sync log, newest first: at most `limit` runs, of one tenant or of all.
    async fn list_runs(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// One run of the sync log, by id.
    async fn get_run(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;

    /// Every platform organization, by name.
    async fn list_organizations(&self) -> Result<Vec<PlatformOrganization>, StoreError>;

    /// Create a platform organization: with `id`, or a fresh one.
    async fn create_organization(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PlatformOrganization, StoreError>;

    /// Import organizations, all rows or none (see [`model::OrganizationRow`]).
    async fn import_organizations(
        &self,
        rows: &[OrganizationRow],
    ) -> Result<OrganizationImport, StoreError>;

    /// The tenant's organization-match decision, if one was made.
    async fn get_decision(&self, tenant: &str) -> Result<Option<MatchDecision>, StoreError>;

    /// Delete everything the store holds for `tenant` but its sync log (which notes the
    /// reset), the platform's organizations, and what `serve` keeps of it (its state and
    /// jobs) and its events in the change feed; refused while a run holds its lock.
    async fn reset_tenant(&self, tenant: &str) -> Result<ResetOutcome, StoreError>;
}
