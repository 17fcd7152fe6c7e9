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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// The gate of one database file, shared by every store and connection of this process
/// that writes it.
pub(crate) type WriteGate = Arc<tokio::sync::Mutex<()>>;

static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>> =
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
