//! Conformance cases of notices (the rules in `notices.rs`'s module docs): setting notices
//! stores them and appends an event for each; setting the same again appends nothing and
//! keeps when they were raised; a new stage appends one event and takes the new time; a
//! notice left out is deleted; kinds and tenants are independent; the listing's order; a
//! notice's events take their place in the feed among batches' events, in commit order; a
//! refused call changes nothing; two handles setting the same notices at once raise each
//! once; a reset keeps the notices. Times are fixed Unix milliseconds, never the clock.

use std::slice;

use m365sync_wit::StorageError;

use super::Subject;
use super::fixtures::*;
use super::serve_fixtures::*;
use crate::feed::{ChangeEvent, ChangeKind, EventDetail, NewEvent};
use crate::notices::{Notice, NoticeKind, NoticeStage};
use crate::{StoreBackend, StoreError};

const SECRET: NoticeKind = NoticeKind::SecretExpiring;
const RELATIONSHIP: NoticeKind = NoticeKind::RelationshipEnding;
const ENDING: NoticeStage = NoticeStage::Ending;
const ENDED: NoticeStage = NoticeStage::Ended;

/// When the cases' notices are set: first, then again.
const FIRST_MS: i64 = 1_700_000_000_000;
const LATER_MS: i64 = FIRST_MS + 86_400_000;
const LATEST_MS: i64 = LATER_MS + 86_400_000;

/// `tenant`'s notice `key` of `kind` at `stage` (its `raised_ms` is the store's to set).
fn notice(tenant: &str, kind: NoticeKind, key: &str, stage: NoticeStage) -> Notice {
    Notice {
        tenant: tenant.to_string(),
        kind,
        key: key.to_string(),
        stage,
        ends: "2025-07-01".to_string(),
        message: format!("{key} of {tenant} ends on 2025-07-01: renew it"),
        raised_ms: 0,
    }
}

/// `notice` as the store keeps it, raised at `raised_ms`.
fn raised(notice: &Notice, raised_ms: i64) -> Notice {
    Notice {
        raised_ms,
        ..notice.clone()
    }
}

async fn set(
    store: &dyn StoreBackend,
    tenant: &str,
    kind: NoticeKind,
    notices: &[Notice],
    now_ms: i64,
) -> u32 {
    match store.set_notices(tenant, kind, notices, now_ms).await {
        Ok(appended) => appended,
        Err(error) => panic!(
            "setting the {} notices of {tenant} to {notices:?}: {error}",
            kind.name()
        ),
    }
}

async fn listed(store: &dyn StoreBackend, tenant: Option<&str>) -> Vec<Notice> {
    match store.notices(tenant).await {
        Ok(notices) => notices,
        Err(error) => panic!("listing the notices of {tenant:?}: {error}"),
    }
}

/// The events of `tenant` after `after`, as `Notice::event` makes them.
async fn events_of(store: &dyn StoreBackend, after: i64, tenant: &str) -> Vec<NewEvent> {
    let feed = events(store, after, Some(tenant)).await;
    assert_cursors_grow(&feed);
    feed.into_iter().map(as_new).collect()
}

fn as_new(event: ChangeEvent) -> NewEvent {
    NewEvent {
        kind: event.kind,
        object_id: event.object_id,
        detail: event.detail,
    }
}

pub async fn setting_notices_stores_them_and_appends_their_events(subject: &Subject) {
    let store = &*subject.store;
    assert_eq!(listed(store, None).await, vec![], "none yet");
    let a = notice("t", SECRET, "config:client-secret", ENDING);
    let b = Notice {
        ends: "2025-06-01T12:00:00Z".to_string(),
        message: "app app-1's certificate ended: upload a new one".to_string(),
        ..notice("t", SECRET, "app:app-1:key-2", ENDED)
    };
    assert_eq!(
        set(store, "t", SECRET, &[a.clone(), b.clone()], FIRST_MS).await,
        2
    );
    let other = subject.reopen().await;
    let feed = events(&*other, 0, Some("t")).await;
    assert_cursors_grow(&feed);
    let seen: Vec<(&str, ChangeKind, &str, &EventDetail)> = (feed.iter())
        .map(|e| (e.tenant.as_str(), e.kind, e.object_id.as_str(), &e.detail))
        .collect();
    let detail = |status: &str, ends: &str, message: &str| EventDetail {
        status: Some(status.to_string()),
        ends: Some(ends.to_string()),
        message: Some(message.to_string()),
        ..EventDetail::default()
    };
    assert_eq!(
        seen,
        [
            (
                "t",
                ChangeKind::SecretExpiring,
                "config:client-secret",
                &detail(
                    "ending",
                    "2025-07-01",
                    "config:client-secret of t ends on 2025-07-01: renew it"
                ),
            ),
            (
                "t",
                ChangeKind::SecretExpiring,
                "app:app-1:key-2",
                &detail(
                    "ended",
                    "2025-06-01T12:00:00Z",
                    "app app-1's certificate ended: upload a new one"
                ),
            ),
        ],
        "one event per notice, in the order given: kind, key, and the stage as status, \
         end and message"
    );
    assert_eq!(last_cursor(store).await, feed[1].cursor);
    let relationship = notice("t", RELATIONSHIP, "relationship:r-1", ENDING);
    assert_eq!(
        set(
            store,
            "t",
            RELATIONSHIP,
            slice::from_ref(&relationship),
            FIRST_MS
        )
        .await,
        1
    );
    let after = events(store, feed[1].cursor, Some("t")).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].kind, ChangeKind::RelationshipEnding);
    assert_eq!(as_new(after[0].clone()), relationship.event());
    assert_eq!(
        listed(&*other, Some("t")).await,
        vec![
            raised(&relationship, FIRST_MS),
            raised(&b, FIRST_MS),
            raised(&a, FIRST_MS),
        ],
        "stored as given, raised now, seen by another handle"
    );
}

pub async fn setting_the_same_notices_again_appends_nothing_and_keeps_their_time(
    subject: &Subject,
) {
    let store = &*subject.store;
    let notices = [
        notice("t", SECRET, "a", ENDING),
        notice("t", SECRET, "b", ENDED),
    ];
    assert_eq!(set(store, "t", SECRET, &notices, FIRST_MS).await, 2);
    let last = last_cursor(store).await;
    assert_eq!(set(store, "t", SECRET, &notices, LATER_MS).await, 0);
    // Given in another order, by another handle: still the same notices.
    let other = subject.reopen().await;
    let reversed = [notices[1].clone(), notices[0].clone()];
    assert_eq!(set(&*other, "t", SECRET, &reversed, LATER_MS).await, 0);
    // A new end or message at the same stage is written, but raises nothing.
    let reworded = [
        Notice {
            ends: "2025-07-15".to_string(),
            message: "a ends on 2025-07-15".to_string(),
            ..notices[0].clone()
        },
        notices[1].clone(),
    ];
    assert_eq!(set(store, "t", SECRET, &reworded, LATEST_MS).await, 0);
    assert_eq!(last_cursor(store).await, last, "nothing appended");
    assert!(events(store, last, None).await.is_empty());
    assert_eq!(
        listed(store, Some("t")).await,
        vec![
            raised(&reworded[0], FIRST_MS),
            raised(&notices[1], FIRST_MS)
        ],
        "written, raised when first set at their stage"
    );
}

pub async fn a_new_stage_appends_one_event_and_takes_the_new_time(subject: &Subject) {
    let store = &*subject.store;
    let a = notice("t", SECRET, "a", ENDING);
    let b = notice("t", SECRET, "b", ENDING);
    assert_eq!(
        set(store, "t", SECRET, &[a.clone(), b.clone()], FIRST_MS).await,
        2
    );
    let last = last_cursor(store).await;
    let a_ended = Notice {
        stage: ENDED,
        message: "a ended: renew it".to_string(),
        ..a.clone()
    };
    assert_eq!(
        set(store, "t", SECRET, &[a_ended.clone(), b.clone()], LATER_MS).await,
        1
    );
    assert_eq!(
        events_of(store, last, "t").await,
        vec![raised(&a_ended, LATER_MS).event()],
        "one event, of the new stage"
    );
    assert_eq!(
        listed(store, Some("t")).await,
        vec![raised(&a_ended, LATER_MS), raised(&b, FIRST_MS)]
    );
    // Back to ending (the credential was extended to within the window): a new stage too.
    let last = last_cursor(store).await;
    assert_eq!(
        set(store, "t", SECRET, &[a.clone(), b.clone()], LATEST_MS).await,
        1
    );
    assert_eq!(events_of(store, last, "t").await, vec![a.event()]);
    assert_eq!(
        listed(store, Some("t")).await,
        vec![raised(&a, LATEST_MS), raised(&b, FIRST_MS)]
    );
}

pub async fn a_notice_left_out_is_deleted(subject: &Subject) {
    let store = &*subject.store;
    let a = notice("t", SECRET, "a", ENDING);
    let b = notice("t", SECRET, "b", ENDED);
    let c = notice("t", SECRET, "c", ENDING);
    assert_eq!(
        set(
            store,
            "t",
            SECRET,
            &[a.clone(), b.clone(), c.clone()],
            FIRST_MS
        )
        .await,
        3
    );
    let last = last_cursor(store).await;
    assert_eq!(
        set(store, "t", SECRET, slice::from_ref(&b), LATER_MS).await,
        0
    );
    assert_eq!(listed(store, Some("t")).await, vec![raised(&b, FIRST_MS)]);
    assert_eq!(last_cursor(store).await, last, "a deletion appends nothing");
    assert_eq!(set(store, "t", SECRET, &[], LATER_MS).await, 0);
    let other = subject.reopen().await;
    assert_eq!(listed(&*other, None).await, vec![], "all deleted");
    // Set again once deleted, it is new: raised again.
    assert_eq!(
        set(store, "t", SECRET, slice::from_ref(&a), LATEST_MS).await,
        1
    );
    assert_eq!(events_of(store, last, "t").await, vec![a.event()]);
    assert_eq!(listed(store, None).await, vec![raised(&a, LATEST_MS)]);
}

pub async fn notice_kinds_are_independent(subject: &Subject) {
    let store = &*subject.store;
    // One key under both kinds: a key is unique per tenant and kind only.
    let secret = notice("t", SECRET, "shared-key", ENDING);
    let relationship = notice("t", RELATIONSHIP, "shared-key", ENDED);
    let other_relationship = notice("t", RELATIONSHIP, "relationship:r-2", ENDING);
    assert_eq!(
        set(store, "t", SECRET, slice::from_ref(&secret), FIRST_MS).await,
        1
    );
    let both = [relationship.clone(), other_relationship.clone()];
    assert_eq!(set(store, "t", RELATIONSHIP, &both, LATER_MS).await, 2);
    // Setting the secrets (to none) leaves the relationships alone, and the other way.
    assert_eq!(set(store, "t", SECRET, &[], LATEST_MS).await, 0);
    assert_eq!(
        listed(store, Some("t")).await,
        vec![
            raised(&other_relationship, LATER_MS),
            raised(&relationship, LATER_MS)
        ]
    );
    assert_eq!(
        set(store, "t", SECRET, slice::from_ref(&secret), LATEST_MS).await,
        1
    );
    assert_eq!(
        set(
            store,
            "t",
            RELATIONSHIP,
            slice::from_ref(&relationship),
            LATEST_MS
        )
        .await,
        0
    );
    assert_eq!(
        listed(store, Some("t")).await,
        vec![raised(&relationship, LATER_MS), raised(&secret, LATEST_MS)]
    );
    let kinds: Vec<&str> = (events(store, 0, Some("t")).await.iter())
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(
        kinds,
        [
            "secret-expiring",
            "relationship-ending",
            "relationship-ending",
            "secret-expiring"
        ]
    );
}

pub async fn notice_tenants_are_independent(subject: &Subject) {
    let store = &*subject.store;
    let of_t = notice("t", SECRET, "config:client-secret", ENDING);
    let of_u = notice("u", SECRET, "config:client-secret", ENDING);
    assert_eq!(
        set(store, "t", SECRET, slice::from_ref(&of_t), FIRST_MS).await,
        1
    );
    assert_eq!(
        set(store, "u", SECRET, slice::from_ref(&of_u), LATER_MS).await,
        1
    );
    // The same key in another tenant is another notice; t's set leaves u's alone.
    assert_eq!(set(store, "t", SECRET, &[], LATEST_MS).await, 0);
    assert_eq!(listed(store, Some("t")).await, vec![]);
    assert_eq!(
        listed(store, Some("u")).await,
        vec![raised(&of_u, LATER_MS)]
    );
    assert_eq!(
        set(store, "u", SECRET, slice::from_ref(&of_u), LATEST_MS).await,
        0
    );
    assert_eq!(events_of(store, 0, "t").await, vec![of_t.event()]);
    assert_eq!(events_of(store, 0, "u").await, vec![of_u.event()]);
    let tenants: Vec<String> = (events(store, 0, None).await.into_iter())
        .map(|e| e.tenant)
        .collect();
    assert_eq!(tenants, ["t", "u"]);
}

pub async fn notices_are_listed_by_tenant_kind_name_and_key(subject: &Subject) {
    let store = &*subject.store;
    // Set in another order than listed; tenants and keys compared byte-wise; kinds by
    // name (relationship-ending before secret-expiring, whatever the enum's order).
    let u_secrets = [
        notice("u", SECRET, "b", ENDING),
        notice("u", SECRET, "B", ENDED),
        notice("u", SECRET, "a", ENDING),
    ];
    let u_relationships = [notice("u", RELATIONSHIP, "z", ENDING)];
    let t_secrets = [notice("t", SECRET, "m", ENDING)];
    let upper_relationships = [
        notice("T", RELATIONSHIP, "r-2", ENDED),
        notice("T", RELATIONSHIP, "r-10", ENDING),
    ];
    set(store, "u", SECRET, &u_secrets, FIRST_MS).await;
    set(store, "t", SECRET, &t_secrets, FIRST_MS).await;
    set(store, "u", RELATIONSHIP, &u_relationships, FIRST_MS).await;
    set(store, "T", RELATIONSHIP, &upper_relationships, FIRST_MS).await;
    let other = subject.reopen().await;
    let order = |notices: Vec<Notice>| -> Vec<String> {
        (notices.into_iter())
            .map(|n| format!("{} {} {}", n.tenant, n.kind.name(), n.key))
            .collect()
    };
    assert_eq!(
        order(listed(&*other, None).await),
        [
            "T relationship-ending r-10",
            "T relationship-ending r-2",
            "t secret-expiring m",
            "u relationship-ending z",
            "u secret-expiring B",
            "u secret-expiring a",
            "u secret-expiring b",
        ]
    );
    assert_eq!(
        order(listed(store, Some("u")).await),
        [
            "u relationship-ending z",
            "u secret-expiring B",
            "u secret-expiring a",
            "u secret-expiring b",
        ]
    );
    assert_eq!(listed(store, Some("nobody")).await, vec![]);
}

pub async fn notice_events_take_their_place_among_batch_events_in_commit_order(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a")])]).await;
    set(
        store,
        "t",
        SECRET,
        &[notice("t", SECRET, "s-1", ENDING)],
        FIRST_MS,
    )
    .await;
    // A sync's store open meanwhile, committing between notices.
    let mut u = open(store, "u").await;
    u.commit(saved(vec![create("b")]))
        .await
        .expect("committing b");
    set(
        store,
        "u",
        RELATIONSHIP,
        &[notice("u", RELATIONSHIP, "r-1", ENDING)],
        FIRST_MS,
    )
    .await;
    u.commit(saved(vec![create("c"), create("d")]))
        .await
        .expect("committing c and d");
    let other = subject.reopen().await;
    set(
        &*other,
        "t",
        SECRET,
        &[notice("t", SECRET, "s-1", ENDED)],
        LATER_MS,
    )
    .await;
    u.finish().await.expect("finishing u");
    commit_all(store, "t", vec![saved(vec![create("e")])]).await;
    let feed = events(&*other, 0, None).await;
    assert_cursors_grow(&feed);
    let expected =
        |tenant: &str, kind: &'static str, id: &str| (tenant.to_string(), kind, id.to_string());
    assert_eq!(
        what(&feed),
        vec![
            expected("t", "person.created", "a"),
            expected("t", "secret-expiring", "s-1"),
            expected("u", "person.created", "b"),
            expected("u", "relationship-ending", "r-1"),
            expected("u", "person.created", "c"),
            expected("u", "person.created", "d"),
            expected("t", "secret-expiring", "s-1"),
            expected("t", "person.created", "e"),
        ]
    );
    assert_eq!(last_cursor(store).await, feed[7].cursor);
    // A reader that had seen the first notice's event finds the rest after it.
    let after = events(store, feed[1].cursor, None).await;
    assert_eq!(after, feed[2..]);
}

pub async fn a_refused_set_of_notices_changes_nothing(subject: &Subject) {
    let store = &*subject.store;
    let a = notice("t", SECRET, "a", ENDING);
    set(store, "t", SECRET, slice::from_ref(&a), FIRST_MS).await;
    let last = last_cursor(store).await;
    let refused = [
        (
            vec![
                notice("t", SECRET, "b", ENDING),
                notice("t", SECRET, "b", ENDED),
            ],
            "a key given twice",
        ),
        (
            vec![
                notice("t", SECRET, "b", ENDING),
                notice("u", SECRET, "c", ENDING),
            ],
            "a notice of another tenant",
        ),
        (
            vec![notice("t", RELATIONSHIP, "b", ENDING)],
            "a notice of another kind",
        ),
    ];
    for (notices, what) in refused {
        match store.set_notices("t", SECRET, &notices, LATER_MS).await {
            Err(StoreError::Storage(StorageError::Invalid(_))) => {}
            other => panic!("{what} is refused as invalid: {other:?}"),
        }
    }
    assert_eq!(listed(store, None).await, vec![raised(&a, FIRST_MS)]);
    assert_eq!(last_cursor(store).await, last, "nothing appended");
}

pub async fn two_handles_setting_the_same_notices_at_once_raise_each_once(subject: &Subject) {
    let store = &*subject.store;
    let other = subject.reopen().await;
    for round in 0..5 {
        let tenant = format!("t-{round}");
        let notices = [
            notice(&tenant, SECRET, "a", ENDING),
            notice(&tenant, SECRET, "b", ENDED),
        ];
        let (first, second) = tokio::join!(
            set(store, &tenant, SECRET, &notices, FIRST_MS),
            set(&*other, &tenant, SECRET, &notices, FIRST_MS)
        );
        assert_eq!(
            first + second,
            2,
            "round {round}: each notice raised by one of the two"
        );
        let raised_once = notices.iter().map(Notice::event).collect::<Vec<_>>();
        assert_eq!(events_of(store, 0, &tenant).await, raised_once);
        let stored: Vec<i64> = (listed(store, Some(&tenant)).await.iter())
            .map(|n| n.raised_ms)
            .collect();
        assert_eq!(stored, [FIRST_MS, FIRST_MS]);
    }
}

pub async fn a_reset_keeps_the_notices(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a")])]).await;
    let a = notice("t", SECRET, "a", ENDING);
    set(store, "t", SECRET, slice::from_ref(&a), FIRST_MS).await;
    let outcome = store.reset_tenant("t").await.expect("resetting");
    assert!(
        !outcome.deleted.iter().any(|(table, _)| table == "notices"),
        "{:?}",
        outcome.deleted
    );
    assert_eq!(listed(store, Some("t")).await, vec![raised(&a, FIRST_MS)]);
    assert_eq!(
        set(store, "t", SECRET, slice::from_ref(&a), LATER_MS).await,
        0
    );
}
