//! SQLite storage (the embedded default): WAL, one transaction per batch, schema created
//! on first use. One database holds many tenants; every row carries its tenant's key and a
//! `SqliteStore` only ever touches the rows of the tenant it was opened for.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::capabilities::storage::TenantStore;
use crate::report;
use crate::runtime::bindings::storage::StorageError;
use crate::runtime::bindings::types::{
    Batch, Change, MatchDecision, Person, PersonKey, PersonStatus, PlatformOrganization,
    ReviewAction, StoredPerson, SyncReport,
};

/// Schema version, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS people (
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
    upn_key TEXT NOT NULL,
    PRIMARY KEY (tenant, object_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS people_mail ON people (tenant, mail_key);
CREATE INDEX IF NOT EXISTS people_upn ON people (tenant, upn_key);

CREATE TABLE IF NOT EXISTS checkpoints (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    started_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    elapsed_ms INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    dry_run INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_tenant ON runs (tenant, id);

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
}

/// A tenant's rows in a SQLite database.
pub struct SqliteStore {
    connection: Connection,
    tenant: String,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, scoped to `tenant`.
    pub fn open(path: &Path, tenant: &str) -> Result<SqliteStore, OpenError> {
        let connection = open_database(path)?;
        Ok(SqliteStore {
            connection,
            tenant: tenant.to_string(),
        })
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

fn apply(transaction: &Transaction<'_>, tenant: &str, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::UpsertPerson(stored) => upsert_person(transaction, tenant, stored),
        Change::DeletePerson(object_id) => transaction
            .prepare_cached("DELETE FROM people WHERE tenant = ?1 AND object_id = ?2")?
            .execute(params![tenant, object_id])
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

fn record_run(
    transaction: &Transaction<'_>,
    tenant: &str,
    run: &SyncReport,
) -> rusqlite::Result<()> {
    transaction
            .prepare_cached(
                "INSERT INTO runs (tenant, started_at, mode, elapsed_ms, requests, retries, dry_run, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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

/// Open a database with the project's settings and schema.
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
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(open)?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            path: shown,
            found: version,
        });
    }
    if version < SCHEMA_VERSION {
        connection
            .execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(open)?;
    }
    Ok(connection)
}

fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_string())
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The normalised form people are looked up by: trimmed, case-folded.
pub fn normalise_key(value: &str) -> String {
    value.trim().trim_end_matches('.').to_lowercase()
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
    transaction: &Transaction<'_>,
    tenant: &str,
    stored: &StoredPerson,
) -> rusqlite::Result<()> {
    let p = &stored.person;
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO people VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
             ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
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
            p.mail.as_deref().map(normalise_key),
            normalise_key(&p.user_principal_name),
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
        // INDEXED BY: without statistics SQLite prefers scanning the tenant's primary-key
        // range of this WITHOUT ROWID table over the secondary index, which made every
        // lookup by email or UPN a scan of the whole tenant.
        let by_mail = format!(
            "SELECT {PERSON_COLUMNS} FROM people INDEXED BY people_mail
             WHERE tenant = ?1 AND mail_key = ?2 LIMIT 1"
        );
        let by_upn = format!(
            "SELECT {PERSON_COLUMNS} FROM people INDEXED BY people_upn
             WHERE tenant = ?1 AND upn_key = ?2 LIMIT 1"
        );
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let (sql, value) = match key {
                PersonKey::ObjectId(id) => (&by_id, id.clone()),
                PersonKey::Email(mail) => (&by_mail, normalise_key(mail)),
                PersonKey::UserPrincipalName(upn) => (&by_upn, normalise_key(upn)),
            };
            let person = self
                .connection
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_row(params![self.tenant, value], person_from_row)
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

    fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        let tenant = self.tenant.clone();
        let transaction = self
            .connection
            .transaction()
            .map_err(|e| unavailable("starting a transaction", e))?;
        for change in &batch.changes {
            apply(&transaction, &tenant, change).map_err(|e| {
                StorageError::Invalid(format!("applying {}: {e}", report::change_name(change)))
            })?;
        }
        for checkpoint in &batch.checkpoints {
            let result = match &checkpoint.value {
                Some(value) => transaction
                    .prepare_cached("INSERT OR REPLACE INTO checkpoints VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(params![tenant, checkpoint.key, value])),
                None => transaction
                    .prepare_cached("DELETE FROM checkpoints WHERE tenant = ?1 AND key = ?2")
                    .and_then(|mut s| s.execute(params![tenant, checkpoint.key])),
            };
            result.map_err(|e| unavailable("writing checkpoint", e))?;
        }
        if let Some(run) = &batch.run {
            record_run(&transaction, &tenant, run)
                .map_err(|e| unavailable("recording the run", e))?;
        }
        transaction
            .commit()
            .map_err(|e| unavailable("committing", e))
    }

    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        self.connection
            .prepare_cached("SELECT id, name FROM platform_organizations ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |row| {
                    Ok(PlatformOrganization {
                        id: row.get(0)?,
                        name: row.get(1)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| unavailable("listing organizations", e))
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
