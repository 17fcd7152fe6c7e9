//! Conformance cases of the change feed: the events of committed batches (as
//! [`events_of`] makes them) in commit order with growing cursors, read by tenant and by
//! page; nothing of a failing or rolled-back batch; a reset keeps the feed; two tenants
//! committing in turn.

use m365sync_wit::types::{Batch, Change};

use super::Subject;
use super::fixtures::*;
use super::serve_fixtures::*;
use crate::feed::{NewEvent, events_of};

/// A person `<id>@x.test` holding `licences`.
fn licensed(id: &str, licences: &[&str]) -> Change {
    let upn = format!("{id}@x.test");
    let mut stored = person(id, &upn);
    stored.person.licences = strings(licences);
    upsert(stored, None, &upn)
}

/// The events a batch makes, as the feed keeps them.
fn expected(batches: &[&Batch]) -> Vec<NewEvent> {
    batches.iter().flat_map(|b| events_of(b)).collect()
}

pub async fn committed_batches_append_their_events_in_commit_order(subject: &Subject) {
    let store = &*subject.store;
    assert_eq!(last_cursor(store).await, 0, "an empty feed");
    assert!(events(store, 0, None).await.is_empty());
    let first = saved(vec![
        licensed("a", &["sku-1", "sku-2"]),
        create("b"),
        subscription("sku-1", "E3", "Office 365 E3", 10, 0, 0, 2),
        group("g", "Group", None, "security"),
        members("g", &["a", "b"], &[]),
    ]);
    let second = saved(vec![
        link(person("a2", "a2@x.test"), "a", None, "a2@x.test"),
        Change::DeletePerson("b".to_string()),
        members("g", &[], &["b"]),
    ]);
    let made = expected(&[&first, &second]);
    let kinds: Vec<&str> = made.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "person.created",
            "licence.assigned",
            "licence.assigned",
            "person.created",
            "group.member-added",
            "group.member-added",
            "person.linked",
            "person.removed",
            "group.member-removed",
        ],
        "the batches' events (feed.rs's rule)"
    );
    commit_all(store, "t", vec![first, second]).await;
    let again = subject.reopen().await;
    let feed = events(&*again, 0, None).await;
    assert_cursors_grow(&feed);
    let stored: Vec<NewEvent> = feed
        .iter()
        .map(|e| NewEvent {
            kind: e.kind,
            object_id: e.object_id.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    assert_eq!(
        stored, made,
        "every event, in commit order, with its detail"
    );
    for event in &feed {
        assert_eq!(event.tenant, "t");
        assert!(
            event.at.parse::<jiff::Timestamp>().is_ok(),
            "`at` is RFC 3339: {:?}",
            event.at
        );
    }
    let last = feed.last().map(|e| e.cursor);
    assert_eq!(Some(last_cursor(store).await), last);
}

pub async fn the_feed_is_read_by_tenant_and_paged_by_cursor(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a"), create("b")])]).await;
    commit_all(store, "u", vec![saved(vec![create("c")])]).await;
    commit_all(store, "t", vec![saved(vec![create("d")])]).await;
    let all = events(store, 0, None).await;
    let created = |tenant: &str, id: &str| (tenant.to_string(), "person.created", id.to_string());
    assert_eq!(
        what(&all),
        vec![
            created("t", "a"),
            created("t", "b"),
            created("u", "c"),
            created("t", "d")
        ]
    );
    assert_cursors_grow(&all);
    let page = |after: i64, limit: u32, tenant: Option<&'static str>| async move {
        (store.changes(after, limit, tenant).await).expect("reading the feed")
    };
    assert_eq!(page(0, 2, None).await, all[..2]);
    assert_eq!(page(all[1].cursor, 2, None).await, all[2..]);
    assert!(page(all[3].cursor, 10, None).await.is_empty());
    assert!(page(0, 0, None).await.is_empty(), "a limit of 0 reads none");
    let of_t = vec![all[0].clone(), all[1].clone(), all[3].clone()];
    assert_eq!(page(0, 10, Some("t")).await, of_t);
    assert_eq!(page(all[0].cursor, 1, Some("t")).await, of_t[1..2]);
    assert_eq!(page(all[1].cursor, 10, Some("t")).await, of_t[2..]);
    assert_eq!(events(store, 0, Some("u")).await, all[2..3]);
    assert!(page(0, 10, Some("nobody")).await.is_empty());
}

pub async fn a_failing_batch_leaves_no_events(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    let failing = saved(vec![create("b"), mailbox("m-1", u64::MAX, 1)]);
    t.commit(failing)
        .await
        .expect_err("a mailbox no store holds");
    t.commit(saved(vec![create("c")]))
        .await
        .expect("committing");
    t.finish().await.expect("finishing");
    let feed = events(store, 0, None).await;
    let ids: Vec<&str> = feed.iter().map(|e| e.object_id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_cursors_grow(&feed);
}

pub async fn a_dropped_store_leaves_events_only_of_what_it_committed(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    // Without a checkpoint: a back end may hold it open, and roll it back when dropped.
    t.commit(batch(vec![create("b")]))
        .await
        .expect("committing");
    drop(t);
    let again = subject.reopen().await;
    let people = ids_of(&*again, "t").await;
    assert!(
        people == strings(&["a"]) || people == strings(&["a", "b"]),
        "{people:?}"
    );
    let feed = events(&*again, 0, Some("t")).await;
    let created: Vec<String> = feed.iter().map(|e| e.object_id.clone()).collect();
    assert_eq!(
        created, people,
        "an event exactly for each person committed"
    );
}

pub async fn a_reset_keeps_the_feed(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a"), create("b")])]).await;
    let before = events(store, 0, None).await;
    let last = last_cursor(store).await;
    store.reset_tenant("t").await.expect("resetting");
    assert_eq!(events(store, 0, None).await, before);
    assert_eq!(last_cursor(store).await, last);
    commit_all(store, "t", vec![saved(vec![create("a")])]).await;
    let after = events(store, last, None).await;
    let created = ("t".to_string(), "person.created", "a".to_string());
    assert_eq!(what(&after), vec![created]);
    assert!(after[0].cursor > last);
}

pub async fn interleaved_commits_of_two_tenants_get_distinct_ordered_cursors(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    let mut u = open(store, "u").await;
    t.commit(saved(vec![create("t1")]))
        .await
        .expect("t's first");
    u.commit(saved(vec![create("u1")]))
        .await
        .expect("u's first");
    let pair = saved(vec![create("t2"), create("t3")]);
    t.commit(pair).await.expect("t's second");
    u.commit(saved(vec![create("u2")]))
        .await
        .expect("u's second");
    t.finish().await.expect("finishing t");
    u.finish().await.expect("finishing u");
    let feed = events(store, 0, None).await;
    let order: Vec<(&str, &str)> = feed
        .iter()
        .map(|e| (e.tenant.as_str(), e.object_id.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("t", "t1"),
            ("u", "u1"),
            ("t", "t2"),
            ("t", "t3"),
            ("u", "u2")
        ]
    );
    assert_cursors_grow(&feed);
}
