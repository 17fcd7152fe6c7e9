//! One writer at a time per database file within this process, waited for without
//! blocking a thread.
//!
//! SQLite lets one connection write at a time. A second writer's `BEGIN IMMEDIATE` waits in
//! SQLite's busy handler, which sleeps on the calling thread: in an async host that is a
//! runtime worker, and every task on it (the other syncs' HTTP, the server's requests,
//! lease heartbeats) stalls behind it, while a sync's deferred transaction stays open
//! across batches for up to `policy::MAX_DEFERRAL`. With the holder's own progress stuck
//! behind the sleeper, the wait ends only at the busy timeout, as "database is locked".
//! So every write of this crate made from async code first takes this file's gate (a
//! fair, FIFO tokio mutex) and meets SQLite's busy handler only for other processes.
//!
//! The gate also says whether a writer is waiting for it ([`Gate::is_awaited`]), so that
//! a tenant store holding a deferred transaction commits it at its next batch instead of
//! keeping every other tenant of the file waiting until its checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::{MutexGuard, OwnedMutexGuard, TryLockError};

/// The gate of one database file, shared by every store and connection of this process
/// that writes it.
pub(crate) type WriteGate = Arc<Gate>;

/// One writer at a time, and a count of those waiting.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    mutex: Arc<tokio::sync::Mutex<()>>,
    waiting: AtomicUsize,
}

/// Counts a waiter for as long as it waits (dropped with a cancelled wait too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub(crate) async fn lock(&self) -> MutexGuard<'_, ()> {
        let _waiting = Waiting::new(&self.waiting);
        self.mutex.lock().await
    }

    /// The gate, held by the guard alone (a store keeps it while its transaction is open).
    pub(crate) async fn lock_owned(&self) -> OwnedMutexGuard<()> {
        let _waiting = Waiting::new(&self.waiting);
        self.mutex.clone().lock_owned().await
    }

    pub(crate) fn try_lock(&self) -> Result<MutexGuard<'_, ()>, TryLockError> {
        self.mutex.try_lock()
    }

    /// For threads outside the async runtime.
    pub(crate) fn blocking_lock(&self) -> MutexGuard<'_, ()> {
        let _waiting = Waiting::new(&self.waiting);
        self.mutex.blocking_lock()
    }

    /// Whether another writer of this process is waiting for the gate now.
    pub(crate) fn is_awaited(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }
}

static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<Gate>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The gate of the database at `path` (one per file, however the path is spelt, as long
/// as the file exists).
pub(crate) fn of(path: &Path) -> WriteGate {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut gates = GATES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(gate) = gates.get(&key).and_then(Weak::upgrade) {
        return gate;
    }
    // Files no longer open here leave their entries: drop them as new ones come.
    gates.retain(|_, gate| gate.strong_count() > 0);
    let gate = WriteGate::default();
    gates.insert(key, Arc::downgrade(&gate));
    gate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gate_per_file_however_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.db");
        std::fs::write(&file, b"").unwrap();
        let other = dir.path().join("b.db");
        std::fs::write(&other, b"").unwrap();
        let a = of(&file);
        let again = of(&dir.path().join(".").join("a.db"));
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!Arc::ptr_eq(&a, &of(&other)));
    }
}
