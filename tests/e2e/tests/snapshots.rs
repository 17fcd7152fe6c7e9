//! Data correctness across runs (issue 13), against the simulator's ground truth on every
//! store back end: each data set counts a record once (a first sync creates, a second run
//! without changes says unchanged and writes nothing), reports are snapshots (a user who
//! drops out of them loses their rows), removal policy delete takes a person's rows along,
//! and a deleted manager's reports lose the reference.

use m365sync_e2e::{
    Kind, TestStore, full_run, full_simulator, on_both_stores, person, records, runtime, sync, text,
};
use m365sync_service::config::TenantRun;
use m365sync_service::wit::types::{DataSet, DataSetReport, RemovalPolicy, SyncMode, SyncReport};
use m365sync_simulator::{ReportKind, Simulator};

fn data_set(report: &SyncReport, d: DataSet) -> &DataSetReport {
    report
        .data_sets
        .iter()
        .find(|x| x.data_set == d)
        .unwrap_or_else(|| panic!("no {d:?} in {:?}", report.data_sets))
}

/// (created, updated, unchanged, removed, written)
fn counts(report: &SyncReport, d: DataSet) -> (u64, u64, u64, u64, u64) {
    let x = data_set(report, d);
    (x.created, x.updated, x.unchanged, x.removed, x.written)
}

/// Every feature, nobody filtered out.
fn everything(sim: &Simulator) -> TenantRun {
    let mut run = full_run(sim);
    run.options.filter.domains = vec!["*".into()];
    run.options.filter.include_guests = true;
    run.options.filter.enabled_only = false;
    run.options.filter.licensed_only = false;
    run
}

/// The rows of an export (of every tenant) whose `id_column` is `id`.
async fn rows_of(db: &TestStore, kind: Kind, id_column: &str, id: &str) -> usize {
    records(db, kind, None)
        .await
        .iter()
        .filter(|row| text(&row[id_column]) == Some(id))
        .count()
}

/// Every row of an export, of every tenant.
async fn total(db: &TestStore, kind: Kind) -> u64 {
    records(db, kind, None).await.len() as u64
}

on_both_stores! {
    async fn a_first_sync_creates_what_the_tenant_has_and_a_second_says_unchanged(db) {
        // The demo's size.
        let sim = full_simulator(3000, |_| {}).await;
        let runtime = runtime();
        let run = everything(&sim);
        let truth = sim.tenant();
        let first = sync(&runtime, &run, &db).await.unwrap();
        let n = truth.users.len() as u64;
        assert_eq!(counts(&first, DataSet::Users), (n, 0, 0, 0, n));
        let groups = truth.groups.len() as u64;
        assert_eq!(counts(&first, DataSet::Groups), (groups, 0, 0, 0, groups));
        let skus = truth.skus.len() as u64;
        assert_eq!(
            counts(&first, DataSet::Subscriptions),
            (skus, 0, 0, 0, skus)
        );
        let mailboxes = sim.report_rows(ReportKind::MailboxUsage, 30).len() as u64;
        assert!(mailboxes > 0);
        assert_eq!(
            counts(&first, DataSet::Mailboxes),
            (mailboxes, 0, 0, 0, mailboxes)
        );
        let usage = total(&db, Kind::Usage).await;
        assert!(usage > 0);
        assert_eq!(counts(&first, DataSet::Usage), (usage, 0, 0, 0, usage));

        // The same tenant again, a full run: everything unchanged, nothing written.
        let second = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(counts(&second, DataSet::Users), (0, 0, n, 0, 0));
        assert_eq!(counts(&second, DataSet::Groups), (0, 0, groups, 0, 0));
        assert_eq!(counts(&second, DataSet::Subscriptions), (0, 0, skus, 0, 0));
        assert_eq!(counts(&second, DataSet::Mailboxes), (0, 0, mailboxes, 0, 0));
        assert_eq!(counts(&second, DataSet::Usage), (0, 0, usage, 0, 0));
        sim.shutdown().await;
    }
}

/// A live user who is in the mailbox report, is in a group and manages nobody.
fn plain_user_with_rows(sim: &Simulator) -> String {
    let truth = sim.tenant();
    let mailbox_rows = sim.report_rows(ReportKind::MailboxUsage, 30);
    truth
        .users
        .iter()
        .filter(|u| {
            !truth
                .users
                .iter()
                .any(|o| o.manager_id.as_deref() == Some(&u.id))
        })
        .filter(|u| {
            mailbox_rows
                .iter()
                .any(|r| r.cell("User Principal Name") == Some(u.user_principal_name.as_str()))
        })
        .find(|u| {
            truth
                .groups
                .iter()
                .any(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(&u.id)))
        })
        .map(|u| u.id.clone())
        .expect("a user with a mailbox row and a group")
}

on_both_stores! {
    async fn a_user_who_loses_their_licence_drops_out_of_the_stored_reports(db) {
        let sim = full_simulator(300, |_| {}).await;
        let runtime = runtime();
        let mut run = everything(&sim);
        sync(&runtime, &run, &db).await.unwrap();
        let id = plain_user_with_rows(&sim);
        assert_eq!(rows_of(&db, Kind::Mailboxes, "object_id", &id).await, 1);
        assert!(rows_of(&db, Kind::Usage, "object_id", &id).await > 0);
        let usage_before = total(&db, Kind::Usage).await;
        let own_usage = rows_of(&db, Kind::Usage, "object_id", &id).await as u64;

        sim.update_users(std::slice::from_ref(&id), |u| u.assigned_licenses.clear());
        run.options.mode = SyncMode::Incremental;
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(
            rows_of(&db, Kind::Mailboxes, "object_id", &id).await,
            0,
            "mailbox row gone"
        );
        assert_eq!(
            rows_of(&db, Kind::Usage, "object_id", &id).await,
            0,
            "usage rows gone"
        );
        assert_eq!(
            total(&db, Kind::Usage).await,
            usage_before - own_usage,
            "the others kept"
        );
        assert_eq!(data_set(&report, DataSet::Mailboxes).removed, 1);
        assert_eq!(data_set(&report, DataSet::Usage).removed, own_usage);
        sim.shutdown().await;
    }
}

on_both_stores! {
    async fn removal_policy_delete_takes_the_person_s_mailbox_usage_and_memberships_along(db) {
        let sim = full_simulator(300, |_| {}).await;
        let runtime = runtime();
        let mut run = everything(&sim);
        run.options.removal = RemovalPolicy::Delete;
        sync(&runtime, &run, &db).await.unwrap();
        let id = plain_user_with_rows(&sim);
        assert_eq!(rows_of(&db, Kind::People, "object_id", &id).await, 1);
        assert_eq!(rows_of(&db, Kind::Mailboxes, "object_id", &id).await, 1);
        assert!(rows_of(&db, Kind::Usage, "object_id", &id).await > 0);
        assert!(rows_of(&db, Kind::GroupMembers, "member_id", &id).await > 0);

        sim.delete_users(std::slice::from_ref(&id), true);
        run.options.mode = SyncMode::Incremental;
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(data_set(&report, DataSet::Users).removed, 1);
        for (kind, id_column) in [
            (Kind::People, "object_id"),
            (Kind::Mailboxes, "object_id"),
            (Kind::Usage, "object_id"),
            (Kind::GroupMembers, "member_id"),
        ] {
            assert_eq!(rows_of(&db, kind, id_column, &id).await, 0, "{kind:?}");
        }
        sim.shutdown().await;
    }
}

on_both_stores! {
    async fn a_deleted_manager_is_cleared_from_their_reports(db) {
        let sim = full_simulator(300, |_| {}).await;
        let runtime = runtime();
        let mut run = everything(&sim);
        sync(&runtime, &run, &db).await.unwrap();
        let truth = sim.tenant();
        // The manager with the most reports.
        let (manager, reports) = truth
            .users
            .iter()
            .map(|m| {
                let reports: Vec<String> = truth
                    .users
                    .iter()
                    .filter(|u| u.manager_id.as_deref() == Some(m.id.as_str()))
                    .map(|u| u.id.clone())
                    .collect();
                (m.id.clone(), reports)
            })
            .max_by_key(|(_, r)| r.len())
            .unwrap();
        assert!(!reports.is_empty());
        for r in &reports {
            assert_eq!(
                person(&db, r).await.and_then(|p| p.person.manager_id).as_deref(),
                Some(manager.as_str())
            );
        }

        sim.delete_users(std::slice::from_ref(&manager), true);
        run.options.mode = SyncMode::Incremental;
        let report = sync(&runtime, &run, &db).await.unwrap();
        for r in &reports {
            let stored = person(&db, r).await.unwrap_or_else(|| panic!("{r} stored"));
            assert_eq!(stored.person.manager_id, None, "{r}");
        }
        // Each report counted once, as updated.
        let u = data_set(&report, DataSet::Users);
        assert_eq!(
            (u.created, u.updated, u.removed),
            (0, reports.len() as u64, 1)
        );
        sim.shutdown().await;
    }
}
