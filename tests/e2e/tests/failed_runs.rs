//! The sync log of a failed run says what ran, on every store back end: the mode the
//! engine decided on (an incremental run without a delta link runs full) and the requests
//! it sent, from the failure's report.

use m365sync_e2e::{TENANT, on_both_stores, runs, runtime, simulator, sync_logged, tenant_run};
use m365sync_service::wit::types::SyncMode;
use m365sync_simulator::{Fault, FaultKind};

on_both_stores! {
    async fn a_run_failing_on_page_two_logs_full_mode_and_its_requests(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.mode = SyncMode::Incremental;
        sim.inject_fault(Some(Fault {
            after_graph_requests: 1,
            count: None,
            kind: FaultKind::InvalidJson,
        }));
        sync_logged(&runtime, &run, &db).await.unwrap_err();
        let log = runs(&db, TENANT).await;
        assert_eq!(log.len(), 1);
        let failed = &log[0];
        assert_eq!(failed.status, "failed");
        assert_eq!(failed.mode, "full", "no delta link yet: the run ran full");
        let requests = failed.requests.expect("numeric requests");
        // The token, page 1, and page 2 with its retries.
        assert!(requests >= 3, "{failed:?}");
        let report = failed.report.as_ref().expect("the failure's report");
        assert_eq!(report.mode, SyncMode::Full, "{report:?}");
    }
}
