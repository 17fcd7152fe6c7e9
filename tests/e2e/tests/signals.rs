//! SIGTERM and SIGINT during `m365sync sync`, with the real binary against a slow simulated
//! tenant: the run stops at its next batch boundary, exits 143 / 130, is in the sync log as
//! interrupted (with what it did until then), and the next sync completes the tenant with
//! nobody doubled. SIGTERM, and a run that reaches no batch boundary, on every store back
//! end; SIGINT and a second signal on SQLite.

mod cli_process;

use std::time::Duration;

use cli_process::{Backend, Tenant, signal, text, wait_for};
use m365sync_e2e::{TENANT, on_both_stores, runs, sink, tenant_run};
use m365sync_service::runtime::CancelToken;

/// Users in the slow tenant: five pages of users/delta (999 a page), each answered after
/// the simulator's latency, so a signal sent after the first page lands mid-run.
const USERS: usize = 4500;
const LATENCY: Duration = Duration::from_millis(500);

fn interrupted_mid_run_then_completed(backend: Backend, signal_name: &str, exit_code: i32) {
    let Some(tenant) = Tenant::start_on(backend, USERS, LATENCY) else {
        return;
    };
    let child = tenant.spawn(&["sync", "--json"]);
    // Two pages of users have been answered: the run is mid-round, between batches.
    wait_for("two pages of users", Duration::from_secs(120), || {
        tenant
            .simulator()
            .graph_requests()
            .iter()
            .filter(|r| r.path.ends_with("/users/delta"))
            .count()
            >= 2
    });
    signal(&child, signal_name);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(exit_code), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("interrupted by SIG{signal_name}")),
        "{stderr}"
    );
    let stored = tenant.people();
    assert!(
        (1..USERS as i64).contains(&stored),
        "stopped mid-run: {stored} people stored"
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed[0]["status"], "interrupted", "{printed}");

    let logs = tenant.logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["status"], "interrupted");
    assert_eq!(logs[0]["error_kind"], "cancelled");
    assert!(
        logs[0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("interrupted by SIG{signal_name}")),
        "{}",
        logs[0]
    );
    // The failure's report: what the run did until it stopped.
    assert!(logs[0]["requests"].as_u64() > Some(1), "{}", logs[0]);
    let listed = String::from_utf8_lossy(&tenant.run(&["logs"]).stdout).into_owned();
    assert!(listed.contains("INTERRUPTED"), "{listed}");

    // The next sync completes the tenant: everybody once.
    let next = tenant.run(&["sync", "--json"]);
    assert!(next.status.success(), "{}", text(&next));
    assert_eq!(
        tenant.people(),
        USERS as i64,
        "nobody doubled, nobody missing"
    );
    assert_eq!(
        tenant.people(),
        tenant.simulator().tenant().users.len() as i64
    );
    let logs = tenant.logs();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(logs[0]["status"], "ok");
}

mod sigterm_stops_a_sync_at_a_batch_boundary_and_exits_143 {
    use super::*;

    #[test]
    fn sqlite() {
        interrupted_mid_run_then_completed(Backend::Sqlite, "TERM", 143);
    }

    #[test]
    fn postgres() {
        interrupted_mid_run_then_completed(Backend::Postgres, "TERM", 143);
    }
}

#[test]
fn sigint_stops_a_sync_at_a_batch_boundary_and_exits_130() {
    interrupted_mid_run_then_completed(Backend::Sqlite, "INT", 130);
}

#[test]
fn a_second_signal_stops_at_once_with_the_same_code() {
    // Every Graph request takes 15 s (longer than the grace period): the run waits in the host, far from a batch.
    let tenant = Tenant::start(10, Duration::from_secs(15));
    let child = tenant.spawn(&["sync"]);
    wait_for("the sync started", Duration::from_secs(120), || {
        tenant.locked()
    });
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("again: stopping at once"),
        "{}",
        text(&output)
    );
    // It ended before the first answer (15 s away) and before the grace period (10 s)
    // ended: the runs table has no entry, and the next run takes the dead process's lock.
    assert!(tenant.logs().is_empty());
    assert!(
        tenant.simulator().graph_requests().is_empty(),
        "no Graph answer was waited for"
    );
}

on_both_stores! {
    async fn a_run_that_reaches_no_batch_boundary_is_stopped_after_the_grace_period(db) {
        let simulator = m365sync_e2e::simulator_with(10, |config| {
            config.latency = Some(Duration::from_secs(60));
        })
        .await;
        let run = tenant_run(&simulator);
        let engine = m365sync_e2e::runtime();
        let cancel = CancelToken::with_grace(Duration::from_millis(500));
        let cancelling = {
            let cancel = cancel.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                cancel.cancel("interrupted by SIGTERM");
            }
        };
        let sync = m365sync_service::sync_logged_cancellable(
            &engine,
            &run,
            db.store.as_ref(),
            sink(),
            &cancel,
        );
        let (result, ()) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(sync, cancelling)
        })
        .await
        .expect("stopped within the grace period, not after the minute-long request");
        let failure = result.unwrap_err();
        assert!(failure.interrupted(), "{failure}");
        assert!(
            failure.to_string().contains("reached no batch boundary"),
            "{failure}"
        );
        let runs = runs(&db, TENANT).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "interrupted");
        assert_eq!(runs[0].error_kind.as_deref(), Some("cancelled"));
        simulator.shutdown().await;
    }
}
