//! The per-tenant lock of a running sync in SQLite, and resetting a tenant.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use m365sync_store::StoreError;
use m365sync_store::model::{LOCK_HEARTBEAT, LockHolder, ResetOutcome};
use m365sync_store::time::{now_rfc3339, unix_now};
use m365sync_wit::StorageError;
use rusqlite::{Connection, OptionalExtension, params};

use crate::gate::WriteGate;
use crate::schema::open_database;

/// A failure of lock work, as the contract names it.
fn failed(tenant: &str, path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Storage(StorageError::Unavailable(format!(
        "cannot take the lock of tenant {tenant} in {}: {source}",
        path.display()
    )))
}

fn held(tenant: &str, holder: LockHolder) -> StoreError {
    StoreError::Locked {
        tenant: tenant.to_string(),
        holder,
    }
}

/// How long taking or releasing a tenant lock (or recording a refused run) waits for
/// another connection's write transaction: a sync commits its batches in transactions that
/// can stay open across a few pages, and a second process must be told at once rather than
/// after SQLite's usual 30 s.
pub const LOCK_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
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
                    // A pid that is no u32 is an error naming the column, not another pid.
                    pid: row.get(0)?,
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
/// is left due, and the store's next commit writes it (the tenant store takes the lock with it), in
/// the same transaction as the run's changes and only if the row is still this
/// holder's. A run whose lock was taken over therefore commits nothing more.
pub struct TenantLock {
    path: std::path::PathBuf,
    gate: WriteGate,
    beat: Arc<LockBeat>,
    /// Dropping it stops the heartbeat thread.
    stop: Option<std::sync::mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// The lock row a heartbeat refreshes, and whether a beat is due for the store to write.
pub(crate) struct LockBeat {
    pub(crate) tenant: String,
    pub(crate) holder: LockHolder,
    /// A beat the lock's thread could not write, for the store's next commit.
    pub(crate) due: AtomicBool,
}

impl LockBeat {
    /// Refresh this holder's heartbeat; the rows changed (0 once the lock is another's).
    pub(crate) fn write(&self, connection: &Connection) -> rusqlite::Result<usize> {
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
pub(crate) fn lock_connection(path: &Path, tenant: &str) -> Result<Connection, StoreError> {
    let connection = open_database(path)?;
    connection
        .busy_timeout(LOCK_BUSY_TIMEOUT)
        .map_err(|source| failed(tenant, path, source))?;
    Ok(connection)
}

/// Take `tenant`'s lock in the database at `path`, or say who holds it. The holder is read
/// first, without a write lock, so a second run is refused at once even while the first
/// has a write transaction open; the lock row is then written in a short transaction. The
/// caller holds the file's `gate`, which the lock's heartbeat and release take too.
pub(crate) fn lock_tenant(
    path: &Path,
    tenant: &str,
    gate: &WriteGate,
) -> Result<TenantLock, StoreError> {
    let connection = lock_connection(path, tenant)?;
    let failed = |source| failed(tenant, path, source);
    let held = |holder| held(tenant, holder);
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
            let (path, beat, gate) = (path.to_path_buf(), beat.clone(), gate.clone());
            move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(LOCK_HEARTBEAT)
                {
                    // A beat that finds the database busy (here or in another process) is
                    // left to the store's commit.
                    let written = gate.try_lock().ok().and_then(|_writing| {
                        lock_connection(&path, &beat.tenant)
                            .ok()
                            .and_then(|c| beat.write(&c).ok())
                    });
                    if written != Some(1) {
                        beat.due.store(true, Ordering::Release);
                    }
                }
            }
        })
        .ok();
    Ok(TenantLock {
        path: path.to_path_buf(),
        gate: gate.clone(),
        beat,
        stop: Some(stop),
        heartbeat,
    })
}

impl TenantLock {
    pub(crate) fn beat(&self) -> &Arc<LockBeat> {
        &self.beat
    }
}

impl Drop for TenantLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
        // Dropped in async code, which must not wait here for another writer of this
        // process: when one holds the gate, a thread of its own releases the lock.
        match self.gate.try_lock() {
            Ok(_writing) => release(&self.path, &self.beat),
            Err(_) => {
                let (gate, path, beat) = (self.gate.clone(), self.path.clone(), self.beat.clone());
                let spawned = std::thread::Builder::new()
                    .name("m365sync-unlock".into())
                    .spawn(move || {
                        let _writing = gate.blocking_lock();
                        release(&path, &beat);
                    });
                if spawned.is_err() {
                    // No thread to wait in: wait in SQLite's busy handler instead.
                    release(&self.path, &self.beat);
                }
            }
        }
    }
}

/// Delete `beat`'s lock row: only this holder's, as a lock taken over meanwhile is the new
/// holder's.
fn release(path: &Path, beat: &LockBeat) {
    let _ =
        lock_connection(path, &beat.tenant).map(|c| {
            c.execute(
            "DELETE FROM tenant_locks WHERE tenant = ?1 AND pid = ?2 AND host = ?3 AND since = ?4",
            params![beat.tenant, beat.holder.pid, beat.holder.host, beat.holder.since],
        )
        });
}

/// Tables never emptied by a reset: the sync log (the reset is noted in it), the locks,
/// the platform's organizations, shared by every tenant, and what `serve` keeps of the
/// tenant (its state and jobs, its notices) and the change feed (see
/// `m365sync_store::queue`, `m365sync_store::notices`).
pub(crate) const KEPT_BY_RESET: &[&str] = &[
    "runs",
    "tenant_locks",
    "platform_organizations",
    "served_tenants",
    "jobs",
    "change_events",
    "notices",
];

/// Delete everything the database holds for `tenant` (every table with a `tenant`
/// column: people, groups and members, subscriptions, organization, domains, mailboxes,
/// usage, checkpoints with the directory binding, the match decision), in one
/// transaction, and note the reset in the sync log (status `reset`). Refused while a sync
/// holds the tenant's lock.
pub fn reset_tenant(path: &Path, tenant: &str) -> Result<ResetOutcome, StoreError> {
    let connection = lock_connection(path, tenant)?;
    let failed = |source| failed(tenant, path, source);
    // Read first, without a write lock: a running sync may hold a write transaction.
    if let Some(holder) = live_lock_holder(&connection, tenant).map_err(failed)? {
        return Err(held(tenant, holder));
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
        let note = ResetOutcome::note(&deleted);
        connection.execute(
            "INSERT INTO runs (tenant, started_at, mode, status, dry_run, error_kind, error)
             VALUES (?1, ?2, 'reset', 'reset', 0, 'reset', ?3)",
            params![tenant, now_rfc3339(), note],
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
            Err(held(tenant, holder))
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(failed(error))
        }
    }
}
