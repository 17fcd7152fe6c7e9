//! The per-tenant lock of a running sync in PostgreSQL: a `tenant_locks` row, taken in one
//! transaction (`SELECT ... FOR UPDATE`, then insert it or take over a stale holder),
//! refreshed by a heartbeat task on its own pooled connection, checked by every commit of
//! the run, and released by `finish` or, best effort, when the store is dropped. It
//! behaves as SQLite's (`m365sync-store-sqlite`'s `lock.rs`), so both back ends refuse,
//! take over and report alike.
//!
//! Each holding has a random `token`: the heartbeat, the commit check and the release
//! touch the row only while it carries this holding's token, so a holder whose lock was
//! taken over cannot refresh, commit under or delete its successor's row.
//!
//! A holder on this host is stale exactly when its process is gone
//! ([`LockHolder::is_stale`]), and this process is alive while a dropped store's release
//! may still be on its way (drop cannot wait for the server). So a row of this very process
//! is live only while one of its stores holds that token ([`HELD`]): a store dropped
//! without `finish` leaves a row the next open of the tenant in this process takes over at
//! once, as SQLite's synchronous release would have allowed.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use m365sync_store::StoreError;
use m365sync_store::model::{LockHolder, host_name};
use m365sync_store::time::unix_now;
use m365sync_wit::StorageError;
use tokio::task::JoinHandle;

use crate::error::{message, no_connection};

/// The tokens of the locks this process's stores hold now.
static HELD: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn held() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    // The set stays consistent whatever a panicking holder did: keep using it.
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A token counted in [`HELD`] until dropped, unless kept (then the lock removes it).
struct Holding(Option<String>);

impl Holding {
    fn new(token: &str) -> Holding {
        held().insert(token.to_string());
        Holding(Some(token.to_string()))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            held().remove(&token);
        }
    }
}

/// Whether the holder of a lock row (with its token) still holds it.
pub(crate) fn is_live(holder: &LockHolder, token: &str) -> bool {
    if holder.pid == std::process::id() && holder.host == host_name() {
        return held().contains(token);
    }
    !holder.is_stale()
}

/// How long taking the lock waits for another transaction that has the row locked (a
/// heartbeat, a commit's check, another run taking it: all brief).
const LOCK_ROW_WAIT: &str = "5s";

/// The lock row of `tenant` (with its token), if any; `for_update` locks it until the
/// transaction ends.
pub(crate) async fn read_holder(
    client: &impl GenericClient,
    tenant: &str,
    for_update: bool,
) -> Result<Option<(LockHolder, String)>, tokio_postgres::Error> {
    let sql = if for_update {
        "SELECT pid, host, since, heartbeat, token FROM tenant_locks WHERE tenant = $1 FOR UPDATE"
    } else {
        "SELECT pid, host, since, heartbeat, token FROM tenant_locks WHERE tenant = $1"
    };
    let Some(row) = client.query_opt(sql, &[&tenant]).await? else {
        return Ok(None);
    };
    let pid: i64 = row.try_get(0)?;
    let holder = LockHolder {
        pid: u32::try_from(pid.max(0)).unwrap_or(u32::MAX),
        host: row.try_get(1)?,
        since: row.try_get(2)?,
        heartbeat: row.try_get(3)?,
    };
    Ok(Some((holder, row.try_get(4)?)))
}

/// The live holder of `tenant`'s lock, if any (a stale lock counts as none).
pub(crate) async fn live_holder(
    client: &impl GenericClient,
    tenant: &str,
) -> Result<Option<LockHolder>, tokio_postgres::Error> {
    Ok(read_holder(client, tenant, false)
        .await?
        .filter(|(holder, token)| is_live(holder, token))
        .map(|(holder, _)| holder))
}

/// A failure of lock work on `place`, as the contract names it.
fn failed(tenant: &str, place: &str, error: &tokio_postgres::Error) -> StoreError {
    StoreError::Storage(StorageError::Unavailable(format!(
        "cannot take the lock of tenant {tenant} in {place}: {}",
        message(error)
    )))
}

/// A tenant's lock, held by this process while a sync of the tenant runs.
pub(crate) struct TenantLock {
    pool: Pool,
    /// The store, for messages.
    place: String,
    tenant: String,
    token: String,
    /// Refreshes the row's heartbeat; aborted on release.
    heartbeat: Option<JoinHandle<()>>,
    released: bool,
}

/// Take `tenant`'s lock in the store behind `pool` (described as `place`), or say who
/// holds it; while held, its heartbeat is refreshed every `every`.
pub(crate) async fn lock_tenant(
    pool: &Pool,
    place: &str,
    tenant: &str,
    every: Duration,
) -> Result<TenantLock, StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| no_connection(&format!("taking the lock of tenant {tenant}"), place, e))?;
    let failed = |e: tokio_postgres::Error| failed(tenant, place, &e);
    let holder = LockHolder::this_process();
    let token = uuid::Uuid::new_v4().to_string();
    // Counted as held before the row is written: another store of this process that reads
    // the row from then on must find it live.
    let holding = Holding::new(&token);
    let transaction = client.transaction().await.map_err(failed)?;
    transaction
        .batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_ROW_WAIT}'"))
        .await
        .map_err(failed)?;
    let values: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &tenant,
        &i64::from(holder.pid),
        &holder.host,
        &holder.since,
        &holder.heartbeat,
        &token,
    ];
    match read_holder(&transaction, tenant, true)
        .await
        .map_err(failed)?
    {
        Some((other, other_token)) if is_live(&other, &other_token) => {
            return Err(StoreError::Locked {
                tenant: tenant.to_string(),
                holder: other,
            });
        }
        // A stale holder: its row, locked by this transaction, is taken over.
        Some(_) => {
            transaction
                .execute(
                    "UPDATE tenant_locks SET pid = $2, host = $3, since = $4, heartbeat = $5,
                     token = $6 WHERE tenant = $1",
                    &values,
                )
                .await
                .map_err(failed)?;
        }
        None => {
            // Two runs may find no row at once: the second one's insert waits for the
            // first one's transaction and then inserts nothing.
            let inserted = transaction
                .execute(
                    "INSERT INTO tenant_locks (tenant, pid, host, since, heartbeat, token)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant) DO NOTHING",
                    &values,
                )
                .await
                .map_err(failed)?;
            if inserted == 0 {
                drop(transaction);
                return match live_holder(&client, tenant).await.map_err(failed)? {
                    Some(other) => Err(StoreError::Locked {
                        tenant: tenant.to_string(),
                        holder: other,
                    }),
                    None => Err(StoreError::Storage(StorageError::Unavailable(format!(
                        "cannot take the lock of tenant {tenant} in {place}: another process \
                         took and released it at the same moment; try again"
                    )))),
                };
            }
        }
    }
    transaction.commit().await.map_err(failed)?;
    holding.keep();
    let heartbeat = tokio::spawn(heartbeat(
        pool.clone(),
        tenant.to_string(),
        token.clone(),
        every,
    ));
    Ok(TenantLock {
        pool: pool.clone(),
        place: place.to_string(),
        tenant: tenant.to_string(),
        token,
        heartbeat: Some(heartbeat),
        released: false,
    })
}

/// Refresh the lock's heartbeat every `every`, on a pooled connection of its own (never the
/// run's: its transaction may stay open for minutes, and the run never locks this row but
/// for the instant of a commit). A beat that fails is tried again at the next tick; a lock
/// taken over is not refreshed (the run's next commit fails).
async fn heartbeat(pool: Pool, tenant: String, token: String, every: Duration) {
    let start = tokio::time::Instant::now() + every;
    let mut ticks = tokio::time::interval_at(start, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        let refreshed = client
            .execute(
                "UPDATE tenant_locks SET heartbeat = $3 WHERE tenant = $1 AND token = $2",
                &[&tenant, &token, &unix_now()],
            )
            .await;
        if let Ok(0) = refreshed {
            return;
        }
    }
}

/// The check a commit makes in its transaction, just before `COMMIT`: it counts 1 row
/// while the lock is still this holding's. `FOR SHARE` keeps a takeover out until the
/// commit ends (a heartbeat waits as long: an instant).
pub(crate) const CHECK_SQL: &str =
    "SELECT 1 FROM tenant_locks WHERE tenant = $1 AND token = $2 FOR SHARE";

/// The error of a commit whose lock was taken over.
pub(crate) fn taken_over(tenant: &str) -> StorageError {
    StorageError::Unavailable(format!(
        "the lock of tenant {tenant} was taken over by another process: this run's changes \
         since its last checkpoint are not committed"
    ))
}

impl TenantLock {
    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Release the lock now (only this holding's row: a lock taken over is another's).
    pub(crate) async fn release(&mut self) -> Result<(), StorageError> {
        self.stop();
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| no_connection("releasing the tenant's lock", &self.place, e))?;
        client
            .execute(
                "DELETE FROM tenant_locks WHERE tenant = $1 AND token = $2",
                &[&self.tenant, &self.token],
            )
            .await
            .map(drop)
            .map_err(|e| crate::error::unavailable("releasing the tenant's lock", &e))
    }

    /// Stop the heartbeat, and count the holding as gone in this process.
    fn stop(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        held().remove(&self.token);
        self.released = true;
    }
}

impl Drop for TenantLock {
    /// Released in the background when a runtime is at hand: drop cannot wait for the
    /// server. Without one, or if the process ends first, the row is left to staleness
    /// (see the module's comment).
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.stop();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, tenant, token) =
                (self.pool.clone(), self.tenant.clone(), self.token.clone());
            runtime.spawn(async move {
                if let Ok(client) = pool.get().await {
                    let _ = client
                        .execute(
                            "DELETE FROM tenant_locks WHERE tenant = $1 AND token = $2",
                            &[&tenant, &token],
                        )
                        .await;
                }
            });
        }
    }
}
