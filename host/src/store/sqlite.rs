//! SQLite storage (the embedded default): WAL, one transaction per batch, schema created
//! on first use and migrated forward (`PRAGMA user_version`). One database holds many
//! tenants; every row carries its tenant's key and a `SqliteStore` only ever touches the
//! rows of the tenant it was opened for. The platform's organizations
//! (`platform_organizations`) are the platform's own, shared by all tenants.
//!
//! Schema versions:
//! - 1: people, checkpoints, runs (successful runs only), the data sets, platform
//!   organizations and match decisions.
//! - 2: `runs` records failed runs too (`status` ok/failed, `error_kind`, `error`; a failed
//!   run has no report and may have no counts), and `people.mail_key`/`upn_key` use the
//!   engine's key normalisation ([`normalise_key`]); the migration from 1 rebuilds `runs`
//!   and recomputes every key.
//! - 3: `people` is a rowid table (was `WITHOUT ROWID`) with `mail_hash`/`upn_hash`
//!   ([`key_hash`] of the keys), which its email and UPN indexes hold instead of
//!   `(tenant, key)`.
//! - 4: `runs.status` may also be `interrupted` (stopped by a signal), `refused` (another
//!   process was syncing the tenant) and `reset` (`m365sync reset` emptied the tenant);
//!   `tenant_locks` holds the per-tenant lock of a running sync ([`lock_tenant`]).
//!
//! A link (`upsert-person` of kind `link`) re-keys the person's row in place: the row stored
//! under the previous object id gets the new object id and the new fields, in the batch's
//! transaction. Rows of other tables keyed by the previous object id (group memberships,
//! mailbox and usage rows, other people's `manager_id`) stay as they are: they describe
//! the previous Graph account, which Graph keeps reporting under its own id (a group delta
//! removes a gone member by that id), and the new account's rows arrive under the new id.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::capabilities::storage::TenantStore;
use crate::report;
use crate::runtime::bindings::storage::StorageError;
use crate::runtime::bindings::types::{
    Batch, Change, MatchDecision, Person, PersonKey, PersonStatus, PersonUpsert,
    PlatformOrganization, ReportScope, ReviewAction, StoredPerson, SyncReport, UpsertKind,
};

/// Schema version, in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 4;

/// The sync log's table (schema 4): one row per run, whatever its outcome (see
/// [`RunStatus`]), and per reset of a tenant.
const RUNS_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    started_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'interrupted', 'refused', 'reset')),
    elapsed_ms INTEGER,
    requests INTEGER,
    retries INTEGER,
    dry_run INTEGER NOT NULL,
    error_kind TEXT,
    error TEXT,
    report TEXT
);
CREATE INDEX IF NOT EXISTS runs_tenant ON runs (tenant, id);
"#;

/// The per-tenant lock of a running sync (schema 4): one row while a process syncs the
/// tenant (see [`lock_tenant`]). `heartbeat` is Unix seconds.
const TENANT_LOCKS_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS tenant_locks (
    tenant TEXT NOT NULL PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since TEXT NOT NULL,
    heartbeat INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Schema 3 to 4, the sync log's part: `runs` is rebuilt for its new statuses (SQLite
/// cannot change a CHECK constraint in place) and `tenant_locks` is created. Its index
/// is dropped first: renamed with the table, it would survive as the old table's and
/// vanish with it.
fn migrate_runs_and_locks_3_to_4(connection: &Connection) -> rusqlite::Result<()> {
    connection
        .execute_batch("ALTER TABLE runs RENAME TO runs_v3; DROP INDEX IF EXISTS runs_tenant;")?;
    connection.execute_batch(RUNS_TABLE)?;
    connection.execute_batch(&format!(
        "INSERT INTO runs ({RUN_COLUMNS}) SELECT {RUN_COLUMNS} FROM runs_v3; DROP TABLE runs_v3;"
    ))?;
    connection.execute_batch(TENANT_LOCKS_TABLE)
}

/// Schema 1 to 2: rebuild `runs` (its counts and report become optional, a status and
/// the error are added); existing runs were all successful. Keys are recomputed in Rust.
const MIGRATE_1_TO_2: &str = r#"
ALTER TABLE runs RENAME TO runs_v1;
DROP INDEX IF EXISTS runs_tenant;
"#;

const COPY_V1_RUNS: &str = r#"
INSERT INTO runs (id, tenant, started_at, mode, status, elapsed_ms, requests, retries, dry_run,
                  error_kind, error, report)
SELECT id, tenant, started_at, mode, 'ok', elapsed_ms, requests, retries, dry_run, NULL, NULL,
       report
FROM runs_v1;
DROP TABLE runs_v1;
"#;

/// The people table's columns in schemas 1 and 2 (schema 3 adds the key hashes).
const PEOPLE_V2_COLUMNS: &str = r#"
    tenant TEXT NOT NULL,
    object_id TEXT NOT NULL,
    user_principal_name TEXT NOT NULL,
    mail TEXT,
    given_name TEXT,
    surname TEXT,
    display_name TEXT,
    department TEXT,
    job_title TEXT,
    company_name TEXT,
    country TEXT,
    usage_location TEXT,
    office_location TEXT,
    account_enabled INTEGER NOT NULL,
    user_type TEXT NOT NULL,
    licences TEXT NOT NULL,
    created_at TEXT,
    manager_id TEXT,
    hire_date TEXT,
    proxy_addresses TEXT NOT NULL,
    last_sign_in TEXT,
    status TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    mail_key TEXT,
    upn_key TEXT NOT NULL
"#;

/// The names of [`PEOPLE_V2_COLUMNS`], in order.
const PEOPLE_V2_NAMES: &str = "tenant, object_id, user_principal_name, mail, given_name, surname,
    display_name, department, job_title, company_name, country, usage_location,
    office_location, account_enabled, user_type, licences, created_at, manager_id, hire_date,
    proxy_addresses, last_sign_in, status, fingerprint, mail_key, upn_key";

/// The people table, `name`d, as schema 3 has it: a rowid table, with [`key_hash`]es of
/// the email and UPN keys. Rows are ~0.5 KB and keyed by random object ids; as a
/// `WITHOUT ROWID` table (schemas 1 and 2) every page's inserts landed all over the b-tree
/// of full rows, so each commit rewrote most of the table into the WAL (perf: three
/// quarters of a 100k-user first sync). In a rowid table rows are appended; only the key
/// indexes take random inserts, and indexing 8-byte hashes instead of `(tenant, key
/// text)` makes those indexes a quarter of the size.
fn people_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} ({PEOPLE_V2_COLUMNS},
            mail_hash INTEGER,
            upn_hash INTEGER NOT NULL,
            PRIMARY KEY (tenant, object_id));"
    )
}

/// The indexes the engine's lookups by email and user principal name use: by hash (a
/// lookup checks the tenant and the key text too); and (schema 4) the one
/// `find-direct-reports` uses, by tenant and manager.
const PEOPLE_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS people_mail ON people (mail_hash);
CREATE INDEX IF NOT EXISTS people_upn ON people (upn_hash);
CREATE INDEX IF NOT EXISTS people_manager ON people (tenant, manager_id);
"#;

/// The stable hash the key indexes hold: 64-bit FNV-1a of the normalised key's UTF-8, as
/// SQLite's signed integer. Stored, so it must never change.
pub fn key_hash(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Schema 2 to 3: people becomes a rowid table, the same rows plus their key hashes
/// ([`hash_keys`] fills them in).
fn migrate_people_2_to_3(connection: &Connection) -> rusqlite::Result<()> {
    connection
        .execute_batch("DROP INDEX IF EXISTS people_mail; DROP INDEX IF EXISTS people_upn;")?;
    connection.execute_batch(&people_table("people_v3"))?;
    connection.execute_batch(&format!(
        "INSERT INTO people_v3 ({PEOPLE_V2_NAMES}, upn_hash)
         SELECT {PEOPLE_V2_NAMES}, 0 FROM people;
         DROP TABLE people;
         ALTER TABLE people_v3 RENAME TO people;"
    ))?;
    hash_keys(connection)?;
    connection.execute_batch(PEOPLE_INDEXES)
}

/// Sets every person's `mail_hash` and `upn_hash` from the stored keys.
fn hash_keys(connection: &Connection) -> rusqlite::Result<()> {
    let rows: Vec<(i64, Option<String>, String)> = connection
        .prepare("SELECT rowid, mail_key, upn_key FROM people")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update =
        connection.prepare("UPDATE people SET mail_hash = ?2, upn_hash = ?3 WHERE rowid = ?1")?;
    for (rowid, mail_key, upn_key) in rows {
        update.execute(params![
            rowid,
            mail_key.as_deref().map(key_hash),
            key_hash(&upn_key)
        ])?;
    }
    Ok(())
}

/// Every other table.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    sku_part_number TEXT NOT NULL,
    product_name TEXT NOT NULL,
    enabled_units INTEGER NOT NULL,
    suspended_units INTEGER NOT NULL,
    warning_units INTEGER NOT NULL,
    consumed_units INTEGER NOT NULL,
    service_plans TEXT NOT NULL,
    PRIMARY KEY (tenant, sku_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS groups (
    tenant TEXT NOT NULL,
    object_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    mail TEXT,
    kind TEXT NOT NULL,
    PRIMARY KEY (tenant, object_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS group_members (
    tenant TEXT NOT NULL,
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (tenant, group_id, member_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS organizations (
    tenant TEXT NOT NULL PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    country TEXT,
    default_domain TEXT,
    verified_domains TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS domains (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    is_initial INTEGER NOT NULL,
    is_verified INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS mailboxes (
    tenant TEXT NOT NULL,
    object_id TEXT NOT NULL,
    storage_used_bytes INTEGER NOT NULL,
    item_count INTEGER NOT NULL,
    quota_status TEXT NOT NULL,
    last_activity TEXT,
    report_refreshed TEXT NOT NULL,
    PRIMARY KEY (tenant, object_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS usage (
    tenant TEXT NOT NULL,
    object_id TEXT NOT NULL,
    workload TEXT NOT NULL,
    period_days INTEGER NOT NULL,
    last_activity TEXT,
    counts TEXT NOT NULL,
    report_refreshed TEXT NOT NULL,
    PRIMARY KEY (tenant, object_id, workload, period_days)
) WITHOUT ROWID;

-- The platform's own organizations (multi-tenant platforms match tenants to them).
CREATE TABLE IF NOT EXISTS platform_organizations (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS match_decisions (
    tenant TEXT NOT NULL PRIMARY KEY,
    action TEXT NOT NULL,
    organization_id TEXT,
    decided_at TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Failure to open or prepare the database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this m365sync ({SCHEMA_VERSION})"
    )]
    TooNew { path: String, found: i64 },
    #[error(
        "cannot upgrade database {path} from schema version {from} to {SCHEMA_VERSION}: {source}"
    )]
    Migrate {
        path: String,
        from: i64,
        source: rusqlite::Error,
    },
    #[error("database {path} has no m365sync tables: run `m365sync sync` first")]
    Empty { path: String },
}

/// A tenant's rows in a SQLite database.
///
/// Batches are applied in a write transaction that stays open across batches and is
/// committed with the first batch that carries checkpoints or the run's report (or after
/// [`MAX_DEFERRED_CHANGES`] changes, or when the store is dropped). The engine saves its
/// progress (delta links) only in checkpoints, and a batch without any is one it redoes
/// from the last saved checkpoint anyway (the storage interface allows this, see
/// `wit/engine.wit`): batches stay atomic and in order, and a failing batch, or a crash
/// of the process, undoes the batches since the last checkpoint with it. One commit per
/// delta round instead of one per page: a 100k-user first sync writes each index page to
/// the WAL a few times, not once per page of users. (Savepoints per batch would keep
/// earlier batches on a failure, but SQLite then copies every page a batch first touches
/// into its statement journal: eight times the writes, measured.)
pub struct SqliteStore {
    connection: Connection,
    tenant: String,
    /// Changes applied in the open write transaction, if one is open.
    deferred: Option<usize>,
    /// The tenant lock this store's writes are made under ([`SqliteStore::write_under`]).
    lock: Option<Arc<LockBeat>>,
}

/// At most this many changes wait in the open transaction (a bound on the WAL's growth).
pub const MAX_DEFERRED_CHANGES: usize = 50_000;

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, scoped to `tenant`.
    pub fn open(path: &Path, tenant: &str) -> Result<SqliteStore, OpenError> {
        let connection = open_database(path)?;
        Ok(SqliteStore {
            connection,
            tenant: tenant.to_string(),
            deferred: None,
            lock: None,
        })
    }

    /// Open an existing database read-only (SQLite refuses any write through it), scoped to
    /// `tenant`: for previews and reviews that must change nothing. Older schemas are read
    /// as they are, not migrated.
    pub fn open_read_only(path: &Path, tenant: &str) -> Result<SqliteStore, OpenError> {
        let connection = open_database_read_only(path)?;
        Ok(SqliteStore {
            connection,
            tenant: tenant.to_string(),
            deferred: None,
            lock: None,
        })
    }

    /// A new, empty database in memory, scoped to `tenant` (a preview with no database yet).
    pub fn in_memory(tenant: &str) -> Result<SqliteStore, OpenError> {
        let open = |source| OpenError::Open {
            path: ":memory:".to_string(),
            source,
        };
        let connection = Connection::open_in_memory().map_err(open)?;
        migrate(&connection, ":memory:")?;
        Ok(SqliteStore {
            connection,
            tenant: tenant.to_string(),
            deferred: None,
            lock: None,
        })
    }

    /// Record a run that failed, was interrupted or refused: the engine commits no report
    /// for it, so the host does. Returns the run's id in the sync log.
    pub fn record_failed_run(&mut self, failed: &FailedRun) -> Result<i64, StorageError> {
        self.flush()?;
        self.connection
            .prepare_cached(
                "INSERT INTO runs (tenant, started_at, mode, status, elapsed_ms, requests, retries,
                                   dry_run, error_kind, error, report)
                 VALUES (?1, ?2, ?3, ?11, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                let partial = failed.report.as_ref();
                s.execute(params![
                    self.tenant,
                    failed.started_at,
                    failed.mode,
                    failed.elapsed_ms as i64,
                    partial.map(|r| r.requests),
                    partial.map(|r| r.retries),
                    failed.dry_run,
                    failed.error_kind,
                    failed.error,
                    partial.map(|r| report::to_json(r).to_string()),
                    failed.status.name(),
                ])
            })
            .map(|_| self.connection.last_insert_rowid())
            .map_err(|e| unavailable("recording the failed run", e))
    }

    /// Commits the batches applied since the last commit (see [`SqliteStore`]). A failed
    /// commit rolls them back.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.deferred.take().is_none() {
            return Ok(());
        }
        if let Err(error) = self.beat_in_transaction() {
            let _ = self.connection.execute_batch("ROLLBACK");
            return Err(error);
        }
        self.connection.execute_batch("COMMIT").map_err(|e| {
            let _ = self.connection.execute_batch("ROLLBACK");
            unavailable("committing", e)
        })
    }

    /// Make this store's writes under `lock`: its heartbeat, when the lock's own thread
    /// could not write it (this store's write transaction was open), is written with the
    /// next commit, which is refused if the lock has been taken over meanwhile.
    pub fn write_under(&mut self, lock: &TenantLock) {
        self.lock = Some(lock.beat.clone());
    }

    /// The heartbeat a commit carries when one is due (an atomic load otherwise).
    fn beat_in_transaction(&self) -> Result<(), StorageError> {
        let Some(beat) = self.lock.as_ref() else {
            return Ok(());
        };
        if !beat.due.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        match beat.write(&self.connection) {
            Ok(1) => Ok(()),
            Ok(_) => Err(StorageError::Unavailable(format!(
                "the lock of tenant {} was taken over by another process: this run's \
                 changes since its last checkpoint are not committed",
                beat.tenant
            ))),
            Err(e) => Err(unavailable("refreshing the tenant's lock", e)),
        }
    }

    /// The tenant this store is scoped to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The underlying connection, for read-only queries by the CLI.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}

fn apply(transaction: &Connection, tenant: &str, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::UpsertPerson(upsert) => upsert_person(transaction, tenant, upsert),
        // A deleted person takes everything stored about them along.
        Change::DeletePerson(object_id) => {
            for sql in [
                "DELETE FROM mailboxes WHERE tenant = ?1 AND object_id = ?2",
                "DELETE FROM usage WHERE tenant = ?1 AND object_id = ?2",
                "DELETE FROM group_members WHERE tenant = ?1 AND member_id = ?2",
                "DELETE FROM people WHERE tenant = ?1 AND object_id = ?2",
            ] {
                transaction
                    .prepare_cached(sql)?
                    .execute(params![tenant, object_id])?;
            }
            Ok(())
        }
        Change::ReplaceReport(ReportScope::Mailboxes) => transaction
            .prepare_cached("DELETE FROM mailboxes WHERE tenant = ?1")?
            .execute(params![tenant])
            .map(drop),
        Change::ReplaceReport(ReportScope::Usage(scope)) => transaction
            .prepare_cached(
                "DELETE FROM usage WHERE tenant = ?1 AND workload = ?2 AND period_days = ?3",
            )?
            .execute(params![tenant, scope.workload, scope.period_days])
            .map(drop),
        Change::UpsertSubscription(s) => transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO subscriptions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                tenant,
                s.sku_id,
                s.sku_part_number,
                s.product_name,
                s.enabled_units,
                s.suspended_units,
                s.warning_units,
                s.consumed_units,
                json_list(&s.service_plans),
            ])
            .map(drop),
        Change::UpsertGroup(g) => transaction
            .prepare_cached("INSERT OR REPLACE INTO groups VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![tenant, g.object_id, g.display_name, g.mail, g.kind])
            .map(drop),
        Change::DeleteGroup(group_id) => {
            transaction
                .prepare_cached("DELETE FROM group_members WHERE tenant = ?1 AND group_id = ?2")?
                .execute(params![tenant, group_id])?;
            transaction
                .prepare_cached("DELETE FROM groups WHERE tenant = ?1 AND object_id = ?2")?
                .execute(params![tenant, group_id])
                .map(drop)
        }
        Change::GroupMembers(m) => {
            let mut add = transaction
                .prepare_cached("INSERT OR IGNORE INTO group_members VALUES (?1, ?2, ?3)")?;
            for member in &m.added {
                add.execute(params![tenant, m.group_id, member])?;
            }
            let mut remove = transaction.prepare_cached(
                "DELETE FROM group_members WHERE tenant = ?1 AND group_id = ?2 AND member_id = ?3",
            )?;
            for member in &m.removed {
                remove.execute(params![tenant, m.group_id, member])?;
            }
            Ok(())
        }
        Change::UpsertOrganization(o) => transaction
            .prepare_cached("INSERT OR REPLACE INTO organizations VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![
                tenant,
                o.tenant_id,
                o.display_name,
                o.country,
                o.default_domain,
                json_list(&o.verified_domains),
            ])
            .map(drop),
        Change::UpsertDomain(d) => transaction
            .prepare_cached("INSERT OR REPLACE INTO domains VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![
                tenant,
                d.name,
                d.is_default,
                d.is_initial,
                d.is_verified
            ])
            .map(drop),
        Change::UpsertMailbox(m) => transaction
            .prepare_cached("INSERT OR REPLACE INTO mailboxes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
            .execute(params![
                tenant,
                m.object_id,
                m.storage_used_bytes as i64,
                m.item_count as i64,
                m.quota_status,
                m.last_activity,
                m.report_refreshed,
            ])
            .map(drop),
        Change::UpsertUsage(u) => {
            let counts: serde_json::Map<String, serde_json::Value> = u
                .counts
                .iter()
                .map(|(k, v)| (k.clone(), (*v).into()))
                .collect();
            transaction
                .prepare_cached("INSERT OR REPLACE INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![
                    tenant,
                    u.object_id,
                    u.workload,
                    u.period_days,
                    u.last_activity,
                    serde_json::Value::Object(counts).to_string(),
                    u.report_refreshed,
                ])
                .map(drop)
        }
    }
}

impl Drop for SqliteStore {
    /// The batches the engine committed land even when the run ends without a final one
    /// (it failed, or was stopped).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Applies one batch's changes, checkpoints and run record.
fn apply_batch(connection: &Connection, tenant: &str, batch: &Batch) -> Result<(), StorageError> {
    for change in &batch.changes {
        apply(connection, tenant, change).map_err(|e| {
            StorageError::Invalid(format!("applying {}: {e}", report::change_name(change)))
        })?;
    }
    for checkpoint in &batch.checkpoints {
        let result = match &checkpoint.value {
            Some(value) => connection
                .prepare_cached("INSERT OR REPLACE INTO checkpoints VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![tenant, checkpoint.key, value])),
            None => connection
                .prepare_cached("DELETE FROM checkpoints WHERE tenant = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![tenant, checkpoint.key])),
        };
        result.map_err(|e| unavailable("writing checkpoint", e))?;
    }
    if let Some(run) = &batch.run {
        record_run(connection, tenant, run).map_err(|e| unavailable("recording the run", e))?;
    }
    Ok(())
}

fn record_run(transaction: &Connection, tenant: &str, run: &SyncReport) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO runs (tenant, started_at, mode, status, elapsed_ms, requests, retries,
                                   dry_run, error_kind, error, report)
                 VALUES (?1, ?2, ?3, 'ok', ?4, ?5, ?6, ?7, NULL, NULL, ?8)",
        )?
        .execute(params![
            tenant,
            run.started_at,
            report::mode_name(run.mode),
            run.elapsed_ms as i64,
            run.requests,
            run.retries,
            run.dry_run,
            report::to_json(run).to_string(),
        ])
        .map(drop)
}

/// Open a database with the project's settings and schema, creating or upgrading it.
pub fn open_database(path: &Path) -> Result<Connection, OpenError> {
    let shown = path.display().to_string();
    let open = |source| OpenError::Open {
        path: shown.clone(),
        source,
    };
    let connection = Connection::open(path).map_err(open)?;
    connection
        .busy_timeout(Duration::from_secs(30))
        .map_err(open)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(open)?;
    // A sync looks people up by id, email or UPN and updates three indexes per person:
    // with SQLite's default 2 MB page cache a 100k-person tenant (~75 MB) was read
    // through pread() again and again (perf: kernel copies dominated). Memory-mapped
    // reads, and a 16 MB cache for the pages a transaction changes (64 MB measured no
    // faster, and doubled the peak RSS of a 100k-user first sync).
    connection
        .execute_batch("PRAGMA cache_size = -16384; PRAGMA mmap_size = 1073741824;")
        .map_err(open)?;
    migrate(&connection, &shown)?;
    Ok(connection)
}

/// Open an existing database read-only, at whatever schema version it has (not newer
/// than this m365sync's).
pub fn open_database_read_only(path: &Path) -> Result<Connection, OpenError> {
    use rusqlite::OpenFlags;
    let shown = path.display().to_string();
    let open = |source| OpenError::Open {
        path: shown.clone(),
        source,
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open)?;
    connection
        .busy_timeout(Duration::from_secs(30))
        .map_err(open)?;
    match schema_version(&connection).map_err(open)? {
        0 => Err(OpenError::Empty { path: shown }),
        found if found > SCHEMA_VERSION => Err(OpenError::TooNew { path: shown, found }),
        _ => Ok(connection),
    }
}

fn schema_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Bring the schema to [`SCHEMA_VERSION`]: create it in an empty database, or migrate it
/// step by step, all in one transaction. The version is read again inside the write
/// transaction, so two processes opening one database at once migrate it once.
fn migrate(connection: &Connection, shown: &str) -> Result<(), OpenError> {
    let open = |source| OpenError::Open {
        path: shown.to_string(),
        source,
    };
    let version = schema_version(connection).map_err(open)?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            path: shown.to_string(),
            found: version,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let failed = |from: i64| {
        move |source| OpenError::Migrate {
            path: shown.to_string(),
            from,
            source,
        }
    };
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(failed(version))?;
    let result = (|| {
        let version = schema_version(connection)?;
        if version > SCHEMA_VERSION {
            return Ok(version);
        }
        if version == 0 {
            connection.execute_batch(&people_table("people"))?;
            connection.execute_batch(PEOPLE_INDEXES)?;
            connection.execute_batch(SCHEMA)?;
            connection.execute_batch(RUNS_TABLE)?;
            connection.execute_batch(TENANT_LOCKS_TABLE)?;
        }
        if version == 1 {
            connection.execute_batch(MIGRATE_1_TO_2)?;
            connection.execute_batch(RUNS_TABLE)?;
            connection.execute_batch(COPY_V1_RUNS)?;
            renormalise_keys(connection)?;
        }
        if (1..=2).contains(&version) {
            migrate_people_2_to_3(connection)?;
        }
        if version == 1 {
            // `runs` was just created with schema 4's statuses.
            connection.execute_batch(TENANT_LOCKS_TABLE)?;
        }
        if (2..=3).contains(&version) {
            migrate_runs_and_locks_3_to_4(connection)?;
        }
        if version == 3 {
            // Schema 4's index for direct reports (earlier versions got it with people's
            // indexes when their people table was rebuilt).
            connection.execute_batch(PEOPLE_INDEXES)?;
        }
        connection.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        Ok(version)
    })();
    match result {
        Ok(found) if found > SCHEMA_VERSION => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(OpenError::TooNew {
                path: shown.to_string(),
                found,
            })
        }
        Ok(_) => connection.execute_batch("COMMIT").map_err(failed(version)),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(failed(version)(error))
        }
    }
}

/// Recompute every person's `mail_key` and `upn_key` with [`normalise_key`].
fn renormalise_keys(connection: &Connection) -> rusqlite::Result<()> {
    /// A person whose stored keys differ from what [`normalise_key`] gives now.
    struct Rekey {
        tenant: String,
        object_id: String,
        mail_key: Option<String>,
        upn_key: String,
    }
    let stale: Vec<Rekey> = connection
        .prepare(
            "SELECT tenant, object_id, mail, user_principal_name, mail_key, upn_key FROM people",
        )?
        .query_map([], |row| {
            let rekey = Rekey {
                tenant: row.get(0)?,
                object_id: row.get(1)?,
                mail_key: row
                    .get::<_, Option<String>>(2)?
                    .as_deref()
                    .map(normalise_key),
                upn_key: normalise_key(&row.get::<_, String>(3)?),
            };
            let stale = rekey.mail_key != row.get::<_, Option<String>>(4)?
                || rekey.upn_key != row.get::<_, String>(5)?;
            Ok(stale.then_some(rekey))
        })?
        .filter_map(Result::transpose)
        .collect::<rusqlite::Result<_>>()?;
    let mut update = connection.prepare(
        "UPDATE people SET mail_key = ?3, upn_key = ?4 WHERE tenant = ?1 AND object_id = ?2",
    )?;
    for rekey in stale {
        update.execute(params![
            rekey.tenant,
            rekey.object_id,
            rekey.mail_key,
            rekey.upn_key
        ])?;
    }
    Ok(())
}

/// How a run the host records ended (a successful run is recorded by the engine, `ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunStatus {
    /// The run failed (sign-in, Graph, storage, a limit...).
    #[default]
    Failed,
    /// A signal stopped the run at a batch boundary (or after the grace period).
    Interrupted,
    /// The run never started: another process was syncing the tenant.
    Refused,
}

impl RunStatus {
    /// The name in `runs.status`.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Refused => "refused",
        }
    }
}

/// A run that did not succeed, as the host records it in the sync log.
#[derive(Debug, Clone)]
pub struct FailedRun {
    /// How it ended.
    pub status: RunStatus,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The mode that ran ("full" or "incremental"): the report's, else the one asked for.
    pub mode: String,
    pub elapsed_ms: u64,
    /// What the run did until it failed, when the engine said (requests, retries, data
    /// sets, warnings); stored as the run's report.
    pub report: Option<SyncReport>,
    pub dry_run: bool,
    /// What kind of failure (see [`crate::error::RunError::kind`]).
    pub error_kind: String,
    /// The error in words, without secrets.
    pub error: String,
}

/// One run of the sync log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub tenant: String,
    pub started_at: String,
    pub mode: String,
    /// "ok", or a [`RunStatus`] name ("failed", "interrupted", "refused"), or "reset".
    pub status: String,
    pub elapsed_ms: Option<u64>,
    /// Unknown (None) for a failed run.
    pub requests: Option<u64>,
    pub retries: Option<u64>,
    pub dry_run: bool,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// The run's report as [`report::to_json`] wrote it: of a failed run, what it did until
    /// it failed (None when the host stopped it, or for runs logged before schema 4).
    pub report: Option<serde_json::Value>,
}

const RUN_COLUMNS: &str = "id, tenant, started_at, mode, status, elapsed_ms, requests, retries, \
                           dry_run, error_kind, error, report";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let report: Option<String> = row.get(11)?;
    Ok(RunRecord {
        id: row.get(0)?,
        tenant: row.get(1)?,
        started_at: row.get(2)?,
        mode: row.get(3)?,
        status: row.get(4)?,
        elapsed_ms: row.get::<_, Option<i64>>(5)?.map(|v| v.max(0) as u64),
        requests: row.get::<_, Option<i64>>(6)?.map(|v| v.max(0) as u64),
        retries: row.get::<_, Option<i64>>(7)?.map(|v| v.max(0) as u64),
        dry_run: row.get(8)?,
        error_kind: row.get(9)?,
        error: row.get(10)?,
        report: report.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

/// The sync log, newest first: at most `limit` runs, of one tenant or of all.
pub fn list_runs(
    connection: &Connection,
    tenant: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<RunRecord>> {
    connection
        .prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR tenant = ?1)
             ORDER BY id DESC LIMIT ?2"
        ))?
        .query_map(params![tenant, limit], run_from_row)?
        .collect()
}

/// One run of the sync log, by id.
pub fn get_run(connection: &Connection, id: i64) -> rusqlite::Result<Option<RunRecord>> {
    connection
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            params![id],
            run_from_row,
        )
        .optional()
}

/// The longest organization name accepted.
const MAX_ORGANIZATION_NAME: usize = 256;

fn check_organization_name(name: &str) -> Result<&str, StorageError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StorageError::Invalid(
            "organization name is empty".to_string(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StorageError::Invalid(format!(
            "organization name {name:?} contains a control character"
        )));
    }
    if name.chars().count() > MAX_ORGANIZATION_NAME {
        return Err(StorageError::Invalid(format!(
            "organization name {:?}... is longer than {MAX_ORGANIZATION_NAME} characters",
            name.chars().take(40).collect::<String>()
        )));
    }
    Ok(name)
}

fn check_organization_id(id: &str) -> Result<&str, StorageError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StorageError::Invalid(format!(
            "organization id {id:?} is not usable: it must be 1 to 128 characters without \
             spaces or control characters"
        )));
    }
    Ok(id)
}

/// A fresh organization id: a random (version 4 format) UUID.
pub fn new_organization_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS's randomness once per process and varies per
    // instance; the clock and a counter make ids of one process distinct besides.
    let word = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.write_u128(nanos);
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u64(salt);
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    let (high, low) = (word(1), word(2));
    let bytes: Vec<u8> = high
        .to_be_bytes()
        .into_iter()
        .chain(low.to_be_bytes())
        .collect();
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Create a platform organization: with `id`, or a fresh one.
pub fn create_organization(
    connection: &Connection,
    name: &str,
    id: Option<&str>,
) -> Result<PlatformOrganization, StorageError> {
    let name = check_organization_name(name)?;
    let id = match id {
        Some(id) => check_organization_id(id)?.to_string(),
        None => new_organization_id(),
    };
    let inserted = connection
        .prepare_cached("INSERT OR IGNORE INTO platform_organizations (id, name) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, name]))
        .map_err(|e| unavailable("creating an organization", e))?;
    if inserted == 0 {
        return Err(StorageError::Invalid(format!(
            "an organization with id {id:?} already exists"
        )));
    }
    Ok(PlatformOrganization {
        id,
        name: name.to_string(),
    })
}

/// What an import of organizations did.
#[derive(Debug, Clone, Default)]
pub struct OrganizationImport {
    /// New organizations.
    pub created: Vec<PlatformOrganization>,
    /// Organizations (by id) whose name changed.
    pub renamed: Vec<PlatformOrganization>,
    /// Rows that were there already (same id and name, or no id and an organization of
    /// that exact name exists).
    pub unchanged: usize,
}

/// One row to import: a name, and the organization's id if the file gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRow {
    /// Where the row is, for errors (e.g. "orgs.csv line 3").
    pub origin: String,
    pub id: Option<String>,
    pub name: String,
}

/// Import organizations in one transaction (all rows or none). A row with an id creates
/// that organization, or renames it when it exists; a row without an id creates an
/// organization with a fresh id unless one of exactly that name exists, so importing a
/// file twice creates nothing the second time.
pub fn import_organizations(
    connection: &mut Connection,
    rows: &[OrganizationRow],
) -> Result<OrganizationImport, StorageError> {
    let transaction = connection
        .transaction()
        .map_err(|e| unavailable("starting a transaction", e))?;
    let mut summary = OrganizationImport::default();
    let mut seen_ids = std::collections::HashMap::new();
    for row in rows {
        let at = |e: StorageError| match e {
            StorageError::Invalid(m) => StorageError::Invalid(format!("{}: {m}", row.origin)),
            StorageError::Unavailable(m) => {
                StorageError::Unavailable(format!("{}: {m}", row.origin))
            }
            cancelled @ StorageError::Cancelled(_) => cancelled,
        };
        let name = check_organization_name(&row.name).map_err(at)?;
        match &row.id {
            Some(id) => {
                let id = check_organization_id(id).map_err(at)?;
                if let Some(first) = seen_ids.insert(id.to_string(), row.origin.clone()) {
                    return Err(StorageError::Invalid(format!(
                        "{}: organization id {id:?} is given twice (first at {first})",
                        row.origin
                    )));
                }
                let existing: Option<String> = transaction
                    .query_row(
                        "SELECT name FROM platform_organizations WHERE id = ?1",
                        params![id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| at(unavailable("reading organizations", e)))?;
                let organization = PlatformOrganization {
                    id: id.to_string(),
                    name: name.to_string(),
                };
                match existing {
                    Some(old) if old == name => summary.unchanged += 1,
                    Some(_) => {
                        transaction
                            .execute(
                                "UPDATE platform_organizations SET name = ?2 WHERE id = ?1",
                                params![id, name],
                            )
                            .map_err(|e| at(unavailable("renaming an organization", e)))?;
                        summary.renamed.push(organization);
                    }
                    None => {
                        create_organization(&transaction, name, Some(id)).map_err(at)?;
                        summary.created.push(organization);
                    }
                }
            }
            None => {
                let exists = transaction
                    .prepare_cached("SELECT 1 FROM platform_organizations WHERE name = ?1")
                    .and_then(|mut s| s.exists(params![name]))
                    .map_err(|e| at(unavailable("reading organizations", e)))?;
                if exists {
                    summary.unchanged += 1;
                } else {
                    let created = create_organization(&transaction, name, None).map_err(at)?;
                    summary.created.push(created);
                }
            }
        }
    }
    transaction
        .commit()
        .map_err(|e| unavailable("committing the import", e))?;
    Ok(summary)
}

/// Every platform organization, by name.
pub fn list_organizations(connection: &Connection) -> rusqlite::Result<Vec<PlatformOrganization>> {
    connection
        .prepare_cached("SELECT id, name FROM platform_organizations ORDER BY name, id")?
        .query_map([], |row| {
            Ok(PlatformOrganization {
                id: row.get(0)?,
                name: row.get(1)?,
            })
        })?
        .collect()
}

fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_string())
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Zero-width characters that come along when an address is pasted; not Unicode
/// White_Space, so `str::trim` alone would keep them (as the engine's normalisation).
fn is_padding(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// The normalised form people are looked up by (`mail_key`, `upn_key`): exactly the
/// engine's key of an email address or user principal name, so the engine's
/// `person-key.email` / `user-principal-name` find the record. Surrounding whitespace and
/// zero-width padding trimmed, a `mailto:` prefix (any case) removed, full Unicode
/// lower-case, and one trailing dot at the end of the value (the domain's DNS root)
/// dropped. Plus-addressing is kept; no IDNA conversion.
pub fn normalise_key(value: &str) -> String {
    let mut s = value.trim_matches(is_padding);
    if let Some(head) = s.get(..7)
        && head.eq_ignore_ascii_case("mailto:")
    {
        s = s[7..].trim_matches(is_padding);
    }
    // Nearly every key is ASCII: no Unicode case tables, one allocation.
    let mut folded = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    };
    if folded.ends_with('.') {
        folded.pop();
    }
    folded
}

fn status_name(status: PersonStatus) -> &'static str {
    match status {
        PersonStatus::Active => "active",
        PersonStatus::Removed => "removed",
        PersonStatus::Flagged => "flagged",
        PersonStatus::Inactive => "inactive",
    }
}

fn status_from(name: &str) -> PersonStatus {
    match name {
        "removed" => PersonStatus::Removed,
        "flagged" => PersonStatus::Flagged,
        "inactive" => PersonStatus::Inactive,
        _ => PersonStatus::Active,
    }
}

fn upsert_person(
    transaction: &Connection,
    tenant: &str,
    upsert: &PersonUpsert,
) -> rusqlite::Result<()> {
    let new_id = &upsert.stored.person.object_id;
    if let (UpsertKind::Link, Some(previous)) = (upsert.kind, &upsert.previous_object_id)
        && previous != new_id
    {
        // Re-key the record in place: the row keeps its identity and takes the new id.
        // A row already under the new id (which the engine would not have linked around)
        // gives way to the linked record, so the tenant never holds both.
        let exists = transaction
            .prepare_cached("SELECT 1 FROM people WHERE tenant = ?1 AND object_id = ?2")?
            .exists(params![tenant, previous])?;
        if exists {
            transaction
                .prepare_cached("DELETE FROM people WHERE tenant = ?1 AND object_id = ?2")?
                .execute(params![tenant, new_id])?;
            transaction
                .prepare_cached(
                    "UPDATE people SET object_id = ?3 WHERE tenant = ?1 AND object_id = ?2",
                )?
                .execute(params![tenant, previous, new_id])?;
        }
    }
    write_person(transaction, tenant, &upsert.stored)
}

/// Insert the person, or update every column of the row stored under its object id.
fn write_person(
    transaction: &Connection,
    tenant: &str,
    stored: &StoredPerson,
) -> rusqlite::Result<()> {
    let p = &stored.person;
    let mail_key = p.mail.as_deref().map(normalise_key);
    let upn_key = normalise_key(&p.user_principal_name);
    transaction
        .prepare_cached(
            "INSERT INTO people VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
             ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
             ON CONFLICT (tenant, object_id) DO UPDATE SET
               user_principal_name = excluded.user_principal_name, mail = excluded.mail,
               given_name = excluded.given_name, surname = excluded.surname,
               display_name = excluded.display_name, department = excluded.department,
               job_title = excluded.job_title, company_name = excluded.company_name,
               country = excluded.country, usage_location = excluded.usage_location,
               office_location = excluded.office_location,
               account_enabled = excluded.account_enabled, user_type = excluded.user_type,
               licences = excluded.licences, created_at = excluded.created_at,
               manager_id = excluded.manager_id, hire_date = excluded.hire_date,
               proxy_addresses = excluded.proxy_addresses, last_sign_in = excluded.last_sign_in,
               status = excluded.status, fingerprint = excluded.fingerprint,
               mail_key = excluded.mail_key, upn_key = excluded.upn_key,
               mail_hash = excluded.mail_hash, upn_hash = excluded.upn_hash",
        )?
        .execute(params![
            tenant,
            p.object_id,
            p.user_principal_name,
            p.mail,
            p.given_name,
            p.surname,
            p.display_name,
            p.department,
            p.job_title,
            p.company_name,
            p.country,
            p.usage_location,
            p.office_location,
            p.account_enabled,
            p.user_type,
            json_list(&p.licences),
            p.created_at,
            p.manager_id,
            p.hire_date,
            json_list(&p.proxy_addresses),
            p.last_sign_in,
            status_name(stored.status),
            stored.fingerprint,
            mail_key,
            upn_key,
            mail_key.as_deref().map(key_hash),
            key_hash(&upn_key),
        ])
        .map(drop)
}

const PERSON_COLUMNS: &str =
    "object_id, user_principal_name, mail, given_name, surname, display_name,
    department, job_title, company_name, country, usage_location, office_location, account_enabled,
    user_type, licences, created_at, manager_id, hire_date, proxy_addresses, last_sign_in, status,
    fingerprint";

fn person_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredPerson> {
    Ok(StoredPerson {
        person: Person {
            object_id: row.get(0)?,
            user_principal_name: row.get(1)?,
            mail: row.get(2)?,
            given_name: row.get(3)?,
            surname: row.get(4)?,
            display_name: row.get(5)?,
            department: row.get(6)?,
            job_title: row.get(7)?,
            company_name: row.get(8)?,
            country: row.get(9)?,
            usage_location: row.get(10)?,
            office_location: row.get(11)?,
            account_enabled: row.get(12)?,
            user_type: row.get(13)?,
            licences: parse_list(&row.get::<_, String>(14)?),
            created_at: row.get(15)?,
            manager_id: row.get(16)?,
            hire_date: row.get(17)?,
            proxy_addresses: parse_list(&row.get::<_, String>(18)?),
            last_sign_in: row.get(19)?,
        },
        status: status_from(&row.get::<_, String>(20)?),
        fingerprint: row.get(21)?,
    })
}

fn unavailable(what: &str, error: rusqlite::Error) -> StorageError {
    StorageError::Unavailable(format!("{what}: {error}"))
}

impl TenantStore for SqliteStore {
    fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        self.connection
            .prepare_cached("SELECT value FROM checkpoints WHERE tenant = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.tenant, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| unavailable("reading checkpoint", e))
    }

    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        let by_id =
            format!("SELECT {PERSON_COLUMNS} FROM people WHERE tenant = ?1 AND object_id = ?2");
        // INDEXED BY: without statistics SQLite may prefer scanning the tenant's range of
        // the primary key over the hash index, a scan of the whole tenant per lookup.
        let by_mail = format!(
            "SELECT {PERSON_COLUMNS} FROM people INDEXED BY people_mail
             WHERE mail_hash = ?3 AND tenant = ?1 AND mail_key = ?2 LIMIT 1"
        );
        let by_upn = format!(
            "SELECT {PERSON_COLUMNS} FROM people INDEXED BY people_upn
             WHERE upn_hash = ?3 AND tenant = ?1 AND upn_key = ?2 LIMIT 1"
        );
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            // The statement, the id or normalised key, and the key's hash.
            let by_key = |sql, text: &str| {
                let key = normalise_key(text);
                let hash = key_hash(&key);
                (sql, key, Some(hash))
            };
            let (sql, value, hash) = match key {
                PersonKey::ObjectId(id) => (&by_id, id.clone(), None),
                PersonKey::Email(text) => by_key(&by_mail, text),
                PersonKey::UserPrincipalName(text) => by_key(&by_upn, text),
            };
            let person = self
                .connection
                .prepare_cached(sql)
                .and_then(|mut s| {
                    match hash {
                        None => s.query_row(params![self.tenant, value], person_from_row),
                        Some(h) => s.query_row(params![self.tenant, value, h], person_from_row),
                    }
                    .optional()
                })
                .map_err(|e| unavailable("looking people up", e))?;
            found.push(person);
        }
        Ok(found)
    }

    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.connection
            .prepare_cached(
                "SELECT object_id FROM people WHERE tenant = ?1 AND object_id > ?2 ORDER BY object_id LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![self.tenant, after.unwrap_or(""), limit], |row| row.get(0))?
                    .collect()
            })
            .map_err(|e| unavailable("listing people", e))
    }

    fn find_direct_reports(&mut self, manager_id: &str) -> Result<Vec<StoredPerson>, StorageError> {
        let sql =
            format!("SELECT {PERSON_COLUMNS} FROM people WHERE tenant = ?1 AND manager_id = ?2");
        self.connection
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params![self.tenant, manager_id], person_from_row)?
                    .collect()
            })
            .map_err(|e| unavailable("looking up direct reports", e))
    }

    fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        let deferred = match self.deferred {
            Some(n) => n,
            None => {
                self.connection
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(|e| unavailable("starting a transaction", e))?;
                0
            }
        };
        self.deferred = Some(deferred);
        if let Err(error) = apply_batch(&self.connection, &self.tenant, &batch) {
            // Everything since the last checkpoint goes: the engine redoes it from there.
            self.deferred = None;
            let _ = self.connection.execute_batch("ROLLBACK");
            return Err(error);
        }
        let deferred = deferred + batch.changes.len();
        self.deferred = Some(deferred);
        if !batch.checkpoints.is_empty() || batch.run.is_some() || deferred >= MAX_DEFERRED_CHANGES
        {
            self.flush()?;
        }
        Ok(())
    }

    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        list_organizations(&self.connection).map_err(|e| unavailable("listing organizations", e))
    }

    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError> {
        // Committed on its own, not with the engine's pending batches.
        self.flush()?;
        create_organization(&self.connection, name, None)
    }

    fn get_decision(&mut self, tenant_key: &str) -> Result<Option<MatchDecision>, StorageError> {
        if tenant_key != self.tenant {
            return Err(StorageError::Invalid(format!(
                "tenant {:?} cannot read the decision of tenant {tenant_key:?}",
                self.tenant
            )));
        }
        self.connection
            .prepare_cached(
                "SELECT action, organization_id, decided_at FROM match_decisions WHERE tenant = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant_key], |row| {
                    let action: String = row.get(0)?;
                    let organization: Option<String> = row.get(1)?;
                    let organization = organization.unwrap_or_default();
                    let action = match action.as_str() {
                        "accept" => ReviewAction::Accept(organization),
                        "change" => ReviewAction::Change(organization),
                        "create" => ReviewAction::Create,
                        _ => ReviewAction::Ignore,
                    };
                    Ok(MatchDecision {
                        tenant_key: tenant_key.to_string(),
                        action,
                        decided_at: row.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(|e| unavailable("reading the review decision", e))
    }

    fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError> {
        if decision.tenant_key != self.tenant {
            return Err(StorageError::Invalid(format!(
                "a decision for tenant {:?} cannot be stored by tenant {:?}",
                decision.tenant_key, self.tenant
            )));
        }
        self.flush()?;
        let (action, organization) = match &decision.action {
            ReviewAction::Accept(id) => ("accept", Some(id.as_str())),
            ReviewAction::Change(id) => ("change", Some(id.as_str())),
            ReviewAction::Ignore => ("ignore", None),
            ReviewAction::Create => ("create", None),
        };
        self.connection
            .prepare_cached("INSERT OR REPLACE INTO match_decisions VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| {
                s.execute(params![
                    self.tenant,
                    action,
                    organization,
                    decision.decided_at
                ])
            })
            .map(drop)
            .map_err(|e| unavailable("storing the review decision", e))
    }
}

// ---- The per-tenant lock of a running sync, and resetting a tenant ----

/// How long taking or releasing a tenant lock (or recording a refused run) waits for
/// another connection's write transaction: a sync commits its batches in transactions that
/// can stay open across a few pages, and a second process must be told at once rather than
/// after SQLite's usual 30 s.
pub const LOCK_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the holder of a tenant lock refreshes its heartbeat.
pub const LOCK_HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock held from another host whose heartbeat is older than this is stale: its holder
/// is presumed gone (crashed, or its machine is down) and the lock may be taken over. A
/// holder on this host is judged by its pid instead: stale exactly when no such process
/// lives (its heartbeat may lag while its own write transaction is open).
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// Who holds a tenant's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// When the holder took the lock, RFC 3339 UTC.
    pub since: String,
    /// Its last heartbeat, Unix seconds.
    pub heartbeat: i64,
}

impl LockHolder {
    /// This process, as a lock holder.
    fn this_process() -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            since: crate::synclog::now_rfc3339(),
            heartbeat: unix_now(),
        }
    }

    /// Whether the holder is presumed gone (see [`LOCK_STALE_AFTER`]).
    pub fn is_stale(&self) -> bool {
        if self.host == host_name() {
            return !process_alive(self.pid);
        }
        unix_now().saturating_sub(self.heartbeat) > LOCK_STALE_AFTER.as_secs() as i64
    }
}

/// Why a tenant lock could not be taken (or a tenant reset).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "tenant {tenant} is being synced by another process (pid {} on {}) since {}; wait for it to finish or, if that process is gone, {}",
        holder.pid, holder.host, holder.since, takeover_hint(holder)
    )]
    Held { tenant: String, holder: LockHolder },
    #[error("cannot take the lock of tenant {tenant} in {path}: {source}")]
    Database {
        tenant: String,
        path: String,
        source: rusqlite::Error,
    },
    #[error("tenant {tenant}: {source}")]
    Open { tenant: String, source: OpenError },
}

fn takeover_hint(holder: &LockHolder) -> String {
    if holder.host == host_name() {
        format!(
            "its lock is taken over as soon as no process {} runs here (stop it with `kill {}`)",
            holder.pid, holder.pid
        )
    } else {
        format!(
            "its lock is taken over {} minutes after its last heartbeat (it had one {} s ago)",
            LOCK_STALE_AFTER.as_secs() / 60,
            unix_now().saturating_sub(holder.heartbeat)
        )
    }
}

/// The live holder of `tenant`'s lock, if any (a stale lock counts as none).
pub fn live_lock_holder(
    connection: &Connection,
    tenant: &str,
) -> rusqlite::Result<Option<LockHolder>> {
    let holder = connection
        .query_row(
            "SELECT pid, host, since, heartbeat FROM tenant_locks WHERE tenant = ?1",
            params![tenant],
            |row| {
                Ok(LockHolder {
                    pid: row.get::<_, i64>(0)?.clamp(0, u32::MAX as i64) as u32,
                    host: row.get(1)?,
                    since: row.get(2)?,
                    heartbeat: row.get(3)?,
                })
            },
        )
        .optional()?;
    Ok(holder.filter(|h| !h.is_stale()))
}

/// A tenant's lock, held by this process while a sync of the tenant runs: a heartbeat
/// thread refreshes it, and it is released when dropped. A process that dies holding it
/// leaves it stale ([`LockHolder::is_stale`]), and the next run takes it over.
///
/// The thread cannot write while the run's store has its write transaction open (a delta
/// round's pages wait in it until the round's link, which can take minutes), and a lock
/// whose heartbeat stops looks stale to another host: a beat the thread could not write
/// is left due, and the store's next commit writes it ([`SqliteStore::write_under`]), in
/// the same transaction as the run's changes and only if the row is still this
/// holder's. A run whose lock was taken over therefore commits nothing more.
pub struct TenantLock {
    path: std::path::PathBuf,
    beat: Arc<LockBeat>,
    /// Dropping it stops the heartbeat thread.
    stop: Option<std::sync::mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// The lock row a heartbeat refreshes, and whether a beat is due for the store to write.
struct LockBeat {
    tenant: String,
    holder: LockHolder,
    due: AtomicBool,
}

impl LockBeat {
    /// Refresh this holder's heartbeat; the rows changed (0 once the lock is another's).
    fn write(&self, connection: &Connection) -> rusqlite::Result<usize> {
        connection
            .prepare_cached(
                "UPDATE tenant_locks SET heartbeat = ?5
                 WHERE tenant = ?1 AND pid = ?2 AND host = ?3 AND since = ?4",
            )?
            .execute(params![
                self.tenant,
                self.holder.pid,
                self.holder.host,
                self.holder.since,
                unix_now()
            ])
    }
}

/// A connection for lock work: short waits for other writers.
fn lock_connection(path: &Path, tenant: &str) -> Result<Connection, LockError> {
    let connection = open_database(path).map_err(|source| LockError::Open {
        tenant: tenant.to_string(),
        source,
    })?;
    connection
        .busy_timeout(LOCK_BUSY_TIMEOUT)
        .map_err(|source| LockError::Database {
            tenant: tenant.to_string(),
            path: path.display().to_string(),
            source,
        })?;
    Ok(connection)
}

/// Take `tenant`'s lock in the database at `path`, or say who holds it. The holder is read
/// first, without a write lock, so a second run is refused at once even while the first
/// has a write transaction open; the lock row is then written in a short transaction.
pub fn lock_tenant(path: &Path, tenant: &str) -> Result<TenantLock, LockError> {
    let connection = lock_connection(path, tenant)?;
    let failed = |source| LockError::Database {
        tenant: tenant.to_string(),
        path: path.display().to_string(),
        source,
    };
    let held = |holder| LockError::Held {
        tenant: tenant.to_string(),
        holder,
    };
    if let Some(holder) = live_lock_holder(&connection, tenant).map_err(failed)? {
        return Err(held(holder));
    }
    let holder = LockHolder::this_process();
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(failed)?;
    let taken = (|| {
        if let Some(other) = live_lock_holder(&connection, tenant)? {
            return Ok(Err(other));
        }
        connection.execute(
            "INSERT OR REPLACE INTO tenant_locks (tenant, pid, host, since, heartbeat)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                tenant,
                holder.pid,
                holder.host,
                holder.since,
                holder.heartbeat
            ],
        )?;
        Ok(Ok(()))
    })();
    match taken {
        Ok(Ok(())) => connection.execute_batch("COMMIT").map_err(failed)?,
        Ok(Err(other)) => {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(held(other));
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(failed(error));
        }
    }
    let beat = Arc::new(LockBeat {
        tenant: tenant.to_string(),
        holder,
        due: AtomicBool::new(false),
    });
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let heartbeat = std::thread::Builder::new()
        .name("m365sync-lock".into())
        .spawn({
            let (path, beat) = (path.to_path_buf(), beat.clone());
            move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(LOCK_HEARTBEAT)
                {
                    // A beat that finds the database busy is left to the store's commit.
                    let written = lock_connection(&path, &beat.tenant)
                        .ok()
                        .and_then(|c| beat.write(&c).ok());
                    if written != Some(1) {
                        beat.due.store(true, Ordering::Release);
                    }
                }
            }
        })
        .ok();
    Ok(TenantLock {
        path: path.to_path_buf(),
        beat,
        stop: Some(stop),
        heartbeat,
    })
}

impl TenantLock {
    pub fn holder(&self) -> &LockHolder {
        &self.beat.holder
    }
}

impl Drop for TenantLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        // Only this holder's row: a lock taken over meanwhile is the new holder's.
        let beat = &self.beat;
        let _ = lock_connection(&self.path, &beat.tenant).map(|c| {
            c.execute(
                "DELETE FROM tenant_locks WHERE tenant = ?1 AND pid = ?2 AND host = ?3 AND since = ?4",
                params![beat.tenant, beat.holder.pid, beat.holder.host, beat.holder.since],
            )
        });
    }
}

/// This machine's name (`uname -n`), to tell lock holders on this host from others.
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        // on success (and we stop at the first NUL or the end anyway).
        let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
        if result == 0 {
            let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
            let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether a process with this pid lives on this host.
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 sends nothing; it only checks that the process exists.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        // Without a way to ask, a holder on this host is judged by its heartbeat.
        let _ = pid;
        true
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a reset deleted: rows per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    pub deleted: Vec<(String, u64)>,
    /// The reset's entry in the sync log.
    pub run_id: i64,
}

/// Tables never emptied by a reset: the sync log (the reset is noted in it), the locks,
/// and the platform's organizations, shared by every tenant.
const KEPT_BY_RESET: &[&str] = &["runs", "tenant_locks", "platform_organizations"];

/// Delete everything the database holds for `tenant` (every table with a `tenant`
/// column: people, groups and members, subscriptions, organization, domains, mailboxes,
/// usage, checkpoints with the directory binding, the match decision), in one
/// transaction, and note the reset in the sync log (status `reset`). Refused while a sync
/// holds the tenant's lock.
pub fn reset_tenant(path: &Path, tenant: &str) -> Result<ResetOutcome, LockError> {
    let connection = lock_connection(path, tenant)?;
    let failed = |source| LockError::Database {
        tenant: tenant.to_string(),
        path: path.display().to_string(),
        source,
    };
    // Read first, without a write lock: a running sync may hold a write transaction.
    if let Some(holder) = live_lock_holder(&connection, tenant).map_err(failed)? {
        return Err(LockError::Held {
            tenant: tenant.to_string(),
            holder,
        });
    }
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(failed)?;
    let result = (|| {
        if let Some(holder) = live_lock_holder(&connection, tenant)? {
            return Ok(Err(holder));
        }
        let tables: Vec<String> = connection
            .prepare(
                "SELECT m.name FROM sqlite_master m
                 WHERE m.type = 'table'
                   AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'tenant')
                 ORDER BY m.name",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut deleted = Vec::new();
        for table in tables
            .iter()
            .filter(|t| !KEPT_BY_RESET.contains(&t.as_str()))
        {
            let n = connection.execute(
                &format!("DELETE FROM \"{table}\" WHERE tenant = ?1"),
                params![tenant],
            )?;
            deleted.push((table.clone(), n as u64));
        }
        let summary: Vec<String> = deleted
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        let note = if summary.is_empty() {
            "the store held nothing for the tenant".to_string()
        } else {
            format!(
                "deleted {}; the next sync reads the tenant in full",
                summary.join(", ")
            )
        };
        connection.execute(
            "INSERT INTO runs (tenant, started_at, mode, status, dry_run, error_kind, error)
             VALUES (?1, ?2, 'reset', 'reset', 0, 'reset', ?3)",
            params![tenant, crate::synclog::now_rfc3339(), note],
        )?;
        Ok(Ok(ResetOutcome {
            deleted,
            run_id: connection.last_insert_rowid(),
        }))
    })();
    match result {
        Ok(Ok(outcome)) => {
            connection.execute_batch("COMMIT").map_err(failed)?;
            Ok(outcome)
        }
        Ok(Err(holder)) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(LockError::Held {
                tenant: tenant.to_string(),
                holder,
            })
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(failed(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::types::{Checkpoint, SyncMode};

    fn person(id: &str, upn: &str, mail: Option<&str>) -> StoredPerson {
        StoredPerson {
            person: Person {
                object_id: id.to_string(),
                user_principal_name: upn.to_string(),
                mail: mail.map(str::to_string),
                given_name: Some("Jane".into()),
                surname: None,
                display_name: Some("Jane Doe".into()),
                department: Some("Sales".into()),
                job_title: None,
                company_name: None,
                country: None,
                usage_location: None,
                office_location: None,
                account_enabled: true,
                user_type: "Member".into(),
                licences: vec![],
                created_at: None,
                manager_id: None,
                hire_date: None,
                proxy_addresses: vec![],
                last_sign_in: None,
            },
            status: PersonStatus::Active,
            fingerprint: format!("fp-{id}"),
        }
    }

    fn upsert(stored: StoredPerson, kind: UpsertKind, previous: Option<&str>) -> Change {
        Change::UpsertPerson(PersonUpsert {
            stored,
            kind,
            changed_fields: vec![],
            previous_object_id: previous.map(str::to_string),
        })
    }

    fn batch(changes: Vec<Change>) -> Batch {
        Batch {
            changes,
            checkpoints: vec![],
            run: None,
        }
    }

    /// A batch that saves progress (a checkpoint): the store commits it at once.
    fn saved(changes: Vec<Change>) -> Batch {
        Batch {
            checkpoints: vec![Checkpoint {
                key: "users.delta-link".into(),
                value: Some("https://graph.test/v1.0/users/delta?$deltatoken=1".into()),
            }],
            ..batch(changes)
        }
    }

    fn create(id: &str) -> Change {
        upsert(
            person(id, &format!("{id}@x.com"), None),
            UpsertKind::Create,
            None,
        )
    }

    /// A run that failed signing in.
    fn failed_run() -> FailedRun {
        FailedRun {
            status: RunStatus::Failed,
            started_at: "2025-01-02T00:00:00Z".into(),
            mode: "incremental".into(),
            elapsed_ms: 5,
            dry_run: false,
            error_kind: "auth".into(),
            error: "sign-in failed".into(),
            report: None,
        }
    }

    fn ids(store: &mut SqliteStore) -> Vec<String> {
        store.list_people_ids(None, 100).unwrap()
    }

    /// People of tenant `t` as another connection (another process) sees them.
    fn committed_people(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM people WHERE tenant = 't'", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[test]
    fn batches_without_checkpoints_are_committed_with_the_next_that_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store.commit(batch(vec![create("a")])).unwrap();
        store.commit(batch(vec![create("b")])).unwrap();
        // The store reads its own pending batches; others do not see them yet.
        assert_eq!(ids(&mut store), ["a", "b"]);
        assert_eq!(committed_people(&path), 0);
        store.commit(saved(vec![create("c")])).unwrap();
        assert_eq!(committed_people(&path), 3);
        assert!(store.get_checkpoint("users.delta-link").unwrap().is_some());
    }

    #[test]
    fn a_store_dropped_after_batches_without_checkpoints_commits_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store.commit(batch(vec![create("a")])).unwrap();
        drop(store);
        assert_eq!(committed_people(&path), 1);
    }

    #[test]
    fn a_failing_batch_undoes_the_batches_since_the_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store.commit(saved(vec![create("a")])).unwrap();
        store.commit(batch(vec![create("b")])).unwrap();
        store
            .connection()
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON people WHEN NEW.object_id = 'c'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let error = store.commit(batch(vec![create("c")])).unwrap_err();
        assert!(format!("{error:?}").contains("person c"), "{error:?}");
        assert_eq!(ids(&mut store), ["a"]);
        assert_eq!(committed_people(&path), 1);
        // The store goes on: the next batches apply and commit.
        store.commit(saved(vec![create("b")])).unwrap();
        assert_eq!(committed_people(&path), 2);
    }

    #[test]
    fn a_large_run_of_batches_is_committed_every_so_many_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = SqliteStore::open(&path, "t").unwrap();
        let per_batch = 1000;
        let batches = MAX_DEFERRED_CHANGES / per_batch + 1;
        for b in 0..batches {
            let changes = (0..per_batch)
                .map(|i| create(&format!("p{b:03}-{i:04}")))
                .collect();
            store.commit(batch(changes)).unwrap();
        }
        // Committed once the limit was reached; the last batch is still pending.
        assert_eq!(
            committed_people(&path),
            (MAX_DEFERRED_CHANGES / per_batch * per_batch) as i64
        );
    }

    #[test]
    fn key_hash_is_pinned() {
        // Stored in every row's index columns: a change would break every lookup.
        assert_eq!(key_hash(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
    }

    #[test]
    fn normalise_key_equals_the_engines_key() {
        for (raw, key) in [
            ("Jane.Doe@Contoso.COM", "jane.doe@contoso.com"),
            ("  jane@contoso.com\t\n", "jane@contoso.com"),
            (
                "\u{00A0}\u{3000}\u{200B}\u{FEFF}jane@contoso.com\u{00A0}\u{2060}",
                "jane@contoso.com",
            ),
            ("JÖRG@MÜLLER.DE", "jörg@müller.de"),
            ("ΣΟΦΙΑ@EXAMPLE.GR", "σοφια@example.gr"),
            ("İ@x.tr", "i\u{307}@x.tr"),
            ("info@BÜCHER.example", "info@bücher.example"),
            ("jane@contoso.com.", "jane@contoso.com"),
            ("JANE@CONTOSO.COM.", "jane@contoso.com"),
            // One trailing dot, as the engine: the DNS root of the domain.
            ("jane@contoso.com..", "jane@contoso.com."),
            ("jane@contoso.com. ", "jane@contoso.com"),
            ("mailto:jane@contoso.com", "jane@contoso.com"),
            (" MailTo: Jane@Contoso.com ", "jane@contoso.com"),
            ("x-mailto:a@b.c", "x-mailto:a@b.c"),
            ("Jane+LMS@contoso.com", "jane+lms@contoso.com"),
            ("\"a@b\"@Example.com", "\"a@b\"@example.com"),
            (
                " Jane@Contoso.OnMicrosoft.com ",
                "jane@contoso.onmicrosoft.com",
            ),
            (
                "Alice_Contoso.com#EXT#@Fabrikam.onmicrosoft.com",
                "alice_contoso.com#ext#@fabrikam.onmicrosoft.com",
            ),
        ] {
            assert_eq!(normalise_key(raw), key, "{raw:?}");
        }
    }

    /// The people table's indexes as schema 3 had them.
    const PEOPLE_INDEXES_V3: &str = "CREATE INDEX people_mail ON people (mail_hash);
        CREATE INDEX people_upn ON people (upn_hash);";

    /// The people table and its indexes as schemas 1 and 2 had them.
    const PEOPLE_V2: &str = "CREATE TABLE people (
        tenant TEXT NOT NULL, object_id TEXT NOT NULL, user_principal_name TEXT NOT NULL,
        mail TEXT, given_name TEXT, surname TEXT, display_name TEXT, department TEXT,
        job_title TEXT, company_name TEXT, country TEXT, usage_location TEXT,
        office_location TEXT, account_enabled INTEGER NOT NULL, user_type TEXT NOT NULL,
        licences TEXT NOT NULL, created_at TEXT, manager_id TEXT, hire_date TEXT,
        proxy_addresses TEXT NOT NULL, last_sign_in TEXT, status TEXT NOT NULL,
        fingerprint TEXT NOT NULL, mail_key TEXT, upn_key TEXT NOT NULL,
        PRIMARY KEY (tenant, object_id)) WITHOUT ROWID;
        CREATE INDEX people_mail ON people (tenant, mail_key);
        CREATE INDEX people_upn ON people (tenant, upn_key);";

    /// The schema of version 1, as m365sync 0.1 created it (people, runs and the rest).
    fn version_1_database(path: &Path) {
        let connection = Connection::open(path).unwrap();
        let v1_runs = "CREATE TABLE runs (
            id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, started_at TEXT NOT NULL,
            mode TEXT NOT NULL, elapsed_ms INTEGER NOT NULL, requests INTEGER NOT NULL,
            retries INTEGER NOT NULL, dry_run INTEGER NOT NULL, report TEXT NOT NULL);
            CREATE INDEX runs_tenant ON runs (tenant, id);";
        connection
            .execute_batch(&format!(
                "BEGIN; {PEOPLE_V2} {SCHEMA} {v1_runs} PRAGMA user_version = 1; COMMIT;"
            ))
            .unwrap();
        let insert = "INSERT INTO people (tenant, object_id, user_principal_name, mail,
            account_enabled, user_type, licences, proxy_addresses, status, fingerprint, mail_key,
            upn_key) VALUES ('t', ?1, ?2, ?3, 1, 'Member', '[]', '[]', 'active', 'f', ?4, ?5)";
        // Keys as version 1 computed them: trim, every trailing dot, lower-case.
        let old = |v: &str| v.trim().trim_end_matches('.').to_lowercase();
        for (id, upn, mail) in [
            ("a", "Ann@X.com", Some("\u{200B}Ann@X.com")),
            ("b", "mailto:Bob@X.com", Some("mailto:Bob@X.com")),
            ("c", "Cy@X.com", None),
        ] {
            connection
                .execute(insert, params![id, upn, mail, mail.map(old), old(upn)])
                .unwrap();
        }
        connection
            .execute(
                "INSERT INTO runs (tenant, started_at, mode, elapsed_ms, requests, retries, dry_run, report)
                 VALUES ('t', '2025-01-01T00:00:00Z', 'full', 1200, 7, 1, 0, '{\"tenant\":\"t\"}')",
                [],
            )
            .unwrap();
    }

    #[test]
    fn version_1_database_migrates_to_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_database(&path);

        let mut store = SqliteStore::open(&path, "t").unwrap();
        let version: i64 = store
            .connection()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // The old run is kept, as a successful one.
        let runs = list_runs(store.connection(), Some("t"), 10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "ok");
        assert_eq!(
            (runs[0].requests, runs[0].retries, runs[0].elapsed_ms),
            (Some(7), Some(1), Some(1200))
        );
        assert_eq!(runs[0].report.as_ref().unwrap()["tenant"], "t");
        // Keys are the engine's now, so the engine's lookups find them.
        let found = store
            .find_people(&[
                PersonKey::Email("ann@x.com".into()),
                PersonKey::Email("bob@x.com".into()),
                PersonKey::UserPrincipalName("bob@x.com".into()),
                PersonKey::UserPrincipalName("cy@x.com".into()),
            ])
            .unwrap();
        let found: Vec<Option<&str>> = found
            .iter()
            .map(|p| p.as_ref().map(|p| p.person.object_id.as_str()))
            .collect();
        assert_eq!(found, [Some("a"), Some("b"), Some("b"), Some("c")]);
        // A failed run can be recorded now, and the index on runs is there.
        store.record_failed_run(&failed_run()).unwrap();
        let index: i64 = store
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_tenant' AND tbl_name = 'runs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
        drop(store);
        // Opening again is a no-op.
        let store = SqliteStore::open(&path, "t").unwrap();
        assert_eq!(list_runs(store.connection(), None, 10).unwrap().len(), 2);
    }

    #[test]
    fn version_2_people_become_a_rowid_table_with_their_rows_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(&format!(
                    "BEGIN; {PEOPLE_V2} {SCHEMA} {RUNS_TABLE} PRAGMA user_version = 2; COMMIT;"
                ))
                .unwrap();
            connection
                .execute(
                    "INSERT INTO people (tenant, object_id, user_principal_name, mail,
                     account_enabled, user_type, licences, proxy_addresses, status, fingerprint,
                     mail_key, upn_key) VALUES ('t', 'a', 'Ann@X.com', 'ann@x.com', 1, 'Member',
                     '[\"sku\"]', '[]', 'flagged', 'f', 'ann@x.com', 'ann@x.com')",
                    [],
                )
                .unwrap();
        }
        let mut store = SqliteStore::open(&path, "t").unwrap();
        let (version, sql): (i64, String) = store
            .connection()
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version), sql
                 FROM sqlite_master WHERE name = 'people'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(!sql.to_uppercase().contains("WITHOUT ROWID"), "{sql}");
        let found = store
            .find_people(&[
                PersonKey::ObjectId("a".into()),
                PersonKey::Email("ANN@x.com".into()),
            ])
            .unwrap();
        for f in &found {
            let f = f.as_ref().unwrap();
            assert_eq!(f.person.licences, ["sku"]);
            assert_eq!(f.status, PersonStatus::Flagged);
        }
        let indexes: i64 = store
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'people'
                 AND name IN ('people_mail', 'people_upn')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2);
    }

    /// Whether the people table has an index of this name, and the plan of a direct-reports
    /// lookup.
    fn manager_index_and_plan(store: &SqliteStore) -> (bool, String) {
        let c = store.connection();
        let found: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'people'
                 AND name = 'people_manager'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let plan: Vec<String> = c
            .prepare(
                "EXPLAIN QUERY PLAN SELECT object_id FROM people WHERE tenant = 't' AND \
                 manager_id = 'm'",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        (found == 1, plan.join("; "))
    }

    #[test]
    fn direct_reports_are_found_by_an_index_on_manager_id_in_new_and_migrated_databases() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = SqliteStore::open(&dir.path().join("new.db"), "t").unwrap();
        let (found, plan) = manager_index_and_plan(&fresh);
        assert!(found, "a new database has people_manager");
        assert!(plan.contains("people_manager"), "{plan}");

        // A schema-3 database (people with its key-hash indexes, no manager index).
        let path = dir.path().join("v3.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(&format!(
                    "BEGIN; {} {PEOPLE_INDEXES_V3} {SCHEMA} {RUNS_TABLE} \
                     PRAGMA user_version = 3; COMMIT;",
                    people_table("people")
                ))
                .unwrap();
            connection
                .execute(
                    "INSERT INTO people (tenant, object_id, user_principal_name, account_enabled,
                     user_type, licences, proxy_addresses, status, fingerprint, upn_key,
                     upn_hash, manager_id) VALUES ('t', 'a', 'a@x.com', 1, 'Member', '[]', '[]',
                     'active', 'f', 'a@x.com', 0, 'm')",
                    [],
                )
                .unwrap();
        }
        let mut store = SqliteStore::open(&path, "t").unwrap();
        let (found, plan) = manager_index_and_plan(&store);
        assert!(found, "schema 3 to 4 adds people_manager");
        assert!(plan.contains("people_manager"), "{plan}");
        let reports = store.find_direct_reports("m").unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].person.object_id, "a");
    }

    #[test]
    fn a_newer_schema_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let error = SqliteStore::open(&path, "t").err().unwrap().to_string();
        assert!(error.contains("new.db") && error.contains("99"), "{error}");
    }

    #[test]
    fn a_link_rekeys_the_stored_record_in_place() {
        let mut store = SqliteStore::in_memory("t").unwrap();
        store
            .commit(batch(vec![
                upsert(
                    person("old", "jane@x.com", Some("Jane@X.com")),
                    UpsertKind::Create,
                    None,
                ),
                upsert(person("other", "o@x.com", None), UpsertKind::Create, None),
            ]))
            .unwrap();
        let mut linked = person("new", "jane.doe@x.com", Some("jane@x.com"));
        linked.person.department = Some("Marketing".into());
        store
            .commit(Batch {
                changes: vec![upsert(linked, UpsertKind::Link, Some("old"))],
                checkpoints: vec![Checkpoint {
                    key: "users".into(),
                    value: Some("delta-1".into()),
                }],
                run: None,
            })
            .unwrap();
        assert_eq!(ids(&mut store), ["new", "other"]);
        let found = store
            .find_people(&[
                PersonKey::ObjectId("old".into()),
                PersonKey::ObjectId("new".into()),
                PersonKey::Email("jane@x.com".into()),
                PersonKey::UserPrincipalName("jane.doe@x.com".into()),
                PersonKey::UserPrincipalName("jane@x.com".into()),
            ])
            .unwrap();
        assert!(found[0].is_none());
        let new = found[1].as_ref().unwrap();
        assert_eq!(new.person.department.as_deref(), Some("Marketing"));
        assert_eq!(new.fingerprint, "fp-new");
        assert_eq!(found[2].as_ref().unwrap().person.object_id, "new");
        assert_eq!(found[3].as_ref().unwrap().person.object_id, "new");
        assert!(
            found[4].is_none(),
            "the old UPN key is gone with the re-key"
        );
        assert_eq!(
            store.get_checkpoint("users").unwrap().as_deref(),
            Some("delta-1")
        );

        // A link whose previous record is gone inserts the person.
        store
            .commit(batch(vec![upsert(
                person("fresh", "f@x.com", None),
                UpsertKind::Link,
                Some("never-stored"),
            )]))
            .unwrap();
        assert_eq!(ids(&mut store), ["fresh", "new", "other"]);

        // A link onto an id that is stored already leaves one record, the linked one.
        store
            .commit(batch(vec![upsert(
                person("other", "o2@x.com", None),
                UpsertKind::Link,
                Some("fresh"),
            )]))
            .unwrap();
        assert_eq!(ids(&mut store), ["new", "other"]);
        let other = store
            .find_people(&[PersonKey::ObjectId("other".into())])
            .unwrap();
        assert_eq!(
            other[0].as_ref().unwrap().person.user_principal_name,
            "o2@x.com"
        );
    }

    #[test]
    fn a_failing_batch_with_a_link_changes_nothing() {
        let mut store = SqliteStore::in_memory("t").unwrap();
        store
            .commit(saved(vec![upsert(
                person("old", "jane@x.com", None),
                UpsertKind::Create,
                None,
            )]))
            .unwrap();
        // The second change fails (a trigger refuses it) after the link was applied: the
        // whole batch rolls back, the record keeps its old key.
        let bad = person("b", "b@x.com", None);
        store
            .connection()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON people WHEN NEW.object_id = 'b'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let error = store
            .commit(batch(vec![
                upsert(
                    person("new", "jane@x.com", None),
                    UpsertKind::Link,
                    Some("old"),
                ),
                upsert(bad, UpsertKind::Create, None),
            ]))
            .unwrap_err();
        assert!(format!("{error:?}").contains("person b"), "{error:?}");
        assert_eq!(ids(&mut store), ["old"]);
    }

    #[test]
    fn runs_ok_and_failed_are_listed_newest_first() {
        let mut store = SqliteStore::in_memory("t").unwrap();
        let report = SyncReport {
            tenant_key: "t".into(),
            mode: SyncMode::Full,
            started_at: "2025-01-01T00:00:00Z".into(),
            elapsed_ms: 10,
            requests: 3,
            retries: 0,
            retry_wait_ms: 0,
            data_sets: vec![],
            warnings: vec![],
            conflicts: vec![],
            organization: None,
            dry_run: false,
        };
        store
            .commit(Batch {
                changes: vec![],
                checkpoints: vec![],
                run: Some(report),
            })
            .unwrap();
        let id = store.record_failed_run(&failed_run()).unwrap();
        let runs = list_runs(store.connection(), Some("t"), 10).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id, id);
        assert_eq!(runs[0].status, "failed");
        assert_eq!(runs[0].requests, None);
        assert_eq!(runs[0].error.as_deref(), Some("sign-in failed"));
        assert_eq!(runs[1].status, "ok");
        assert_eq!(runs[1].requests, Some(3));
        assert!(runs[1].report.is_some());
        assert_eq!(
            list_runs(store.connection(), Some("t"), 1).unwrap().len(),
            1
        );
        assert!(
            list_runs(store.connection(), Some("u"), 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            get_run(store.connection(), id).unwrap().unwrap().mode,
            "incremental"
        );
        assert!(get_run(store.connection(), id + 100).unwrap().is_none());
    }

    #[test]
    fn organizations_are_created_with_fresh_ids_and_imported_once() {
        let mut store = SqliteStore::in_memory("t").unwrap();
        let a = store.create_organization("  Contoso Ltd ").unwrap();
        let b = store.create_organization("Contoso Ltd").unwrap();
        assert_eq!(a.name, "Contoso Ltd");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 36);
        assert!(matches!(
            store.create_organization("  "),
            Err(StorageError::Invalid(_))
        ));
        assert_eq!(store.list_organizations().unwrap().len(), 2);

        let rows = vec![
            OrganizationRow {
                origin: "orgs.csv line 2".into(),
                id: Some("org-1".into()),
                name: "Fabrikam".into(),
            },
            OrganizationRow {
                origin: "orgs.csv line 3".into(),
                id: None,
                name: "Northwind Traders".into(),
            },
            OrganizationRow {
                origin: "orgs.csv line 4".into(),
                id: None,
                name: "Contoso Ltd".into(),
            },
        ];
        let first = import_organizations(&mut store.connection, &rows).unwrap();
        assert_eq!((first.created.len(), first.unchanged), (2, 1));
        let again = import_organizations(&mut store.connection, &rows).unwrap();
        assert_eq!((again.created.len(), again.unchanged), (0, 3));
        let renamed = import_organizations(
            &mut store.connection,
            &[OrganizationRow {
                origin: "x line 2".into(),
                id: Some("org-1".into()),
                name: "Fabrikam Inc.".into(),
            }],
        )
        .unwrap();
        assert_eq!(renamed.renamed.len(), 1);
        assert_eq!(store.list_organizations().unwrap().len(), 4);

        // A bad row names its line, and nothing of the file is imported.
        let error = import_organizations(
            &mut store.connection,
            &[
                OrganizationRow {
                    origin: "y.csv line 2".into(),
                    id: None,
                    name: "Tailspin Toys".into(),
                },
                OrganizationRow {
                    origin: "y.csv line 3".into(),
                    id: None,
                    name: " ".into(),
                },
            ],
        )
        .unwrap_err();
        assert!(format!("{error:?}").contains("y.csv line 3"), "{error:?}");
        assert_eq!(store.list_organizations().unwrap().len(), 4);
    }

    #[test]
    fn a_read_only_store_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store
            .commit(batch(vec![upsert(
                person("a", "a@x.com", None),
                UpsertKind::Create,
                None,
            )]))
            .unwrap();
        drop(store);
        let mut read_only = SqliteStore::open_read_only(&path, "t").unwrap();
        assert_eq!(ids(&mut read_only), ["a"]);
        assert!(
            read_only
                .commit(batch(vec![Change::DeletePerson("a".into())]))
                .is_err()
        );
        assert!(read_only.create_organization("X").is_err());
        assert_eq!(ids(&mut read_only), ["a"]);
        let missing = SqliteStore::open_read_only(&dir.path().join("none.db"), "t");
        assert!(missing.is_err());
    }

    /// A schema-3 database with one logged run, as m365sync made it before schema 4.
    fn version_3_database(path: &Path) {
        let v3_runs = RUNS_TABLE.replace(
            "'ok', 'failed', 'interrupted', 'refused', 'reset'",
            "'ok', 'failed'",
        );
        let connection = Connection::open(path).unwrap();
        connection
            .execute_batch(&format!(
                "BEGIN; {} {PEOPLE_INDEXES} {SCHEMA} {v3_runs} PRAGMA user_version = 3; COMMIT;",
                people_table("people")
            ))
            .unwrap();
        connection
            .execute(
                "INSERT INTO runs (tenant, started_at, mode, status, dry_run, error_kind, error)
                 VALUES ('t', '2025-01-01T00:00:00Z', 'full', 'failed', 0, 'auth', 'no')",
                [],
            )
            .unwrap();
    }

    #[test]
    fn version_3_runs_take_the_new_statuses_and_keep_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        version_3_database(&path);
        let mut store = SqliteStore::open(&path, "t").unwrap();
        let runs = list_runs(store.connection(), Some("t"), 10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].error_kind.as_deref(), Some("auth"));
        for status in [RunStatus::Interrupted, RunStatus::Refused] {
            let id = store
                .record_failed_run(&FailedRun {
                    status,
                    ..failed_run()
                })
                .unwrap();
            let run = get_run(store.connection(), id).unwrap().unwrap();
            assert_eq!(run.status, status.name());
        }
        let index: i64 = store
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_tenant'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1, "the sync log keeps its index");
        assert!(live_lock_holder(store.connection(), "t").unwrap().is_none());
    }

    #[test]
    fn a_tenant_lock_refuses_a_second_holder_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock.db");
        let first = lock_tenant(&path, "t").unwrap();
        assert_eq!(first.holder().pid, std::process::id());
        let LockError::Held { holder, .. } = lock_tenant(&path, "t").err().unwrap() else {
            panic!("a second lock of t is refused");
        };
        assert_eq!(&holder, first.holder());
        let message = LockError::Held {
            tenant: "t".into(),
            holder: holder.clone(),
        }
        .to_string();
        assert!(
            message.starts_with(&format!(
                "tenant t is being synced by another process (pid {} on {}) since {}",
                holder.pid, holder.host, holder.since
            )),
            "{message}"
        );
        // Other tenants are not held up, and a reset of t is refused meanwhile.
        drop(lock_tenant(&path, "u").unwrap());
        assert!(matches!(
            reset_tenant(&path, "t"),
            Err(LockError::Held { .. })
        ));
        drop(first);
        drop(lock_tenant(&path, "t").expect("released on drop"));
    }

    fn heartbeat_of(path: &Path, tenant: &str) -> Option<i64> {
        open_database(path)
            .unwrap()
            .query_row(
                "SELECT heartbeat FROM tenant_locks WHERE tenant = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
    }

    #[test]
    fn a_heartbeat_missed_during_the_runs_write_transaction_rides_on_its_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("beat.db");
        let lock = lock_tenant(&path, "t").unwrap();
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store.write_under(&lock);
        // The run's write transaction is open (a round's pages wait for its link) and the
        // heartbeat it shuts out grows old: another host would soon take the lock over.
        store.commit(batch(vec![create("a")])).unwrap();
        let old = unix_now() - LOCK_STALE_AFTER.as_secs() as i64 + 5;
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::from_millis(50)).unwrap();
        let busy = other.execute(
            "UPDATE tenant_locks SET heartbeat = ?1 WHERE tenant = 't'",
            params![old],
        );
        assert!(
            busy.is_err(),
            "the open transaction shuts other writers out"
        );
        // Its beat is left due, as the thread leaves it; make the row old meanwhile.
        store.flush().unwrap();
        other
            .execute(
                "UPDATE tenant_locks SET heartbeat = ?1 WHERE tenant = 't'",
                params![old],
            )
            .unwrap();
        lock.beat.due.store(true, Ordering::Release);
        store.commit(saved(vec![create("b")])).unwrap();
        let beat = heartbeat_of(&path, "t").unwrap();
        assert!(
            beat >= unix_now() - 5,
            "the commit wrote the heartbeat: {beat}"
        );
        assert!(!lock.beat.due.load(Ordering::Acquire));
    }

    #[test]
    fn a_run_whose_lock_was_taken_over_commits_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken.db");
        let lock = lock_tenant(&path, "t").unwrap();
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store.write_under(&lock);
        store.commit(saved(vec![create("a")])).unwrap();
        // Another host took the lock over (this one's heartbeat looked stale to it).
        open_database(&path)
            .unwrap()
            .execute(
                "UPDATE tenant_locks SET pid = 1, host = 'elsewhere.example', since = 'later'
                 WHERE tenant = 't'",
                [],
            )
            .unwrap();
        lock.beat.due.store(true, Ordering::Release);
        let Err(StorageError::Unavailable(message)) = store.commit(saved(vec![create("b")])) else {
            panic!("the commit is refused");
        };
        assert!(message.contains("taken over"), "{message}");
        let people = store.list_people_ids(None, 10).unwrap();
        assert_eq!(people, vec!["a".to_string()], "b is not committed");
        drop(store);
        drop(lock);
        let holder = live_lock_holder(&open_database(&path).unwrap(), "t")
            .unwrap()
            .expect("the new holder keeps its lock");
        assert_eq!(holder.host, "elsewhere.example");
    }

    #[test]
    fn a_lock_whose_holder_is_gone_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.db");
        let connection = open_database(&path).unwrap();
        // A pid no process has on this host (beyond Linux's pid_max), and a holder on
        // another host silent for longer than LOCK_STALE_AFTER.
        let stale = LOCK_STALE_AFTER.as_secs() as i64 + 60;
        connection
            .execute_batch(&format!(
                "INSERT INTO tenant_locks VALUES ('t', 2147483646, '{}', 'then', {});
                 INSERT INTO tenant_locks VALUES ('u', 1, 'elsewhere.example', 'then', {});
                 INSERT INTO tenant_locks VALUES ('v', 1, 'elsewhere.example', 'now', {});",
                host_name(),
                unix_now(),
                unix_now() - stale,
                unix_now()
            ))
            .unwrap();
        let t = lock_tenant(&path, "t").expect("a dead holder on this host");
        let u = lock_tenant(&path, "u").expect("a silent holder elsewhere");
        assert_eq!(t.holder().pid, std::process::id());
        assert_eq!(u.holder().pid, std::process::id());
        let Err(LockError::Held { holder, .. }) = lock_tenant(&path, "v") else {
            panic!("a live holder elsewhere keeps its lock");
        };
        assert_eq!(holder.host, "elsewhere.example");
    }

    #[test]
    fn a_reset_empties_the_tenants_tables_and_notes_it_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reset.db");
        let mut store = SqliteStore::open(&path, "t").unwrap();
        store.commit(saved(vec![create("a"), create("b")])).unwrap();
        store.record_failed_run(&failed_run()).unwrap();
        store.create_organization("Contoso").unwrap();
        let mut other = SqliteStore::open(&path, "u").unwrap();
        other.commit(saved(vec![create("c")])).unwrap();
        drop((store, other));

        let outcome = reset_tenant(&path, "t").unwrap();
        let deleted: std::collections::HashMap<_, _> = outcome.deleted.iter().cloned().collect();
        assert_eq!(deleted["people"], 2);
        assert!(deleted["checkpoints"] >= 1, "{deleted:?}");
        for kept in KEPT_BY_RESET {
            assert!(!deleted.contains_key(*kept), "{kept} is kept");
        }
        let connection = open_database(&path).unwrap();
        for table in deleted.keys() {
            let left: i64 = connection
                .query_row(
                    &format!("SELECT COUNT(*) FROM \"{table}\" WHERE tenant = 't'"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(left, 0, "{table}");
        }
        let runs = list_runs(&connection, Some("t"), 10).unwrap();
        assert_eq!(runs.len(), 2, "the log is kept, with the reset");
        assert_eq!(runs[0].id, outcome.run_id);
        assert_eq!(runs[0].status, "reset");
        assert!(runs[0].error.as_deref().unwrap().contains("2 people"));
        assert_eq!(list_organizations(&connection).unwrap().len(), 1);
        let u_people: i64 = connection
            .query_row("SELECT COUNT(*) FROM people WHERE tenant = 'u'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(u_people, 1, "other tenants are untouched");
    }
}
