//! PostgreSQL-specific tests of schema 4: the migration from schema 3 (a registered
//! tenant's partner, the notices), setters racing on many connections, a notice's event
//! ordered by commit among a sync's, a stored kind or stage no m365sync writes, and texts
//! PostgreSQL cannot hold.

use m365sync_store::conformance::fixtures::{batch, create, saved};
use m365sync_store::feed::ChangeFeed;
use m365sync_store::notices::{Notice, NoticeKind, NoticeStage, Notices};
use m365sync_store::onboarding::{Onboarding, RegisteredTenant};
use m365sync_store::{Access, Store, StoreError};
use m365sync_wit::StorageError;

use super::onboarding::tenant;
use super::{count, fresh, sql};
use crate::PostgresStore;

const SECRET: NoticeKind = NoticeKind::SecretExpiring;

fn notice(tenant: &str, key: &str, stage: NoticeStage) -> Notice {
    Notice {
        tenant: tenant.to_string(),
        kind: SECRET,
        key: key.to_string(),
        stage,
        ends: "2025-07-01".to_string(),
        message: format!("{key} ends"),
        raised_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_3_schema_gains_the_partner_and_the_notices_and_keeps_its_rows() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut t = store.open_tenant("t", Access::Sync).await.expect("opening");
    t.commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    t.finish().await.expect("finishing");
    let registered = tenant("contoso", "tid-1");
    store
        .register_tenant(&registered)
        .await
        .expect("registering");
    // Back to schema 3: schema 4 adds a column to one of its tables, and a table.
    let client = sql(&schema).await;
    client
        .batch_execute(
            "ALTER TABLE registered_tenants DROP COLUMN partner;
             DROP TABLE notices;
             DELETE FROM m365sync_schema_versions WHERE version = 4;",
        )
        .await
        .expect("a schema-3 store");
    drop(store);
    let versions = "SELECT COUNT(*) FROM m365sync_schema_versions";
    assert_eq!(count(&client, versions).await, 3);
    let store = PostgresStore::open(&schema.url).await.expect("migrating");
    assert_eq!(count(&client, versions).await, 4);
    assert_eq!(count(&client, "SELECT COUNT(*) FROM people").await, 1);
    let partners = "SELECT COUNT(*) FROM registered_tenants WHERE partner IS NULL";
    assert_eq!(
        count(&client, partners).await,
        1,
        "migrated with no partner"
    );
    assert_eq!(
        store.registered_tenants().await.expect("listing"),
        vec![registered.clone()]
    );
    let through_partner = RegisteredTenant {
        partner: Some("csp".to_string()),
        ..registered
    };
    store
        .register_tenant(&through_partner)
        .await
        .expect("registering again");
    assert_eq!(
        store.registered_tenants().await.expect("listing"),
        vec![through_partner]
    );
    let set = [notice("t", "config:client-secret", NoticeStage::Ending)];
    let appended = store.set_notices("t", SECRET, &set, 5_000).await;
    assert_eq!(appended.expect("setting"), 1);
    let events = store.changes(0, 10, None).await.expect("reading the feed");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["person.created", "secret-expiring"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn setters_racing_on_many_connections_raise_each_notice_once() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(PostgresStore::open(&schema.url).await.expect("opening"));
    }
    for round in 0..5 {
        let tenant = format!("t-{round}");
        // Six setters of the same two notices of a new tenant at once.
        let notices = vec![
            notice(&tenant, "a", NoticeStage::Ending),
            notice(&tenant, &format!("new-{round}"), NoticeStage::Ended),
        ];
        let sets = stores.iter().map(|s| {
            let (s, tenant, notices) = (s.clone(), tenant.clone(), notices.clone());
            tokio::spawn(async move { s.set_notices(&tenant, SECRET, &notices, 1_000).await })
        });
        let mut appended = 0;
        for set in futures::future::join_all(sets).await {
            appended += set.expect("the task").expect("setting");
        }
        assert_eq!(appended, 2, "round {round}: each notice raised once");
        let events = store.changes(0, 100, Some(&tenant)).await.expect("reading");
        let keys: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
        assert_eq!(
            keys,
            ["a", format!("new-{round}").as_str()],
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notice_set_while_a_sync_transaction_is_open_precedes_its_events() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let mut t = store.open_tenant("t", Access::Sync).await.expect("opening");
    // Deferred: applied in the open transaction, its events not yet in the feed.
    t.commit(batch(vec![create("a")])).await.expect("deferred");
    let set = [notice("t", "config:client-secret", NoticeStage::Ended)];
    let appended = store.set_notices("t", SECRET, &set, 1_000).await;
    assert_eq!(appended.expect("setting"), 1);
    let first = store.changes(0, 10, None).await.expect("reading");
    assert_eq!(first.len(), 1, "the notice's event, committed first");
    t.commit(saved(vec![create("b")])).await.expect("committed");
    t.finish().await.expect("finishing");
    let feed = store.changes(0, 10, None).await.expect("reading");
    let order: Vec<&str> = feed.iter().map(|e| e.object_id.as_str()).collect();
    assert_eq!(order, ["config:client-secret", "a", "b"], "commit order");
    assert!(feed.windows(2).all(|w| w[0].cursor < w[1].cursor));
    // A reader that had seen the notice's event finds the batch's after it.
    let after = store
        .changes(first[0].cursor, 10, None)
        .await
        .expect("reading");
    assert_eq!(after, feed[1..]);
}

/// The message of a call that failed as `unavailable`, or a panic.
fn unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Storage(StorageError::Unavailable(message))) => message,
        other => panic!("an unknown name is an error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notice_kind_or_stage_no_m365sync_knows_is_an_error_naming_its_column() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let set = [notice("t", "a", NoticeStage::Ending)];
    store
        .set_notices("t", SECRET, &set, 1_000)
        .await
        .expect("setting");
    let client = sql(&schema).await;
    client
        .batch_execute("UPDATE notices SET kind = 'licence-ending'")
        .await
        .expect("a kind from elsewhere");
    let message = unavailable(store.notices(None).await);
    assert!(
        message.contains("notices.kind") && message.contains("\"licence-ending\""),
        "{message}"
    );
    client
        .batch_execute("UPDATE notices SET kind = 'secret-expiring', stage = 'over'")
        .await
        .expect("a stage from elsewhere");
    let message = unavailable(store.notices(Some("t")).await);
    assert!(
        message.contains("notices.stage") && message.contains("\"over\""),
        "{message}"
    );
    let message = unavailable(store.set_notices("t", SECRET, &set, 2_000).await);
    assert!(message.contains("notices.stage"), "{message}");
    assert_eq!(
        count(&client, "SELECT COUNT(*) FROM notices WHERE stage = 'over'").await,
        1
    );
    assert_eq!(store.last_cursor().await.expect("reading"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_with_a_nul_is_refused_naming_its_field() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let bad = Notice {
        message: "ends\0".to_string(),
        ..notice("t", "a", NoticeStage::Ending)
    };
    let refused = store.set_notices("t", SECRET, &[bad], 1_000).await;
    let Err(StoreError::Storage(StorageError::Invalid(message))) = &refused else {
        panic!("refused as invalid: {refused:?}");
    };
    assert!(message.contains("message"), "{message}");
    let partner = RegisteredTenant {
        partner: Some("csp\0".to_string()),
        ..tenant("contoso", "tid-1")
    };
    let refused = store.register_tenant(&partner).await;
    let Err(StoreError::Storage(StorageError::Invalid(message))) = &refused else {
        panic!("refused as invalid: {refused:?}");
    };
    assert!(message.contains("partner"), "{message}");
    assert_eq!(store.notices(Some("t\0")).await.expect("listing"), vec![]);
    assert_eq!(store.notices(None).await.expect("listing"), vec![]);
}
