//! SQLite-specific tests of what `serve` shares: the migration from schema 4, one `serve`
//! process per database file, and the change feed committed with its batch's transaction.

use std::path::Path;

use m365sync_store::conformance::fixtures::{batch, create, saved};
use m365sync_store::conformance::serve_fixtures::worker;
use m365sync_store::feed::ChangeFeed;
use m365sync_store::model::{LOCK_STALE_AFTER, host_name};
use m365sync_store::queue::Queue;
use m365sync_store::queue::rules::duration_ms;
use m365sync_store::{Store, StoreError, TenantStore};
use rusqlite::Connection;

use crate::SqliteStore;
use crate::schema::{
    PEOPLE_INDEXES, RUNS_TABLE, SCHEMA, SCHEMA_VERSION, TENANT_LOCKS_TABLE, open_database,
    people_table,
};

use super::{database, sync_tenant};

/// A schema-4 database with one person, as m365sync made it before schema 5.
fn version_4_database(path: &Path) {
    let connection = Connection::open(path).expect("creating");
    connection
        .execute_batch(&format!(
            "BEGIN; {} {PEOPLE_INDEXES} {SCHEMA} {RUNS_TABLE} {TENANT_LOCKS_TABLE}
             PRAGMA user_version = 4; COMMIT;",
            people_table("people")
        ))
        .expect("schema 4");
    connection
        .execute(
            "INSERT INTO checkpoints VALUES ('t', 'users', 'delta-1')",
            [],
        )
        .expect("a checkpoint of schema 4");
}

#[tokio::test]
async fn a_version_4_database_gains_the_serve_tables_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v4.db");
    version_4_database(&path);
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("the version");
    assert_eq!((version, SCHEMA_VERSION), (10, 10));
    for table in [
        "served_tenants",
        "jobs",
        "workers",
        "webhooks",
        "change_events",
    ] {
        let found: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("counting");
        assert_eq!(found, 1, "{table}");
    }
    let kept: String = connection
        .query_row(
            "SELECT value FROM checkpoints WHERE tenant = 't'",
            [],
            |r| r.get(0),
        )
        .expect("the checkpoint");
    assert_eq!(kept, "delta-1");
    assert_eq!(store.last_cursor().await.expect("reading the feed"), 0);
    let mut t = store
        .open_tenant("t", m365sync_store::Access::Sync)
        .await
        .expect("opening");
    t.commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    t.finish().await.expect("finishing");
    let events = store.changes(0, 10, None).await.expect("reading the feed");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].cursor, 1, "cursors start at 1");
}

#[tokio::test]
async fn a_second_serve_process_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "serve.db");
    let store = SqliteStore::open(&path).expect("creating");
    let here = host_name();
    let pid = std::process::id();
    store
        .join(&worker("first", &here, pid, 1_000))
        .await
        .expect("the first worker");
    // Another process on this host, while this one (the first's pid) lives.
    let refused = store.join(&worker("second", &here, pid + 1, 2_000)).await;
    let Err(StoreError::Busy(message)) = refused else {
        panic!("refused as busy: {refused:?}");
    };
    let expected = format!(
        "SQLite database {} is served by m365sync serve (pid {pid} on {here}) since \
         1970-01-01T00:00:01.000Z; one process serves a SQLite store: stop it, or use \
         PostgreSQL for several workers",
        path.display()
    );
    assert_eq!(message, expected);
    let workers = store
        .workers(2_000, LOCK_STALE_AFTER)
        .await
        .expect("listing");
    let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["first"], "the refused worker is not registered");
}

#[tokio::test]
async fn a_serve_process_that_is_gone_gives_way() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "gone.db");
    let store = SqliteStore::open(&path).expect("creating");
    let here = host_name();
    // On this host, judged by its pid: no process has the largest pid.
    let dead = worker("dead", &here, i32::MAX.unsigned_abs(), 1_000);
    store.join(&dead).await.expect("the first worker");
    let next = worker("next", &here, std::process::id(), 2_000);
    store
        .join(&next)
        .await
        .expect("the dead worker's pid is gone");
    // On another host, judged by its heartbeat.
    let stale = duration_ms(LOCK_STALE_AFTER);
    let elsewhere = SqliteStore::open(&database(&dir, "elsewhere.db")).expect("creating");
    let remote = worker("remote", "elsewhere.example", 1, 1_000);
    elsewhere.join(&remote).await.expect("the first worker");
    let early = worker("local", &here, std::process::id(), 1_000 + stale - 1);
    let refused = elsewhere.join(&early).await;
    assert!(matches!(refused, Err(StoreError::Busy(_))), "{refused:?}");
    let late = worker("local", &here, std::process::id(), 1_000 + stale);
    elsewhere
        .join(&late)
        .await
        .expect("the remote heartbeat is stale");
    let workers = elsewhere
        .workers(1_000 + stale, LOCK_STALE_AFTER)
        .await
        .expect("listing");
    let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["local"], "the stale worker's row is gone");
}

#[tokio::test]
async fn events_are_seen_only_when_their_batch_is_committed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "feed.db");
    let store = SqliteStore::open(&path).expect("creating");
    let mut t = sync_tenant(&path, "t");
    // Deferred: the transaction stays open, and so do its events.
    t.commit(batch(vec![create("a")])).await.expect("deferred");
    assert_eq!(store.changes(0, 10, None).await.expect("reading"), vec![]);
    assert_eq!(store.last_cursor().await.expect("reading"), 0);
    t.commit(saved(vec![create("b")])).await.expect("committed");
    let events = store.changes(0, 10, None).await.expect("reading");
    let ids: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    t.finish().await.expect("finishing");
}
