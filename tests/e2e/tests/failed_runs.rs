//! The sync log of a failed run says what ran: the mode the engine decided on (an
//! incremental run without a delta link runs full) and the requests it sent, from the
//! failure's report.

use m365sync::runtime::bindings::types::SyncMode;
use m365sync::{RunLimits, Runtime};
use m365sync_e2e::{database, runs, simulator, sync_logged, tenant_run};
use m365sync_simulator::{Fault, FaultKind};

#[tokio::test(flavor = "multi_thread")]
async fn a_run_failing_on_page_two_logs_full_mode_and_its_requests() {
    let sim = simulator(2500).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let mut run = tenant_run(&sim);
    run.options.mode = SyncMode::Incremental;
    sim.inject_fault(Some(Fault {
        after_graph_requests: 1,
        count: None,
        kind: FaultKind::InvalidJson,
    }));
    sync_logged(&runtime, &run, &db).await.unwrap_err();
    let log = runs(&db, "contoso");
    assert_eq!(log.len(), 1);
    let failed = &log[0];
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.mode, "full", "no delta link yet: the run ran full");
    let requests = failed.requests.expect("numeric requests");
    // The token, page 1, and page 2 with its retries.
    assert!(requests >= 3, "{failed:?}");
    let report = failed.report.as_ref().expect("the failure's report");
    assert_eq!(report["mode"], "full", "{report}");
}
