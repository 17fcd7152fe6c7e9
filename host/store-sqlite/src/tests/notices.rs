//! SQLite-specific tests of schema 7: the migration from schema 6 (a registered tenant's
//! partner, the notices), a stored kind or stage no m365sync writes, and a notice set
//! while a sync holds the file's write.

use std::path::Path;
use std::time::Duration;

use m365sync_store::conformance::fixtures::{batch, create, saved};
use m365sync_store::feed::ChangeFeed;
use m365sync_store::notices::{Notice, NoticeKind, NoticeStage, Notices};
use m365sync_store::onboarding::{Onboarding, RegisteredTenant, stored_features};
use m365sync_store::{StoreError, TenantStore};
use m365sync_wit::StorageError;
use rusqlite::{Connection, params};

use crate::SqliteStore;
use crate::schema::{ONBOARDING_TABLES, SCHEMA_VERSION, open_database};

use super::onboarding::{tables, tenant, version_5_database};
use super::{database, sync_tenant};

/// A schema-6 database: schema 5's (a checkpoint, a served tenant), a registered tenant
/// and an event, as m365sync made it before schema 7.
fn version_6_database(path: &Path) {
    version_5_database(path);
    let registered = tenant("contoso", "tid-1");
    let connection = Connection::open(path).expect("opening");
    connection
        .execute_batch(&format!("BEGIN; {ONBOARDING_TABLES}"))
        .expect("schema 6");
    connection
        .execute(
            "INSERT INTO registered_tenants VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                registered.tenant_id,
                registered.name,
                registered.display_name,
                registered.app,
                stored_features(registered.features),
                registered.registered_ms,
            ],
        )
        .expect("a registered tenant of schema 6");
    connection
        .execute_batch(
            "INSERT INTO change_events (tenant, at, kind, object_id, detail)
             VALUES ('t', '2025-01-01T00:00:00Z', 'person.created', 'a', '{}');
             PRAGMA user_version = 6; COMMIT;",
        )
        .expect("an event of schema 6");
}

/// The columns of `table`, in order.
fn columns(connection: &Connection, table: &str) -> Vec<String> {
    connection
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .expect("the columns")
}

fn notice(tenant: &str, key: &str, stage: NoticeStage) -> Notice {
    Notice {
        tenant: tenant.to_string(),
        kind: NoticeKind::SecretExpiring,
        key: key.to_string(),
        stage,
        ends: "2025-07-01".to_string(),
        message: format!("{key} ends"),
        raised_ms: 0,
    }
}

#[tokio::test]
async fn a_version_6_database_gains_the_partner_and_the_notices_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v6.db");
    version_6_database(&path);
    {
        let before = Connection::open(&path).expect("opening");
        assert_eq!(tables(&before, &["notices"]), 0, "schema 6 has none");
        assert!(!columns(&before, "registered_tenants").contains(&"partner".to_string()));
    }
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("the version");
    assert_eq!((version, SCHEMA_VERSION), (10, 10));
    assert_eq!(tables(&connection, &["notices"]), 1);
    // The migrated tables are a new database's.
    let fresh_path = database(&dir, "new.db");
    SqliteStore::open(&fresh_path).expect("creating");
    let fresh = open_database(&fresh_path).expect("opening");
    for table in ["registered_tenants", "notices"] {
        assert_eq!(
            columns(&connection, table),
            columns(&fresh, table),
            "{table}"
        );
    }
    assert_eq!(
        columns(&connection, "registered_tenants")
            .last()
            .map(String::as_str),
        Some("partner")
    );
    let kept: (String, String) = connection
        .query_row(
            "SELECT (SELECT value FROM checkpoints WHERE tenant = 't'),
                    (SELECT app FROM served_tenants WHERE tenant = 't')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the rows of schema 6");
    assert_eq!(kept, ("delta-1".to_string(), "app-1".to_string()));
    // The registered tenant is kept, with no partner; registered again, it takes one.
    let registered = tenant("contoso", "tid-1");
    let listed = store.registered_tenants().await.expect("listing");
    assert_eq!(listed, vec![registered.clone()]);
    assert_eq!(listed[0].partner, None);
    let through_partner = RegisteredTenant {
        partner: Some("csp".to_string()),
        ..registered
    };
    store
        .register_tenant(&through_partner)
        .await
        .expect("registering");
    let listed = store.registered_tenants().await.expect("listing");
    assert_eq!(listed, vec![through_partner]);
    // Notices are set, their events after the feed's.
    let set = [notice("t", "config:client-secret", NoticeStage::Ending)];
    let appended = store.set_notices("t", NoticeKind::SecretExpiring, &set, 5_000);
    assert_eq!(appended.await.expect("setting"), 1);
    let events = store.changes(0, 10, None).await.expect("reading the feed");
    let cursors: Vec<(i64, &str)> = events.iter().map(|e| (e.cursor, e.kind.name())).collect();
    assert_eq!(cursors, [(1, "person.created"), (2, "secret-expiring")]);
    let stored = store.notices(None).await.expect("listing");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].raised_ms, 5_000);
}

/// The message of a read that failed, or a panic.
fn unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Storage(StorageError::Unavailable(message))) => message,
        other => panic!("an unknown name is an error: {other:?}"),
    }
}

#[tokio::test]
async fn a_notice_kind_or_stage_no_m365sync_knows_is_an_error_naming_its_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "notices.db");
    let store = SqliteStore::open(&path).expect("creating");
    let kind = NoticeKind::SecretExpiring;
    let set = [notice("t", "a", NoticeStage::Ending)];
    store
        .set_notices("t", kind, &set, 1_000)
        .await
        .expect("setting");
    let connection = open_database(&path).expect("opening");
    connection
        .execute_batch("UPDATE notices SET kind = 'licence-ending'")
        .expect("a kind from elsewhere");
    let message = unavailable(store.notices(None).await);
    assert!(
        message.contains("notices.kind") && message.contains("\"licence-ending\""),
        "{message}"
    );
    connection
        .execute_batch("UPDATE notices SET kind = 'secret-expiring', stage = 'over'")
        .expect("a stage from elsewhere");
    let message = unavailable(store.notices(Some("t")).await);
    assert!(
        message.contains("notices.stage") && message.contains("\"over\""),
        "{message}"
    );
    // Setting the kind reads what is stored: refused too, and nothing changes.
    let message = unavailable(store.set_notices("t", kind, &set, 2_000).await);
    assert!(message.contains("notices.stage"), "{message}");
    let stage: String = connection
        .query_row("SELECT stage FROM notices", [], |r| r.get(0))
        .expect("the stage");
    assert_eq!(stage, "over");
    assert_eq!(store.last_cursor().await.expect("reading"), 1);
}

#[tokio::test]
async fn a_notice_set_while_a_sync_holds_the_write_waits_at_the_gate_and_follows_its_commit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "gate.db");
    let store = SqliteStore::open(&path).expect("creating");
    let mut t = sync_tenant(&path, "t");
    // Deferred: the sync's write transaction stays open, holding the file's gate.
    t.commit(batch(vec![create("a")])).await.expect("deferred");
    let setter = store.clone();
    let set = tokio::spawn(async move {
        let notices = [notice("t", "config:client-secret", NoticeStage::Ended)];
        (setter.set_notices("t", NoticeKind::SecretExpiring, &notices, 1_000)).await
    });
    // The runtime's one thread is not blocked: the setter waits at the gate, not in
    // SQLite's busy handler.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!set.is_finished(), "the set waits for the sync's commit");
    assert_eq!(store.notices(None).await.expect("listing"), vec![]);
    t.commit(saved(vec![create("b")])).await.expect("committed");
    let appended = set.await.expect("the task").expect("setting");
    assert_eq!(appended, 1);
    t.finish().await.expect("finishing");
    let events = store.changes(0, 10, None).await.expect("reading");
    let order: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
    assert_eq!(order, ["a", "b", "config:client-secret"]);
}
