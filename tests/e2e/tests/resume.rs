//! A run stopped late in a long delta round does not lose the round, on every store back
//! end: its progress was committed with a resume checkpoint, and the next run reads only
//! the pages left, removes exactly the people the tenant no longer has, and doubles nobody.

use m365sync_e2e::{
    TENANT, checkpoint, on_both_stores, people, people_count, person, runtime, simulator, sync,
    tenant_run, users,
};
use m365sync_service::wit::types::{PersonStatus, SyncMode};
use m365sync_simulator::{Fault, FaultKind};

/// 21 pages of 999 users (Graph's delta page size).
const USERS: usize = 20_000;

on_both_stores! {
    async fn a_run_stopped_at_the_last_page_is_resumed_from_its_progress(db) {
        let sim = simulator(USERS).await;
        let runtime = runtime();
        let run = tenant_run(&sim);
        assert_eq!(run.options.mode, SyncMode::Full);

        // A first complete sync, then three people leave the tenant.
        sync(&runtime, &run, &db).await.unwrap();
        let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
        let gone = &ids[100..103];
        sim.delete_users(gone, true);

        // A full sync fails on its 21st and last page (~95 % through), persistently.
        let before = sim.graph_requests().len();
        sim.inject_fault(Some(Fault {
            after_graph_requests: 20,
            count: None,
            kind: FaultKind::InvalidJson,
        }));
        let error = sync(&runtime, &run, &db).await.unwrap_err();
        assert_eq!(error.kind(), "bad-response", "{error}");
        sim.inject_fault(None);
        let resume = checkpoint(&db, "users.resume")
            .await
            .expect("progress saved with a resume point");
        assert!(resume.contains("initial"), "{resume}");
        for id in gone {
            assert_eq!(
                person(&db, id).await.map(|p| p.status),
                Some(PersonStatus::Active),
                "not removed yet"
            );
        }
        let first_run = sim.graph_requests().len() - before;

        // The next run reads the last page only, and finishes the round.
        let before = sim.graph_requests().len();
        let report = sync(&runtime, &run, &db).await.unwrap();
        let second_run = sim.graph_requests().len() - before;
        assert_eq!(
            second_run, 1,
            "only the page left (the first run sent {first_run})"
        );
        assert_eq!(report.mode, SyncMode::Full);
        assert_eq!(users(&report).removed, 3, "{report:?}");

        // People = ground truth: everyone in the tenant active, the three gone marked
        // removed, nobody doubled.
        let truth = sim.tenant().users;
        assert_eq!(truth.len(), USERS - 3);
        assert_eq!(people_count(&db, TENANT).await, USERS as i64);
        let stored = people(&db, TENANT).await;
        assert_eq!(stored.len(), USERS);
        for id in gone {
            assert_eq!(stored[id].status, PersonStatus::Removed);
        }
        for user in truth.iter().step_by(97) {
            assert_eq!(stored[&user.id].status, PersonStatus::Active);
        }
        let active = stored
            .values()
            .filter(|p| p.status == PersonStatus::Active)
            .count();
        assert_eq!(active, truth.len());
        assert!(
            checkpoint(&db, "users.resume").await.is_none(),
            "cleared by the final batch"
        );
        assert!(checkpoint(&db, "users.delta-link").await.is_some());
    }
}

on_both_stores! {
    async fn a_resume_point_graph_no_longer_accepts_runs_a_fresh_round(db) {
        let sim = simulator(USERS).await;
        let runtime = runtime();
        let run = tenant_run(&sim);
        sim.inject_fault(Some(Fault {
            after_graph_requests: 20,
            count: None,
            kind: FaultKind::InvalidJson,
        }));
        sync(&runtime, &run, &db).await.unwrap_err();
        sim.inject_fault(None);
        assert!(checkpoint(&db, "users.resume").await.is_some());
        // The saved skip token expires (Graph's sync state is reset).
        sim.expire_delta_tokens();
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert!(
            report.warnings.iter().any(|w| w.code == "resume-refused"),
            "{:?}",
            report.warnings
        );
        assert_eq!(
            users(&report).read,
            USERS as u64,
            "a fresh round read everyone"
        );
        assert_eq!(people_count(&db, TENANT).await, USERS as i64);
        assert!(checkpoint(&db, "users.resume").await.is_none());
    }
}
