//! Throttling and transient faults: 429/503 are retried honouring Retry-After, truncated
//! bodies, invalid JSON and dropped connections are retried (GETs are safe to repeat), and
//! a fault that persists fails the run with an error naming the URL, never a token, and
//! keeps what was committed before it (on every store back end; the retries are the HTTP
//! layer's, and run on SQLite).

use std::time::Duration;

use m365sync_e2e::{
    TENANT, TestStore, on_both_stores, people_count, runtime, simulator, simulator_with, sync,
    tenant_run, users,
};
use m365sync_service::wit::types::SyncError;
use m365sync_simulator::{Fault, FaultKind, Throttle};

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_honouring_retry_after() {
    let sim = simulator(2500).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let run = tenant_run(&sim);
    // The second and third Graph requests are throttled with Retry-After: 1.
    sim.set_throttle(Some(Throttle {
        every_nth: None,
        burst: Some((2, 2)),
        status: 429,
        retry_after_secs: Some(1),
    }));

    let report = sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(report.retries, 2);
    assert!(
        report.retry_wait_ms >= 2000,
        "Retry-After honoured: {report:?}"
    );
    assert_eq!(users(&report).created, 2500);
    assert_eq!(people_count(&db, TENANT).await, 2500);
    let statuses: Vec<u16> = sim.graph_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 429, 429, 200, 200]);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_unavailable_without_retry_after_backs_off_and_recovers() {
    let sim = simulator(500).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    sim.set_throttle(Some(Throttle {
        every_nth: None,
        burst: Some((1, 1)),
        status: 503,
        retry_after_secs: None,
    }));
    let report = sync(&runtime, &tenant_run(&sim), &db).await.unwrap();
    assert_eq!(report.retries, 1);
    assert!(report.retry_wait_ms > 0);
    assert_eq!(users(&report).created, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_bodies_invalid_json_and_dropped_connections_are_retried() {
    for kind in [
        FaultKind::TruncatedBody,
        FaultKind::InvalidJson,
        FaultKind::ResetConnection,
    ] {
        let sim = simulator(2500).await;
        let db = TestStore::sqlite().await;
        let runtime = runtime();
        sim.inject_fault(Some(Fault {
            after_graph_requests: 1,
            count: Some(1),
            kind,
        }));
        let report = sync(&runtime, &tenant_run(&sim), &db).await.unwrap();
        assert_eq!(report.retries, 1, "{kind:?}");
        assert_eq!(users(&report).created, 2500, "{kind:?}");
        assert_eq!(people_count(&db, TENANT).await, 2500, "{kind:?}");
    }
}

on_both_stores! {
    async fn a_persistent_fault_names_the_url_and_leaks_no_token(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        sim.inject_fault(Some(Fault {
            after_graph_requests: 1,
            count: None,
            kind: FaultKind::InvalidJson,
        }));
        let error = sync(&runtime, &tenant_run(&sim), &db).await.unwrap_err();
        let Some(SyncError::BadResponse(failure)) = error.engine_error() else {
            panic!("expected bad-response, got {error}");
        };
        assert!(failure.url.contains("/v1.0/users/delta"), "{failure:?}");
        assert!(
            failure.message.contains("page 2"),
            "names the page: {failure:?}"
        );
        let shown = error.to_string();
        assert!(!shown.contains("eyJ"), "no token in the error: {shown}");
        assert!(!shown.contains(&sim.credentials().client_secret));
        assert_eq!(
            people_count(&db, TENANT).await,
            999,
            "the good first page stands"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_that_expires_mid_run_is_renewed() {
    let sim = simulator_with(2500, |c| c.latency = Some(Duration::from_millis(300))).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let run = tenant_run(&sim);
    let (report, ()) = tokio::join!(sync(&runtime, &run, &db), async {
        tokio::time::sleep(Duration::from_millis(450)).await;
        sim.expire_tokens();
    });
    let report = report.unwrap();
    assert_eq!(users(&report).created, 2500);
    let token_requests = sim
        .requests()
        .iter()
        .filter(|r| r.host == m365sync_simulator::Host::Login)
        .count();
    assert_eq!(
        token_requests, 2,
        "signed in again once the token was rejected"
    );
}
