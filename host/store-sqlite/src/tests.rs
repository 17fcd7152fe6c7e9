//! SQLite-specific tests: schema and migrations, index plans, deferred commits as another
//! connection sees them, the lock's heartbeat and takeover, what SQL errors become. The
//! contract itself is the conformance suite's (tests/conformance.rs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use m365sync_store::conformance::fixtures::{
    batch, commit_all, create, failed_run, person, saved, saved_as, upsert,
};
use m365sync_store::model::{FailedRun, LOCK_STALE_AFTER, RunStatus, host_name};
use m365sync_store::policy::MAX_DEFERRED_CHANGES;
use m365sync_store::read::{Cell, ExportKind, export_table};
use m365sync_store::time::unix_now;
use m365sync_store::{Access, Store, StoreError, TenantStore};
use m365sync_wit::StorageError;
use m365sync_wit::types::{PersonKey, PersonStatus};
use rusqlite::{Connection, OptionalExtension, params};

use crate::lock::{KEPT_BY_RESET, live_lock_holder, lock_tenant};
use crate::log::{get_run, list_runs};
use crate::schema::{
    PEOPLE_INDEXES, RUNS_TABLE, SCHEMA, SCHEMA_VERSION, key_hash, open_database, people_table,
};
use crate::{SqliteStore, SqliteTenant};

mod notices;
mod onboarding;
mod serve;

/// A tenant's store for a sync in the database at `path`, as `open_tenant` makes it, but
/// concrete: the tests reach its connection and its lock's heartbeat.
fn sync_tenant(path: &Path, tenant: &str) -> SqliteTenant {
    let gate = crate::gate::of(path);
    let lock = lock_tenant(path, tenant, &gate).expect("taking the lock");
    let connection = open_database(path).expect("opening the database");
    SqliteTenant::new(connection, tenant, Some(lock), gate, false)
}

fn database(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    dir.path().join(name)
}

/// People of tenant `t` as another connection (another process) sees them.
fn committed_people(path: &Path) -> i64 {
    Connection::open(path)
        .expect("opening")
        .query_row("SELECT COUNT(*) FROM people WHERE tenant = 't'", [], |r| {
            r.get(0)
        })
        .expect("counting")
}

async fn ids(store: &mut dyn TenantStore) -> Vec<String> {
    store.list_people_ids(None, 100).await.expect("listing")
}

#[tokio::test]
async fn batches_without_checkpoints_are_committed_with_the_next_that_has_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "s.db");
    let mut store = sync_tenant(&path, "t");
    store.commit(batch(vec![create("a")])).await.expect("a");
    store.commit(batch(vec![create("b")])).await.expect("b");
    // The store reads its own pending batches; others do not see them yet.
    assert_eq!(ids(&mut store).await, ["a", "b"]);
    assert_eq!(committed_people(&path), 0);
    store.commit(saved(vec![create("c")])).await.expect("c");
    assert_eq!(committed_people(&path), 3);
}

#[tokio::test]
async fn a_store_dropped_after_batches_without_checkpoints_commits_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "s.db");
    let mut store = sync_tenant(&path, "t");
    store.commit(batch(vec![create("a")])).await.expect("a");
    drop(store);
    assert_eq!(committed_people(&path), 1);
    let again = SqliteStore::open(&path).expect("opening");
    assert!(
        again.lock_holder("t").await.expect("reading").is_none(),
        "released"
    );
}

#[tokio::test]
async fn a_failing_batch_undoes_the_batches_since_the_last_checkpoint() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "s.db");
    let mut store = sync_tenant(&path, "t");
    store.commit(saved(vec![create("a")])).await.expect("a");
    store.commit(batch(vec![create("b")])).await.expect("b");
    store
        .connection
        .execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON people WHEN NEW.object_id = 'c'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .expect("a trigger");
    let error = store
        .commit(batch(vec![create("c")]))
        .await
        .expect_err("refused");
    // A constraint SQLite enforces refuses the data: invalid, naming the change.
    let StorageError::Invalid(message) = &error else {
        panic!("invalid: {error:?}");
    };
    assert!(
        message.contains("applying person c") && message.contains("refused"),
        "{message}"
    );
    // b was deferred in the transaction c rolled back.
    assert_eq!(ids(&mut store).await, ["a"]);
    assert_eq!(committed_people(&path), 1);
    // The store goes on: the next batches apply and commit.
    store
        .commit(saved(vec![create("b")]))
        .await
        .expect("b again");
    assert_eq!(committed_people(&path), 2);
}

#[tokio::test]
async fn a_deferred_batch_is_committed_at_once_while_another_writer_waits() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "w.db");
    let mut store = sync_tenant(&path, "t");
    // Alone, a batch without checkpoints waits in the open transaction.
    store
        .commit(batch(vec![create("a")]))
        .await
        .expect("a deferred");
    assert_eq!(committed_people(&path), 0);
    // Another writer of this process (another tenant's store, the queue) waits for the
    // file's gate, which the open transaction holds.
    let gate = crate::gate::of(&path);
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move {
            let _writing = gate.lock().await;
        }
    });
    while !gate.is_awaited() {
        tokio::task::yield_now().await;
    }
    // The next batch is committed with it, and the waiter gets in.
    store
        .commit(batch(vec![create("b")]))
        .await
        .expect("b committed");
    assert_eq!(committed_people(&path), 2);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter got the gate")
        .expect("the waiter ran");
    assert!(!gate.is_awaited());
    store.finish().await.expect("finishing");
}

#[tokio::test]
async fn a_large_run_of_batches_is_committed_every_so_many_changes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "s.db");
    let mut store = sync_tenant(&path, "t");
    let per_batch = 1000;
    let batches = MAX_DEFERRED_CHANGES / per_batch + 1;
    for b in 0..batches {
        let changes = (0..per_batch)
            .map(|i| create(&format!("p{b:03}-{i:04}")))
            .collect();
        store.commit(batch(changes)).await.expect("a batch");
    }
    // Committed once the limit was reached at the latest (the deferral's time bound may
    // have committed earlier ones too: policy.rs tests the bounds with a fixed clock).
    let committed = i64::try_from(MAX_DEFERRED_CHANGES / per_batch * per_batch).expect("small");
    assert!(committed_people(&path) >= committed);
    store.finish().await.expect("finishing");
    let all = i64::try_from(batches * per_batch).expect("small");
    assert_eq!(committed_people(&path), all);
}

#[test]
fn key_hash_is_pinned() {
    // Stored in every row's index columns: a change would break every lookup.
    // Worked out apart from the code (FNV-1a 64, MurmurHash3's fmix64, 16 + 48 bits).
    assert_eq!(key_hash("", ""), 0xefd0_efd0_1f60_ba99_u64.cast_signed());
    assert_eq!(key_hash("t", "a"), 0xce03_82a2_a958_a9be_u64.cast_signed());
    // Tenants whose keys differ in the last character only still differ in their bits.
    assert_eq!(
        key_hash("tenant-001", "x"),
        0xc033_06a4_f950_5be8_u64.cast_signed()
    );
    assert_eq!(
        key_hash("tenant-002", "x"),
        0xb439_06a4_f950_5be8_u64.cast_signed()
    );
}

/// 64-bit FNV-1a of the key alone: the key hash of schemas 3 to 8.
fn schema_8_key_hash(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.cast_signed()
}

#[tokio::test]
async fn a_tenants_key_hashes_lie_together_in_the_shared_indexes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "tenants.db");
    let store = SqliteStore::open(&path).expect("creating");
    for tenant in ["contoso", "fabrikam"] {
        let people = (0..50)
            .map(|i| {
                let upn = format!("user{i}@{tenant}.com");
                upsert(person(&format!("{tenant}-{i}"), &upn), Some(&upn), &upn)
            })
            .collect();
        commit_all(&store, tenant, vec![saved(people)]).await;
    }
    let connection = open_database(&path).expect("opening");
    // Each tenant's hashes share their top 16 bits, and the two tenants' differ: in an
    // index ordered by hash, a tenant's entries are one run, not spread among the others'.
    let tops: Vec<(String, i64, i64)> = connection
        .prepare(
            "SELECT tenant, COUNT(DISTINCT (upn_hash >> 48) & 65535),
                    MIN((upn_hash >> 48) & 65535) FROM people GROUP BY tenant ORDER BY tenant",
        )
        .expect("preparing")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("querying")
        .collect::<rusqlite::Result<_>>()
        .expect("reading");
    assert_eq!(tops.len(), 2);
    assert!(
        tops.iter().all(|(_, distinct, _)| *distinct == 1),
        "{tops:?}"
    );
    assert_ne!(tops[0].2, tops[1].2, "{tops:?}");
}

#[tokio::test]
async fn a_version_8_database_hashes_its_keys_again_and_finds_people_by_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v8.db");
    {
        let store = SqliteStore::open(&path).expect("creating");
        let ann = upsert(person("a", "Ann@X.com"), Some("ann@x.com"), "ann@x.com");
        commit_all(&store, "t", vec![saved(vec![ann])]).await;
    }
    {
        // The row and version as schema 8 wrote them.
        let connection = Connection::open(&path).expect("opening");
        connection
            .execute(
                "UPDATE people SET mail_hash = ?1, upn_hash = ?1",
                params![schema_8_key_hash("ann@x.com")],
            )
            .expect("hashed as schema 8");
        connection
            .execute_batch("PRAGMA user_version = 8")
            .expect("version 8");
    }
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let (version, mail_hash, upn_hash): (i64, i64, i64) = connection
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), mail_hash, upn_hash
             FROM people",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the person");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(
        (mail_hash, upn_hash),
        (key_hash("t", "ann@x.com"), key_hash("t", "ann@x.com"))
    );
    let indexes: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'
             AND name IN ('people_mail', 'people_upn', 'people_manager')",
            [],
            |r| r.get(0),
        )
        .expect("counting");
    assert_eq!(indexes, 3);
    let mut t = store
        .open_tenant("t", Access::ReadOnly)
        .await
        .expect("opening");
    let found = t
        .find_people(&[
            PersonKey::Email("ann@x.com".into()),
            PersonKey::UserPrincipalName("ann@x.com".into()),
        ])
        .await
        .expect("finding");
    let ids: Vec<Option<&str>> = found
        .iter()
        .map(|p| p.as_ref().map(|p| p.person.object_id.as_str()))
        .collect();
    assert_eq!(ids, [Some("a"), Some("a")]);
}

/// The usage table as schemas 8 and 9 had it: counts a JSON object per row.
const USAGE_V9: &str = "CREATE TABLE usage (
    tenant TEXT NOT NULL, object_id TEXT NOT NULL, workload TEXT NOT NULL,
    period_days INTEGER NOT NULL, last_activity TEXT, counts TEXT NOT NULL,
    report_refreshed TEXT NOT NULL);
    CREATE UNIQUE INDEX usage_key ON usage (tenant, object_id, workload, period_days);
    CREATE INDEX usage_report ON usage (tenant, workload, period_days);";

/// A schema-9 database at `path` holding these usage rows (tenant, object id, workload,
/// period, counts as schema 9 wrote them).
fn schema_9_usage(path: &Path, rows: &[(&str, &str, &str, i64, &str)]) {
    SqliteStore::open(path).expect("creating");
    let c = Connection::open(path).expect("opening");
    c.execute_batch(&format!(
        "BEGIN; DROP TABLE usage; DROP TABLE count_names; {USAGE_V9}"
    ))
    .expect("schema 9's usage table");
    for (tenant, id, workload, period, counts) in rows {
        c.execute(
            "INSERT INTO usage VALUES (?1, ?2, ?3, ?4, '2026-12-01', ?5, '2026-12-05')",
            params![tenant, id, workload, period, counts],
        )
        .expect("a usage row");
    }
    c.execute_batch("PRAGMA user_version = 9; COMMIT;")
        .expect("version 9");
}

#[tokio::test]
async fn a_version_9_database_keeps_its_usage_counts_with_each_name_stored_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v9.db");
    let max = r#"{"read-count":3,"send-count":18446744073709551615}"#;
    let teams = r#"{"call-count":2,"read-count":1}"#;
    schema_9_usage(
        &path,
        &[
            ("t", "a", "exchange", 7, max),
            ("t", "b", "exchange", 7, "{}"),
            ("u", "a", "teams", 30, teams),
        ],
    );
    let store = SqliteStore::open(&path).expect("migrating");
    let exported = export_table(&store, ExportKind::Usage, None)
        .await
        .expect("exporting");
    let counts: Vec<(String, String, String)> = exported
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1], &r[6]) {
            (Cell::Text(t), Cell::Text(id), Cell::Text(counts)) => {
                (t.clone(), id.clone(), counts.clone())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let row = |t: &str, id: &str, counts: &str| (t.to_owned(), id.to_owned(), counts.to_owned());
    assert_eq!(
        counts,
        [
            row("t", "a", max),
            row("t", "b", "{}"),
            row("u", "a", teams)
        ]
    );
    let c = open_database(&path).expect("opening");
    let (version, names, blobs, indexes): (i64, i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    (SELECT COUNT(*) FROM count_names),
                    (SELECT COUNT(*) FROM usage WHERE typeof(counts) = 'blob'),
                    (SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'
                     AND tbl_name = 'usage' AND name IN ('usage_key', 'usage_report'))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("reading the schema");
    assert_eq!((version, names, blobs, indexes), (SCHEMA_VERSION, 3, 3, 2));
}

#[test]
fn usage_counts_that_are_not_counts_stop_the_migration_and_keep_the_database() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v9.db");
    schema_9_usage(
        &path,
        &[
            ("t", "a", "exchange", 7, r#"{"send-count":1}"#),
            ("t", "b", "teams", 30, r#"{"call-count":-1}"#),
        ],
    );
    let error = match SqliteStore::open(&path) {
        Ok(_) => panic!("the migration fails"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("tenant t, person b, teams over 30 days")
            && error.contains("from schema version 9"),
        "{error}"
    );
    let c = Connection::open(&path).expect("opening");
    let (version, rows): (i64, i64) = c
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    (SELECT COUNT(*) FROM usage WHERE typeof(counts) = 'text')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("reading");
    assert_eq!((version, rows), (9, 2));
}

/// The people table's indexes as schema 3 had them.
const PEOPLE_INDEXES_V3: &str = "CREATE INDEX people_mail ON people (mail_hash);
    CREATE INDEX people_upn ON people (upn_hash);";

/// The people table and its indexes as schemas 1 and 2 had them.
const PEOPLE_V2: &str = "CREATE TABLE people (
    tenant TEXT NOT NULL, object_id TEXT NOT NULL, user_principal_name TEXT NOT NULL,
    mail TEXT, given_name TEXT, surname TEXT, display_name TEXT, department TEXT,
    job_title TEXT, company_name TEXT, country TEXT, usage_location TEXT,
    office_location TEXT, account_enabled INTEGER NOT NULL, user_type TEXT NOT NULL,
    licences TEXT NOT NULL, created_at TEXT, manager_id TEXT, hire_date TEXT,
    proxy_addresses TEXT NOT NULL, last_sign_in TEXT, status TEXT NOT NULL,
    fingerprint TEXT NOT NULL, mail_key TEXT, upn_key TEXT NOT NULL,
    PRIMARY KEY (tenant, object_id)) WITHOUT ROWID;
    CREATE INDEX people_mail ON people (tenant, mail_key);
    CREATE INDEX people_upn ON people (tenant, upn_key);";

/// A report as the first sync logs stored it (version 1 of the log's entry).
const VERSION_1_REPORT: &str = r#"{"tenant":"t","mode":"full","started_at":"2025-01-01T00:00:00Z",
    "elapsed_ms":1200,"requests":7,"retries":1,"dry_run":false,"data_sets":[]}"#;

/// The keys schema 1 computed: trimmed, every trailing dot dropped, lower-cased.
fn version_1_key(value: &str) -> String {
    value.trim().trim_end_matches('.').to_lowercase()
}

/// The schema of version 1, as m365sync 0.1 created it (people, runs and the rest).
fn version_1_database(path: &Path) {
    let connection = Connection::open(path).expect("creating");
    let v1_runs = "CREATE TABLE runs (
        id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, started_at TEXT NOT NULL,
        mode TEXT NOT NULL, elapsed_ms INTEGER NOT NULL, requests INTEGER NOT NULL,
        retries INTEGER NOT NULL, dry_run INTEGER NOT NULL, report TEXT NOT NULL);
        CREATE INDEX runs_tenant ON runs (tenant, id);";
    connection
        .execute_batch(&format!(
            "BEGIN; {PEOPLE_V2} {SCHEMA} {v1_runs} PRAGMA user_version = 1; COMMIT;"
        ))
        .expect("schema 1");
    let insert = "INSERT INTO people (tenant, object_id, user_principal_name, mail,
        account_enabled, user_type, licences, proxy_addresses, status, fingerprint, mail_key,
        upn_key) VALUES ('t', ?1, ?2, ?3, 1, 'Member', '[]', '[]', 'active', 'f', ?4, ?5)";
    for (id, upn, mail) in [
        ("a", "Ann@X.com", Some("\u{200B}Ann@X.com")),
        ("b", "mailto:Bob@X.com", Some("mailto:Bob@X.com")),
        ("c", "Cy@X.com", None),
    ] {
        let mail_key = mail.map(version_1_key);
        connection
            .execute(insert, params![id, upn, mail, mail_key, version_1_key(upn)])
            .expect("a person of schema 1");
    }
    connection
        .execute(
            "INSERT INTO runs (tenant, started_at, mode, elapsed_ms, requests, retries, dry_run, report)
             VALUES ('t', '2025-01-01T00:00:00Z', 'full', 1200, 7, 1, 0, ?1)",
            params![VERSION_1_REPORT],
        )
        .expect("a run of schema 1");
}

#[tokio::test]
async fn a_version_1_database_migrates_and_keeps_its_rows_and_keys() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v1.db");
    version_1_database(&path);
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("the version");
    assert_eq!(version, SCHEMA_VERSION);
    // The old run is kept, as a successful one, with its report.
    let runs = list_runs(&connection, Some("t"), 10).expect("listing");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "ok");
    assert_eq!(
        (runs[0].requests, runs[0].retries, runs[0].elapsed_ms),
        (Some(7), Some(1), Some(1200))
    );
    assert_eq!(
        runs[0].report.as_ref().map(|r| r.tenant.as_str()),
        Some("t")
    );
    // People keep the keys they were stored with, hashed into the new indexes: found by
    // them until the engine writes the person with its own.
    let mut t = store
        .open_tenant("t", Access::Sync)
        .await
        .expect("opening t");
    let keys = [
        PersonKey::Email("\u{200b}ann@x.com".into()),
        PersonKey::UserPrincipalName("ann@x.com".into()),
        PersonKey::Email("mailto:bob@x.com".into()),
        PersonKey::UserPrincipalName("cy@x.com".into()),
        PersonKey::Email("ann@x.com".into()),
    ];
    let found = t.find_people(&keys).await.expect("finding");
    let found: Vec<Option<String>> = (found.into_iter())
        .map(|p| p.map(|p| p.person.object_id))
        .collect();
    let id = |id: &str| Some(id.to_string());
    assert_eq!(found, [id("a"), id("a"), id("b"), id("c"), None]);
    t.commit(saved(vec![upsert(
        person("a", "Ann@X.com"),
        Some("ann@x.com"),
        "ann@x.com",
    )]))
    .await
    .expect("the engine writes a");
    let found = t
        .find_people(&[PersonKey::Email("ann@x.com".into())])
        .await
        .expect("finding");
    assert_eq!(
        found[0].as_ref().map(|p| p.person.object_id.as_str()),
        Some("a")
    );
    t.finish().await.expect("finishing");
    // A failed run can be recorded now, and the index on runs is there.
    store
        .record_failed_run("t", &failed_run())
        .await
        .expect("recording");
    let index: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_tenant'
             AND tbl_name = 'runs'",
            [],
            |r| r.get(0),
        )
        .expect("counting");
    assert_eq!(index, 1);
    drop(store);
    // Opening again is a no-op.
    SqliteStore::open(&path).expect("opening again");
    assert_eq!(list_runs(&connection, None, 10).expect("listing").len(), 2);
}

#[tokio::test]
async fn version_2_people_become_a_rowid_table_with_their_rows_and_indexes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v2.db");
    {
        let connection = Connection::open(&path).expect("creating");
        connection
            .execute_batch(&format!(
                "BEGIN; {PEOPLE_V2} {SCHEMA} {RUNS_TABLE} PRAGMA user_version = 2; COMMIT;"
            ))
            .expect("schema 2");
        connection
            .execute(
                "INSERT INTO people (tenant, object_id, user_principal_name, mail,
                 account_enabled, user_type, licences, proxy_addresses, status, fingerprint,
                 mail_key, upn_key) VALUES ('t', 'a', 'Ann@X.com', 'ann@x.com', 1, 'Member',
                 '[\"sku\"]', '[]', 'flagged', 'f', 'ann@x.com', 'ann@x.com')",
                [],
            )
            .expect("a person of schema 2");
    }
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let (version, sql): (i64, String) = connection
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), sql
             FROM sqlite_master WHERE name = 'people'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the people table");
    assert_eq!(version, SCHEMA_VERSION);
    assert!(!sql.to_uppercase().contains("WITHOUT ROWID"), "{sql}");
    let mut t = store
        .open_tenant("t", Access::ReadOnly)
        .await
        .expect("opening");
    let found = t
        .find_people(&[
            PersonKey::ObjectId("a".into()),
            PersonKey::Email("ann@x.com".into()),
            PersonKey::UserPrincipalName("ann@x.com".into()),
        ])
        .await
        .expect("finding");
    for f in &found {
        let f = f.as_ref().expect("found");
        assert_eq!(f.person.licences, ["sku"]);
        assert_eq!(f.status, PersonStatus::Flagged);
    }
    let indexes: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'people'
             AND name IN ('people_mail', 'people_upn')",
            [],
            |r| r.get(0),
        )
        .expect("counting");
    assert_eq!(indexes, 2);
}

/// Whether the people table has its manager index, and the plan of a direct-reports
/// lookup.
fn manager_index_and_plan(path: &Path) -> (bool, String) {
    let c = open_database(path).expect("opening");
    let found: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'people'
             AND name = 'people_manager'",
            [],
            |r| r.get(0),
        )
        .expect("counting");
    // The store's own query, as it runs it.
    let plan: Vec<String> = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT object_id {}",
            crate::tenant::DIRECT_REPORTS
        ))
        .and_then(|mut s| {
            s.query_map(["t", "m"], |r| r.get::<_, String>(3))?
                .collect()
        })
        .expect("the plan");
    (found == 1, plan.join("; "))
}

#[tokio::test]
async fn direct_reports_are_found_by_an_index_on_manager_id_in_new_and_migrated_databases() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fresh = database(&dir, "new.db");
    SqliteStore::open(&fresh).expect("creating");
    let (found, plan) = manager_index_and_plan(&fresh);
    assert!(found, "a new database has people_manager");
    assert!(plan.contains("people_manager"), "{plan}");

    // A schema-3 database (people with its key-hash indexes, no manager index).
    let path = database(&dir, "v3.db");
    {
        let connection = Connection::open(&path).expect("creating");
        connection
            .execute_batch(&format!(
                "BEGIN; {} {PEOPLE_INDEXES_V3} {SCHEMA} {RUNS_TABLE} \
                 PRAGMA user_version = 3; COMMIT;",
                people_table("people")
            ))
            .expect("schema 3");
        connection
            .execute(
                "INSERT INTO people (tenant, object_id, user_principal_name, account_enabled,
                 user_type, licences, proxy_addresses, status, fingerprint, upn_key,
                 upn_hash, manager_id) VALUES ('t', 'a', 'a@x.com', 1, 'Member', '[]', '[]',
                 'active', 'f', 'a@x.com', 0, 'm')",
                [],
            )
            .expect("a person of schema 3");
    }
    let store = SqliteStore::open(&path).expect("migrating");
    let (found, plan) = manager_index_and_plan(&path);
    assert!(found, "schema 3 to 4 adds people_manager");
    assert!(plan.contains("people_manager"), "{plan}");
    let mut t = store
        .open_tenant("t", Access::ReadOnly)
        .await
        .expect("opening");
    let reports = t.find_direct_reports("m").await.expect("finding");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].person.object_id, "a");
}

#[test]
fn a_newer_schema_is_refused_with_the_path() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "new.db");
    Connection::open(&path)
        .and_then(|c| c.execute_batch("PRAGMA user_version = 99"))
        .expect("a newer database");
    for opened in [SqliteStore::open(&path), SqliteStore::open_existing(&path)] {
        let error = opened.expect_err("refused").to_string();
        assert!(error.contains("new.db") && error.contains("99"), "{error}");
    }
}

/// A schema-3 database with one logged run, as m365sync made it before schema 4.
fn version_3_database(path: &Path) {
    let v3_runs = RUNS_TABLE.replace(
        "'ok', 'failed', 'interrupted', 'refused', 'reset'",
        "'ok', 'failed'",
    );
    let connection = Connection::open(path).expect("creating");
    connection
        .execute_batch(&format!(
            "BEGIN; {} {PEOPLE_INDEXES} {SCHEMA} {v3_runs} PRAGMA user_version = 3; COMMIT;",
            people_table("people")
        ))
        .expect("schema 3");
    connection
        .execute(
            "INSERT INTO runs (tenant, started_at, mode, status, dry_run, error_kind, error)
             VALUES ('t', '2025-01-01T00:00:00Z', 'full', 'failed', 0, 'auth', 'no')",
            [],
        )
        .expect("a run of schema 3");
}

#[tokio::test]
async fn version_3_runs_take_the_new_statuses_and_keep_their_rows() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "v3.db");
    version_3_database(&path);
    let store = SqliteStore::open(&path).expect("migrating");
    let connection = open_database(&path).expect("opening");
    let runs = list_runs(&connection, Some("t"), 10).expect("listing");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].error_kind.as_deref(), Some("auth"));
    for status in [RunStatus::Interrupted, RunStatus::Refused] {
        let run = FailedRun {
            status,
            ..failed_run()
        };
        let id = store.record_failed_run("t", &run).await.expect("recording");
        let id = id.expect("recorded at once");
        let run = get_run(&connection, id).expect("reading").expect("the run");
        assert_eq!(run.status, status.name());
    }
    let index: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_tenant'",
            [],
            |r| r.get(0),
        )
        .expect("counting");
    assert_eq!(index, 1, "the sync log keeps its index");
    assert!(
        live_lock_holder(&connection, "t")
            .expect("reading")
            .is_none()
    );
}

fn heartbeat_of(path: &Path, tenant: &str) -> Option<i64> {
    open_database(path)
        .expect("opening")
        .query_row(
            "SELECT heartbeat FROM tenant_locks WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()
        .expect("reading the lock")
}

#[tokio::test]
async fn a_heartbeat_missed_during_the_runs_write_transaction_rides_on_its_next_commit() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "beat.db");
    let gate = crate::gate::of(&path);
    let lock = lock_tenant(&path, "t", &gate).expect("locking");
    let beat = lock.beat().clone();
    let connection = open_database(&path).expect("opening");
    let mut store = SqliteTenant::new(connection, "t", Some(lock), gate, false);
    // The run's write transaction is open (a round's pages wait for its link) and the
    // heartbeat it shuts out grows old: another host would soon take the lock over.
    store.commit(batch(vec![create("a")])).await.expect("a");
    let old = unix_now() - LOCK_STALE_AFTER.as_secs().cast_signed() + 5;
    let other = Connection::open(&path).expect("opening");
    other
        .busy_timeout(Duration::from_millis(50))
        .expect("a timeout");
    let age = |c: &Connection| {
        c.execute(
            "UPDATE tenant_locks SET heartbeat = ?1 WHERE tenant = 't'",
            params![old],
        )
    };
    assert!(
        age(&other).is_err(),
        "the open transaction shuts other writers out"
    );
    // Its beat is left due, as the thread leaves it; make the row old meanwhile.
    store.flush().expect("flushing");
    age(&other).expect("aging the heartbeat");
    beat.due.store(true, Ordering::Release);
    store.commit(saved(vec![create("b")])).await.expect("b");
    let written = heartbeat_of(&path, "t").expect("the lock");
    assert!(
        written >= unix_now() - 5,
        "the commit wrote the heartbeat: {written}"
    );
    assert!(!beat.due.load(Ordering::Acquire));
}

#[tokio::test]
async fn a_run_whose_lock_was_taken_over_commits_nothing_more() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "taken.db");
    let gate = crate::gate::of(&path);
    let lock = lock_tenant(&path, "t", &gate).expect("locking");
    let beat = lock.beat().clone();
    let connection = open_database(&path).expect("opening");
    let mut store = SqliteTenant::new(connection, "t", Some(lock), gate, false);
    store.commit(saved(vec![create("a")])).await.expect("a");
    // Another host took the lock over (this one's heartbeat looked stale to it).
    open_database(&path)
        .expect("opening")
        .execute(
            "UPDATE tenant_locks SET pid = 1, host = 'elsewhere.example', since = 'later'
             WHERE tenant = 't'",
            [],
        )
        .expect("taking over");
    beat.due.store(true, Ordering::Release);
    let Err(StorageError::Unavailable(message)) = store.commit(saved(vec![create("b")])).await
    else {
        panic!("the commit is refused");
    };
    assert!(message.contains("taken over"), "{message}");
    assert_eq!(ids(&mut store).await, ["a"], "b is not committed");
    drop(store);
    let holder = live_lock_holder(&open_database(&path).expect("opening"), "t")
        .expect("reading")
        .expect("the new holder keeps its lock");
    assert_eq!(holder.host, "elsewhere.example");
}

#[tokio::test]
async fn a_lock_whose_holder_is_gone_is_taken_over() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "stale.db");
    let store = SqliteStore::open(&path).expect("creating");
    // A pid no process has on this host (beyond Linux's pid_max), and a holder on
    // another host silent for longer than LOCK_STALE_AFTER.
    let stale = LOCK_STALE_AFTER.as_secs().cast_signed() + 60;
    open_database(&path)
        .expect("opening")
        .execute_batch(&format!(
            "INSERT INTO tenant_locks VALUES ('t', 2147483646, '{}', 'then', {});
             INSERT INTO tenant_locks VALUES ('u', 1, 'elsewhere.example', 'then', {});
             INSERT INTO tenant_locks VALUES ('v', 1, 'elsewhere.example', 'now', {});",
            host_name(),
            unix_now(),
            unix_now() - stale,
            unix_now()
        ))
        .expect("old locks");
    for tenant in ["t", "u"] {
        let opened = store.open_tenant(tenant, Access::Sync).await;
        assert!(
            opened.is_ok(),
            "a gone holder's lock of {tenant} is taken over"
        );
        let holder = store
            .lock_holder(tenant)
            .await
            .expect("reading")
            .expect("held");
        assert_eq!(holder.pid, std::process::id());
    }
    let Err(StoreError::Locked { holder, .. }) = store.open_tenant("v", Access::Sync).await else {
        panic!("a live holder elsewhere keeps its lock");
    };
    assert_eq!(holder.host, "elsewhere.example");
}

#[tokio::test]
async fn a_reset_empties_every_table_with_a_tenant_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "reset.db");
    let store = SqliteStore::open(&path).expect("creating");
    for tenant in ["t", "u"] {
        commit_all(&store, tenant, vec![saved(vec![create("a")])]).await;
    }
    let outcome = store.reset_tenant("t").await.expect("resetting");
    let deleted: HashMap<_, _> = outcome.deleted.iter().cloned().collect();
    for kept in KEPT_BY_RESET {
        assert!(!deleted.contains_key(*kept), "{kept} is kept");
    }
    let connection = open_database(&path).expect("opening");
    let tables: Vec<String> = connection
        .prepare(
            "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'
             AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c WHERE c.name = 'tenant')",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("the tables");
    for table in tables
        .iter()
        .filter(|t| !KEPT_BY_RESET.contains(&t.as_str()))
    {
        assert!(deleted.contains_key(table), "{table} is reset");
        let left: i64 = connection
            .query_row(
                &format!("SELECT COUNT(*) FROM \"{table}\" WHERE tenant = 't'"),
                [],
                |r| r.get(0),
            )
            .expect("counting");
        assert_eq!(left, 0, "{table}");
    }
    assert_eq!(committed_people(&path), 0);
    let u_people: i64 = connection
        .query_row("SELECT COUNT(*) FROM people WHERE tenant = 'u'", [], |r| {
            r.get(0)
        })
        .expect("counting");
    assert_eq!(u_people, 1);
}

#[tokio::test]
async fn a_value_sqlite_would_read_back_wrong_is_refused_before_it_is_written() {
    // The store's rule (m365sync_store::model::stored_integer): SQLite's INTEGER is
    // signed, so a u64 above i64::MAX would come back negative.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "values.db");
    let mut store = sync_tenant(&path, "t");
    let mailbox = m365sync_store::conformance::fixtures::mailbox("m", 1 << 63, 1);
    let error = store
        .commit(saved(vec![mailbox]))
        .await
        .expect_err("refused");
    assert!(matches!(error, StorageError::Invalid(_)), "{error:?}");
    let rows: i64 = store
        .connection
        .query_row("SELECT COUNT(*) FROM mailboxes", [], |r| r.get(0))
        .expect("counting");
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn an_export_of_a_value_no_m365sync_writes_names_its_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = database(&dir, "bad.db");
    let store = SqliteStore::open(&path).expect("creating");
    commit_all(&store, "t", vec![saved_as(vec![create("a")], "users", "1")]).await;
    let connection = open_database(&path).expect("opening");
    connection
        .execute(
            "UPDATE people SET department = x'ff00' WHERE tenant = 't'",
            [],
        )
        .expect("a blob where text belongs");
    let error = export_table(&store, ExportKind::People, Some("t"))
        .await
        .expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("department") && message.contains("blob"),
        "{message}"
    );
}

/// The columns a statement's `WHERE` tests for equality (`a = ?1 AND b = ?2`).
fn filtered_columns(sql: &str) -> Vec<&str> {
    let (_, filter) = sql.split_once("WHERE").expect("a WHERE clause");
    filter
        .split(" AND ")
        .map(|test| test.split('=').next().expect("a test").trim())
        .collect()
}

/// Every column each of the per-row deletes filters by is one its plan searches an index
/// on: a person's deletion and a report's replacement run once per deleted person or
/// report in a sync, and an index on the tenant alone would have each read every row of
/// the tenant's table.
fn assert_deletes_search_indexes(path: &Path) {
    let c = open_database(path).expect("opening");
    for sql in crate::tenant::PERSON_DELETES
        .iter()
        .chain(crate::tenant::REPORT_DELETES.iter())
    {
        let columns = filtered_columns(sql);
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .and_then(|mut s| {
                let parameters: Vec<&str> = vec!["x"; columns.len()];
                s.query_map(rusqlite::params_from_iter(parameters), |r| {
                    r.get::<_, String>(3)
                })?
                .collect()
            })
            .expect("the plan");
        let plan = plan.join("; ");
        for column in columns {
            assert!(
                plan.contains(&format!("{column}=?")),
                "{sql}: searches no index on {column}: {plan}"
            );
        }
    }
}

#[tokio::test]
async fn per_row_deletes_search_indexes_in_new_and_migrated_databases() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fresh = database(&dir, "new.db");
    SqliteStore::open(&fresh).expect("creating");
    assert_deletes_search_indexes(&fresh);

    // A schema-7 database: usage as a WITHOUT ROWID table keyed by person, memberships
    // without an index by member; one usage row.
    let path = database(&dir, "v7.db");
    SqliteStore::open(&path).expect("creating");
    {
        let c = Connection::open(&path).expect("opening");
        c.execute_batch(
            "BEGIN;
             DROP TABLE usage; DROP INDEX IF EXISTS group_members_member;
             CREATE TABLE usage (
                 tenant TEXT NOT NULL, object_id TEXT NOT NULL, workload TEXT NOT NULL,
                 period_days INTEGER NOT NULL, last_activity TEXT, counts TEXT NOT NULL,
                 report_refreshed TEXT NOT NULL,
                 PRIMARY KEY (tenant, object_id, workload, period_days)) WITHOUT ROWID;
             INSERT INTO usage VALUES ('t', 'a', 'teams', 30, '2026-12-01', '{\"calls\":2}',
                                       '2026-12-05');
             PRAGMA user_version = 7;
             COMMIT;",
        )
        .expect("schema 7");
    }
    SqliteStore::open(&path).expect("migrating");
    assert_deletes_search_indexes(&path);
    let c = open_database(&path).expect("opening");
    let kept: (i64, Vec<u8>, String) = c
        .query_row(
            "SELECT rowid, counts, last_activity FROM usage
             WHERE tenant = 't' AND object_id = 'a' AND workload = 'teams' AND period_days = 30",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the usage row, in a rowid table");
    let names = crate::counts::names_by_id(&c).expect("the count names");
    assert_eq!(
        crate::counts::decode(&kept.1, &names),
        Ok(vec![("calls".to_owned(), 2)])
    );
    assert_eq!(kept.2, "2026-12-01");
}
