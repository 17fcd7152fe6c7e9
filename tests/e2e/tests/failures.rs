//! Runs that must fail, and fail well: a wrong secret, a host that is not on the
//! allowlist, a run over its memory limit or time budget. Each fails with a clear, typed
//! error, writes nothing, leaks no secret, and leaves the host able to run the next sync.
//! The runs that write (or must not write) to a store run on every store back end; the
//! allowlist and the sandbox pool are the runtime's, and run on SQLite.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use m365sync_e2e::{
    TENANT, TestStore, on_both_stores, people_count, runs, runtime, simulator, simulator_with,
    sink, sync, tenant_run,
};
use m365sync_service::config::{ConfigFile, SecretSource};
use m365sync_service::runtime::{RunError, RunLimits, Runtime, SandboxAllocation};
use m365sync_service::wit::types::{AuthFailure, SyncError};
use m365sync_simulator::Host;

on_both_stores! {
    async fn a_wrong_secret_is_a_typed_auth_error_and_nothing_is_written(db) {
        let sim = simulator(50).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        let wrong = "wrong-secret-value-9Q~abcdefghijklmnopqrstuv";
        run.credential = SecretSource::Value(wrong.to_string()).into();

        let error = sync(&runtime, &run, &db).await.unwrap_err();

        let Some(SyncError::Auth(auth)) = error.engine_error() else {
            panic!("expected an auth error, got {error}");
        };
        assert_eq!(auth.failure, AuthFailure::InvalidSecret);
        assert_eq!(auth.aadsts, Some(7000215));
        let shown = error.to_string();
        assert!(shown.contains("AADSTS7000215"), "{shown}");
        assert!(
            !shown.contains(wrong),
            "the secret must not appear in the error: {shown}"
        );
        assert!(!shown.contains(&sim.credentials().client_secret));
        assert_eq!(people_count(&db, TENANT).await, 0);
        assert_eq!(runs(&db, TENANT).await.len(), 0);
        assert!(
            sim.requests().iter().all(|r| r.host == Host::Login),
            "no Graph request after a failed sign-in"
        );
    }
}

/// A TCP listener that counts the connections it accepts: a stand-in for a host the
/// sandbox must never reach.
async fn rogue_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (address, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_endpoint_off_the_allowlist_is_refused_and_never_reached() {
    let sim = simulator(50).await;
    let (rogue, accepted) = rogue_listener().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, sim.credentials().client_secret).unwrap();
    let login_authority = sim.login_url().trim_start_matches("http://").to_string();
    // The operator pins the sandbox to the sign-in host; the tenant's config points Graph
    // elsewhere.
    let text = format!(
        r#"
[host]
allowed_hosts = ["{login_authority}"]

[[tenant]]
name = "contoso"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret_file = "secret"

[tenant.endpoints]
login = "{login}"
graph = "http://{rogue}"
"#,
        tenant = sim.credentials().tenant_id,
        client = sim.credentials().client_id,
        login = sim.login_url(),
    );
    let config = ConfigFile::parse(&text, &dir.path().join("tenant.toml")).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(run.allowlist.api, vec![format!("http://{login_authority}")]);
    let db = TestStore::sqlite().await;
    let runtime = runtime();

    let error = sync(&runtime, &run, &db).await.unwrap_err();

    let Some(SyncError::HostDenied(host)) = error.engine_error() else {
        panic!("expected host-denied, got {error}");
    };
    assert_eq!(host, &rogue, "the error names the refused host");
    assert!(error.to_string().contains(&rogue));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no connection reached the refused host"
    );
    assert_eq!(people_count(&db, TENANT).await, 0);
}

on_both_stores! {
    async fn a_run_over_its_memory_limit_is_stopped_and_the_next_sync_runs(db) {
        let sim = simulator(300).await;
        let runtime = runtime();
        let run = tenant_run(&sim);
        let tiny = RunLimits {
            memory_bytes: 1 << 20,
            ..RunLimits::default()
        };

        let error = runtime
            .sync_with_limits(&run, db.tenant(TENANT).await, sink(), tiny)
            .await
            .unwrap_err();
        assert!(
            matches!(error, RunError::MemoryLimit { limit_mib: 1, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("memory limit of 1 MiB"),
            "{error}"
        );
        assert_eq!(people_count(&db, TENANT).await, 0);

        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(report.data_sets[0].created, 300);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_beyond_the_sandbox_pool_wait_for_a_slot_instead_of_failing() {
    let sim = simulator(200).await;
    let limits = RunLimits {
        sandboxes: SandboxAllocation::Pooled(1),
        ..RunLimits::default()
    };
    let runtime = Arc::new(Runtime::new(limits).unwrap());
    let run = tenant_run(&sim);
    // Three tenants' syncs at once through a pool of one slot: one after another.
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (runtime, mut run) = (runtime.clone(), run.clone());
            run.tenant.key = format!("tenant-{i}");
            tokio::spawn(async move {
                let db = TestStore::sqlite().await;
                let report = sync(&runtime, &run, &db).await;
                report.map(|r| (db, r))
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (db, report) = task.await.unwrap().unwrap();
        assert_eq!(report.data_sets[0].created, 200);
        assert_eq!(people_count(&db, &format!("tenant-{i}")).await, 200);
    }
    // On-demand sandboxes run the same.
    let on_demand = Runtime::new(RunLimits {
        sandboxes: SandboxAllocation::OnDemand,
        ..RunLimits::default()
    })
    .unwrap();
    let db = TestStore::sqlite().await;
    let report = sync(&on_demand, &run, &db).await.unwrap();
    assert_eq!(report.data_sets[0].created, 200);
}

on_both_stores! {
    async fn a_run_over_its_time_budget_is_stopped_and_the_next_sync_runs(db) {
        // Each Graph answer takes 200 ms; the budget is 100 ms.
        let sim = simulator_with(2500, |c| c.latency = Some(Duration::from_millis(200))).await;
        let runtime = runtime();
        let run = tenant_run(&sim);
        let short = RunLimits {
            timeout: Duration::from_millis(100),
            ..RunLimits::default()
        };

        let error = runtime
            .sync_with_limits(&run, db.tenant(TENANT).await, sink(), short)
            .await
            .unwrap_err();
        assert!(matches!(error, RunError::Deadline { .. }), "{error}");
        assert!(error.to_string().contains("time budget"), "{error}");
        assert_eq!(people_count(&db, TENANT).await, 0, "nothing half-written");

        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(report.data_sets[0].created, 2500);
    }
}
