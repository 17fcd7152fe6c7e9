//! SQLite-specific tests of what onboarding keeps: the migration from schema 5, and what
//! a reset and a value no m365sync writes do to its tables.

use std::path::Path;

use m365sync_store::onboarding::{ConsentRequest, Onboarding, RegisteredTenant};
use m365sync_store::{Store, StoreError};
use m365sync_wit::StorageError;
use m365sync_wit::types::Features;
use rusqlite::Connection;

use crate::SqliteStore;
use crate::schema::{
    PEOPLE_INDEXES, RUNS_TABLE, SCHEMA, SCHEMA_VERSION, SERVE_TABLES, TENANT_LOCKS_TABLE,
    open_database, people_table,
};

use super::database;

/// A schema-5 database with one checkpoint and one served tenant, as m365sync made it
/// before schema 6.
pub(super) fn version_5_database(path: &Path) {
    let connection = Connection::open(path).expect("creating");
    connection
        .execute_batch(&format!(
            "BEGIN; {} {PEOPLE_INDEXES} {SCHEMA} {RUNS_TABLE} {TENANT_LOCKS_TABLE}
             {SERVE_TABLES} PRAGMA user_version = 5; COMMIT;",
            people_table("people")
        ))
        .expect("schema 5");
    connection
        .execute_batch(
            "INSERT INTO checkpoints VALUES ('t', 'users', 'delta-1');
             INSERT INTO served_tenants (tenant, app, paused, consecutive_failures)
             VALUES ('t', 'app-1', 0, 0);",
        )
        .expect("rows of schema 5");
}

pub(super) fn tenant(name: &str, tenant_id: &str) -> RegisteredTenant {
    RegisteredTenant {
        name: name.to_string(),
        tenant_id: tenant_id.to_string(),
        display_name: "Contoso".to_string(),
        app: "app-1".to_string(),
        features: Features::USERS | Features::LICENCES,
        registered_ms: 1_000,
        partner: None,
    }
}

pub(super) fn tables(connection: &Connection, names: &[&str]) -> usize {
    names
        .iter()
        .filter(|name| {
            connection
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .expect("counting")
                == 1
        })
        .count()
}

#[tokio::test]
async fn a_version_5_database_gains_the_onboarding_tables_and_keeps_its_rows() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v5.db");
    version_5_database(&path);
    let onboarding = ["consent_requests", "registered_tenants"];
    {
        let before = Connection::open(&path).expect("opening");
        assert_eq!(tables(&before, &onboarding), 0, "schema 5 has none");
    }
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("the version");
    assert_eq!((version, SCHEMA_VERSION), (10, 10));
    assert_eq!(tables(&connection, &onboarding), 2);
    let kept: (String, String) = connection
        .query_row(
            "SELECT (SELECT value FROM checkpoints WHERE tenant = 't'),
                    (SELECT app FROM served_tenants WHERE tenant = 't')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the rows of schema 5");
    assert_eq!(kept, ("delta-1".to_string(), "app-1".to_string()));
    // The migrated store keeps requests and registrations.
    let request = ConsentRequest {
        state: "s".to_string(),
        app: "app-1".to_string(),
        features: Features::USERS,
        redirect_uri: "http://localhost/callback".to_string(),
        created_ms: 1_000,
        expires_ms: 2_000,
    };
    store.put_consent_request(&request).await.expect("putting");
    let taken = store.take_consent_request("s", 1_500).await;
    assert_eq!(taken.expect("taking"), Some(request));
    store
        .register_tenant(&tenant("contoso", "tid-1"))
        .await
        .expect("registering");
    assert_eq!(store.registered_tenants().await.expect("listing").len(), 1);
}

#[tokio::test]
async fn a_reset_keeps_the_registered_tenant() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "reset.db");
    let store = SqliteStore::open(&path).expect("creating");
    let registered = tenant("contoso", "tid-1");
    store
        .register_tenant(&registered)
        .await
        .expect("registering");
    store.reset_tenant("contoso").await.expect("resetting");
    let listed = store.registered_tenants().await.expect("listing");
    assert_eq!(listed, vec![registered]);
}

#[tokio::test]
async fn a_feature_no_m365sync_knows_is_an_error_naming_its_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "features.db");
    let store = SqliteStore::open(&path).expect("creating");
    store
        .register_tenant(&tenant("contoso", "tid-1"))
        .await
        .expect("registering");
    open_database(&path)
        .expect("opening")
        .execute_batch(r#"UPDATE registered_tenants SET features = '["users","telepathy"]'"#)
        .expect("a feature from elsewhere");
    let listed = store.registered_tenants().await;
    let Err(StoreError::Storage(StorageError::Unavailable(message))) = &listed else {
        panic!("an unknown feature is an error: {listed:?}");
    };
    assert!(
        message.contains("registered_tenants.features") && message.contains("telepathy"),
        "{message}"
    );
}
