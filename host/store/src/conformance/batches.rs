//! Conformance cases of batches: what each change does, links re-keying records in place,
//! a failing batch undoing itself (and at most the batches since the last checkpoint),
//! values a store cannot hold, and what stays committed through another handle and after
//! a store is dropped.

use m365sync_wit::StorageError;
use m365sync_wit::types::{Batch, Change, ReportScope, UsageScope};

use super::Subject;
use super::fixtures::*;
use crate::Access;
use crate::read::ExportKind;

/// The object ids (column 1) of an export's rows.
async fn exported_ids(
    store: &dyn crate::StoreBackend,
    kind: ExportKind,
    column: usize,
) -> Vec<crate::read::Cell> {
    (export(store, kind, Some("t")).await.into_iter())
        .map(|row| row[column].clone())
        .collect()
}

pub async fn deleting_a_person_deletes_their_mailbox_usage_and_memberships(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved(vec![
        create("a"),
        create("b"),
        mailbox("a", 1, 1),
        mailbox("b", 2, 2),
        usage("a", "exchange", 30, None, "2024-03-01"),
        usage("a", "teams", 7, None, "2024-03-01"),
        usage("b", "exchange", 30, None, "2024-03-01"),
        group("g", "Group", None, "security"),
        members("g", &["a", "b"], &[]),
        group("h", "Other", None, "security"),
        members("h", &["a"], &[]),
    ]))
    .await
    .expect("committing");
    t.commit(saved(vec![Change::DeletePerson("a".to_string())]))
        .await
        .expect("deleting a");
    // Deleting someone never stored is no error.
    t.commit(saved(vec![Change::DeletePerson("nobody".to_string())]))
        .await
        .expect("deleting nobody");
    t.finish().await.expect("finishing");
    assert_eq!(ids_of(store, "t").await, strings(&["b"]));
    assert_eq!(
        exported_ids(store, ExportKind::Mailboxes, 1).await,
        vec![txt("b")]
    );
    assert_eq!(
        exported_ids(store, ExportKind::Usage, 1).await,
        vec![txt("b")]
    );
    assert_eq!(
        exported_ids(store, ExportKind::GroupMembers, 3).await,
        vec![txt("b")]
    );
    // The groups stay, with the memberships left.
    assert_eq!(
        exported_ids(store, ExportKind::Groups, 5).await,
        vec![n(1), n(0)]
    );
}

pub async fn replace_report_empties_only_the_report_it_names(subject: &Subject) {
    let store = &*subject.store;
    let exchange_30 = ReportScope::Usage(UsageScope {
        workload: "exchange".to_string(),
        period_days: 30,
    });
    let mut t = open(store, "t").await;
    t.commit(saved(vec![
        create("a"),
        create("b"),
        usage("a", "exchange", 30, Some("2024-01-01"), "2024-02-01"),
        usage("b", "exchange", 30, Some("2024-01-01"), "2024-02-01"),
        usage("a", "exchange", 7, None, "2024-02-01"),
        usage("a", "teams", 30, None, "2024-02-01"),
        mailbox("a", 1, 1),
        mailbox("b", 2, 2),
    ]))
    .await
    .expect("committing");
    // The report's new snapshot follows its replacement in the same batch.
    t.commit(saved(vec![
        Change::ReplaceReport(exchange_30),
        usage("b", "exchange", 30, Some("2024-02-20"), "2024-03-01"),
        Change::ReplaceReport(ReportScope::Mailboxes),
        mailbox("b", 3, 3),
    ]))
    .await
    .expect("replacing");
    t.finish().await.expect("finishing");
    let usage_rows: Vec<(crate::read::Cell, crate::read::Cell, crate::read::Cell)> =
        (export(store, ExportKind::Usage, Some("t"))
            .await
            .into_iter())
        .map(|row| (row[1].clone(), row[3].clone(), row[4].clone()))
        .collect();
    assert_eq!(
        usage_rows,
        vec![
            (txt("a"), txt("exchange"), n(7)),
            (txt("a"), txt("teams"), n(30)),
            (txt("b"), txt("exchange"), n(30)),
        ]
    );
    let b = export(store, ExportKind::Usage, Some("t")).await;
    assert_eq!(b[2][5], txt("2024-02-20"), "the new snapshot's row");
    let mailboxes: Vec<_> = (export(store, ExportKind::Mailboxes, Some("t"))
        .await
        .into_iter())
    .map(|row| (row[1].clone(), row[3].clone()))
    .collect();
    assert_eq!(mailboxes, vec![(txt("b"), n(3))]);
}

pub async fn groups_and_their_members_are_added_removed_and_deleted(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved(vec![
        group("g", "Group", Some("g@x.test"), "microsoft-365"),
        group("h", "Other", None, "security"),
        members("g", &["a", "b", "c"], &[]),
        members("h", &["a"], &[]),
    ]))
    .await
    .expect("committing");
    t.commit(saved(vec![
        // Added twice is once; removing one who is not a member is no error.
        members("g", &["a", "d"], &["b", "z"]),
        group("g", "Group renamed", None, "microsoft-365"),
        Change::DeleteGroup("h".to_string()),
    ]))
    .await
    .expect("changing");
    t.finish().await.expect("finishing");
    let groups = export(store, ExportKind::Groups, Some("t")).await;
    assert_eq!(
        groups,
        vec![vec![
            txt("t"),
            txt("g"),
            txt("Group renamed"),
            NULL,
            txt("microsoft-365"),
            n(3)
        ]]
    );
    let memberships: Vec<_> = (export(store, ExportKind::GroupMembers, Some("t")).await)
        .into_iter()
        .map(|row| (row[1].clone(), row[3].clone()))
        .collect();
    assert_eq!(
        memberships,
        vec![
            (txt("g"), txt("a")),
            (txt("g"), txt("c")),
            (txt("g"), txt("d"))
        ]
    );
}

pub async fn a_link_rekeys_the_record_in_place(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved(vec![
        upsert(
            person("old", "jane@x.test"),
            Some("jane@x.test"),
            "jane@x.test",
        ),
        create("other"),
    ]))
    .await
    .expect("committing");
    let mut linked = person("new", "jane.doe@x.test");
    linked.person.department = Some("Marketing".to_string());
    t.commit(saved_as(
        vec![link(linked, "old", Some("jane@x.test"), "jane.doe@x.test")],
        "users",
        "delta-1",
    ))
    .await
    .expect("linking");
    assert_eq!(ids(&mut *t).await, strings(&["new", "other"]));
    let keys = [
        id("old"),
        id("new"),
        email("jane@x.test"),
        upn("jane.doe@x.test"),
        upn("jane@x.test"),
    ];
    let new = Some("new".to_string());
    assert_eq!(
        found(&mut *t, &keys).await,
        vec![None, new.clone(), new.clone(), new, None],
        "the old id and the old UPN key are gone with the re-key"
    );
    let new = t.find_people(&[id("new")]).await.expect("finding new");
    let new = new.into_iter().next().flatten().expect("new is stored");
    assert_eq!(new.person.department.as_deref(), Some("Marketing"));
    assert_eq!(new.fingerprint, "fp-new");
    assert_eq!(
        t.get_checkpoint("users").await.expect("reading").as_deref(),
        Some("delta-1")
    );
    // A link onto the same id is an update.
    let mut again = person("new", "jane.doe@x.test");
    again.person.department = Some("Sales".to_string());
    t.commit(saved(vec![link(again, "new", None, "jane.doe@x.test")]))
        .await
        .expect("linking in place");
    t.finish().await.expect("finishing");
    assert_eq!(ids_of(store, "t").await, strings(&["new", "other"]));
    let mut read = read_only(store, "t").await;
    assert_eq!(found(&mut *read, &[email("jane@x.test")]).await, vec![None]);
    let people = export(store, ExportKind::People, Some("t")).await;
    assert_eq!(
        people[0][7],
        txt("Sales"),
        "the linked record has the new fields"
    );
}

pub async fn a_link_whose_previous_record_is_gone_inserts(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a")])]).await;
    commit_all(
        store,
        "t",
        vec![saved(vec![link(
            person("fresh", "f@x.test"),
            "never-stored",
            Some("f@x.test"),
            "f@x.test",
        )])],
    )
    .await;
    assert_eq!(ids_of(store, "t").await, strings(&["a", "fresh"]));
    let mut t = read_only(store, "t").await;
    let keys = [email("f@x.test"), upn("f@x.test"), id("never-stored")];
    let fresh = Some("fresh".to_string());
    assert_eq!(
        found(&mut *t, &keys).await,
        vec![fresh.clone(), fresh, None]
    );
}

pub async fn a_link_onto_a_stored_id_leaves_one_record(subject: &Subject) {
    let store = &*subject.store;
    commit_all(
        store,
        "t",
        vec![saved(vec![
            upsert(person("old", "o@x.test"), Some("old@x.test"), "o@x.test"),
            upsert(
                person("other", "other@x.test"),
                Some("other@x.test"),
                "other@x.test",
            ),
        ])],
    )
    .await;
    // The engine would not link around a stored record, but if it does, the tenant never
    // holds both: the linked record is what is left.
    commit_all(
        store,
        "t",
        vec![saved(vec![link(
            person("other", "o2@x.test"),
            "old",
            Some("o2@x.test"),
            "o2@x.test",
        )])],
    )
    .await;
    assert_eq!(ids_of(store, "t").await, strings(&["other"]));
    let mut t = read_only(store, "t").await;
    let keys = [
        id("other"),
        email("o2@x.test"),
        email("old@x.test"),
        email("other@x.test"),
        upn("o@x.test"),
    ];
    let other = Some("other".to_string());
    assert_eq!(
        found(&mut *t, &keys).await,
        vec![other.clone(), other, None, None, None]
    );
    let people = export(store, ExportKind::People, Some("t")).await;
    assert_eq!(people.len(), 1);
    assert_eq!(people[0][2], txt("o2@x.test"));
}

pub async fn a_failing_batch_undoes_back_to_the_last_checkpoint_at_most(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved_as(
        vec![
            upsert(person("a", "a@x.test"), Some("a@x.test"), "a@x.test"),
            create("b"),
            group("g", "Group", None, "security"),
        ],
        "users",
        "1",
    ))
    .await
    .expect("the first batch");
    // A batch without checkpoints: a back end may fold it into the next.
    t.commit(batch(vec![create("c")]))
        .await
        .expect("the second batch");
    // The third applies a link, a membership and a deletion, then a change no store can
    // hold: it fails, and none of it is left.
    let failing = Batch {
        changes: vec![
            link(
                person("a2", "a2@x.test"),
                "a",
                Some("a@x.test"),
                "a2@x.test",
            ),
            members("g", &["b"], &[]),
            Change::DeletePerson("b".to_string()),
            mailbox("m-1", u64::MAX, 1),
            create("d"),
        ],
        checkpoints: saved_as(vec![], "users", "2").checkpoints,
        run: Some(sync_report("t")),
    };
    let error = t
        .commit(failing)
        .await
        .expect_err("a mailbox of u64::MAX bytes");
    let StorageError::Invalid(message) = &error else {
        panic!("refused as invalid: {error:?}");
    };
    assert!(
        message.contains("mailbox of m-1"),
        "names the change: {message}"
    );
    assert!(
        message.contains("storage_used_bytes"),
        "names the field: {message}"
    );
    let keys = [
        id("a"),
        id("a2"),
        id("b"),
        id("d"),
        upn("a@x.test"),
        upn("a2@x.test"),
    ];
    let a = Some("a".to_string());
    let b = Some("b".to_string());
    assert_eq!(
        found(&mut *t, &keys).await,
        vec![a.clone(), None, b, None, a, None],
        "the failing batch left nothing"
    );
    assert_eq!(
        t.get_checkpoint("users").await.expect("reading").as_deref(),
        Some("1")
    );
    // Another handle sees the first batch (the second may be gone with the failure).
    let again = subject.reopen().await;
    let mut other = again
        .open_tenant("t", Access::ReadOnly)
        .await
        .expect("opening read-only");
    let seen = ids(&mut *other).await;
    assert!(seen.starts_with(&strings(&["a", "b"])), "{seen:?}");
    assert!(
        seen == strings(&["a", "b"]) || seen == strings(&["a", "b", "c"]),
        "{seen:?}"
    );
    assert_eq!(
        other
            .get_checkpoint("users")
            .await
            .expect("reading")
            .as_deref(),
        Some("1")
    );
    drop(other);
    assert!(
        export(&*again, ExportKind::GroupMembers, Some("t"))
            .await
            .is_empty()
    );
    assert!(
        export(&*again, ExportKind::Mailboxes, Some("t"))
            .await
            .is_empty()
    );
    let runs = again.list_runs(Some("t"), 10).await.expect("listing runs");
    assert!(
        runs.is_empty(),
        "the failing batch's run is not logged: {runs:?}"
    );
    // The store goes on: the engine redoes the work from the checkpoint.
    t.commit(saved_as(vec![create("c"), create("d")], "users", "2"))
        .await
        .expect("the store goes on");
    t.finish().await.expect("finishing");
    let again = subject.reopen().await;
    let mut other = again
        .open_tenant("t", Access::ReadOnly)
        .await
        .expect("opening read-only");
    assert_eq!(ids(&mut *other).await, strings(&["a", "b", "c", "d"]));
    assert_eq!(
        other
            .get_checkpoint("users")
            .await
            .expect("reading")
            .as_deref(),
        Some("2")
    );
}

pub async fn a_value_a_store_cannot_hold_is_refused_naming_the_change(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    let too_many = i64::MAX as u64 + 1;
    let error = t
        .commit(saved(vec![create("a"), mailbox("m-1", 1, too_many)]))
        .await
        .expect_err("an item count above i64::MAX");
    let StorageError::Invalid(message) = &error else {
        panic!("refused as invalid: {error:?}");
    };
    assert!(message.contains("mailbox of m-1"), "{message}");
    assert!(message.contains("item_count"), "{message}");
    assert!(message.contains(&too_many.to_string()), "{message}");
    // A run whose elapsed time no store can hold is refused with its batch.
    let mut run = sync_report("t");
    run.elapsed_ms = u64::MAX;
    let refused = t
        .commit(Batch {
            run: Some(run),
            ..saved(vec![create("b")])
        })
        .await;
    assert!(
        matches!(refused, Err(StorageError::Invalid(_))),
        "{refused:?}"
    );
    // The largest value a store holds is kept as it is; a usage count is JSON, kept whole.
    t.commit(saved(vec![
        create("a"),
        mailbox("m-1", i64::MAX as u64, 0),
        with_counts(
            usage("a", "exchange", 30, None, "2024-03-01"),
            &[("send", u64::MAX)],
        ),
    ]))
    .await
    .expect("values a store holds");
    t.finish().await.expect("finishing");
    assert_eq!(ids_of(store, "t").await, strings(&["a"]));
    let mailboxes = export(store, ExportKind::Mailboxes, Some("t")).await;
    assert_eq!(mailboxes.len(), 1);
    assert_eq!((&mailboxes[0][3], &mailboxes[0][4]), (&n(i64::MAX), &n(0)));
    let usage = export(store, ExportKind::Usage, Some("t")).await;
    assert_eq!(usage[0][6], counts(&[("send", u64::MAX)]));
    assert!(
        store
            .list_runs(Some("t"), 10)
            .await
            .expect("listing")
            .is_empty()
    );
}

pub async fn committed_batches_are_seen_by_another_handle(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved_as(
        vec![create("a"), mailbox("a", 5, 6)],
        "users",
        "1",
    ))
    .await
    .expect("committing");
    // Committed with its checkpoint: another handle sees it before the sync finishes.
    let again = subject.reopen().await;
    assert_eq!(ids_of(&*again, "t").await, strings(&["a"]));
    assert_eq!(
        checkpoint_of(&*again, "t", "users").await.as_deref(),
        Some("1")
    );
    t.commit(batch(vec![create("b")]))
        .await
        .expect("committing");
    t.commit(saved_as(vec![create("c")], "users", "2"))
        .await
        .expect("committing");
    t.finish().await.expect("finishing");
    let again = subject.reopen().await;
    assert_eq!(ids_of(&*again, "t").await, strings(&["a", "b", "c"]));
    assert_eq!(
        checkpoint_of(&*again, "t", "users").await.as_deref(),
        Some("2")
    );
    assert_eq!(
        export(&*again, ExportKind::Mailboxes, Some("t"))
            .await
            .len(),
        1
    );
    let tenants = again.tenants_with_people().await.expect("listing tenants");
    assert_eq!(tenants, strings(&["t"]));
}

pub async fn a_store_dropped_without_finish_keeps_its_checkpointed_batches(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved_as(vec![create("a")], "users", "1"))
        .await
        .expect("committing");
    t.commit(batch(vec![create("b")]))
        .await
        .expect("committing");
    drop(t);
    let again = subject.reopen().await;
    let seen = ids_of(&*again, "t").await;
    assert!(
        seen == strings(&["a"]) || seen == strings(&["a", "b"]),
        "{seen:?}"
    );
    assert_eq!(
        checkpoint_of(&*again, "t", "users").await.as_deref(),
        Some("1")
    );
    // The dropped store's lock went with it.
    assert!(
        again
            .lock_holder("t")
            .await
            .expect("reading the lock")
            .is_none()
    );
    let mut next = open(&*again, "t").await;
    next.commit(saved_as(vec![create("b")], "users", "2"))
        .await
        .expect("the next sync carries on");
    next.finish().await.expect("finishing");
    assert_eq!(ids_of(store, "t").await, strings(&["a", "b"]));
}
