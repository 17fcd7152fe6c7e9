//! Conformance cases of the store as a whole: the sync log, the platform's organizations,
//! the per-tenant lock and resets.

use m365sync_wit::StorageError;
use m365sync_wit::types::{Batch, Change, MatchDecision, Organization, ReviewAction};

use super::Subject;
use super::fixtures::*;
use crate::log_entry::RunReport;
use crate::model::{FailedRun, LockHolder, OrganizationRow, RunStatus, host_name};
use crate::read::ExportKind;
use crate::{Access, StoreError};

pub async fn a_successful_run_is_recorded_with_its_report(subject: &Subject) {
    let store = &*subject.store;
    let report = sync_report("t");
    let mut t = open(store, "t").await;
    t.commit(Batch {
        run: Some(report.clone()),
        ..saved(vec![create("a")])
    })
    .await
    .expect("committing the run's last batch");
    t.finish().await.expect("finishing");
    let runs = store.list_runs(Some("t"), 10).await.expect("listing runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(
        (run.tenant.as_str(), run.status.as_str(), run.mode.as_str()),
        ("t", "ok", "full")
    );
    assert_eq!(run.started_at, "2025-01-01T00:00:00.000Z");
    assert_eq!(
        (run.elapsed_ms, run.requests, run.retries),
        (Some(10), Some(3), Some(1))
    );
    assert!(!run.dry_run);
    assert_eq!(
        (run.error_kind.as_deref(), run.error.as_deref()),
        (None, None)
    );
    assert_eq!(run.report, Some(RunReport::from(&report)));
    let by_id = store.get_run(run.id).await.expect("getting the run");
    assert_eq!(by_id.as_ref(), Some(run));
    let again = subject.reopen().await;
    let kept = again.list_runs(None, 10).await.expect("listing runs");
    assert_eq!(kept, runs);
}

pub async fn failed_runs_are_listed_newest_first_with_their_fields(subject: &Subject) {
    let store = &*subject.store;
    let failed = failed_run();
    let first = store
        .record_failed_run("t", &failed)
        .await
        .expect("recording")
        .expect("recorded at once");
    let mut t = open(store, "t").await;
    t.commit(Batch {
        run: Some(sync_report("t")),
        ..batch(vec![])
    })
    .await
    .expect("a successful run");
    t.finish().await.expect("finishing");
    let mut partial = sync_report("t");
    partial.requests = 7;
    partial.retries = 2;
    let interrupted = FailedRun {
        status: RunStatus::Interrupted,
        report: Some(partial.clone()),
        error_kind: "interrupted".to_string(),
        error: "stopped by a signal".to_string(),
        dry_run: true,
        ..failed_run()
    };
    let third = store
        .record_failed_run("t", &interrupted)
        .await
        .expect("recording")
        .expect("recorded at once");
    assert!(third > first, "ids grow: {first} then {third}");
    let refused = FailedRun {
        status: RunStatus::Refused,
        error_kind: "locked".to_string(),
        ..failed_run()
    };
    store
        .record_failed_run("u", &refused)
        .await
        .expect("recording");

    let runs = store.list_runs(Some("t"), 10).await.expect("listing runs");
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["interrupted", "ok", "failed"], "newest first");
    let (newest, oldest) = (&runs[0], &runs[2]);
    assert_eq!(newest.id, third);
    assert_eq!((newest.requests, newest.retries), (Some(7), Some(2)));
    assert_eq!(newest.report, Some(RunReport::from(&partial)));
    assert!(newest.dry_run);
    assert_eq!(newest.error.as_deref(), Some("stopped by a signal"));
    assert_eq!(oldest.id, first);
    assert_eq!(oldest.tenant, "t");
    assert_eq!(oldest.started_at, "2025-01-02T00:00:00.000Z");
    assert_eq!(oldest.mode, "incremental");
    assert_eq!(oldest.elapsed_ms, Some(5));
    assert_eq!(
        (oldest.requests, oldest.retries),
        (None, None),
        "unknown for a failed run"
    );
    assert_eq!(oldest.error_kind.as_deref(), Some("auth"));
    assert_eq!(oldest.error.as_deref(), Some("sign-in failed"));
    assert_eq!(oldest.report, None);
    assert!(!oldest.dry_run);

    let all = store.list_runs(None, 10).await.expect("listing all runs");
    let tenants: Vec<&str> = all.iter().map(|r| r.tenant.as_str()).collect();
    assert_eq!(tenants, ["u", "t", "t", "t"]);
    assert_eq!(all[0].status, "refused");
    let limited = store.list_runs(Some("t"), 1).await.expect("listing one");
    assert_eq!(limited.as_slice(), &runs[..1]);
    assert!(
        store
            .list_runs(Some("nobody"), 10)
            .await
            .expect("listing")
            .is_empty()
    );
    assert_eq!(
        store.get_run(first).await.expect("getting").as_ref(),
        Some(oldest)
    );
    let unknown = all.iter().map(|r| r.id).max().unwrap_or(0) + 100;
    assert!(store.get_run(unknown).await.expect("getting").is_none());
}

fn row(origin: &str, id: Option<&str>, name: &str) -> OrganizationRow {
    OrganizationRow {
        origin: origin.to_string(),
        id: id.map(str::to_string),
        name: name.to_string(),
    }
}

/// The organizations' names, as listed (by name).
async fn organization_names(store: &dyn crate::StoreBackend) -> Vec<String> {
    let all = store
        .list_organizations()
        .await
        .expect("listing organizations");
    all.into_iter().map(|o| o.name).collect()
}

pub async fn organizations_are_created_with_fresh_ids_and_imported_once(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    let a = t
        .create_organization("  Contoso Ltd ")
        .await
        .expect("creating");
    let b = t
        .create_organization("Contoso Ltd")
        .await
        .expect("creating");
    assert_eq!(a.name, "Contoso Ltd", "trimmed");
    assert_ne!(a.id, b.id, "a fresh id each time");
    for fresh in [&a.id, &b.id] {
        let uuid = uuid::Uuid::parse_str(fresh).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 4, "{fresh}");
    }
    let empty = t.create_organization("  ").await;
    assert!(matches!(empty, Err(StorageError::Invalid(_))), "{empty:?}");
    assert_eq!(t.list_organizations().await.expect("listing").len(), 2);
    t.finish().await.expect("finishing");
    let given = store
        .create_organization("Adatum", Some("org-adatum"))
        .await
        .expect("creating with an id");
    assert_eq!(given.id, "org-adatum");
    let taken = store
        .create_organization("Adatum 2", Some("org-adatum"))
        .await;
    assert!(taken.is_err(), "an id is given once: {taken:?}");

    let rows = vec![
        row("orgs.csv line 2", Some("org-1"), "Fabrikam"),
        row("orgs.csv line 3", None, "Northwind Traders"),
        row("orgs.csv line 4", None, "Contoso Ltd"),
    ];
    let first = store.import_organizations(&rows).await.expect("importing");
    assert_eq!(
        (first.created.len(), first.renamed.len(), first.unchanged),
        (2, 0, 1)
    );
    assert_eq!(first.created[0].id, "org-1");
    let again = store
        .import_organizations(&rows)
        .await
        .expect("importing again");
    assert_eq!(
        (again.created.len(), again.renamed.len(), again.unchanged),
        (0, 0, 3)
    );
    let renamed = store
        .import_organizations(&[row("x line 2", Some("org-1"), "Fabrikam Inc.")])
        .await
        .expect("renaming");
    assert_eq!(renamed.renamed.len(), 1);
    assert_eq!(renamed.renamed[0].name, "Fabrikam Inc.");
    // Rows see the rows before them: a name created by one is there for the next.
    let twice = store
        .import_organizations(&[
            row("y line 2", None, "Tailspin"),
            row("y line 3", None, "Tailspin"),
        ])
        .await
        .expect("importing");
    assert_eq!((twice.created.len(), twice.unchanged), (1, 1));
    assert_eq!(
        organization_names(store).await,
        strings(&[
            "Adatum",
            "Contoso Ltd",
            "Contoso Ltd",
            "Fabrikam Inc.",
            "Northwind Traders",
            "Tailspin"
        ])
    );
    let mut u = read_only(store, "u").await;
    let seen = u.list_organizations().await.expect("listing");
    assert_eq!(seen.len(), 6, "organizations are every tenant's");
    let again = subject.reopen().await;
    assert_eq!(organization_names(&*again).await.len(), 6);
}

pub async fn an_import_is_all_or_nothing_and_names_the_row(subject: &Subject) {
    let store = &*subject.store;
    store
        .import_organizations(&[row("a.csv line 2", Some("org-1"), "Fabrikam")])
        .await
        .expect("importing");
    let bad_files = [
        (
            vec![
                row("y.csv line 2", None, "Tailspin"),
                row("y.csv line 3", None, " "),
            ],
            "y.csv line 3",
        ),
        (
            vec![
                row("z.csv line 2", Some("org-9"), "Tailspin"),
                row("z.csv line 3", Some("org-1"), "Renamed"),
                row("z.csv line 4", Some("has space"), "Adatum"),
            ],
            "z.csv line 4",
        ),
        (
            vec![
                row("w.csv line 2", Some("org-2"), "Tailspin"),
                row("w.csv line 3", Some("org-2"), "Adatum"),
            ],
            "w.csv line 3",
        ),
    ];
    for (rows, origin) in bad_files {
        let error = store
            .import_organizations(&rows)
            .await
            .expect_err("a bad row");
        let message = error.to_string();
        assert!(message.contains(origin), "names {origin}: {message}");
        assert!(
            matches!(error, StoreError::Storage(StorageError::Invalid(_))),
            "{error:?}"
        );
        assert_eq!(
            organization_names(store).await,
            strings(&["Fabrikam"]),
            "nothing imported"
        );
    }
}

pub async fn a_locked_tenant_refuses_a_second_sync(subject: &Subject) {
    let store = &*subject.store;
    let mut first = open(store, "t").await;
    let this = LockHolder::this_process();
    let check = |refused: Result<Box<dyn crate::TenantStore>, StoreError>| {
        let Err(error) = refused else {
            panic!("a second sync of t is refused");
        };
        let message = error.to_string();
        let StoreError::Locked { tenant, holder } = error else {
            panic!("refused as locked: {message}");
        };
        assert_eq!(tenant, "t");
        assert_eq!(
            (holder.pid, holder.host.as_str()),
            (this.pid, this.host.as_str())
        );
        assert!(
            message.starts_with(&format!(
                "tenant t is being synced by another process (pid {} on {}) since {}",
                holder.pid, holder.host, holder.since
            )),
            "{message}"
        );
    };
    check(store.open_tenant("t", Access::Sync).await);
    // As a second process would be.
    let again = subject.reopen().await;
    check(again.open_tenant("t", Access::Sync).await);
    let holder = again.lock_holder("t").await.expect("reading the lock");
    let holder = holder.expect("t is held");
    assert_eq!(
        (holder.pid, holder.host.as_str()),
        (std::process::id(), host_name().as_str())
    );
    assert!(
        store
            .lock_holder("u")
            .await
            .expect("reading the lock")
            .is_none()
    );
    // Other tenants are not held up; a reset of t is refused meanwhile, and leaves it be.
    let mut u = open(&*again, "u").await;
    u.finish().await.expect("finishing u");
    first
        .commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    let reset = store.reset_tenant("t").await;
    assert!(matches!(reset, Err(StoreError::Locked { .. })), "{reset:?}");
    first.finish().await.expect("finishing");
    assert_eq!(ids_of(store, "t").await, strings(&["a"]));
    store
        .reset_tenant("t")
        .await
        .expect("a reset once the sync is done");
}

pub async fn the_lock_is_released_on_finish_and_on_drop(subject: &Subject) {
    let store = &*subject.store;
    let mut first = open(store, "t").await;
    first.finish().await.expect("finishing");
    assert!(
        store
            .lock_holder("t")
            .await
            .expect("reading the lock")
            .is_none()
    );
    let second = open(store, "t").await;
    assert!(
        store
            .lock_holder("t")
            .await
            .expect("reading the lock")
            .is_some()
    );
    drop(second);
    assert!(
        store
            .lock_holder("t")
            .await
            .expect("reading the lock")
            .is_none()
    );
    drop(first);
    let mut third = open(store, "t").await;
    third.finish().await.expect("finishing");
}

pub async fn a_reset_empties_the_tenant_and_keeps_the_log_and_organizations(subject: &Subject) {
    let store = &*subject.store;
    let mut t = open(store, "t").await;
    t.commit(saved(vec![
        create("a"),
        create("b"),
        subscription("sku", "PART", "Product", 1, 0, 0, 1),
        group("g", "Group", None, "security"),
        members("g", &["a"], &[]),
        mailbox("a", 1, 1),
        usage("a", "exchange", 30, None, "2024-03-01"),
        Change::UpsertOrganization(Organization {
            tenant_id: "00000000-0000-0000-0000-000000000001".to_string(),
            display_name: "Contoso".to_string(),
            country: Some("NL".to_string()),
            default_domain: Some("contoso.com".to_string()),
            verified_domains: vec!["contoso.com".to_string()],
        }),
        Change::UpsertDomain(m365sync_wit::types::Domain {
            name: "contoso.com".to_string(),
            is_default: true,
            is_initial: false,
            is_verified: true,
        }),
    ]))
    .await
    .expect("committing");
    t.put_decision(MatchDecision {
        tenant_key: "t".to_string(),
        action: ReviewAction::Ignore,
        decided_at: "2025-01-01T00:00:00Z".to_string(),
    })
    .await
    .expect("deciding");
    t.create_organization("Contoso").await.expect("creating");
    t.finish().await.expect("finishing");
    store
        .record_failed_run("t", &failed_run())
        .await
        .expect("recording");
    commit_all(store, "u", vec![saved(vec![create("c")])]).await;

    let outcome = store.reset_tenant("t").await.expect("resetting");
    let mut deleted: Vec<(String, u64)> = outcome
        .deleted
        .iter()
        .filter(|(_, n)| *n > 0)
        .cloned()
        .collect();
    deleted.sort();
    let expected: Vec<(String, u64)> = [
        ("checkpoints", 1),
        ("domains", 1),
        ("group_members", 1),
        ("groups", 1),
        ("mailboxes", 1),
        ("match_decisions", 1),
        ("organizations", 1),
        ("people", 2),
        ("subscriptions", 1),
        ("usage", 1),
    ]
    .iter()
    .map(|(table, n)| (table.to_string(), *n))
    .collect();
    assert_eq!(deleted, expected);
    assert!(ids_of(store, "t").await.is_empty());
    assert_eq!(checkpoint_of(store, "t", "users.delta-link").await, None);
    assert!(store.get_decision("t").await.expect("reading").is_none());
    for kind in [
        ExportKind::People,
        ExportKind::Subscriptions,
        ExportKind::Groups,
        ExportKind::Usage,
    ] {
        assert!(export(store, kind, Some("t")).await.is_empty(), "{kind:?}");
    }
    let summary = store.tenant_summary("t").await.expect("summary");
    assert_eq!(summary, Default::default());
    let runs = store.list_runs(Some("t"), 10).await.expect("listing runs");
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["reset", "failed"],
        "the log is kept, with the reset"
    );
    assert_eq!(runs[0].id, outcome.run_id);
    assert_eq!(runs[0].mode, "reset");
    let note = runs[0].error.as_deref().unwrap_or_default();
    assert!(note.contains("2 people"), "{note}");
    assert_eq!(organization_names(store).await, strings(&["Contoso"]));
    assert_eq!(
        ids_of(store, "u").await,
        strings(&["c"]),
        "other tenants are untouched"
    );
    // A tenant with nothing stored resets to nothing, and says so.
    let nothing = store.reset_tenant("never-stored").await.expect("resetting");
    assert!(
        nothing.deleted.iter().all(|(_, n)| *n == 0),
        "{:?}",
        nothing.deleted
    );
    let runs = store
        .list_runs(Some("never-stored"), 1)
        .await
        .expect("listing");
    assert_eq!(
        runs[0].error.as_deref(),
        Some("the store held nothing for the tenant")
    );
    // The tenant syncs afresh.
    commit_all(store, "t", vec![saved(vec![create("z")])]).await;
    assert_eq!(ids_of(store, "t").await, strings(&["z"]));
}
