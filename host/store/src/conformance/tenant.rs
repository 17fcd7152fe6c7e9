//! Conformance cases of a tenant's store as the engine uses it: checkpoints, lookups by
//! id and by the engine's keys, paging, direct reports, decisions, read-only stores, and
//! the scoping of every call to its tenant.

use m365sync_wit::StorageError;
use m365sync_wit::types::{Change, MatchDecision, PersonStatus, ReviewAction};

use super::Subject;
use super::fixtures::*;
use crate::Access;
use crate::model::action_parts;
use crate::read::ExportKind;

pub async fn checkpoints_are_read_back_replaced_and_cleared(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    assert_eq!(t.get_checkpoint("users").await.expect("reading"), None);
    let mut first = saved_as(vec![], "users", "delta-1");
    first.checkpoints.push(m365sync_wit::types::Checkpoint {
        key: "groups".to_string(),
        value: Some("groups-1".to_string()),
    });
    t.commit(first).await.expect("saving two checkpoints");
    assert_eq!(
        t.get_checkpoint("users").await.expect("reading").as_deref(),
        Some("delta-1")
    );
    t.commit(saved_as(vec![], "users", "delta-2"))
        .await
        .expect("replacing");
    assert_eq!(
        t.get_checkpoint("users").await.expect("reading").as_deref(),
        Some("delta-2")
    );
    let clear = m365sync_wit::types::Batch {
        checkpoints: vec![m365sync_wit::types::Checkpoint {
            key: "users".to_string(),
            value: None,
        }],
        ..batch(vec![])
    };
    t.commit(clear).await.expect("clearing");
    assert_eq!(t.get_checkpoint("users").await.expect("reading"), None);
    assert_eq!(
        t.get_checkpoint("groups")
            .await
            .expect("reading")
            .as_deref(),
        Some("groups-1")
    );
    t.finish().await.expect("finishing");
    assert_eq!(
        checkpoint_of(store, "t", "groups").await.as_deref(),
        Some("groups-1")
    );
}

pub async fn find_people_answers_each_key_in_order(subject: &Subject) {
    let store = &*subject.store;
    // The keys are the engine's, stored as given: the store normalises nothing, so a key
    // that is not the person's UPN or mail lowercased finds them, and their UPN does not.
    commit_all(
        store,
        "t",
        vec![saved(vec![
            upsert(full_person("a"), Some("mail-key-a"), "upn-key-a"),
            upsert(person("b", "Bob@X.test"), None, "bob@x.test"),
            // Two people sharing both keys (written in this order).
            upsert(person("k2", "k2@x.test"), Some("shared@x.test"), "shared"),
            upsert(person("k1", "k1@x.test"), Some("shared@x.test"), "shared"),
        ])],
    )
    .await;
    let mut t = read_only(store, "t").await;
    let keys = [
        email("mail-key-a"),
        id("b"),
        upn("upn-key-a"),
        id("missing"),
        email("nobody@x.test"),
        upn("Full.a@Contoso.example"),
        upn("bob@x.test"),
        email("bob@x.test"),
        id("a"),
        email("shared@x.test"),
        upn("shared"),
    ];
    let expected = vec![
        Some("a".to_string()),
        Some("b".to_string()),
        Some("a".to_string()),
        None,
        None,
        None,
        Some("b".to_string()),
        None,
        Some("a".to_string()),
        // A key several people share finds the first of them by object id.
        Some("k1".to_string()),
        Some("k1".to_string()),
    ];
    assert_eq!(found(&mut *t, &keys).await, expected);
    assert!(t.find_people(&[]).await.expect("no keys").is_empty());
    // Every field comes back as it went in.
    let back = t.find_people(&[id("a")]).await.expect("finding a");
    let back = back.into_iter().next().flatten().expect("a is stored");
    assert_eq!(format!("{back:?}"), format!("{:?}", full_person("a")));
}

pub async fn list_people_ids_pages_in_byte_order(subject: &Subject) {
    let store = &*subject.store;
    let all = ["b", "a", "B", "a-1", "é", "Z", "aa"];
    commit_all(
        store,
        "t",
        vec![saved(all.iter().map(|id| create(id)).collect())],
    )
    .await;
    let mut t = read_only(store, "t").await;
    let mut page = async |after: Option<&str>, limit| {
        t.list_people_ids(after, limit)
            .await
            .expect("listing people")
    };
    assert_eq!(page(None, 3).await, strings(&["B", "Z", "a"]));
    assert_eq!(page(Some("a"), 3).await, strings(&["a-1", "aa", "b"]));
    assert_eq!(page(Some("b"), 3).await, strings(&["é"]));
    assert_eq!(page(Some("é"), 3).await, Vec::<String>::new());
    // After an id that is not stored: the ids above it.
    assert_eq!(page(Some("a0"), 10).await, strings(&["aa", "b", "é"]));
    assert_eq!(page(None, 0).await, Vec::<String>::new());
    assert_eq!(page(None, u32::MAX).await.len(), all.len());
}

pub async fn find_direct_reports_finds_the_managers_people(subject: &Subject) {
    let store = &*subject.store;
    let report = |id: &str, manager: &str, status| {
        let mut stored = person(id, &format!("{id}@x.test"));
        stored.person.manager_id = Some(manager.to_string());
        stored.status = status;
        upsert(stored, None, &format!("{id}@x.test"))
    };
    let mut t = open(store, "t").await;
    t.commit(saved(vec![
        create("m"),
        report("r2", "m", PersonStatus::Removed),
        report("r1", "m", PersonStatus::Active),
        report("x", "other", PersonStatus::Active),
    ]))
    .await
    .expect("committing");
    let reports = async |t: &mut dyn crate::TenantStore, manager: &str| {
        (t.find_direct_reports(manager).await)
            .expect("finding direct reports")
            .into_iter()
            .map(|p| p.person.object_id)
            .collect::<Vec<String>>()
    };
    let by_id = strings(&["r1", "r2"]);
    assert_eq!(
        reports(&mut *t, "m").await,
        by_id,
        "any status, by object id"
    );
    assert!(reports(&mut *t, "nobody").await.is_empty());
    // A new manager, a deletion, and a link move people between managers.
    t.commit(saved(vec![
        report("r1", "other", PersonStatus::Active),
        Change::DeletePerson("x".to_string()),
    ]))
    .await
    .expect("committing");
    assert_eq!(reports(&mut *t, "m").await, strings(&["r2"]));
    assert_eq!(reports(&mut *t, "other").await, strings(&["r1"]));
    let mut linked = person("r2-new", "r2@x.test");
    linked.person.manager_id = Some("m".to_string());
    t.commit(saved(vec![link(linked, "r2", None, "r2@x.test")]))
        .await
        .expect("linking");
    assert_eq!(reports(&mut *t, "m").await, strings(&["r2-new"]));
    t.finish().await.expect("finishing");
}

/// An update finds the person by their new keys and manager and no longer by the old
/// ones, and one that changes none of them leaves them as they were (a store may write
/// those in a statement of their own); an update of a person not stored stores them.
pub async fn an_update_moves_the_person_between_keys_and_managers(subject: &Subject) {
    let store = &*subject.store;
    let with = |mail: &str, upn_key: &str, manager: &str, department: &str| {
        let mut stored = person("p", &format!("{upn_key}@x.test"));
        stored.person.manager_id = Some(manager.to_string());
        stored.person.department = Some(department.to_string());
        (stored, mail.to_string(), upn_key.to_string())
    };
    let mut t = open(store, "t").await;
    let (first, mail, upn_key) = with("old@x.test", "old", "m1", "Sales");
    t.commit(saved(vec![upsert(first, Some(&mail), &upn_key)]))
        .await
        .expect("creating");
    let (moved, mail, upn_key) = with("new@x.test", "new", "m2", "Sales");
    t.commit(saved(vec![update(moved, Some(&mail), &upn_key)]))
        .await
        .expect("updating the keys and the manager");
    let (renamed, mail, upn_key) = with("new@x.test", "new", "m2", "Legal");
    t.commit(saved(vec![
        update(renamed, Some(&mail), &upn_key),
        update(person("q", "q@x.test"), None, "q"),
    ]))
    .await
    .expect("updating the department only, and a person not stored");
    let found = t
        .find_people(&[
            email("old@x.test"),
            upn("old"),
            email("new@x.test"),
            upn("new"),
            upn("q"),
        ])
        .await
        .expect("finding");
    let found: Vec<Option<(String, Option<String>)>> = found
        .into_iter()
        .map(|f| f.map(|p| (p.person.object_id, p.person.department)))
        .collect();
    let p = Some(("p".to_string(), Some("Legal".to_string())));
    assert_eq!(
        found,
        [None, None, p.clone(), p, Some(("q".to_string(), None))]
    );
    let reports = |people: Vec<m365sync_wit::types::StoredPerson>| {
        people
            .into_iter()
            .map(|p| p.person.object_id)
            .collect::<Vec<String>>()
    };
    assert!(reports(t.find_direct_reports("m1").await.expect("m1")).is_empty());
    assert_eq!(
        reports(t.find_direct_reports("m2").await.expect("m2")),
        strings(&["p"])
    );
    t.finish().await.expect("finishing");
}

fn decision(tenant: &str, action: ReviewAction) -> MatchDecision {
    MatchDecision {
        tenant_key: tenant.to_string(),
        action,
        decided_at: "2025-01-01T00:00:00Z".to_string(),
    }
}

/// A decision's action as (name, organization id).
fn action_of(decision: Option<MatchDecision>) -> Option<(&'static str, Option<String>)> {
    decision.map(|d| {
        let (name, organization) = action_parts(&d.action);
        (name, organization.map(str::to_string))
    })
}

pub async fn decisions_are_kept_per_tenant(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    assert!(t.get_decision("t").await.expect("reading").is_none());
    t.put_decision(decision("t", ReviewAction::Accept("org-1".to_string())))
        .await
        .expect("storing");
    let read = t.get_decision("t").await.expect("reading");
    assert_eq!(
        read.as_ref().map(|d| d.decided_at.as_str()),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(action_of(read), Some(("accept", Some("org-1".to_string()))));
    t.put_decision(decision("t", ReviewAction::Ignore))
        .await
        .expect("replacing");
    assert_eq!(
        action_of(t.get_decision("t").await.expect("reading")),
        Some(("ignore", None))
    );
    // A tenant can neither read nor write another tenant's decision.
    assert!(matches!(
        t.get_decision("u").await,
        Err(StorageError::Invalid(_))
    ));
    let theirs = t.put_decision(decision("u", ReviewAction::Create)).await;
    assert!(
        matches!(theirs, Err(StorageError::Invalid(_))),
        "{theirs:?}"
    );
    t.finish().await.expect("finishing");
    assert!(store.get_decision("u").await.expect("reading").is_none());
    let mut u = open(store, "u").await;
    u.put_decision(decision("u", ReviewAction::Change("org-2".to_string())))
        .await
        .expect("storing");
    u.finish().await.expect("finishing");
    let of = async |tenant| action_of(store.get_decision(tenant).await.expect("reading"));
    assert_eq!(of("t").await, Some(("ignore", None)));
    assert_eq!(of("u").await, Some(("change", Some("org-2".to_string()))));
    assert_eq!(of("v").await, None);
    let again = subject.reopen().await;
    let decided = again.get_decision("u").await.expect("reading");
    assert_eq!(
        action_of(decided),
        Some(("change", Some("org-2".to_string())))
    );
}

pub async fn a_read_only_store_refuses_writes(subject: &Subject) {
    let store = &*subject.store;
    commit_all(store, "t", vec![saved(vec![create("a")])]).await;
    // Read-only takes no lock: it opens while a sync holds the tenant, and does not stop
    // one from starting.
    let mut sync = open(store, "t").await;
    let mut t = read_only(store, "t").await;
    assert_eq!(ids(&mut *t).await, strings(&["a"]));
    let refused = t
        .commit(saved(vec![Change::DeletePerson("a".to_string())]))
        .await;
    assert!(refused.is_err(), "a commit is refused");
    assert!(
        t.create_organization("X").await.is_err(),
        "creating is refused"
    );
    let put = t.put_decision(decision("t", ReviewAction::Ignore)).await;
    assert!(put.is_err(), "storing a decision is refused");
    t.finish().await.expect("finishing a read-only store");
    sync.finish().await.expect("finishing");
    assert_eq!(ids_of(store, "t").await, strings(&["a"]));
    assert!(
        store
            .list_organizations()
            .await
            .expect("listing")
            .is_empty()
    );
    assert!(store.get_decision("t").await.expect("reading").is_none());
    // A read-only store of a tenant never stored reads as empty.
    let mut none = read_only(store, "never-stored").await;
    assert!(ids(&mut *none).await.is_empty());
    assert_eq!(none.get_checkpoint("users").await.expect("reading"), None);
    drop(none);
    assert!(
        store.open_tenant("t", Access::Sync).await.is_ok(),
        "no lock was left"
    );
}

pub async fn a_tenant_never_reads_or_writes_another_tenants_rows(subject: &Subject) {
    let store = &*subject.store;
    // Both tenants have a person "same" (with the same keys), a manager "m", a mailbox,
    // usage, a group and a checkpoint of the same key.
    for (tenant, upn_name) in [("t", "t-same"), ("u", "u-same")] {
        let mut report = person(&format!("{tenant}-report"), "report@x.test");
        report.person.manager_id = Some("m".to_string());
        let mut same = person("same", upn_name);
        same.person.licences = vec![format!("{tenant}-sku")];
        commit_all(
            store,
            tenant,
            vec![saved_as(
                vec![
                    upsert(same, Some("same@x.test"), "same@x.test"),
                    upsert(report, None, "report@x.test"),
                    create(&format!("{tenant}-only")),
                    mailbox("same", 1, 1),
                    usage("same", "exchange", 30, Some("2024-01-01"), "2024-01-02"),
                    group("g", &format!("{tenant} group"), None, "security"),
                    members("g", &["same"], &[]),
                ],
                "users",
                tenant,
            )],
        )
        .await;
    }
    let mut mine = open(store, "t").await;
    assert_eq!(
        ids(&mut *mine).await,
        strings(&["same", "t-only", "t-report"])
    );
    assert_eq!(
        mine.get_checkpoint("users")
            .await
            .expect("reading")
            .as_deref(),
        Some("t")
    );
    let people = mine
        .find_people(&[
            id("same"),
            email("same@x.test"),
            upn("same@x.test"),
            id("u-only"),
        ])
        .await
        .expect("finding");
    let upns: Vec<Option<String>> = (people.into_iter())
        .map(|p| p.map(|p| p.person.user_principal_name))
        .collect();
    let t_same = Some("t-same".to_string());
    assert_eq!(upns, vec![t_same.clone(), t_same.clone(), t_same, None]);
    let reports = mine
        .find_direct_reports("m")
        .await
        .expect("finding reports");
    let reports: Vec<String> = reports.into_iter().map(|p| p.person.object_id).collect();
    assert_eq!(reports, strings(&["t-report"]));
    // t's deletions, report replacements and checkpoints leave u's rows alone.
    mine.commit(saved_as(
        vec![
            Change::DeletePerson("same".to_string()),
            Change::ReplaceReport(m365sync_wit::types::ReportScope::Mailboxes),
            Change::DeleteGroup("g".to_string()),
        ],
        "users",
        "t-2",
    ))
    .await
    .expect("committing");
    mine.finish().await.expect("finishing");
    assert_eq!(
        ids_of(store, "u").await,
        strings(&["same", "u-only", "u-report"])
    );
    assert_eq!(
        checkpoint_of(store, "u", "users").await.as_deref(),
        Some("u")
    );
    for kind in [
        ExportKind::Mailboxes,
        ExportKind::Usage,
        ExportKind::Groups,
        ExportKind::GroupMembers,
    ] {
        assert!(
            export(store, kind, Some("t")).await.is_empty(),
            "{kind:?} of t"
        );
        let theirs = export(store, kind, Some("u")).await;
        assert_eq!(theirs.len(), 1, "{kind:?} of u");
        assert_eq!(theirs[0][0], txt("u"), "{kind:?} rows are u's");
    }
    let people = export(store, ExportKind::People, Some("u")).await;
    assert!(
        people.iter().all(|row| row[0] == txt("u")),
        "people of u only"
    );
    let summary = store.tenant_summary("t").await.expect("summary of t");
    assert_eq!(
        (summary.people.total, summary.groups, summary.memberships),
        (2, 0, 0)
    );
    let lines = store.licence_lines("t", 30).await.expect("licences of t");
    assert_eq!(lines.usage_as_of, None, "t's usage went with its person");
    assert!(lines.skus.is_empty(), "u's licences are not t's");
    // A reset of t leaves u whole.
    store.reset_tenant("t").await.expect("resetting t");
    assert!(ids_of(store, "t").await.is_empty());
    assert_eq!(
        ids_of(store, "u").await,
        strings(&["same", "u-only", "u-report"])
    );
    let summary = store.tenant_summary("u").await.expect("summary of u");
    assert_eq!(
        (summary.people.total, summary.groups, summary.memberships),
        (3, 1, 1)
    );
}
