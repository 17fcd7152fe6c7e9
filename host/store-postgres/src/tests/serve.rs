//! PostgreSQL-specific tests of what `serve` shares: the migration from schema 1, change
//! feed cursors in commit order across concurrent writers, and claims by many workers at
//! once keeping the limits.

use std::collections::BTreeSet;

use m365sync_store::conformance::fixtures::{batch, create, saved};
use m365sync_store::conformance::serve_fixtures::{APP, job, request};
use m365sync_store::feed::ChangeFeed;
use m365sync_store::queue::{ClaimRequest, JobKind, Queue, ServedTenant};
use m365sync_store::{Access, Store};

use super::{count, fresh, sql};
use crate::PostgresStore;

/// Every event after `cursor`, paged as a consumer pages; the new cursor.
async fn read_on(store: &PostgresStore, cursor: &mut i64, seen: &mut Vec<(i64, String)>) {
    loop {
        let page = store
            .changes(*cursor, 3, None)
            .await
            .expect("reading the feed");
        let Some(last) = page.last() else {
            return;
        };
        *cursor = last.cursor;
        seen.extend(page.into_iter().map(|e| (e.cursor, e.object_id)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_1_schema_gains_the_serve_tables_and_keeps_its_rows() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut t = store.open_tenant("t", Access::Sync).await.expect("opening");
    t.commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    t.finish().await.expect("finishing");
    // Back to schema 1: its tables are unchanged by schemas 2 to 4, which only add these.
    let client = sql(&schema).await;
    client
        .batch_execute(
            "DROP TABLE served_tenants, jobs, workers, webhooks, change_events,
                        consent_requests, registered_tenants, notices;
             DELETE FROM m365sync_schema_versions WHERE version >= 2;",
        )
        .await
        .expect("a schema-1 store");
    drop(store);
    let store = PostgresStore::open(&schema.url).await.expect("migrating");
    let versions = "SELECT COUNT(*) FROM m365sync_schema_versions";
    assert_eq!(count(&client, versions).await, 4);
    assert_eq!(count(&client, "SELECT COUNT(*) FROM people").await, 1);
    assert_eq!(store.last_cursor().await.expect("reading the feed"), 0);
    let served = [ServedTenant {
        tenant: "t".to_string(),
        app: APP.to_string(),
    }];
    store.serve_tenants(&served).await.expect("serving");
    store
        .enqueue(&job("t", JobKind::Manual, 0))
        .await
        .expect("queueing");
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_follow_commit_order_when_the_first_writer_commits_last() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let reader = store.clone();
    let mut first = store
        .open_tenant("a", Access::Sync)
        .await
        .expect("opening a");
    let mut second = store
        .open_tenant("b", Access::Sync)
        .await
        .expect("opening b");
    // The first writer applies its batch first and keeps its transaction open (a delta
    // round's pages wait for the round's link); the second applies later.
    first.commit(batch(vec![create("a1")])).await.expect("a1");
    second.commit(batch(vec![create("b1")])).await.expect("b1");
    let (mut cursor, mut seen) = (0, Vec::new());
    read_on(&reader, &mut cursor, &mut seen).await;
    assert!(seen.is_empty(), "nothing is committed yet: {seen:?}");
    // The second commits first; a reader pages on past its events.
    second.commit(saved(vec![create("b2")])).await.expect("b2");
    read_on(&reader, &mut cursor, &mut seen).await;
    let ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, ["b1", "b2"]);
    // Then the first commits: its events come after the cursor the reader holds.
    first.commit(saved(vec![create("a2")])).await.expect("a2");
    read_on(&reader, &mut cursor, &mut seen).await;
    let ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, ["b1", "b2", "a1", "a2"], "the reader missed nothing");
    let (mut all, mut from_start) = (Vec::new(), 0);
    read_on(&reader, &mut from_start, &mut all).await;
    assert_eq!(all, seen);
    first.finish().await.expect("finishing a");
    second.finish().await.expect("finishing b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_paging_during_concurrent_commits_never_misses_an_event() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let tenant = format!("t{w}");
                let mut t = store
                    .open_tenant(&tenant, Access::Sync)
                    .await
                    .expect("opening");
                for round in 0..15 {
                    let id = |n: usize| format!("{tenant}-{round}-{n}");
                    // A deferred page, then the round's page with its checkpoint.
                    let page = (0..3).map(|n| create(&id(n))).collect();
                    t.commit(batch(page)).await.expect("a page");
                    let last = (3..5).map(|n| create(&id(n))).collect();
                    t.commit(saved(last)).await.expect("a round");
                }
                t.finish().await.expect("finishing");
            })
        })
        .collect();
    let (mut cursor, mut seen) = (0, Vec::new());
    while writers.iter().any(|w| !w.is_finished()) {
        read_on(&store, &mut cursor, &mut seen).await;
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("a writer");
    }
    read_on(&store, &mut cursor, &mut seen).await;
    let (mut all, mut from_start) = (Vec::new(), 0);
    read_on(&store, &mut from_start, &mut all).await;
    assert_eq!(all.len(), 4 * 15 * 5);
    assert_eq!(seen, all, "a reader that paged along saw every event once");
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_claiming_at_once_keep_the_limits_and_never_share_a_job() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let tenants: Vec<ServedTenant> = (0..12)
        .map(|n| ServedTenant {
            tenant: format!("t{n:02}"),
            app: if n % 2 == 0 { "even" } else { "odd" }.to_string(),
        })
        .collect();
    store.serve_tenants(&tenants).await.expect("serving");
    for tenant in &tenants {
        let new = m365sync_store::queue::NewJob {
            app: tenant.app.clone(),
            ..job(&tenant.tenant, JobKind::Scheduled, 0)
        };
        store.enqueue(&new).await.expect("queueing");
    }
    // Separate stores (pools), as separate processes would be.
    let mut handles = Vec::new();
    for w in 0..8 {
        let url = schema.url.clone();
        handles.push(tokio::spawn(async move {
            let store = PostgresStore::open(&url).await.expect("opening");
            let request = ClaimRequest {
                per_app: 2,
                global: Some(3),
                ..request(&format!("w{w}"), 1_000)
            };
            let mut mine = Vec::new();
            for _ in 0..3 {
                if let Some(job) = store.claim(&request).await.expect("claiming") {
                    mine.push((job.id, job.app));
                }
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for handle in handles {
        claimed.extend(handle.await.expect("a worker"));
    }
    let ids: BTreeSet<i64> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids.len(),
        claimed.len(),
        "no job claimed twice: {claimed:?}"
    );
    assert_eq!(claimed.len(), 3, "the global limit: {claimed:?}");
    for app in ["even", "odd"] {
        let of_app = claimed.iter().filter(|(_, a)| a == app).count();
        assert!(of_app <= 2, "the per-app limit of {app}: {claimed:?}");
    }
    let running = store
        .jobs(Some(&[m365sync_store::queue::JobState::Running]), 100)
        .await
        .expect("listing");
    assert_eq!(running.len(), 3);
}
