//! PostgreSQL storage (many workers, one database): the second back end of the store
//! contract (`m365sync-store`), with exactly the SQLite store's guarantees. One database
//! schema holds many tenants; every row carries its tenant's key and a tenant's store
//! ([`PostgresTenant`]) only ever touches the rows of the tenant it was opened for. The
//! platform's organizations (`platform_organizations`) are the platform's own, shared by
//! all tenants.
//!
//! - [`connect`]: URLs as libpq's, TLS, the pool and its timeouts.
//! - `schema`: the tables and their versioned migrations, applied on open.
//! - `tenant`, `batch`, `bulk`, `values`, `pipeline`: the engine's storage for one tenant;
//!   a batch as a few bulk statements, its values checked first, sent in one round trip.
//! - `lock`: the per-tenant lock of a sync (as SQLite's); `reset`: resetting a tenant.
//! - `log`, `organizations`, `read`: the sync log, the platform's organizations, the read
//!   models.
//! - `queue`, `served`: what `m365sync serve` workers share (tenant states, the job queue
//!   with leases, workers, webhook positions); `feed`: the change feed, its events inserted
//!   by each commit in commit order.
//! - `onboarding`: what onboarding keeps (consent requests, taken atomically; registered
//!   tenants); `notices`: what an admin must act on, their events appended as a commit's.
//! - `testing` (cargo feature `testing`): throwaway schemas on a test server.
//!
//! A link (`upsert-person` of kind `link`) re-keys the person's row in place, as SQLite's
//! store does: the row stored under the previous object id gets the new object id and the
//! new fields, in the batch's transaction; rows of other tables keyed by the previous id
//! stay as they are (they describe the previous Graph account).

mod batch;
mod bulk;
pub mod connect;
mod error;
mod feed;
mod lock;
mod log;
mod notices;
mod onboarding;
mod organizations;
mod pipeline;
mod queue;
mod read;
mod reset;
mod schema;
mod served;
mod tenant;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod values;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use m365sync_store::model::{
    FailedRun, LOCK_HEARTBEAT, LockHolder, OrganizationImport, OrganizationRow, ResetOutcome,
    RunRecord,
};
use m365sync_store::{Access, Store, StoreError, TenantStore};
use m365sync_wit::types::{MatchDecision, PlatformOrganization};

use crate::connect::Target;
use crate::error::no_connection;

pub use schema::SCHEMA_VERSION;
pub use tenant::PostgresTenant;

/// A PostgreSQL database (its connection's current schema) of many tenants, through a pool
/// of connections. Cloning shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    target: Target,
    /// How often a held tenant lock's heartbeat is refreshed.
    heartbeat: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL without its password; the driver's settings are not shown.
        f.debug_struct("PostgresStore")
            .field("url", &self.target.shown_url)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The store at `url` (libpq's forms: `postgres://user[:password]@host[:port]/db?...`,
    /// `options=-c search_path=NAME` choosing its schema), its tables created or migrated
    /// to [`SCHEMA_VERSION`] now if needed.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::connect(url)?;
        let mut client = store.first_connection().await?;
        schema::migrate(&mut client, &store.target).await?;
        Ok(store)
    }

    /// The store at `url` for reading only: the database must already hold m365sync's
    /// tables (else [`StoreError::Empty`]); nothing is created or migrated.
    pub async fn open_existing(url: &str) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore::connect(url)?;
        let client = store.first_connection().await?;
        schema::check_existing(&client, &store.target).await?;
        Ok(store)
    }

    /// The same store, whose tenant locks refresh their heartbeat every `every` (default
    /// [`LOCK_HEARTBEAT`]).
    pub fn with_lock_heartbeat(mut self, every: Duration) -> PostgresStore {
        self.heartbeat = every;
        self
    }

    fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let target = Target::parse(url)?;
        let pool = target.pool()?;
        Ok(PostgresStore {
            pool,
            target,
            heartbeat: LOCK_HEARTBEAT,
        })
    }

    /// The first connection, whose failure names the URL (without its password).
    async fn first_connection(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let why = no_connection("opening the store", &self.target.shown_url, e);
            StoreError::Open(error::words(why))
        })
    }

    /// A pooled connection for `what`.
    pub(crate) async fn client(&self, what: &str) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Storage(no_connection(what, &self.target.described, e)))
    }
}

/// A tenant key a PostgreSQL text column can hold.
fn check_tenant(tenant: &str) -> Result<(), StoreError> {
    values::no_nul("the tenant's name", tenant).map_err(StoreError::Storage)
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.target.described.clone()
    }

    async fn open_tenant(
        &self,
        tenant: &str,
        access: Access,
    ) -> Result<Box<dyn TenantStore>, StoreError> {
        check_tenant(tenant)?;
        let place = &self.target.described;
        Ok(Box::new(match access {
            Access::Sync => {
                let lock = lock::lock_tenant(&self.pool, place, tenant, self.heartbeat).await?;
                PostgresTenant::new(self.pool.clone(), place, tenant, Some(lock), false)
            }
            Access::ReadOnly => PostgresTenant::new(self.pool.clone(), place, tenant, None, true),
        }))
    }

    async fn lock_holder(&self, tenant: &str) -> Result<Option<LockHolder>, StoreError> {
        let client = self.client("reading the lock").await?;
        lock::live_holder(&client, tenant)
            .await
            .map_err(|e| error::store_unavailable("reading the lock", &e))
    }

    async fn record_failed_run(
        &self,
        tenant: &str,
        run: &FailedRun,
    ) -> Result<Option<i64>, StoreError> {
        let client = self.client("recording the failed run").await?;
        Ok(Some(log::record_failed_run(&client, tenant, run).await?))
    }

    async fn list_runs(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let client = self.client("reading the sync log").await?;
        Ok(log::list_runs(&client, tenant, limit).await?)
    }

    async fn get_run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let client = self.client("reading the sync log").await?;
        Ok(log::get_run(&client, id).await?)
    }

    async fn list_organizations(&self) -> Result<Vec<PlatformOrganization>, StoreError> {
        let client = self.client("listing organizations").await?;
        Ok(organizations::list(&client).await?)
    }

    async fn create_organization(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PlatformOrganization, StoreError> {
        let client = self.client("creating an organization").await?;
        Ok(organizations::create(&client, name, id).await?)
    }

    async fn import_organizations(
        &self,
        rows: &[OrganizationRow],
    ) -> Result<OrganizationImport, StoreError> {
        let mut client = self.client("importing organizations").await?;
        Ok(organizations::import(&mut client, rows).await?)
    }

    async fn get_decision(&self, tenant: &str) -> Result<Option<MatchDecision>, StoreError> {
        let client = self.client("reading the review decision").await?;
        Ok(tenant::read_decision(&client, tenant).await?)
    }

    async fn reset_tenant(&self, tenant: &str) -> Result<ResetOutcome, StoreError> {
        check_tenant(tenant)?;
        let mut client = self.client("resetting the tenant").await?;
        reset::reset_tenant(&mut client, &self.target.described, tenant).await
    }
}
