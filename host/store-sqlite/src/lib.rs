//! SQLite storage (the embedded default): WAL, one transaction per batch, schema created
//! on first use and migrated forward (`PRAGMA user_version`). One database holds many
//! tenants; every row carries its tenant's key and a tenant's store ([`SqliteTenant`]) only
//! ever touches the rows of the tenant it was opened for. The platform's organizations
//! (`platform_organizations`) are the platform's own, shared by all tenants.
//!
//! Schema versions:
//! - 1: people, checkpoints, runs (successful runs only), the data sets, platform
//!   organizations and match decisions.
//! - 2: `runs` records failed runs too (`status` ok/failed, `error_kind`, `error`; a failed
//!   run has no report and may have no counts), and `people.mail_key`/`upn_key` use the
//!   engine's key normalisation; the migration from 1 rebuilds `runs` (keys written by
//!   schema 1 stay as they were until the engine writes the person again: since WIT 0.4.0
//!   the engine hands every person with its keys and the host computes none).
//! - 3: `people` is a rowid table (was `WITHOUT ROWID`) with `mail_hash`/`upn_hash`
//!   ([`schema::key_hash`] of the keys), which its email and UPN indexes hold instead of
//!   `(tenant, key)`.
//! - 4: `runs.status` may also be `interrupted` (stopped by a signal), `refused` (another
//!   process was syncing the tenant) and `reset` (`m365sync reset` emptied the tenant);
//!   `tenant_locks` holds the per-tenant lock of a running sync ([`lock::lock_tenant`]).
//! - 5: what `m365sync serve` shares (`served_tenants`, `jobs`, `workers`, `webhooks`) and
//!   the change feed (`change_events`, written by each batch's transaction); the migration
//!   from 4 only adds them ([`schema::SERVE_TABLES`]). One `serve` process serves a SQLite
//!   store: a second one is refused at `join` (`queue.rs`).
//! - 6: what onboarding keeps (`consent_requests`, `registered_tenants`: see
//!   `onboarding.rs`); the migration from 5 only adds them ([`schema::ONBOARDING_TABLES`]).
//! - 7: a registered tenant's partner (`registered_tenants.partner`, NULL for the rows of
//!   schema 6) and what an admin must act on (`notices`: see `notices.rs`); the migration
//!   from 6 adds the column and the table.
//! - 8: `usage` is a rowid table (was `WITHOUT ROWID`, keyed by person) with a unique index
//!   on its key and one by report (`usage_report`, for a report's replacement), and
//!   `group_members` is indexed by member (for a deleted person's memberships); the
//!   migration from 7 copies the usage rows ([`schema::USAGE_TABLE`]).
//! - 9: `people.mail_hash`/`upn_hash` lead with bits of the tenant's key
//!   ([`schema::key_hash`]), so that each tenant's entries are contiguous in the indexes
//!   all tenants share; the migration from 8 computes them again.
//! - 10: a usage row's counts are a blob of (name id, value) varints, the names in
//!   `count_names` ([`counts`]), instead of a JSON object per row; the migration from 9
//!   rewrites the usage rows.
//!
//! A link (`upsert-person` of kind `link`) re-keys the person's row in place: the row stored
//! under the previous object id gets the new object id and the new fields, in the batch's
//! transaction. Rows of other tables keyed by the previous object id (group memberships,
//! mailbox and usage rows, other people's `manager_id`) stay as they are: they describe
//! the previous Graph account, which Graph keeps reporting under its own id (a group delta
//! removes a gone member by that id), and the new account's rows arrive under the new id.

mod counts;
mod feed;
mod gate;
mod lock;
mod log;
mod notices;
mod onboarding;
mod organizations;
mod queue;
mod read;
pub mod schema;
mod served;
mod tenant;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use m365sync_store::model::{
    FailedRun, LockHolder, OrganizationImport, OrganizationRow, ResetOutcome, RunRecord,
};
use m365sync_store::{Access, Store, StoreError, TenantStore};
use m365sync_wit::types::{MatchDecision, PlatformOrganization};
use rusqlite::{OptionalExtension, params};

pub use schema::{OpenError, SCHEMA_VERSION};
pub use tenant::SqliteTenant;

/// A SQLite database file of many tenants. Each call opens its own connection (SQLite
/// connections are cheap while another stays open; WAL lets readers and one writer work
/// at once); writes queue at the file's gate ([`gate`]).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    gate: gate::WriteGate,
    /// A connection held open for as long as the store (and its clones) live, used for
    /// nothing: while one connection is open, closing the others neither checkpoints the
    /// WAL nor deletes the `-wal` and `-shm` files, which the next connection would create
    /// again. A sync opens the database three or four times (schema, lock, spooled runs,
    /// the tenant's store); each was a checkpoint, fsyncs and two new files, most of the
    /// cost of syncing a small tenant (perf, bench `fleet`). None for a read-only store.
    _held: Option<Arc<Mutex<rusqlite::Connection>>>,
}

impl SqliteStore {
    /// The database at `path`, created and migrated to [`SCHEMA_VERSION`] now if needed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let held = schema::open_database(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            gate: gate::of(path),
            _held: Some(Arc::new(Mutex::new(held))),
        })
    }

    /// The database at `path` for reading only: it must exist and hold m365sync's tables;
    /// nothing is created or migrated.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Empty(format!("database {}", path.display())));
        }
        schema::open_database_read_only(path)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            gate: gate::of(path),
            _held: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> Result<rusqlite::Connection, StoreError> {
        Ok(schema::open_database(&self.path)?)
    }

    fn read_connection(&self) -> Result<rusqlite::Connection, StoreError> {
        Ok(schema::open_database_read_only(&self.path)?)
    }
}

fn read_error(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Storage(tenant::unavailable(what, e))
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite database {}", self.path.display())
    }

    async fn open_tenant(
        &self,
        tenant: &str,
        access: Access,
    ) -> Result<Box<dyn TenantStore>, StoreError> {
        match access {
            Access::Sync => {
                let lock = {
                    let _writing = self.gate.lock().await;
                    let lock = lock::lock_tenant(&self.path, tenant, &self.gate)?;
                    log::record_spooled_runs(&self.path);
                    lock
                };
                let connection = self.connection()?;
                Ok(Box::new(SqliteTenant::new(
                    connection,
                    tenant,
                    Some(lock),
                    self.gate.clone(),
                    false,
                )))
            }
            Access::ReadOnly => {
                let connection = self.read_connection()?;
                Ok(Box::new(SqliteTenant::new(
                    connection,
                    tenant,
                    None,
                    self.gate.clone(),
                    true,
                )))
            }
        }
    }

    async fn lock_holder(&self, tenant: &str) -> Result<Option<LockHolder>, StoreError> {
        let connection = self.read_connection()?;
        lock::live_lock_holder(&connection, tenant).map_err(read_error("reading the lock"))
    }

    async fn record_failed_run(
        &self,
        tenant: &str,
        run: &FailedRun,
    ) -> Result<Option<i64>, StoreError> {
        let _writing = self.gate.lock().await;
        log::record_failed_run(&self.path, tenant, run)
    }

    async fn list_runs(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        {
            let _writing = self.gate.lock().await;
            log::record_spooled_runs(&self.path);
        }
        let connection = self.read_connection()?;
        log::list_runs(&connection, tenant, limit).map_err(read_error("reading the sync log"))
    }

    async fn get_run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let connection = self.read_connection()?;
        log::get_run(&connection, id).map_err(read_error("reading the sync log"))
    }

    async fn list_organizations(&self) -> Result<Vec<PlatformOrganization>, StoreError> {
        let connection = self.read_connection()?;
        organizations::list_organizations(&connection).map_err(read_error("listing organizations"))
    }

    async fn create_organization(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PlatformOrganization, StoreError> {
        let _writing = self.gate.lock().await;
        let connection = self.connection()?;
        Ok(organizations::create_organization(&connection, name, id)?)
    }

    async fn import_organizations(
        &self,
        rows: &[OrganizationRow],
    ) -> Result<OrganizationImport, StoreError> {
        let _writing = self.gate.lock().await;
        let mut connection = self.connection()?;
        Ok(organizations::import_organizations(&mut connection, rows)?)
    }

    async fn get_decision(&self, tenant: &str) -> Result<Option<MatchDecision>, StoreError> {
        let connection = self.read_connection()?;
        connection
            .query_row(
                "SELECT action, organization_id, decided_at FROM match_decisions WHERE tenant = ?1",
                params![tenant],
                |row| {
                    Ok(MatchDecision {
                        tenant_key: tenant.to_string(),
                        action: m365sync_store::model::action_from(
                            &row.get::<_, String>(0)?,
                            row.get(1)?,
                        ),
                        decided_at: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(read_error("reading the review decision"))
    }

    async fn reset_tenant(&self, tenant: &str) -> Result<ResetOutcome, StoreError> {
        let _writing = self.gate.lock().await;
        lock::reset_tenant(&self.path, tenant)
    }
}
