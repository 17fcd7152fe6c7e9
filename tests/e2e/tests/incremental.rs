//! Incremental sync with Graph delta query, on every store back end: only what changed is
//! read and applied, partial updates never blank fields, removals follow the removal
//! policy, an expired delta token falls back to a full resync, and a run stopped mid-way is
//! finished by the next one with nothing lost and nothing doubled.

use std::collections::HashSet;

use m365sync_e2e::{
    Kind, TENANT, TestStore, checkpoint, on_both_stores, people_count, person, records, runs,
    runtime, simulator, sync, tenant_run, text, users,
};
use m365sync_service::wit::types::{PersonStatus, RemovalPolicy, SyncError, SyncMode};
use m365sync_simulator::{Fault, FaultKind, Host};

const DELTA_LINK: &str = "users.delta-link";

/// A stored person's status (None: not stored).
async fn status(db: &TestStore, id: &str) -> Option<PersonStatus> {
    person(db, id).await.map(|p| p.status)
}

on_both_stores! {
    async fn incremental_sync_reads_and_applies_only_what_changed(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.mode = SyncMode::Incremental;

        // The first sync has no delta link yet: a full round, which leaves one.
        let first = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(first.mode, SyncMode::Full);
        assert_eq!(users(&first).created, 2500);
        assert!(checkpoint(&db, DELTA_LINK).await.is_some());

        let before = sim.tenant();
        let ids: Vec<String> = before.users.iter().map(|u| u.id.clone()).collect();
        let created = sim.create_users(3);
        sim.update_users(&ids[0..2], |u| {
            u.department = Some("Quantum Research".to_string())
        });
        sim.delete_users(&ids[2..3], false);
        sim.delete_users(&ids[3..4], true);
        let graph_before = sim.graph_requests().len();

        let second = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(second.mode, SyncMode::Incremental);
        let u = users(&second);
        assert_eq!((u.created, u.updated, u.removed), (3, 2, 2), "{second:?}");
        assert_eq!(u.read, 7, "a replay reads only the changes");
        assert_eq!(
            sim.graph_requests().len() - graph_before,
            1,
            "one delta page"
        );

        // Created users are stored; updated ones have the new department and keep every
        // other field; removed ones are kept and marked (default policy: keep).
        assert_eq!(people_count(&db, TENANT).await, 2503);
        for id in &created {
            assert_eq!(status(&db, id).await, Some(PersonStatus::Active));
        }
        for user in &before.users[0..2] {
            let stored = person(&db, &user.id).await.expect("stored").person;
            assert_eq!(stored.department.as_deref(), Some("Quantum Research"));
            assert_eq!(stored.job_title, user.job_title);
            assert_eq!(stored.mail, user.mail);
            assert_eq!(stored.user_principal_name, user.user_principal_name);
        }
        assert_eq!(status(&db, &ids[2]).await, Some(PersonStatus::Removed));
        assert_eq!(status(&db, &ids[3]).await, Some(PersonStatus::Removed));

        // Nothing changed since: an empty replay.
        let third = sync(&runtime, &run, &db).await.unwrap();
        let u = users(&third);
        assert_eq!(
            (u.read, u.created, u.updated, u.removed, u.written),
            (0, 0, 0, 0, 0)
        );
    }
}

on_both_stores! {
    async fn removals_follow_the_removal_policy(db) {
        use PersonStatus::{Active, Flagged, Inactive, Removed};
        for (policy, soft, hard) in [
            (RemovalPolicy::Keep, Some(Removed), Some(Removed)),
            (RemovalPolicy::Flag, Some(Flagged), Some(Flagged)),
            (RemovalPolicy::Deactivate, Some(Inactive), Some(Inactive)),
            // A soft-deleted user can be restored: it is marked, never deleted.
            (RemovalPolicy::Delete, Some(Removed), None),
        ] {
            let sim = simulator(120).await;
            // A fresh store of the same back end for each policy.
            let db = TestStore::of(db.backend).await.expect("another store of the back end");
            let runtime = runtime();
            let mut run = tenant_run(&sim);
            run.options.mode = SyncMode::Incremental;
            run.options.removal = policy;
            sync(&runtime, &run, &db).await.unwrap();

            let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
            sim.delete_users(&ids[0..1], false);
            sim.delete_users(&ids[1..2], true);
            let report = sync(&runtime, &run, &db).await.unwrap();
            assert_eq!(users(&report).removed, 2, "{policy:?}");
            assert_eq!(status(&db, &ids[0]).await, soft, "{policy:?} soft delete");
            assert_eq!(status(&db, &ids[1]).await, hard, "{policy:?} hard delete");

            // A restored user is active again.
            sim.restore_users(&ids[0..1]);
            sync(&runtime, &run, &db).await.unwrap();
            assert_eq!(status(&db, &ids[0]).await, Some(Active), "{policy:?}");
        }
    }
}

on_both_stores! {
    async fn an_expired_delta_token_falls_back_to_a_full_resync_without_duplicates(db) {
        let sim = simulator(1500).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.mode = SyncMode::Incremental;
        sync(&runtime, &run, &db).await.unwrap();

        let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
        sim.delete_users(&ids[0..1], true);
        sim.create_users(2);
        sim.expire_delta_tokens();

        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(report.mode, SyncMode::Full);
        assert!(
            report.warnings.iter().any(|w| w.code == "delta-expired"),
            "{report:?}"
        );
        let u = users(&report);
        assert_eq!((u.created, u.removed, u.unchanged), (2, 1, 1499));
        assert_eq!(people_count(&db, TENANT).await, 1502, "no duplicates");
        assert_eq!(status(&db, &ids[0]).await, Some(PersonStatus::Removed));

        // The new delta link works.
        let after = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(after.mode, SyncMode::Incremental);
        assert_eq!(users(&after).read, 0);
    }
}

on_both_stores! {
    async fn a_run_stopped_mid_way_is_finished_by_the_next_with_nothing_lost_or_doubled(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.mode = SyncMode::Incremental;

        // Graph fails for good after the first page.
        sim.inject_fault(Some(Fault {
            after_graph_requests: 1,
            count: None,
            kind: FaultKind::ServerError,
        }));
        let error = sync(&runtime, &run, &db).await.unwrap_err();
        assert!(
            matches!(error.engine_error(), Some(SyncError::Http(h)) if h.status == Some(500)),
            "{error}"
        );
        let committed = people_count(&db, TENANT).await;
        assert_eq!(committed, 999, "the first page was committed as one batch");
        assert_eq!(
            checkpoint(&db, DELTA_LINK).await,
            None,
            "no delta link without the changes it covers"
        );
        assert_eq!(runs(&db, TENANT).await.len(), 0);

        sim.inject_fault(None);
        let report = sync(&runtime, &run, &db).await.unwrap();
        let u = users(&report);
        assert_eq!(
            (u.read, u.created, u.unchanged, u.updated),
            (2500, 1501, 999, 0)
        );
        assert_eq!(people_count(&db, TENANT).await, 2500);
        assert!(checkpoint(&db, DELTA_LINK).await.is_some());
        // Every stored person once, whichever tenant (as the store exports them all).
        let exported = records(&db, Kind::People, None).await;
        let every_id_once: HashSet<&str> = exported
            .iter()
            .map(|row| text(&row["object_id"]).expect("an object id"))
            .collect();
        assert_eq!(exported.len(), 2500);
        assert_eq!(every_id_once.len(), 2500);

        let requests = sim.requests();
        assert!(
            requests
                .iter()
                .filter(|r| r.host == Host::Graph)
                .all(|r| r.method == "GET")
        );
    }
}
