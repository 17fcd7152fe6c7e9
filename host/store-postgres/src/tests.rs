//! Tests of the PostgreSQL store: what is particular to it (migrations, concurrent opens,
//! the lock's heartbeat and takeovers, round trips, what its messages show), then the
//! conformance suite every back end runs. Each test works in a schema of its own
//! ([`testing::schema`]) and is skipped when no server answers.

use std::time::Duration;

use m365sync_store::conformance::fixtures;
use m365sync_store::{Access, Store, StoreError, TenantStore};
use m365sync_wit::StorageError;
use m365sync_wit::types::{Batch, Change, Checkpoint, PersonKey};

use crate::PostgresStore;
use crate::testing::{self, TestSchema};

mod conformance;
mod notices;
mod onboarding;
mod serve;

/// A fresh schema and a store opened on it.
async fn fresh() -> Option<(TestSchema, PostgresStore)> {
    let schema = testing::schema().await?;
    let store = PostgresStore::open(&schema.url)
        .await
        .expect("opening the store");
    Some((schema, store))
}

/// How the stores of the test server describe themselves.
fn server_described() -> String {
    crate::connect::Target::parse(&testing::server_url())
        .expect("the test server's URL")
        .described
}

/// A connection of the test's own to the schema, for looking behind the store's back.
async fn sql(schema: &TestSchema) -> deadpool_postgres::Object {
    let target = crate::connect::Target::parse(&schema.url).expect("the test URL");
    target
        .pool()
        .expect("a pool")
        .get()
        .await
        .expect("a connection")
}

/// A person `<id>@x.test` with a mail address (its email key) and a licence.
fn person(id: &str) -> Change {
    let upn = format!("{id}@x.test");
    let mut stored = fixtures::person(id, &upn);
    stored.person.mail = Some(upn.clone());
    stored.person.licences = vec!["sku-1".to_string()];
    fixtures::upsert(stored, Some(&upn), &upn)
}

fn batch(changes: Vec<Change>, checkpoint: Option<&str>) -> Batch {
    Batch {
        changes,
        checkpoints: checkpoint
            .map(|value| Checkpoint {
                key: "users.delta-link".to_string(),
                value: Some(value.to_string()),
            })
            .into_iter()
            .collect(),
        run: None,
    }
}

async fn count(client: &deadpool_postgres::Object, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .expect("a count")
        .get::<_, i64>(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_schema_is_created_once_and_reopening_changes_nothing() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let client = sql(&schema).await;
    let versions = "SELECT COUNT(*) FROM m365sync_schema_versions";
    let migrations = i64::from(crate::SCHEMA_VERSION);
    assert_eq!(
        count(&client, versions).await,
        migrations,
        "one row per migration"
    );
    let tables = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()";
    let created = count(&client, tables).await;
    assert_eq!(created, 22, "21 tables of the store and its versions");
    let again = PostgresStore::open(&schema.url).await.expect("reopening");
    PostgresStore::open_existing(&schema.url)
        .await
        .expect("opening for reading");
    assert_eq!(count(&client, versions).await, migrations);
    assert_eq!(count(&client, tables).await, created);
    assert_eq!(store.describe(), again.describe());
    assert_eq!(store.describe(), server_described());
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_an_empty_schema_creates_nothing_and_says_so() {
    let Some(schema) = testing::schema().await else {
        return;
    };
    let error = PostgresStore::open_existing(&schema.url)
        .await
        .expect_err("an empty schema");
    let StoreError::Empty(what) = &error else {
        panic!("expected Empty, got {error:?}");
    };
    assert_eq!(
        what,
        &format!("{} (schema {})", server_described(), schema.name)
    );
    let client = sql(&schema).await;
    let tables = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()";
    assert_eq!(count(&client, tables).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_schema_version_is_refused() {
    let Some((schema, _store)) = fresh().await else {
        return;
    };
    sql(&schema)
        .await
        .execute(
            "INSERT INTO m365sync_schema_versions VALUES (99, 'from the future', 'now')",
            &[],
        )
        .await
        .expect("a newer version");
    for error in [
        PostgresStore::open(&schema.url).await.expect_err("newer"),
        PostgresStore::open_existing(&schema.url)
            .await
            .expect_err("newer"),
    ] {
        let message = error.to_string();
        assert!(matches!(error, StoreError::Open(_)), "{error:?}");
        assert!(
            message.contains(&format!(
                "schema version 99, newer than this m365sync knows ({})",
                crate::SCHEMA_VERSION
            )),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stores_opening_a_new_schema_at_once_both_succeed() {
    let Some(schema) = testing::schema().await else {
        return;
    };
    let (a, b, c) = tokio::join!(
        PostgresStore::open(&schema.url),
        PostgresStore::open(&schema.url),
        PostgresStore::open(&schema.url)
    );
    a.expect("first");
    b.expect("second");
    c.expect("third");
    let client = sql(&schema).await;
    assert_eq!(
        count(&client, "SELECT COUNT(*) FROM m365sync_schema_versions").await,
        i64::from(crate::SCHEMA_VERSION),
        "each migration applied once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_path_without_a_schema_is_a_clear_error() {
    let url = format!(
        "{}?options=-c%20search_path%3Dm365sync_no_such_schema",
        testing::server_url()
    );
    let Some(_server) = testing::schema().await else {
        return;
    };
    let error = PostgresStore::open(&url).await.expect_err("no schema");
    assert!(
        error.to_string().contains("names no existing schema"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_heartbeat_keeps_a_lock_alive_while_a_transaction_is_open() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let store = store.with_lock_heartbeat(Duration::from_millis(100));
    let mut tenant = store.open_tenant("t1", Access::Sync).await.expect("locked");
    // A deferred batch keeps the run's transaction open; the heartbeat must not wait for it.
    tenant
        .commit(batch(vec![person("a")], None))
        .await
        .expect("deferred");
    let client = sql(&schema).await;
    client
        .execute("UPDATE tenant_locks SET heartbeat = 0", &[])
        .await
        .expect("an old heartbeat");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let beat = count(&client, "SELECT MAX(heartbeat) FROM tenant_locks").await;
    let now = m365sync_store::time::unix_now();
    assert!(now - beat <= 5, "heartbeat {beat}, now {now}");
    tenant.finish().await.expect("finished");
    assert_eq!(
        count(&client, "SELECT COUNT(*) FROM tenant_locks").await,
        0,
        "released"
    );
    assert_eq!(count(&client, "SELECT COUNT(*) FROM people").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_taken_over_fails_the_next_commit_and_commits_nothing() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut tenant = store.open_tenant("t1", Access::Sync).await.expect("locked");
    tenant
        .commit(batch(vec![person("a")], Some("first")))
        .await
        .expect("committed");
    tenant
        .commit(batch(vec![person("b")], None))
        .await
        .expect("deferred");
    // Another host found the lock stale and took it over.
    let client = sql(&schema).await;
    client
        .execute(
            "UPDATE tenant_locks SET pid = 1, host = 'elsewhere', token = 'theirs',
             heartbeat = $1",
            &[&m365sync_store::time::unix_now()],
        )
        .await
        .expect("a takeover");
    let error = tenant
        .commit(batch(vec![person("c")], Some("second")))
        .await
        .expect_err("taken over");
    assert!(
        matches!(&error, StorageError::Unavailable(m)
            if m.contains("the lock of tenant t1 was taken over by another process")),
        "{error:?}"
    );
    let reader = store
        .open_tenant("t1", Access::ReadOnly)
        .await
        .expect("read");
    let mut reader = reader;
    assert_eq!(
        reader.get_checkpoint("users.delta-link").await.unwrap(),
        Some("first".to_string())
    );
    let found = reader
        .find_people(&[
            PersonKey::ObjectId("a".into()),
            PersonKey::ObjectId("b".into()),
            PersonKey::ObjectId("c".into()),
        ])
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(Option::is_some).collect::<Vec<_>>(),
        [true, false, false]
    );
    // The store's release leaves the new holder's row alone.
    tenant.finish().await.expect("nothing left to commit");
    let holder = store.lock_holder("t1").await.unwrap().expect("still held");
    assert_eq!(holder.host, "elsewhere");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_is_refused_and_a_dropped_store_frees_the_tenant_at_once() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let first = store.open_tenant("t1", Access::Sync).await.expect("locked");
    let other = PostgresStore::open(&_schema.url)
        .await
        .expect("another handle");
    let error = other
        .open_tenant("t1", Access::Sync)
        .await
        .err()
        .expect("refused");
    let holder = error.lock_holder().expect("the holder").clone();
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(other.lock_holder("t1").await.unwrap(), Some(holder));
    drop(first);
    // The dropped store's release may still be on its way: the row counts as free anyway.
    let mut again = other
        .open_tenant("t1", Access::Sync)
        .await
        .expect("taken over");
    again.finish().await.expect("finished");
    assert_eq!(store.lock_holder("t1").await.unwrap(), None);
}

/// A tenant store with its round trips counted.
async fn counted_tenant(store: &PostgresStore, tenant: &str) -> crate::PostgresTenant {
    let place = store.describe();
    let lock = crate::lock::lock_tenant(&store.pool, &place, tenant, Duration::from_secs(30))
        .await
        .expect("locked");
    crate::PostgresTenant::new(store.pool.clone(), &place, tenant, Some(lock), false)
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_people_take_a_few_round_trips_per_batch() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut tenant = counted_tenant(&store, "big").await;
    let pages = 20;
    for page in 0..pages {
        let changes = (0..1000)
            .map(|i| person(&format!("p{page:02}-{i:04}")))
            .collect();
        // A checkpoint every fifth page, as a delta round's link.
        let checkpoint = (page % 5 == 4).then(|| format!("link {page}"));
        tenant
            .commit(batch(changes, checkpoint.as_deref()))
            .await
            .expect("committed");
    }
    tenant.finish().await.expect("finished");
    // A batch is sent in one round trip, a commit takes two (the lock's check, COMMIT),
    // and each statement is prepared once per connection.
    let trips = tenant.round_trips();
    assert!(trips <= 2 * pages, "{trips} round trips for {pages} pages");
    let client = sql(&schema).await;
    assert_eq!(count(&client, "SELECT COUNT(*) FROM people").await, 20_000);
    // A page of lookups is one round trip too, answered in the order asked.
    let keys: Vec<PersonKey> = (0..1000)
        .map(|i| match i % 3 {
            0 => PersonKey::ObjectId(format!("p07-{i:04}")),
            1 => PersonKey::Email(format!("p07-{i:04}@x.test")),
            _ => PersonKey::UserPrincipalName(format!("missing-{i}")),
        })
        .collect();
    let before = tenant.round_trips();
    let found = tenant.find_people(&keys).await.expect("found");
    assert_eq!(tenant.round_trips() - before, 1);
    for (i, answer) in found.iter().enumerate() {
        match i % 3 {
            2 => assert!(answer.is_none(), "key {i}"),
            _ => assert_eq!(
                answer.as_ref().map(|p| p.person.object_id.as_str()),
                Some(format!("p07-{i:04}").as_str())
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_with_a_nul_is_refused_naming_the_change() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let mut tenant = store.open_tenant("t1", Access::Sync).await.expect("locked");
    let Change::UpsertPerson(mut upsert) = person("a") else {
        unreachable!()
    };
    upsert.stored.person.department = Some("R\0D".to_string());
    let error = tenant
        .commit(batch(vec![Change::UpsertPerson(upsert)], Some("x")))
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, StorageError::Invalid(m)
            if m.contains("applying person a") && m.contains("department contains a NUL")),
        "{error:?}"
    );
    // The store keeps working.
    tenant
        .commit(batch(vec![person("b")], Some("y")))
        .await
        .expect("committed");
    tenant.finish().await.expect("finished");
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_never_show_the_password() {
    // Nothing listens on port 1: the connection is refused at once.
    let error = PostgresStore::open("postgres://app:s3cret@127.0.0.1:1/db")
        .await
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("postgres://app@127.0.0.1:1/db"),
        "{message}"
    );
    assert!(!message.contains("s3cret") && !format!("{error:?}").contains("s3cret"));
    // A server that accepts and never answers fails within the URL's connect timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let error = PostgresStore::open(&format!(
        "postgres://app:s3cret@127.0.0.1:{port}/db?connect_timeout=1"
    ))
    .await
    .expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = error.to_string();
    assert!(message.contains("did not answer"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    drop(silent);
    // A store whose URL has a password shows none (the test server trusts any).
    let Some(schema) = testing::schema().await else {
        return;
    };
    let Some((user, rest)) = schema.url.split_once('@') else {
        return;
    };
    if user.rsplit("//").next().is_some_and(|u| u.contains(':')) {
        // The server's URL has a password of its own: nothing to add.
        return;
    }
    let url = format!("{user}:s3cret@{rest}");
    let store = PostgresStore::open(&url).await.expect("opened");
    assert_eq!(store.describe(), server_described());
    assert!(!format!("{store:?}").contains("s3cret"), "{store:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmode_require_verifies_the_server_certificate() {
    let Some(schema) = testing::schema().await else {
        return;
    };
    // The test server's certificate (if it offers TLS at all) is not signed by a public
    // root: a verified connection is refused, and the error says it is TLS.
    let url = format!("{}&sslmode=require", schema.url);
    let error = PostgresStore::open(&url).await.expect_err("not verified");
    let message = error.to_string().to_lowercase();
    assert!(
        message.contains("tls") || message.contains("certificate"),
        "{message}"
    );
}
