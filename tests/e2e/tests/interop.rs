//! Interoperability with servers and proxies that are not quite Microsoft's: one that reads
//! only Content-Length request bodies, a report function the tenant's cloud does not serve,
//! a paging loop, and a `Content-Length` that lies about a body's size. Each must end in a
//! finished run or a typed error naming the URL, in bounded time and requests. (The HTTP
//! layer: these run on SQLite.)

use std::time::Duration;

use m365sync_e2e::{
    Kind, TENANT, TestStore, count, full_run, full_simulator, people_count, records, runtime,
    simulator, simulator_with, sync, tenant_run, text, users,
};
use m365sync_service::runtime::{RunLimits, Runtime};
use m365sync_service::wit::types::SyncError;
use m365sync_simulator::{Fault, FaultKind, Host};

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_signs_in_through_a_server_that_reads_only_content_length_bodies() {
    let sim = simulator_with(300, |c| c.content_length_bodies_only = true).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let report = sync(&runtime, &tenant_run(&sim), &db)
        .await
        .unwrap_or_else(|e| panic!("the token request must carry a Content-Length: {e}"));
    assert_eq!(users(&report).created, 300);
    assert_eq!(people_count(&db, TENANT).await, 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_the_cloud_does_not_serve_is_a_warning_and_the_others_are_stored() {
    const UNSERVED: &str = "getYammerActivityUserDetail";
    let sim = full_simulator(200, |c| c.unserved_reports = vec![UNSERVED.into()]).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let report = sync(&runtime, &full_run(&sim), &db)
        .await
        .unwrap_or_else(|e| panic!("one unserved report must not fail the run: {e}"));
    let unavailable: Vec<_> = report
        .warnings
        .iter()
        .filter(|w| w.code == "report-unavailable")
        .collect();
    assert_eq!(unavailable.len(), 1, "{:?}", report.warnings);
    let message = &unavailable[0].message;
    assert!(message.contains(UNSERVED), "{message}");
    assert!(
        message.contains(&format!("Resource not found for the segment '{UNSERVED}'")),
        "{message}"
    );
    assert!(!message.contains("Skype"), "its own reason: {message}");
    // Asked once for its period, never downloaded; the other reports are stored.
    let asked = sim
        .graph_requests()
        .iter()
        .filter(|r| r.path.contains(UNSERVED))
        .count();
    assert_eq!(asked, 1);
    let usage = records(&db, Kind::Usage, Some(TENANT)).await;
    let stored = |workload: &str| {
        usage
            .iter()
            .filter(|row| text(&row["workload"]) == Some(workload))
            .count()
    };
    assert_eq!(stored("yammer"), 0);
    for workload in ["exchange", "teams", "onedrive", "sharepoint"] {
        assert!(stored(workload) > 0, "{workload} usage stored");
    }
    assert!(count(&db, Kind::Mailboxes, TENANT).await > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_concealed_names_check_still_runs_after_an_unserved_report() {
    const UNSERVED: &str = "getSkypeForBusinessActivityUserDetail";
    let sim = full_simulator(200, |c| {
        c.unserved_reports = vec![UNSERVED.into()];
        c.concealed_reports = true;
    })
    .await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let report = sync(&runtime, &full_run(&sim), &db).await.unwrap();
    let codes: Vec<&str> = report.warnings.iter().map(|w| w.code.as_str()).collect();
    assert!(codes.contains(&"reports-concealed"), "{codes:?}");
    let skype = report
        .warnings
        .iter()
        .find(|w| w.code == "report-unavailable")
        .expect("a report-unavailable warning");
    assert!(skype.message.contains(UNSERVED), "{}", skype.message);
    assert!(
        skype.message.contains("Skype for Business Online"),
        "{}",
        skype.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paging_loop_fails_the_run_at_once_naming_the_url() {
    let sim = simulator(2500).await;
    let db = TestStore::sqlite().await;
    // Without the loop check the run would go on until its budget: a short one makes
    // such a regression a deadline failure (asserted below), not a hung test.
    let runtime = Runtime::new(RunLimits {
        timeout: Duration::from_secs(120),
        ..RunLimits::default()
    })
    .unwrap();
    sim.inject_fault(Some(Fault {
        after_graph_requests: 0,
        count: None,
        kind: FaultKind::PagingLoop,
    }));
    let error = sync(&runtime, &tenant_run(&sim), &db).await.unwrap_err();
    let Some(SyncError::BadResponse(failure)) = error.engine_error() else {
        panic!("expected bad-response, got {error}");
    };
    assert!(failure.url.contains("/v1.0/users/delta"), "{failure:?}");
    assert!(failure.message.contains("paging loop"), "{failure:?}");
    assert!(failure.message.contains("already read"), "{failure:?}");
    // The first page, the second (which links back), and nothing more.
    let graph = sim.graph_requests().len();
    assert_eq!(graph, 2, "{:?}", sim.graph_requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_content_length_is_a_typed_error_not_an_exhausted_memory() {
    let sim = simulator(2500).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    sim.inject_fault(Some(Fault {
        after_graph_requests: 1,
        count: None,
        kind: FaultKind::LyingContentLength,
    }));
    let error = sync(&runtime, &tenant_run(&sim), &db).await.unwrap_err();
    let Some(SyncError::BadResponse(failure)) = error.engine_error() else {
        panic!("expected bad-response, got {error}");
    };
    assert!(failure.url.contains("/v1.0/users/delta"), "{failure:?}");
    assert!(failure.message.contains("255000000 bytes"), "{failure:?}");
    assert!(failure.message.contains("too large"), "{failure:?}");
    // Refused once, not asked again: it would announce the same.
    let faulted = sim
        .graph_requests()
        .iter()
        .filter(|r| r.host == Host::Graph)
        .count();
    assert_eq!(faulted, 2, "{:?}", sim.graph_requests());
    assert_eq!(
        people_count(&db, TENANT).await,
        999,
        "the good first page stands"
    );
}
