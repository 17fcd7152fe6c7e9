//! The conformance suite on SQLite: each case on a database of its own in a temporary
//! directory; another handle is the same file opened again, as another process would.

use m365sync_store::StoreBackend;
use m365sync_store::conformance::{Reopen, Subject};
use m365sync_store_sqlite::SqliteStore;

async fn subject() -> Option<Subject> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("conformance.db");
    let store = SqliteStore::open(&path).expect("creating the database");
    let reopen: Reopen = Box::new(move || {
        let opened = SqliteStore::open(&path).expect("opening the database again");
        let handle: Box<dyn StoreBackend> = Box::new(opened);
        Box::pin(async move { handle })
    });
    Some(Subject::new(Box::new(store), reopen, dir))
}

m365sync_store::conformance_suite!(subject());
