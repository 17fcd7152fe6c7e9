//! One tenant's rows for the engine: the `TenantStore` of SQLite (deferred commits, links
//! re-keyed in place, lookups by the engine's keys).

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use m365sync_store::TenantStore;
use m365sync_store::feed::events_of;
use m365sync_store::log_entry::RunReport;
use m365sync_store::model::{
    action_from, action_parts, change_error, json_list, mailbox_counts, parse_list,
    refuse_if_read_only, status_from, stored_elapsed_ms,
};
use m365sync_store::policy::Deferred;
use m365sync_wit::StorageError;
use m365sync_wit::names::WitName;
use m365sync_wit::types::{
    Batch, Change, MatchDecision, Person, PersonKey, PersonUpsert, PlatformOrganization,
    ReportScope, StoredPerson, SyncReport, UpsertKind,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::counts::CountNames;
use crate::gate::WriteGate;
use crate::lock::{LockBeat, TenantLock};
use crate::schema::key_hash;

/// A tenant's rows in a SQLite database.
///
/// Batches are applied in a write transaction that stays open across batches and is
/// committed as the shared deferral policy says ([`Deferred`]: with the first batch that
/// carries checkpoints or the run's report, or after so many changes), or when the store
/// is finished or dropped. The engine saves its progress (delta links) only in
/// checkpoints, and a batch without any is one it redoes from the last saved checkpoint
/// anyway (the storage interface allows this, see `wit/engine.wit`): batches stay atomic
/// and in order, and a failing batch, or a crash of the process, undoes the batches since
/// the last checkpoint with it. One commit per delta round instead of one per page: a
/// 100k-user first sync writes each index page to the WAL a few times, not once per page
/// of users. (Savepoints per batch would keep earlier batches on a failure, but SQLite
/// then copies every page a batch first touches into its statement journal: eight times
/// the writes, measured.)
pub struct SqliteTenant {
    pub(crate) connection: Connection,
    tenant: String,
    /// Whether a write transaction is open, and what it holds.
    open: Option<Deferred>,
    /// The database's gate ([`crate::gate`]), held from `BEGIN IMMEDIATE` to the commit or
    /// rollback while a transaction is open, and around each write of its own.
    gate: WriteGate,
    writing: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The tenant lock this store's writes are made under (taken by a sync's open).
    lock: Option<TenantLock>,
    /// Opened read-only: SQLite itself refuses every write.
    read_only: bool,
    /// The ids of usage count names this store has used.
    count_names: CountNames,
}

impl SqliteTenant {
    pub(crate) fn new(
        connection: Connection,
        tenant: &str,
        lock: Option<TenantLock>,
        gate: WriteGate,
        read_only: bool,
    ) -> SqliteTenant {
        SqliteTenant {
            connection,
            tenant: tenant.to_string(),
            open: None,
            gate,
            writing: None,
            lock,
            read_only,
            count_names: CountNames::default(),
        }
    }

    fn refuse_if_read_only(&self, what: &str) -> Result<(), StorageError> {
        refuse_if_read_only(self.read_only, what, &self.tenant)
    }

    /// Each key's person, one lookup each (see `find_people`).
    fn find_each(&self, keys: &[PersonKey]) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        let (by_id, by_mail, by_upn) = (&*FIND_BY_ID, &*FIND_BY_MAIL, &*FIND_BY_UPN);
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            // The statement, the id or the engine's key, and the key's hash.
            let by_key = |sql, key| (sql, key, Some(key_hash(&self.tenant, key)));
            let (sql, value, hash): (&String, &str, _) = match key {
                PersonKey::ObjectId(id) => (by_id, id, None),
                PersonKey::Email(text) => by_key(by_mail, text),
                PersonKey::UserPrincipalName(text) => by_key(by_upn, text),
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

    /// Commits the batches applied since the last commit. A failed commit rolls them back.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.open.take().is_none() {
            return Ok(());
        }
        let committed = match self.beat_in_transaction() {
            Err(error) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                Err(error)
            }
            Ok(()) => self.connection.execute_batch("COMMIT").map_err(|e| {
                let _ = self.connection.execute_batch("ROLLBACK");
                unavailable("committing", e)
            }),
        };
        match committed {
            Ok(()) => self.count_names.committed(),
            Err(_) => self.count_names.rolled_back(),
        }
        self.writing = None;
        committed
    }

    /// The heartbeat a commit carries when one is due (an atomic load otherwise): the
    /// lock's own thread cannot write while this store's write transaction is open.
    fn beat_in_transaction(&self) -> Result<(), StorageError> {
        let Some(beat) = self.lock.as_ref().map(TenantLock::beat) else {
            return Ok(());
        };
        if !beat.due.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        write_beat(beat, &self.connection)
    }
}

fn write_beat(beat: &Arc<LockBeat>, connection: &Connection) -> Result<(), StorageError> {
    match beat.write(connection) {
        Ok(1) => Ok(()),
        Ok(_) => Err(StorageError::Unavailable(format!(
            "the lock of tenant {} was taken over by another process: this run's \
             changes since its last checkpoint are not committed",
            beat.tenant
        ))),
        Err(e) => Err(unavailable("refreshing the tenant's lock", e)),
    }
}

/// Why a change could not be applied: the store's value rule refused it, or SQLite failed.
enum ApplyError {
    Refused(StorageError),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(error: rusqlite::Error) -> Self {
        ApplyError::Sql(error)
    }
}

impl From<StorageError> for ApplyError {
    fn from(error: StorageError) -> Self {
        ApplyError::Refused(error)
    }
}

impl ApplyError {
    fn into_storage_error(self) -> StorageError {
        match self {
            ApplyError::Refused(error) => error,
            ApplyError::Sql(error) => sql_error(error),
        }
    }
}

/// A SQLite failure as the storage interface names it: the data refused (a constraint,
/// a type, a size), or the store failing (I/O, busy, full).
fn sql_error(error: rusqlite::Error) -> StorageError {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
    match error.sqlite_error_code() {
        Some(ConstraintViolation | TooBig | TypeMismatch) => {
            StorageError::Invalid(error.to_string())
        }
        _ => StorageError::Unavailable(error.to_string()),
    }
}

/// What deleting a person deletes: everything stored about them, then them.
pub(crate) const PERSON_DELETES: [&str; 4] = [
    "DELETE FROM mailboxes WHERE tenant = ?1 AND object_id = ?2",
    "DELETE FROM usage WHERE tenant = ?1 AND object_id = ?2",
    "DELETE FROM group_members WHERE tenant = ?1 AND member_id = ?2",
    "DELETE FROM people WHERE tenant = ?1 AND object_id = ?2",
];

/// What replacing a report deletes: the mailbox report's rows, and one usage report's
/// (a workload over a period).
pub(crate) const REPORT_DELETES: [&str; 2] = [
    "DELETE FROM mailboxes WHERE tenant = ?1",
    "DELETE FROM usage WHERE tenant = ?1 AND workload = ?2 AND period_days = ?3",
];

/// Applies one change in the open transaction.
fn apply(
    transaction: &Connection,
    tenant: &str,
    count_names: &mut CountNames,
    change: &Change,
) -> Result<(), ApplyError> {
    let written: rusqlite::Result<()> = match change {
        Change::UpsertPerson(upsert) => upsert_person(transaction, tenant, upsert),
        // A deleted person takes everything stored about them along.
        Change::DeletePerson(object_id) => {
            for sql in PERSON_DELETES {
                transaction
                    .prepare_cached(sql)?
                    .execute(params![tenant, object_id])?;
            }
            Ok(())
        }
        Change::ReplaceReport(ReportScope::Mailboxes) => transaction
            .prepare_cached(REPORT_DELETES[0])?
            .execute(params![tenant])
            .map(drop),
        Change::ReplaceReport(ReportScope::Usage(scope)) => transaction
            .prepare_cached(REPORT_DELETES[1])?
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
        Change::UpsertMailbox(m) => {
            // Refused, not wrapped, when a count is more than the store holds.
            let (storage_used_bytes, item_count) = mailbox_counts(m)?;
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO mailboxes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    tenant,
                    m.object_id,
                    storage_used_bytes,
                    item_count,
                    m.quota_status,
                    m.last_activity,
                    m.report_refreshed,
                ])
                .map(drop)
        }
        Change::UpsertUsage(u) => {
            let counts = count_names.encode(transaction, &u.counts)?;
            transaction
                .prepare_cached("INSERT OR REPLACE INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![
                    tenant,
                    u.object_id,
                    u.workload,
                    u.period_days,
                    u.last_activity,
                    counts,
                    u.report_refreshed,
                ])
                .map(drop)
        }
    };
    Ok(written?)
}

impl Drop for SqliteTenant {
    /// The batches the engine committed land even when the run ends without a final one
    /// (it failed, or was stopped); then the lock is released.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Applies one batch's changes, its events in the change feed, checkpoints and run record.
fn apply_batch(
    connection: &Connection,
    tenant: &str,
    count_names: &mut CountNames,
    batch: &Batch,
) -> Result<(), StorageError> {
    for change in &batch.changes {
        apply(connection, tenant, count_names, change)
            .map_err(|e| change_error(change, e.into_storage_error()))?;
    }
    // The batch's events, in its transaction: committed exactly when its changes are.
    crate::feed::insert_events(connection, tenant, &events_of(batch))
        .map_err(|e| unavailable("writing the change feed", e))?;
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
        record_run(connection, tenant, run)?;
    }
    Ok(())
}

/// Log the run the batch ends (status `ok`), in the batch's transaction.
fn record_run(
    transaction: &Connection,
    tenant: &str,
    run: &SyncReport,
) -> Result<(), StorageError> {
    let elapsed_ms = stored_elapsed_ms(run.elapsed_ms)?;
    transaction
        .prepare_cached(
            "INSERT INTO runs (tenant, started_at, mode, status, elapsed_ms, requests, retries,
                                   dry_run, error_kind, error, report)
                 VALUES (?1, ?2, ?3, 'ok', ?4, ?5, ?6, ?7, NULL, NULL, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                run.started_at,
                run.mode.name(),
                elapsed_ms,
                run.requests,
                run.retries,
                run.dry_run,
                RunReport::from(run).to_stored(),
            ])
        })
        .map(drop)
        .map_err(|e| unavailable("recording the run", e))
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
    write_person(
        transaction,
        tenant,
        upsert.kind,
        &upsert.stored,
        upsert.email_key.as_deref(),
        &upsert.upn_key,
    )
}

/// Insert the person, or update every column of the row stored under its object id.
/// The keys are the engine's (`person-upsert.email-key`, `upn-key`), stored as given.
///
/// An update sets the indexed columns (`manager_id` and the key hashes) in a statement of
/// their own, only where one differs: SQLite rewrites the index entries of every column an
/// UPDATE sets, changed or not, and so an update of a person's title dirtied a page in each
/// of three indexes besides the row's (1,000 updated people: 2,095 pages written to the
/// WAL against 883). A create sets them all at once (the row is new).
fn write_person(
    transaction: &Connection,
    tenant: &str,
    kind: UpsertKind,
    stored: &StoredPerson,
    mail_key: Option<&str>,
    upn_key: &str,
) -> rusqlite::Result<()> {
    let p = &stored.person;
    let mail_hash = mail_key.map(|key| key_hash(tenant, key));
    let upn_hash = key_hash(tenant, upn_key);
    let create = matches!(kind, UpsertKind::Create);
    let statement = if create {
        CREATE_PERSON.as_str()
    } else {
        UPSERT_PERSON
    };
    transaction.prepare_cached(statement)?.execute(params![
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
        stored.status.name(),
        stored.fingerprint,
        mail_key,
        upn_key,
        mail_hash,
        upn_hash,
    ])?;
    if !create {
        transaction
            .prepare_cached(
                "UPDATE people SET manager_id = ?3, mail_hash = ?4, upn_hash = ?5
                 WHERE tenant = ?1 AND object_id = ?2
                   AND (manager_id IS NOT ?3 OR mail_hash IS NOT ?4 OR upn_hash IS NOT ?5)",
            )?
            .execute(params![
                tenant,
                p.object_id,
                p.manager_id,
                mail_hash,
                upn_hash
            ])?;
    }
    Ok(())
}

/// A person's row, inserted (all 27 columns, in order) or, under an object id already
/// stored, updated in its columns that no index holds (an update's upsert: the indexed
/// columns are [`write_person`]'s second statement's).
const UPSERT_PERSON: &str =
    "INSERT INTO people VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
     ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
     ON CONFLICT (tenant, object_id) DO UPDATE SET
       user_principal_name = excluded.user_principal_name, mail = excluded.mail,
       given_name = excluded.given_name, surname = excluded.surname,
       display_name = excluded.display_name, department = excluded.department,
       job_title = excluded.job_title, company_name = excluded.company_name,
       country = excluded.country, usage_location = excluded.usage_location,
       office_location = excluded.office_location,
       account_enabled = excluded.account_enabled, user_type = excluded.user_type,
       licences = excluded.licences, created_at = excluded.created_at,
       hire_date = excluded.hire_date, proxy_addresses = excluded.proxy_addresses,
       last_sign_in = excluded.last_sign_in, status = excluded.status,
       fingerprint = excluded.fingerprint, mail_key = excluded.mail_key,
       upn_key = excluded.upn_key";

/// A create's upsert (a row already under the id, which the engine would not create, is
/// overwritten whole): the indexed columns too.
static CREATE_PERSON: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{UPSERT_PERSON}, manager_id = excluded.manager_id, mail_hash = excluded.mail_hash,
         upn_hash = excluded.upn_hash"
    )
});

/// Where a manager's direct reports are found, in object id order. The order by object id
/// alone would lead SQLite's planner (no statistics) to walk the whole tenant by its
/// primary key and fetch every row to test `manager_id`, sparing a sort of a few rows: at
/// 100k people, 16 ms a lookup, 17 s for a 1 % incremental sync. `INDEXED BY` holds it
/// to the manager index (a missing index is then an error, not a slow scan).
pub(crate) const DIRECT_REPORTS: &str = "FROM people INDEXED BY people_manager
     WHERE tenant = ?1 AND manager_id = ?2 ORDER BY object_id";

/// A person by object id.
static FIND_BY_ID: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {PERSON_COLUMNS} FROM people WHERE tenant = ?1 AND object_id = ?2")
});

// INDEXED BY: without statistics SQLite may prefer scanning the tenant's range of the
// primary key over the hash index, a scan of the whole tenant per lookup. Several people
// may share a key: the first by object id answers (on every back end; the few rows of one
// hash are sorted, not the tenant).

/// A person by the engine's email key (and its hash).
static FIND_BY_MAIL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {PERSON_COLUMNS} FROM people INDEXED BY people_mail
         WHERE mail_hash = ?3 AND tenant = ?1 AND mail_key = ?2 ORDER BY object_id LIMIT 1"
    )
});

/// A person by the engine's user principal name key (and its hash).
static FIND_BY_UPN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {PERSON_COLUMNS} FROM people INDEXED BY people_upn
         WHERE upn_hash = ?3 AND tenant = ?1 AND upn_key = ?2 ORDER BY object_id LIMIT 1"
    )
});

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

pub(crate) fn unavailable(what: &str, error: rusqlite::Error) -> StorageError {
    StorageError::Unavailable(format!("{what}: {error}"))
}

#[async_trait]
impl TenantStore for SqliteTenant {
    async fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        self.connection
            .prepare_cached("SELECT value FROM checkpoints WHERE tenant = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.tenant, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| unavailable("reading checkpoint", e))
    }

    async fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        // Outside this store's write transaction the keys are read in one read transaction
        // of their own: else each lookup is one, locking and unlocking the WAL index
        // (3,251 `fcntl` calls in a 1 % incremental sync of 100k people).
        let snapshot = keys.len() > 1 && self.connection.is_autocommit();
        if snapshot {
            self.connection
                .execute_batch("BEGIN")
                .map_err(|e| unavailable("looking people up", e))?;
        }
        let found = self.find_each(keys);
        if snapshot {
            // Nothing was written: ending a read transaction cannot lose anything.
            let _ = self.connection.execute_batch("COMMIT");
        }
        found
    }

    async fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        // Two statements, not `?2 IS NULL OR object_id > ?2`: SQLite would not seek the
        // primary key past a cursor it cannot see at prepare time, and scan instead.
        let listed = match after {
            None => self
                .connection
                .prepare_cached(
                    "SELECT object_id FROM people WHERE tenant = ?1 ORDER BY object_id LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![self.tenant, limit], |row| row.get(0))?
                        .collect()
                }),
            Some(after) => self
                .connection
                .prepare_cached(
                    "SELECT object_id FROM people WHERE tenant = ?1 AND object_id > ?2
                     ORDER BY object_id LIMIT ?3",
                )
                .and_then(|mut s| {
                    s.query_map(params![self.tenant, after, limit], |row| row.get(0))?
                        .collect()
                }),
        };
        listed.map_err(|e| unavailable("listing people", e))
    }

    async fn find_direct_reports(
        &mut self,
        manager_id: &str,
    ) -> Result<Vec<StoredPerson>, StorageError> {
        let sql = format!("SELECT {PERSON_COLUMNS} {DIRECT_REPORTS}");
        self.connection
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params![self.tenant, manager_id], person_from_row)?
                    .collect()
            })
            .map_err(|e| unavailable("looking up direct reports", e))
    }

    async fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        self.refuse_if_read_only("committing a batch")?;
        if self.open.is_none() {
            let writing = self.gate.lock_owned().await;
            self.connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| unavailable("starting a transaction", e))?;
            self.writing = Some(writing);
            self.open = Some(Deferred::default());
        }
        if let Err(error) = apply_batch(
            &self.connection,
            &self.tenant,
            &mut self.count_names,
            &batch,
        ) {
            // Everything since the last checkpoint goes: the engine redoes it from there.
            self.open = None;
            let _ = self.connection.execute_batch("ROLLBACK");
            self.count_names.rolled_back();
            self.writing = None;
            return Err(error);
        }
        let due = self.open.as_mut().is_some_and(|d| d.commit_after(&batch));
        // Deferring holds the file's only write transaction across the engine's next
        // request: while another writer of this process waits (another tenant of the
        // database), commit now and let it in.
        if due || self.gate.is_awaited() {
            self.flush()?;
        }
        Ok(())
    }

    async fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        crate::organizations::list_organizations(&self.connection)
            .map_err(|e| unavailable("listing organizations", e))
    }

    async fn create_organization(
        &mut self,
        name: &str,
    ) -> Result<PlatformOrganization, StorageError> {
        self.refuse_if_read_only("creating an organization")?;
        // Committed on its own, not with the engine's pending batches.
        self.flush()?;
        let _writing = self.gate.lock_owned().await;
        crate::organizations::create_organization(&self.connection, name, None)
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
        self.connection
            .prepare_cached(
                "SELECT action, organization_id, decided_at FROM match_decisions WHERE tenant = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant_key], |row| {
                    Ok(MatchDecision {
                        tenant_key: tenant_key.to_string(),
                        action: action_from(&row.get::<_, String>(0)?, row.get(1)?),
                        decided_at: row.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(|e| unavailable("reading the review decision", e))
    }

    async fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError> {
        if decision.tenant_key != self.tenant {
            return Err(StorageError::Invalid(format!(
                "a decision for tenant {:?} cannot be stored by tenant {:?}",
                decision.tenant_key, self.tenant
            )));
        }
        self.refuse_if_read_only("storing the review decision")?;
        self.flush()?;
        let _writing = self.gate.lock_owned().await;
        let (action, organization) = action_parts(&decision.action);
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

    async fn finish(&mut self) -> Result<(), StorageError> {
        let flushed = self.flush();
        // Released now rather than when the store is dropped.
        self.lock = None;
        flushed
    }
}
