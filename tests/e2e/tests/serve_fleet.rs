//! `m365sync serve` running a fleet unattended, on every store back end, with the real
//! binary, one simulated tenant each: a healthy tenant, one whose secret is wrong, one
//! throttled (429 with Retry-After, then fine), one slow, and one whose first runs fail
//! (a server fault) — each ends as it should, seen through the HTTP API and `/metrics`;
//! and `m365sync status --json` shows the same tenants as the API.

mod cli_process;
mod serve_process;

use std::time::Duration;

use m365sync_simulator::{Fault, FaultKind, Throttle};
use serde_json::Value;
use serve_process::{Backend, Fleet, TenantOptions, run_with_deadline};

const SETTLE: Duration = Duration::from_secs(120);

/// How long the flaky tenant's retries wait: the first after 1 s, the second after 3 s.
const BACKOFF: [i64; 2] = [1000, 3000];

fn a_fleet_ends_as_each_tenant_should(backend: Backend) {
    let Some(mut fleet) = Fleet::new(backend) else {
        return;
    };
    fleet.add(
        "healthy",
        300,
        |_| {},
        TenantOptions {
            schedule: Some("every = \"1h\"".to_string()),
            ..TenantOptions::default()
        },
    );
    fleet.add(
        "wrong-secret",
        20,
        |_| {},
        TenantOptions {
            wrong_secret: true,
            ..TenantOptions::default()
        },
    );
    // The first two Graph requests are answered 429 with Retry-After: 1, then all is well.
    fleet
        .add("throttled", 300, |_| {}, TenantOptions::default())
        .set_throttle(Some(Throttle {
            every_nth: None,
            burst: Some((1, 2)),
            status: 429,
            retry_after_secs: Some(1),
        }));
    fleet.add(
        "slow",
        1500,
        |c| c.latency = Some(Duration::from_millis(300)),
        TenantOptions {
            schedule: Some("cron = \"30 6 * * *\"\ntimezone = \"Europe/Paris\"".to_string()),
            ..TenantOptions::default()
        },
    );
    // The first Graph request of each of its first two runs fails with a 500, which the
    // engine does not retry: two failed runs, then the third (the second retry) succeeds.
    fleet
        .add("flaky", 50, |_| {}, TenantOptions::default())
        .inject_fault(Some(Fault {
            after_graph_requests: 0,
            count: Some(2),
            kind: FaultKind::ServerError,
        }));
    let config = fleet.config(
        "fleet.toml",
        "workers = 4\nfailing_after = 2\nretry_backoff = [\"1s\", \"3s\"]\nlease_secs = 10",
        "",
    );
    let server = fleet.serve(&config, &[], &[]);

    // The flaky tenant shows as failing once it failed twice in a row (its retry waits 3 s).
    let failing = server.wait_tenant("flaky", "failing", SETTLE, |t| t["status"] == "failing");
    assert_eq!(failing["consecutive_failures"], 2, "{failing}");
    assert_eq!(failing["last_run"]["ok"], false, "{failing}");
    assert_eq!(
        server.metric("m365sync_tenants{status=\"failing\"}"),
        Some(1.0),
        "/metrics counts it"
    );

    // Everyone settles: the healthy ones healthy after an ok run, the wrong secret needing
    // attention, nothing queued or running.
    let healthy = ["healthy", "throttled", "slow", "flaky"];
    let tenants = server.wait("the fleet settles", SETTLE, || {
        let tenants = server.tenants();
        let settled = healthy.iter().all(|name| {
            tenants[*name]["status"] == "healthy" && tenants[*name]["last_run"]["ok"] == true
        }) && tenants["wrong-secret"]["status"] == "needs-attention";
        let idle = server
            .get_json("/v1/jobs?state=queued")
            .as_array()
            .unwrap()
            .is_empty()
            && server
                .get_json("/v1/jobs?state=running")
                .as_array()
                .unwrap()
                .is_empty();
        (settled && idle).then_some(tenants)
    });
    assert_eq!(tenants.len(), 5, "{tenants:?}");

    for name in healthy {
        let view = &tenants[name];
        let truth = fleet.sim(name).tenant().users.len() as i64;
        assert_eq!(
            view["people"], truth,
            "{name}: people = the directory's users: {view}"
        );
        assert_eq!(view["consecutive_failures"], 0, "{name}: {view}");
        assert_eq!(view["attention"], Value::Null, "{name}: {view}");
        assert_eq!(view["paused"], false, "{name}");
        assert_eq!(view["running"], false, "{name}");
        let run_id = view["last_run"]["id"].as_i64().expect("the last run's id");
        let run = server.get_json(&format!("/v1/runs/{run_id}"));
        assert_eq!(run["tenant"], name, "{run}");
        assert_eq!(run["status"], "ok", "{name}: {run}");
        fleet.assert_ground_truth(name);
    }

    // Never synced, each was synced at once; its next run is its schedule's next time.
    let now = jiff::Timestamp::now();
    let next_run = |name: &str| {
        let text = tenants[name]["next_run"].as_str().expect("a next run");
        text.parse::<jiff::Timestamp>().unwrap()
    };
    assert_eq!(tenants["healthy"]["schedule"], "every 1h");
    let hourly = next_run("healthy");
    assert_eq!(
        hourly.as_millisecond() % 3_600_000,
        0,
        "on the hour: {hourly}"
    );
    assert!(
        hourly > now && hourly <= now + jiff::SignedDuration::from_hours(1),
        "{hourly}"
    );
    assert_eq!(tenants["slow"]["schedule"], "30 6 * * * (Europe/Paris)");
    let paris = now.in_tz("Europe/Paris").unwrap();
    let mut expected = paris
        .with()
        .hour(6)
        .minute(30)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap();
    if expected.timestamp() <= now {
        expected = expected.tomorrow().unwrap();
    }
    assert_eq!(next_run("slow"), expected.timestamp(), "06:30 in Paris");
    let nightly = tenants["flaky"]["schedule"].as_str().unwrap();
    assert!(
        nightly.starts_with("0 2 * * * ("),
        "the default: nightly at 02:00: {nightly}"
    );

    // The wrong secret: needs an admin, says what to fix, failed once and is not retried.
    let wrong = &tenants["wrong-secret"];
    let attention = wrong["attention"].as_str().expect("the fix, in words");
    assert!(
        attention.contains("the client secret is wrong") && attention.contains("AADSTS7000215"),
        "{attention}"
    );
    assert_eq!(wrong["consecutive_failures"], 1, "{wrong}");
    assert_eq!(wrong["last_run"]["ok"], false, "{wrong}");
    assert_eq!(wrong["people"], 0, "{wrong}");
    let jobs = server.jobs_of("wrong-secret");
    assert_eq!(jobs.len(), 1, "exactly one job, no retry: {jobs:#?}");
    assert_eq!(jobs[0]["state"], "failed", "{}", jobs[0]);
    assert_eq!(jobs[0]["kind"], "scheduled", "{}", jobs[0]);
    let runs = server.runs_of("wrong-secret");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "failed");

    // The throttled tenant waited and retried, and /metrics says so.
    let throttled = fleet.sim("throttled").graph_requests();
    assert_eq!(
        throttled.iter().filter(|r| r.status == 429).count(),
        2,
        "the simulator throttled twice"
    );
    let run_id = tenants["throttled"]["last_run"]["id"].as_i64().unwrap();
    let run = server.get_json(&format!("/v1/runs/{run_id}"));
    assert!(run["retries"].as_u64() >= Some(2), "{run}");
    let retries = server
        .metric("m365sync_graph_retries_total")
        .expect("m365sync_graph_retries_total in /metrics");
    assert!(retries >= 2.0, "m365sync_graph_retries_total {retries}");
    let waited = server
        .metric("m365sync_throttled_wait_seconds_total")
        .expect("m365sync_throttled_wait_seconds_total in /metrics");
    assert!(waited >= 1.0, "Retry-After: 1 was honoured: {waited} s");

    // The flaky tenant: failed, retried after 1 s, failed, retried after 3 s, succeeded.
    let jobs = server.jobs_of("flaky");
    let states: Vec<(&str, &str, i64)> = jobs
        .iter()
        .map(|j| {
            (
                j["kind"].as_str().unwrap(),
                j["state"].as_str().unwrap(),
                j["attempt"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("scheduled", "failed", 1),
            ("retry", "failed", 2),
            ("retry", "succeeded", 3)
        ],
        "{jobs:#?}"
    );
    for (pair, backoff) in jobs.windows(2).zip(BACKOFF) {
        let finished = pair[0]["finished_ms"].as_i64().unwrap();
        let started = pair[1]["started_ms"].as_i64().unwrap();
        assert!(
            started - finished >= backoff,
            "the retry waited its backoff of {backoff} ms: it started {} ms after the \
             failure\n{jobs:#?}",
            started - finished
        );
    }
    let flaky_runs = server.runs_of("flaky");
    let statuses: Vec<&str> = flaky_runs
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "ok"], "{flaky_runs:#?}");

    // Every run this worker ran is counted by result; the tenants by status.
    assert_eq!(
        server.metric("m365sync_runs_total{result=\"ok\"}"),
        Some(4.0)
    );
    assert_eq!(
        server.metric("m365sync_runs_total{result=\"failed\"}"),
        Some(3.0)
    );
    assert_eq!(
        server.metric("m365sync_tenants{status=\"healthy\"}"),
        Some(4.0)
    );
    assert_eq!(
        server.metric("m365sync_tenants{status=\"needs-attention\"}"),
        Some(1.0)
    );
    assert_eq!(server.metric("m365sync_queue_depth"), Some(0.0));

    // `m365sync status --json` reads the same tenants from the store as the API shows.
    let api = server.get_json("/v1/tenants");
    let mut status = fleet.command(&["status", "--json", "--db", &fleet.db()]);
    status.arg("--config").arg(&config);
    let output = run_with_deadline(status, Duration::from_secs(60));
    assert!(output.status.success(), "{}", cli_process::text(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, api, "m365sync status --json = GET /v1/tenants");
    let mut text = fleet.command(&["status", "--db", &fleet.db()]);
    text.arg("--config").arg(&config);
    let output = run_with_deadline(text, Duration::from_secs(60));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("needs-attention") && shown.contains("the client secret is wrong"),
        "{shown}"
    );

    // No secret in anything the server wrote.
    let stderr = server.stderr();
    for name in fleet.names() {
        let secret = fleet.sim(&name).credentials().client_secret;
        assert!(!stderr.contains(&secret), "{name}'s secret in stderr");
    }
}

mod a_fleet_ends_as_each_tenant_should {
    use super::*;

    #[test]
    fn sqlite() {
        a_fleet_ends_as_each_tenant_should(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        a_fleet_ends_as_each_tenant_should(Backend::Postgres);
    }
}
