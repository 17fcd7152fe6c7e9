//! The sync log, on every store back end: every run of a tenant lands in it, successful or
//! failed. A successful run's counts come from the engine's report (committed with its
//! last batch); a failed run is recorded by the host with its error in words (never a
//! secret), and its counts unknown. Runs are listed newest first.

use m365sync_e2e::{
    TENANT, logged_counts, on_both_stores, runs, runtime, simulator, sync_logged, tenant_run, users,
};
use m365sync_service::SyncFailure;
use m365sync_service::config::SecretSource;
use m365sync_service::wit::types::DataSet;
use m365sync_simulator::{Fault, FaultKind};

on_both_stores! {
    async fn successful_and_failed_runs_are_logged_with_their_counts_and_errors(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        let run = tenant_run(&sim);

        // 1. A run that fails after its first page: the good page stands, the run is
        //    logged as failed with the URL it failed on, and no counts.
        sim.inject_fault(Some(Fault {
            after_graph_requests: 1,
            count: None,
            kind: FaultKind::InvalidJson,
        }));
        let failure = sync_logged(&runtime, &run, &db).await.unwrap_err();
        let SyncFailure::Run {
            error,
            run_id: Some(failed_id),
            log_error: None,
        } = &failure
        else {
            panic!("expected a logged run failure, got {failure}");
        };
        assert_eq!(error.kind(), "bad-response");
        sim.inject_fault(None);

        // 2. The next run finishes the job: its report counts the rest.
        let report = sync_logged(&runtime, &run, &db).await.unwrap();
        let created = users(&report).created;
        assert_eq!(created + 999, 2500, "the first page was committed by run 1");

        // 3. A wrong secret: logged as failed, the secret nowhere in the log.
        let mut wrong = run.clone();
        let secret = "wrong-secret-value-9Q~abcdefghijklmnopqrstuv";
        wrong.credential = SecretSource::Value(secret.to_string()).into();
        let failure = sync_logged(&runtime, &wrong, &db).await.unwrap_err();
        assert_eq!(failure.run_error().map(|e| e.kind()), Some("auth"));

        let log = runs(&db, TENANT).await;
        assert_eq!(log.len(), 3, "{log:?}");
        let (auth, ok, bad) = (&log[0], &log[1], &log[2]);
        assert!(auth.id > ok.id && ok.id > bad.id, "newest first");

        assert_eq!(bad.id, *failed_id);
        assert_eq!(bad.status, "failed");
        assert_eq!(bad.mode, "full");
        assert_eq!(bad.error_kind.as_deref(), Some("bad-response"));
        let message = bad.error.as_deref().unwrap();
        assert!(
            message.contains("tenant contoso") && message.contains("/v1.0/users/delta"),
            "{message}"
        );
        // What the failed run did until it failed: a token request and page 1, then page 2
        // tried three times (the fault persists), as the engine's failure report counts
        // them.
        assert_eq!((bad.requests, bad.retries), (Some(5), Some(2)));
        let partial = bad
            .report
            .as_ref()
            .expect("a failed run keeps its partial report");
        assert_eq!(partial.requests, 5, "{partial:?}");
        assert!(bad.elapsed_ms.is_some());

        assert_eq!(ok.status, "ok");
        assert_eq!(ok.error, None);
        assert_eq!(ok.requests, Some(u64::from(report.requests)));
        assert_eq!(ok.retries, Some(u64::from(report.retries)));
        let counts = logged_counts(ok, DataSet::Users).unwrap();
        assert_eq!(counts.read, 2500);
        assert_eq!(counts.created, created);
        assert_eq!(counts.unchanged, 999);
        assert_eq!(counts.linked, 0);
        assert_eq!(counts.conflicts, 0);
        assert_eq!(ok.started_at, report.started_at);

        assert_eq!(auth.status, "failed");
        assert_eq!(auth.error_kind.as_deref(), Some("auth"));
        let message = auth.error.as_deref().unwrap();
        assert!(message.contains("AADSTS7000215"), "{message}");
        assert!(!message.contains(secret), "{message}");
        assert!(
            !message.contains(&sim.credentials().client_secret),
            "{message}"
        );
    }
}

on_both_stores! {
    async fn a_filtered_run_logs_who_was_left_out_and_why_and_dry_runs_are_not_logged(db) {
        let sim = simulator(300).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.filter.include_guests = false;
        let guests = sim
            .tenant()
            .users
            .iter()
            .filter(|u| u.user_type == "Guest")
            .count() as u64;
        assert!(guests > 0);

        let mut dry = run.clone();
        dry.options.dry_run = true;
        sync_logged(&runtime, &dry, &db).await.unwrap();
        assert!(runs(&db, TENANT).await.is_empty(), "a dry run writes nothing");

        let report = sync_logged(&runtime, &run, &db).await.unwrap();
        let log = runs(&db, TENANT).await;
        assert_eq!(log.len(), 1);
        let counts = logged_counts(&log[0], DataSet::Users).unwrap();
        assert_eq!(counts.created, 300 - guests);
        let filtered: u64 = counts.filtered_out.values().sum();
        assert_eq!(filtered, guests, "{counts:?}");
        let reported: u64 = users(&report).filtered_out.iter().map(|r| r.count).sum();
        assert_eq!(reported, guests);
    }
}
