//! One tenant's rows for the engine: the `TenantStore` of PostgreSQL (deferred commits on
//! one connection, bulk statements sent in one round trip, lookups by the engine's keys).

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use m365sync_store::TenantStore;
use m365sync_store::feed::{NewEvent, events_of};
use m365sync_store::model::{
    action_from, action_parts, parse_list, refuse_if_read_only, status_from,
};
use m365sync_store::policy::Deferred;
use m365sync_wit::StorageError;
use m365sync_wit::types::{
    Batch, MatchDecision, Person, PersonKey, PlatformOrganization, StoredPerson,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::batch::Statement;
use crate::bulk::PEOPLE_COLUMNS;
use crate::error::{no_connection, refused, unavailable};
use crate::lock::{CHECK_SQL, TenantLock, taken_over};
use crate::pipeline::{self, Step};

/// A tenant's rows in a PostgreSQL store.
///
/// Batches are applied in a transaction that stays open across batches on the store's own
/// connection, and committed as the shared deferral policy says ([`Deferred`]: with the
/// first batch that carries checkpoints or the run's report, or after so many changes), or
/// by `finish`. The engine saves its progress only in checkpoints and redoes a batch
/// without any from the last one (the storage interface allows this, see
/// `wit/engine.wit`): batches stay atomic and in order, and a failing batch undoes the
/// batches since the last checkpoint with it. One commit per delta round instead of one per
/// page, and each batch is sent as a few bulk statements in one round trip.
///
/// A store dropped with batches still open rolls them back (its connection is closed, not
/// handed back to the pool mid-transaction): whether a dropped store's last batches land
/// would otherwise depend on a background task racing the next reader. The contract allows
/// either; `finish` commits them.
///
/// The batches' events for the change feed wait here, with the open transaction, and are
/// inserted by its commit (see `feed.rs`: cursors must follow commit order); a rollback
/// drops them with the batches.
pub struct PostgresTenant {
    conn: Conn,
    tenant: String,
    /// Whether a transaction is open on the connection, and what it holds.
    open: Option<Pending>,
    /// The tenant lock this store's writes are made under (taken by a sync's open).
    lock: Option<TenantLock>,
    /// Opened read-only: every write is refused.
    read_only: bool,
    /// Requests this store waited on the server for (a pipeline counts once), for tests
    /// that bound the round trips of a sync.
    round_trips: u64,
}

/// What the open transaction holds: how many changes (for the deferral policy), and the
/// events of its batches, for the feed at its commit.
#[derive(Default)]
struct Pending {
    deferred: Deferred,
    events: Vec<NewEvent>,
}

/// The store's connection, taken from the pool at first use and kept (a transaction lives
/// on one connection).
struct Conn {
    pool: Pool,
    /// The store, for messages.
    place: String,
    object: Option<Object>,
    /// Set while a call uses the connection. Still set when the next call starts, the
    /// last call was interrupted (its future dropped mid-request): the connection's state is
    /// unknown, so it is closed rather than reused.
    busy: bool,
}

impl Conn {
    /// The connection, for one call (`done` ends it). A connection found broken, or left
    /// by an interrupted call, is closed; if a transaction was open on it (`open`), its
    /// batches are gone and the call fails saying so.
    async fn get<T>(&mut self, open: &mut Option<T>) -> Result<&Object, StorageError> {
        let interrupted = std::mem::take(&mut self.busy);
        let broken = self.object.as_ref().is_some_and(|o| o.is_closed());
        if interrupted || broken {
            self.discard();
            if open.take().is_some() {
                let why = if interrupted {
                    "an earlier call of this store was interrupted".to_string()
                } else {
                    format!("the connection to {} was lost", self.place)
                };
                return Err(StorageError::Unavailable(format!(
                    "{why}: the batches since the last checkpoint were not committed"
                )));
            }
        }
        if self.object.is_none() {
            let object =
                self.pool.get().await.map_err(|e| {
                    no_connection("opening the tenant's connection", &self.place, e)
                })?;
            self.object = Some(object);
        }
        self.busy = true;
        self.object
            .as_ref()
            .ok_or_else(|| StorageError::Unavailable(format!("no connection to {}", self.place)))
    }

    /// The call ended with the connection in a known state.
    fn done(&mut self) {
        self.busy = false;
    }

    /// Close the connection (the server rolls back what it had open) instead of handing
    /// it back to the pool.
    fn discard(&mut self) {
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
        }
    }
}

impl PostgresTenant {
    pub(crate) fn new(
        pool: Pool,
        place: &str,
        tenant: &str,
        lock: Option<TenantLock>,
        read_only: bool,
    ) -> PostgresTenant {
        PostgresTenant {
            conn: Conn {
                pool,
                place: place.to_string(),
                object: None,
                busy: false,
            },
            tenant: tenant.to_string(),
            open: None,
            lock,
            read_only,
            round_trips: 0,
        }
    }

    /// Requests this store waited on the server for so far.
    #[cfg(test)]
    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips
    }

    fn refuse_if_read_only(&self, what: &str) -> Result<(), StorageError> {
        refuse_if_read_only(self.read_only, what, &self.tenant)
    }

    /// The check of the lock a commit makes in its transaction, if this store holds one.
    fn lock_check(&self) -> Option<Statement> {
        let lock = self.lock.as_ref()?;
        Some(Statement {
            sql: CHECK_SQL,
            params: vec![
                Box::new(lock.tenant().to_string()),
                Box::new(lock.token().to_string()),
            ],
            what: format!("checking the lock of tenant {}", self.tenant),
        })
    }

    /// Roll the open transaction back after a failure; the connection is closed if even
    /// that fails.
    async fn roll_back(&mut self) {
        if self.open.take().is_none() {
            return;
        }
        let Ok(client) = self.conn.get(&mut None::<Pending>).await else {
            return;
        };
        if client.batch_execute("ROLLBACK").await.is_ok() {
            self.conn.done();
        }
    }

    /// Commit the batches applied since the last commit, if the lock is still this
    /// store's. A failed commit rolls them back.
    pub async fn flush(&mut self) -> Result<(), StorageError> {
        if self.open.is_none() {
            return Ok(());
        }
        let check: Vec<Statement> = self.lock_check().into_iter().collect();
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let checked = pipeline::execute(client, false, &check).await;
        let events = self.open.take().map(|p| p.events).unwrap_or_default();
        let committed = commit_checked(client, &self.tenant, checked, &events).await;
        if committed.is_ok() || !client.is_closed() {
            self.conn.done();
        }
        self.round_trips += 1;
        committed
    }
}

/// Commit the open transaction, with its batches' `events`, when the lock check
/// (`checked`: its row counts, empty without a lock) found this holder's row; else roll it
/// back.
async fn commit_checked(
    client: &Object,
    tenant: &str,
    checked: Result<Vec<u64>, StorageError>,
    events: &[NewEvent],
) -> Result<(), StorageError> {
    let verdict = match checked {
        Ok(rows) if rows.iter().all(|n| *n == 1) => Ok(()),
        Ok(_) => Err(taken_over(tenant)),
        Err(error) => Err(error),
    };
    if let Err(error) = verdict {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(error);
    }
    // A COMMIT that fails ends the transaction too (PostgreSQL rolls it back), as does
    // one after a failed insert of the events.
    crate::feed::commit_with_events(client, tenant, events).await
}

impl Drop for PostgresTenant {
    fn drop(&mut self) {
        // Never hand a connection back to the pool in a transaction (see the type's
        // comment); the lock releases itself.
        if self.open.is_some() || self.conn.busy {
            self.conn.discard();
        }
    }
}

/// The columns a person is read from, and the lookup key after them.
fn person_select(key: &str) -> String {
    let columns = PEOPLE_COLUMNS
        .replace("licences", "licences::text")
        .replace("proxy_addresses", "proxy_addresses::text")
        .replace(", email_key, upn_key", "");
    format!("SELECT {columns}, {key} FROM people")
}

/// A person as stored, from a row of [`person_select`].
fn person_from_row(row: &Row) -> Result<StoredPerson, tokio_postgres::Error> {
    let status: String = row.try_get(20)?;
    Ok(StoredPerson {
        person: Person {
            object_id: row.try_get(0)?,
            user_principal_name: row.try_get(1)?,
            mail: row.try_get(2)?,
            given_name: row.try_get(3)?,
            surname: row.try_get(4)?,
            display_name: row.try_get(5)?,
            department: row.try_get(6)?,
            job_title: row.try_get(7)?,
            company_name: row.try_get(8)?,
            country: row.try_get(9)?,
            usage_location: row.try_get(10)?,
            office_location: row.try_get(11)?,
            account_enabled: row.try_get(12)?,
            user_type: row.try_get(13)?,
            licences: parse_list(row.try_get(14)?),
            created_at: row.try_get(15)?,
            manager_id: row.try_get(16)?,
            hire_date: row.try_get(17)?,
            proxy_addresses: parse_list(row.try_get(18)?),
            last_sign_in: row.try_get(19)?,
        },
        status: status_from(&status),
        fingerprint: row.try_get(21)?,
    })
}

/// The people `rows` hold, by their lookup key (the last column).
fn people_by_key(rows: &[Row]) -> Result<HashMap<String, StoredPerson>, tokio_postgres::Error> {
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let key: String = row.try_get(22)?;
        found.entry(key).or_insert(person_from_row(row)?);
    }
    Ok(found)
}

/// Query `sql` with `params` on `client` (a round trip).
async fn query(
    client: &Object,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StorageError> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| unavailable(what, &e))?;
    client
        .query(&statement, params)
        .await
        .map_err(|e| unavailable(what, &e))
}

async fn find_people(
    client: &Object,
    tenant: &str,
    keys: &[PersonKey],
) -> Result<Vec<Option<StoredPerson>>, StorageError> {
    let (mut ids, mut emails, mut upns) = (Vec::new(), Vec::new(), Vec::new());
    for key in keys {
        match key {
            PersonKey::ObjectId(id) => ids.push(id.as_str()),
            PersonKey::Email(key) => emails.push(key.as_str()),
            PersonKey::UserPrincipalName(key) => upns.push(key.as_str()),
        }
    }
    // One query per kind of key asked, all sent together. A key that several people share
    // (the engine keeps keys unique; a store does not enforce it) finds the first of them
    // by object id.
    let by_id = format!(
        "{} WHERE tenant = $1 AND object_id = ANY($2::text[])",
        person_select("object_id")
    );
    let by_email = format!(
        "SELECT DISTINCT ON (email_key) * FROM ({} WHERE tenant = $1 AND email_key = ANY($2::text[])) p
         ORDER BY email_key, object_id",
        person_select("email_key")
    );
    let by_upn = format!(
        "SELECT DISTINCT ON (upn_key) * FROM ({} WHERE tenant = $1 AND upn_key = ANY($2::text[])) p
         ORDER BY upn_key, object_id",
        person_select("upn_key")
    );
    let asked = [(&by_id, ids), (&by_email, emails), (&by_upn, upns)];
    let sqls: Vec<&str> = asked
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(sql, _)| sql.as_str())
        .collect();
    let prepared = pipeline::prepare(client, &sqls).await?;
    let mut prepared = prepared.into_iter();
    let mut steps: Vec<Step<'_, HashMap<String, StoredPerson>>> = Vec::new();
    for (_, keys) in &asked {
        if keys.is_empty() {
            steps.push(Box::pin(async { Ok(HashMap::new()) }));
            continue;
        }
        let Some(statement) = prepared.next() else {
            return Err(StorageError::Unavailable(
                "looking people up: a statement was not prepared".to_string(),
            ));
        };
        steps.push(Box::pin(async move {
            let failed = |e| unavailable("looking people up", &e);
            let rows = client
                .query(&statement, &[&tenant, keys])
                .await
                .map_err(failed)?;
            people_by_key(&rows).map_err(failed)
        }));
    }
    let found = pipeline::in_order(steps).await?;
    let [by_id, by_email, by_upn] = <[_; 3]>::try_from(found).map_err(|_| {
        StorageError::Unavailable("looking people up: an answer is missing".to_string())
    })?;
    Ok(keys
        .iter()
        .map(|key| match key {
            PersonKey::ObjectId(id) => by_id.get(id).cloned(),
            PersonKey::Email(key) => by_email.get(key).cloned(),
            PersonKey::UserPrincipalName(key) => by_upn.get(key).cloned(),
        })
        .collect())
}

async fn get_decision(
    client: &Object,
    tenant: &str,
) -> Result<Option<MatchDecision>, StorageError> {
    let what = "reading the review decision";
    let rows = query(
        client,
        what,
        "SELECT action, organization_id, decided_at FROM match_decisions WHERE tenant = $1",
        &[&tenant],
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let read = || -> Result<MatchDecision, tokio_postgres::Error> {
        let action: String = row.try_get(0)?;
        Ok(MatchDecision {
            tenant_key: tenant.to_string(),
            action: action_from(&action, row.try_get(1)?),
            decided_at: row.try_get(2)?,
        })
    };
    read().map(Some).map_err(|e| unavailable(what, &e))
}

/// The review decision of `tenant`, read on any connection.
pub(crate) async fn read_decision(
    client: &Object,
    tenant: &str,
) -> Result<Option<MatchDecision>, StorageError> {
    get_decision(client, tenant).await
}

#[async_trait]
impl TenantStore for PostgresTenant {
    async fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let what = "reading checkpoint";
        let rows = query(
            client,
            what,
            "SELECT value FROM checkpoints WHERE tenant = $1 AND key = $2",
            &[&self.tenant, &key],
        )
        .await;
        self.conn.done();
        match rows?.first() {
            Some(row) => row.try_get(0).map_err(|e| unavailable(what, &e)),
            None => Ok(None),
        }
    }

    async fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let found = find_people(client, &self.tenant, keys).await;
        self.conn.done();
        found
    }

    async fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let what = "listing people";
        let limit = i64::from(limit);
        // Two statements rather than `$2 IS NULL OR ...`: a prepared statement's generic
        // plan could not seek the primary key to the cursor, and would walk the tenant's
        // ids from the first on every page.
        let rows = match after {
            None => {
                query(
                    client,
                    what,
                    "SELECT object_id FROM people WHERE tenant = $1
                     ORDER BY object_id COLLATE \"C\" LIMIT $2",
                    &[&self.tenant, &limit],
                )
                .await
            }
            Some(after) => {
                query(
                    client,
                    what,
                    "SELECT object_id FROM people WHERE tenant = $1 AND object_id > $2
                     ORDER BY object_id COLLATE \"C\" LIMIT $3",
                    &[&self.tenant, &after, &limit],
                )
                .await
            }
        };
        self.conn.done();
        rows?
            .iter()
            .map(|row| row.try_get(0).map_err(|e| unavailable(what, &e)))
            .collect()
    }

    async fn find_direct_reports(
        &mut self,
        manager_id: &str,
    ) -> Result<Vec<StoredPerson>, StorageError> {
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let what = "looking up direct reports";
        let sql = format!(
            "{} WHERE tenant = $1 AND manager_id = $2 ORDER BY object_id",
            person_select("object_id")
        );
        let rows = query(client, what, &sql, &[&self.tenant, &manager_id]).await;
        self.conn.done();
        rows?
            .iter()
            .map(|row| person_from_row(row).map_err(|e| unavailable(what, &e)))
            .collect()
    }

    async fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        self.refuse_if_read_only("committing a batch")?;
        let mut statements = match crate::batch::statements(&self.tenant, &batch) {
            Ok(statements) => statements,
            Err(error) => {
                // As any failing batch: everything since the last checkpoint goes.
                self.roll_back().await;
                return Err(error);
            }
        };
        let mut deferred = self.open.as_ref().map(|p| p.deferred).unwrap_or_default();
        let due = deferred.commit_after(&batch);
        let events = events_of(&batch);
        let checks = if due { self.lock_check() } else { None };
        let checked = checks.is_some();
        statements.extend(checks);
        let client = self.conn.get(&mut self.open).await?;
        let begin = self.open.is_none();
        self.round_trips += 1;
        let applied = pipeline::execute(client, begin, &statements).await;
        let mut counts = match applied {
            Ok(counts) => counts,
            Err(error) => {
                // Everything since the last checkpoint goes: the engine redoes it from there.
                self.open = None;
                if client.batch_execute("ROLLBACK").await.is_ok() {
                    self.conn.done();
                }
                return Err(error);
            }
        };
        let pending = self.open.get_or_insert_default();
        pending.deferred = deferred;
        pending.events.extend(events);
        if !due {
            self.conn.done();
            return Ok(());
        }
        let check = if checked { counts.pop() } else { None };
        self.round_trips += 1;
        let events = self.open.take().map(|p| p.events).unwrap_or_default();
        let checked = Ok(check.into_iter().collect());
        let committed = commit_checked(client, &self.tenant, checked, &events).await;
        if committed.is_ok() || !client.is_closed() {
            self.conn.done();
        }
        committed
    }

    async fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let listed = crate::organizations::list(client).await;
        self.conn.done();
        listed
    }

    async fn create_organization(
        &mut self,
        name: &str,
    ) -> Result<PlatformOrganization, StorageError> {
        self.refuse_if_read_only("creating an organization")?;
        // Committed on its own, not with the engine's pending batches.
        self.flush().await?;
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let created = crate::organizations::create(client, name, None).await;
        self.conn.done();
        created
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
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let decision = get_decision(client, &self.tenant).await;
        self.conn.done();
        decision
    }

    async fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError> {
        if decision.tenant_key != self.tenant {
            return Err(StorageError::Invalid(format!(
                "a decision for tenant {:?} cannot be stored by tenant {:?}",
                decision.tenant_key, self.tenant
            )));
        }
        self.refuse_if_read_only("storing the review decision")?;
        self.flush().await?;
        let (action, organization) = action_parts(&decision.action);
        let client = self.conn.get(&mut self.open).await?;
        self.round_trips += 1;
        let what = "storing the review decision";
        let stored = match client
            .prepare_cached(
                "INSERT INTO match_decisions (tenant, action, organization_id, decided_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant) DO UPDATE SET action = EXCLUDED.action,
                   organization_id = EXCLUDED.organization_id, decided_at = EXCLUDED.decided_at",
            )
            .await
        {
            Ok(statement) => client
                .execute(
                    &statement,
                    &[&self.tenant, &action, &organization, &decision.decided_at],
                )
                .await
                .map(drop)
                .map_err(|e| refused(what, &e)),
            Err(e) => Err(unavailable(what, &e)),
        };
        self.conn.done();
        stored
    }

    async fn finish(&mut self) -> Result<(), StorageError> {
        let flushed = self.flush().await;
        // Released now rather than when the store is dropped; a release that fails leaves
        // the lock to lapse (see `lock.rs`), and the run's outcome stands.
        if let Some(mut lock) = self.lock.take() {
            let _ = lock.release().await;
        }
        flushed
    }
}
