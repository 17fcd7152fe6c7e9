//! The SQLite schema: tables, indexes, and the migrations from every earlier version, applied
//! on open (`PRAGMA user_version`); opening connections with the project's settings.

use std::path::Path;
use std::time::Duration;

use m365sync_store::StoreError;
use rusqlite::types::{ToSqlOutput, Type, ValueRef};
use rusqlite::{Connection, params};

use crate::counts::{COUNT_NAMES_TABLE, CountNames};
use crate::log::RUN_COLUMNS;

/// Schema version, in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 10;

/// The sync log's table (schema 4): one row per run, whatever its outcome (see
/// [`RunStatus`]), and per reset of a tenant.
pub(crate) const RUNS_TABLE: &str = r#"
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
pub(crate) const TENANT_LOCKS_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS tenant_locks (
    tenant TEXT NOT NULL PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since TEXT NOT NULL,
    heartbeat INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// What `m365sync serve` shares (schema 5; see `m365sync_store::queue`): the served
/// tenants and their states, the job queue (at most one queued job per tenant: a partial
/// unique index), the workers (one live at a time: see `queue.rs`), webhook delivery
/// positions, and the change feed. Times are Unix milliseconds. An event's `cursor` is its
/// rowid: SQLite has one writer at a time and a batch's transaction holds the write lock
/// from `BEGIN IMMEDIATE` to its commit, so rowid order is commit order; events are never
/// deleted (not even by a reset), so a cursor is never given twice to committed events.
pub(crate) const SERVE_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS served_tenants (
    tenant TEXT NOT NULL PRIMARY KEY,
    app TEXT NOT NULL,
    paused INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    attention TEXT,
    next_run_ms INTEGER,
    last_run_id INTEGER,
    last_run_ms INTEGER,
    last_run_ok INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    run_after_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT,
    lease_until_ms INTEGER,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    run_id INTEGER,
    error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_queued ON jobs (tenant) WHERE state = 'queued';
-- Claims read the queued and running jobs only.
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);

CREATE TABLE IF NOT EXISTS workers (
    id TEXT NOT NULL PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS webhooks (
    name TEXT NOT NULL PRIMARY KEY,
    cursor INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT,
    last_delivered_ms INTEGER,
    worker TEXT,
    lease_until_ms INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS change_events (
    cursor INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS change_events_tenant ON change_events (tenant, cursor);
"#;

/// What onboarding keeps (schema 6; see `m365sync_store::onboarding`): admin-consent
/// requests by their state until a callback takes them, and the tenants onboarding
/// registered, by directory id, their names unique. `features` is the JSON list of the
/// features' names (`m365sync_store::onboarding::stored_features`); times are Unix
/// milliseconds. Neither table has a `tenant` column: a reset of a tenant keeps them.
pub(crate) const ONBOARDING_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS consent_requests (
    state TEXT NOT NULL PRIMARY KEY,
    app TEXT NOT NULL,
    features TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS registered_tenants (
    tenant_id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    app TEXT NOT NULL,
    features TEXT NOT NULL,
    registered_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS registered_tenants_name ON registered_tenants (name);
"#;

/// Schema 7's change to a registered tenant ([`ONBOARDING_TABLES`] are schema 6's): the
/// `[[partner]]` it was added through, by name (NULL: an admin consented through a link,
/// as every tenant registered before schema 7 did).
pub(crate) const REGISTERED_PARTNER: &str =
    "ALTER TABLE registered_tenants ADD COLUMN partner TEXT;";

/// What an admin must act on (schema 7; see `m365sync_store::notices`): a tenant's notices
/// by kind and key, the kind and stage stored by their names, `raised_ms` Unix
/// milliseconds. Kept by a reset of the tenant (`lock::KEPT_BY_RESET`), as what `serve`
/// keeps of it is.
pub(crate) const NOTICES_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS notices (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    stage TEXT NOT NULL,
    ends TEXT NOT NULL,
    message TEXT NOT NULL,
    raised_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, key)
) WITHOUT ROWID;
"#;

/// The usage reports' rows (schema 8; see [`migrate_usage_7_to_8`]): a rowid table, its
/// key a unique index, and an index by report for a report's replacement. Until schema 7
/// it was a `WITHOUT ROWID` table keyed by person: rows of up to 1 KB (a workload's
/// counts), inserted in random person order into a b-tree of whole rows, left its pages
/// half empty (600 MB of which 56 % unused, for 610k rows of a 100k-user tenant) and had a
/// report's replacement read every usage row of the tenant. `counts` is a blob since
/// schema 10 ([`crate::counts`]; see [`encode_usage_counts`]).
pub(crate) const USAGE_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS usage (
    tenant TEXT NOT NULL,
    object_id TEXT NOT NULL,
    workload TEXT NOT NULL,
    period_days INTEGER NOT NULL,
    last_activity TEXT,
    counts BLOB NOT NULL,
    report_refreshed TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS usage_key ON usage (tenant, object_id, workload, period_days);
CREATE INDEX IF NOT EXISTS usage_report ON usage (tenant, workload, period_days);
"#;

/// Schema 8's index of memberships by member, for a deleted person's (the primary key
/// leads with the group).
pub(crate) const GROUP_MEMBERS_BY_MEMBER: &str =
    "CREATE INDEX IF NOT EXISTS group_members_member ON group_members (tenant, member_id);";

/// Schema 7 to 8: usage becomes [`USAGE_TABLE`], the same rows (copied in key order);
/// created, in a new database.
fn migrate_usage_7_to_8(connection: &Connection) -> rusqlite::Result<()> {
    let exists: bool = connection.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'usage'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return connection.execute_batch(USAGE_TABLE);
    }
    connection.execute_batch("ALTER TABLE usage RENAME TO usage_v7;")?;
    connection.execute_batch(USAGE_TABLE)?;
    connection.execute_batch(
        "INSERT INTO usage (tenant, object_id, workload, period_days, last_activity, counts,
                            report_refreshed)
         SELECT tenant, object_id, workload, period_days, last_activity, counts,
                report_refreshed
         FROM usage_v7 ORDER BY tenant, object_id, workload, period_days;
         DROP TABLE usage_v7;",
    )
}

/// Schema 9 to 10: the usage rows again, their JSON counts ([`m365sync_store::model::counts_json`])
/// encoded as [`crate::counts`] stores them. The table is rebuilt, not updated in place:
/// the rows shrink to a fifth, and a rebuilt table packs them. A JSON object that is not
/// one of counts fails the migration with the row named (nothing is dropped).
fn encode_usage_counts(connection: &Connection) -> rusqlite::Result<()> {
    // Indexes move with a renamed table: dropped first, so that the new table gets its own.
    connection.execute_batch(
        "DROP INDEX IF EXISTS usage_key; DROP INDEX IF EXISTS usage_report;
         ALTER TABLE usage RENAME TO usage_v9;",
    )?;
    connection.execute_batch(USAGE_TABLE)?;
    let mut names = CountNames::default();
    let mut read = connection.prepare(
        "SELECT tenant, object_id, workload, period_days, last_activity, counts, report_refreshed
         FROM usage_v9 ORDER BY rowid",
    )?;
    let mut write = connection.prepare("INSERT INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let counts = match row.get_ref(5)? {
            ValueRef::Text(text) => {
                let counts: std::collections::BTreeMap<String, u64> = serde_json::from_slice(text)
                    .map_err(|e| {
                        let (tenant, object_id, workload, period): (String, String, String, i64) =
                            match (row.get(0), row.get(1), row.get(2), row.get(3)) {
                                (Ok(t), Ok(o), Ok(w), Ok(p)) => (t, o, w, p),
                                _ => Default::default(),
                            };
                        rusqlite::Error::FromSqlConversionFailure(
                            5,
                            Type::Text,
                            format!(
                                "the usage row of tenant {tenant}, person {object_id}, \
                                 {workload} over {period} days: its counts are not a JSON \
                                 object of counts ({e})"
                            )
                            .into(),
                        )
                    })?;
                let counts: Vec<(String, u64)> = counts.into_iter().collect();
                names.encode(connection, &counts)?
            }
            ValueRef::Blob(blob) => blob.to_vec(),
            _ => {
                return Err(rusqlite::Error::InvalidColumnType(
                    5,
                    "counts".into(),
                    row.get_ref(5)?.data_type(),
                ));
            }
        };
        let column = |i| row.get_ref(i).map(ToSqlOutput::Borrowed);
        write.execute(params![
            column(0)?,
            column(1)?,
            column(2)?,
            column(3)?,
            column(4)?,
            counts,
            column(6)?,
        ])?;
    }
    drop(rows);
    connection.execute_batch("DROP TABLE usage_v9;")
}

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
/// the error are added); existing runs were all successful. People keep the keys they were
/// stored with (the host computes none): the engine writes its own when it next writes
/// the person.
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
pub(crate) fn people_table(name: &str) -> String {
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
pub(crate) const PEOPLE_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS people_mail ON people (mail_hash);
CREATE INDEX IF NOT EXISTS people_upn ON people (upn_hash);
CREATE INDEX IF NOT EXISTS people_manager ON people (tenant, manager_id);
"#;

/// Bits of a [`key_hash`] taken from the tenant's key; the rest come from the person's.
const TENANT_HASH_BITS: u32 = 16;

/// The stable hash the key indexes hold (schema 9): its top 16 bits from the tenant's key,
/// the other 48 from the person's email or UPN key (each hashed by [`mixed_hash`]), as
/// SQLite's signed integer. A tenant's entries are thereby contiguous in both
/// indexes, which every tenant of the database shares: a sync dirties a few pages of its
/// own instead of one page per person all over the index (schema 8 hashed the person's
/// key alone; a fleet of 300 tenants × 1,000 users synced into one database: 18.8 → 11.0 s
/// CPU, BENCHMARKS.md). A lookup checks the tenant and the key text too, so a collision
/// costs a row read, never a wrong answer. Stored: it must never change.
pub fn key_hash(tenant: &str, key: &str) -> i64 {
    let tenant_bits = mixed_hash(tenant) & !(u64::MAX >> TENANT_HASH_BITS);
    let key_bits = mixed_hash(key) >> TENANT_HASH_BITS;
    // The hash's 64 bits as SQLite's signed integer (a reinterpretation, nothing lost).
    (tenant_bits | key_bits).cast_signed()
}

/// 64-bit FNV-1a of the text's UTF-8, then MurmurHash3's 64-bit finalizer: FNV-1a alone
/// barely moves its top bits for a change in the last bytes ("tenant-001" and
/// "tenant-002" would share them), and the top bits are what [`key_hash`] keeps.
fn mixed_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Schema 2 to 3: people becomes a rowid table, the same rows plus their key hashes
/// (zero here: [`hash_keys`] fills them in as the migration's last step).
fn migrate_people_2_to_3(connection: &Connection) -> rusqlite::Result<()> {
    connection
        .execute_batch("DROP INDEX IF EXISTS people_mail; DROP INDEX IF EXISTS people_upn;")?;
    connection.execute_batch(&people_table("people_v3"))?;
    connection.execute_batch(&format!(
        "INSERT INTO people_v3 ({PEOPLE_V2_NAMES}, upn_hash)
         SELECT {PEOPLE_V2_NAMES}, 0 FROM people;
         DROP TABLE people;
         ALTER TABLE people_v3 RENAME TO people;"
    ))
}

/// Sets every person's `mail_hash` and `upn_hash` from the stored keys ([`key_hash`]),
/// a slice of rows at a time (a database of many tenants holds millions), with the two
/// indexes dropped meanwhile and built again at the end. It rewrites every person's row,
/// inside the migration's one transaction: a one-time cost when a database is upgraded.
fn hash_keys(connection: &Connection) -> rusqlite::Result<()> {
    const SLICE: i64 = 10_000;
    connection
        .execute_batch("DROP INDEX IF EXISTS people_mail; DROP INDEX IF EXISTS people_upn;")?;
    let mut read = connection.prepare(
        "SELECT rowid, tenant, mail_key, upn_key FROM people WHERE rowid > ?1
         ORDER BY rowid LIMIT ?2",
    )?;
    let mut update =
        connection.prepare("UPDATE people SET mail_hash = ?2, upn_hash = ?3 WHERE rowid = ?1")?;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String, Option<String>, String)> = read
            .query_map(params![after, SLICE], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.0;
        for (rowid, tenant, mail_key, upn_key) in &rows {
            update.execute(params![
                rowid,
                mail_key.as_deref().map(|key| key_hash(tenant, key)),
                key_hash(tenant, upn_key)
            ])?;
        }
    }
    connection.execute_batch(PEOPLE_INDEXES)
}

/// Every other table.
pub(crate) const SCHEMA: &str = r#"
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

impl From<OpenError> for StoreError {
    fn from(error: OpenError) -> StoreError {
        match error {
            OpenError::Empty { path } => StoreError::Empty(format!("database {path}")),
            other => StoreError::Open(other.to_string()),
        }
    }
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
    // through pread() again and again (perf: kernel copies dominated). A 16 MB cache
    // (64 MB measured no faster, and doubled the peak RSS of a 100k-user first sync). Not
    // memory-mapped: every page a mapping touched counted in the process's RSS, so a
    // sync's peak grew with the database (116 MB against 62 MB for a 100k-user first
    // sync, 95 against 35 for its 1 % incremental, with the same time; BENCHMARKS.md).
    connection
        .execute_batch("PRAGMA cache_size = -16384; PRAGMA mmap_size = 0;")
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
        // Schema 5: what `serve` shares, and the change feed (new tables only).
        connection.execute_batch(SERVE_TABLES)?;
        // Schema 6: what onboarding keeps (new tables only).
        connection.execute_batch(ONBOARDING_TABLES)?;
        // Schema 7: a registered tenant's partner (every database below 7, a new one too,
        // has schema 6's table by now), and the notices (a new table).
        if version < 7 {
            connection.execute_batch(REGISTERED_PARTNER)?;
        }
        connection.execute_batch(NOTICES_TABLE)?;
        // Schema 8: usage rebuilt as a rowid table, and memberships indexed by member.
        if version < 8 {
            migrate_usage_7_to_8(connection)?;
        }
        connection.execute_batch(GROUP_MEMBERS_BY_MEMBER)?;
        // Schema 9: the key hashes lead with the tenant's bits (schemas 3 to 8 hashed the
        // person's key alone; the rows of schemas 1 and 2 have none yet). Building people's
        // indexes again here also gives schemas 1 to 3 schema 4's index for direct reports.
        if (1..9).contains(&version) {
            hash_keys(connection)?;
        }
        // Schema 10: usage counts as (name id, value) varints, the names in a table.
        connection.execute_batch(COUNT_NAMES_TABLE)?;
        if (1..10).contains(&version) {
            encode_usage_counts(connection)?;
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
