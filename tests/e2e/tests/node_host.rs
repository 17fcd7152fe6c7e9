//! The second host: the Node.js example (examples/embed-node) runs the very component the
//! Rust host embeds, transpiled by the locally installed jco, against the simulator. A
//! full sync reads the whole tenant; after the tenant changes, an incremental sync applies
//! exactly the changes; the full run reports what the Rust host reports for the same
//! tenant; a report download host missing from the allowlist is refused by the Node
//! wrapper; the secret never shows on either output.
//!
//! Needs `node` (20 or newer) and the example's npm packages (`npm ci --prefix
//! examples/embed-node`, which CI runs). Without `node` the tests are skipped; with `node`
//! but without the packages they fail, saying so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use m365sync_e2e::{TestStore, full_run, full_simulator, runtime, sync};
use m365sync_service::runtime::EMBEDDED_COMPONENT;
use m365sync_service::store::log_entry::RunReport;
use m365sync_service::wit::types::SyncMode;
use serde_json::Value;

/// Every feature, as the Node example names them (the same set as `full_run`'s).
const FEATURES: &str =
    "users,managers,sign-in-activity,groups,licences,organization,mailboxes,usage-reports";

/// The variable the Node example reads the client secret from (set on the child only).
const SECRET_VAR: &str = "M365SYNC_NODE_TEST_CLIENT_SECRET";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/embed-node")
        .canonicalize()
        .expect("examples/embed-node exists")
}

/// `node`'s version, or None when there is no usable `node` on the PATH.
fn node_version() -> Option<String> {
    let output = Command::new("node").arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether the tests can run: false (after printing why) when node is absent; panics
/// when node is there but too old or without the example's packages.
fn node_ready(test: &str) -> bool {
    let Some(version) = node_version() else {
        // Straight to stderr: the test harness captures `println!` of passing tests.
        let _ = writeln!(std::io::stderr(), "{test}: skipped: node not found");
        return false;
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "the Node example needs Node 20 or newer; `node --version` says {version}"
    );
    let modules = example_dir().join("node_modules");
    for needed in [
        ".bin/jco",
        "@bytecodealliance/jco/package.json",
        "@bytecodealliance/preview2-shim/package.json",
    ] {
        assert!(
            modules.join(needed).exists(),
            "node {version} is installed but {} is missing: run `npm ci --prefix examples/embed-node`",
            modules.join(needed).display()
        );
    }
    true
}

/// Write the component the Rust host embeds into `dir` and transpile it there with the
/// example's jco, as the Node example loads it. Returns the transpiled directory.
fn transpile(dir: &Path) -> (PathBuf, Duration) {
    let wasm = dir.join("m365sync_engine.wasm");
    std::fs::write(&wasm, EMBEDDED_COMPONENT).expect("write the component");
    let generated = dir.join("generated");
    let started = Instant::now();
    let output = Command::new(example_dir().join("node_modules/.bin/jco"))
        .arg("transpile")
        .arg(&wasm)
        .arg("--out-dir")
        .arg(&generated)
        .args(["--name", "engine", "--instantiation", "async", "--quiet"])
        .output()
        .expect("run jco");
    assert!(
        output.status.success(),
        "jco transpile failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (generated, started.elapsed())
}

/// One run of the Node example: its exit status, stdout, stderr and wall-clock time.
struct NodeRun {
    output: Output,
    elapsed: Duration,
}

impl NodeRun {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// The `--json` output: an array with one report (or error) per run.
    fn json(&self) -> Vec<Value> {
        assert!(
            self.output.status.success(),
            "the Node example failed ({}): {}",
            self.output.status,
            self.stderr()
        );
        let value: Value = serde_json::from_str(self.stdout().trim())
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", self.stdout()));
        value.as_array().expect("a JSON array of reports").clone()
    }
}

/// Run `node main.js` with the simulator's endpoints and credentials plus `extra`, off the
/// async runtime so the in-process simulator keeps serving.
async fn run_node(
    sim: &m365sync_simulator::Simulator,
    generated: &Path,
    state: &Path,
    extra: &[&str],
) -> NodeRun {
    let credentials = sim.credentials();
    let mut command = Command::new("node");
    command
        .arg(example_dir().join("main.js"))
        .args(["--login", &sim.login_url()])
        .args(["--graph", &sim.graph_url()])
        .args(["--tenant-id", &credentials.tenant_id])
        .args(["--client-id", &credentials.client_id])
        .args(["--secret-env", SECRET_VAR])
        .arg("--state")
        .arg(state)
        .args(["--tenant-key", "contoso", "--no-transpile"])
        .arg("--generated")
        .arg(generated)
        .args(extra)
        .env(SECRET_VAR, &credentials.client_secret);
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run node");
    let run = NodeRun {
        output,
        elapsed: started.elapsed(),
    };
    for (name, text) in [("stdout", run.stdout()), ("stderr", run.stderr())] {
        assert!(
            !text.contains(&credentials.client_secret),
            "the client secret appeared on the Node example's {name}"
        );
    }
    run
}

/// The users data set of a JSON report.
fn users(report: &Value) -> &Value {
    report["data_sets"]
        .as_array()
        .expect("data_sets")
        .iter()
        .find(|d| d["data_set"] == "users")
        .unwrap_or_else(|| panic!("no users data set in {report}"))
}

fn counts(users: &Value, keys: &[&str]) -> Vec<u64> {
    keys.iter()
        .map(|k| {
            users[*k]
                .as_u64()
                .unwrap_or_else(|| panic!("{k} in {users}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_host_syncs_a_tenant_fully_then_incrementally() {
    if !node_ready("the_node_host_syncs_a_tenant_fully_then_incrementally") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (generated, transpile_time) = transpile(dir.path());
    let state = dir.path().join("state.json");
    let sim = full_simulator(300, |_| {}).await;
    let download = sim.download_url();
    let node_args = [
        "--features",
        FEATURES,
        "--download",
        download.as_str(),
        "--json",
    ];

    // Full sync: every account of the tenant is created (the default filter, domains "*"
    // with guests and disabled accounts included, leaves nobody out).
    let full = run_node(
        &sim,
        &generated,
        &state,
        &[&node_args[..], &["--mode", "full"]].concat(),
    )
    .await;
    let full_reports = full.json();
    assert_eq!(full_reports.len(), 1, "{full_reports:?}");
    let full_report = &full_reports[0];
    assert_eq!(full_report["mode"], "full");
    assert_eq!(full_report["tenant"], "contoso");
    let truth = sim.tenant();
    let u = users(full_report);
    assert_eq!(
        counts(u, &["read", "created", "removed", "linked", "conflicts"]),
        [truth.users.len() as u64, truth.users.len() as u64, 0, 0, 0],
        "{u}"
    );
    assert_eq!(u["filtered_out"], serde_json::json!({}), "{u}");
    // Mailbox and usage reports come through the redirect to the download host: the Node
    // allowlist let those credential-free GETs through.
    for data_set in ["mailboxes", "usage", "groups", "subscriptions"] {
        let d = full_report["data_sets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["data_set"] == data_set)
            .unwrap_or_else(|| panic!("no {data_set} in {full_report}"));
        assert!(d["read"].as_u64().unwrap() > 0, "{d}");
    }

    // The Rust host, on the same tenant with the same features and a fresh store, reports
    // the same counts and warnings.
    // (Its JSON is the sync log's entry type, as `m365sync sync --json` prints it.)
    let runtime = runtime();
    let db = TestStore::sqlite().await;
    let mut run = full_run(&sim);
    run.tenant.key = "contoso".to_string();
    run.options.mode = SyncMode::Full;
    let report = sync(&runtime, &run, &db).await.unwrap();
    let rust = serde_json::to_value(RunReport::from(&report)).expect("the report as JSON");
    assert_eq!(full_report["data_sets"], rust["data_sets"]);
    assert_eq!(full_report["warnings"], rust["warnings"]);
    assert_eq!(full_report["requests"], rust["requests"]);
    assert_eq!(full_report["organization"], rust["organization"]);

    // The tenant changes: 3 new accounts, 2 updated, one soft- and one hard-deleted. The
    // changed accounts manage nobody, so no one else's manager changes with them.
    let managers: std::collections::HashSet<&str> = truth
        .users
        .iter()
        .filter_map(|u| u.manager_id.as_deref())
        .collect();
    let ids: Vec<String> = truth
        .users
        .iter()
        .map(|u| u.id.clone())
        .filter(|id| !managers.contains(id.as_str()))
        .take(4)
        .collect();
    let created = sim.create_users(3);
    sim.update_users(&ids[0..2], |u| {
        u.department = Some("Quantum Research".to_string())
    });
    sim.delete_users(&ids[2..3], false);
    sim.delete_users(&ids[3..4], true);

    let incremental = run_node(
        &sim,
        &generated,
        &state,
        &[&node_args[..], &["--mode", "incremental"]].concat(),
    )
    .await;
    let incremental_reports = incremental.json();
    let incremental_report = &incremental_reports[0];
    assert_eq!(incremental_report["mode"], "incremental");
    let u = users(incremental_report);
    assert_eq!(
        counts(u, &["read", "created", "updated", "removed", "linked"]),
        [7, 3, 2, 2, 0],
        "a replay reads and applies only the changes: {u}"
    );

    // The JSON store holds every account once, the removed ones marked (policy keep).
    let stored: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let people = stored["tenants"]["contoso"]["people"]
        .as_object()
        .expect("the tenant's people");
    assert_eq!(people.len(), truth.users.len() + 3);
    for id in &created {
        assert_eq!(people[id]["stored"]["status"], "active", "{id}");
    }
    for id in &ids[2..4] {
        assert_eq!(people[id]["stored"]["status"], "removed", "{id}");
    }
    for id in &ids[0..2] {
        assert_eq!(
            people[id]["stored"]["person"]["department"],
            "Quantum Research"
        );
    }
    assert!(
        stored["tenants"]["contoso"]["checkpoints"]["users.delta-link"].is_string(),
        "the delta link is stored with the changes it covers"
    );

    let _ = writeln!(
        std::io::stderr(),
        "node host: transpile {} ms; full sync {} ms (engine {} ms); incremental sync {} ms (engine {} ms)",
        transpile_time.as_millis(),
        full.elapsed.as_millis(),
        full_report["elapsed_ms"],
        incremental.elapsed.as_millis(),
        incremental_report["elapsed_ms"],
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_host_refuses_hosts_off_the_allowlist_and_prints_the_text_report() {
    if !node_ready("the_node_host_refuses_hosts_off_the_allowlist_and_prints_the_text_report") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (generated, _) = transpile(dir.path());
    let state = dir.path().join("state.json");
    let sim = full_simulator(120, |_| {}).await;

    // Usage reports redirect to the download host, which is not allowlisted here.
    let denied = run_node(
        &sim,
        &generated,
        &state,
        &["--features", "users,usage-reports", "--mode", "full"],
    )
    .await;
    assert_eq!(denied.output.status.code(), Some(1), "{}", denied.stderr());
    let download_authority = sim.download_url().trim_start_matches("http://").to_string();
    assert!(
        denied.stderr().contains(&format!(
            "the sandbox refused a request to {download_authority}"
        )),
        "{}",
        denied.stderr()
    );

    // Users only, into a fresh store: both runs (full, then incremental) print the Rust
    // host's text report.
    let fresh = dir.path().join("fresh.json");
    let ok = run_node(&sim, &generated, &fresh, &[]).await;
    assert!(ok.output.status.success(), "{}", ok.stderr());
    let text = ok.stdout();
    assert!(
        text.starts_with("Sync of tenant contoso (full run) started "),
        "{text}"
    );
    assert!(
        text.contains("Sync of tenant contoso (incremental run) started "),
        "{text}"
    );
    assert!(
        text.contains(
            "  data set        pages     read  written  created  updated  unchanged  linked  removed conflicts\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  users               1 {:>8} {:>8} {:>8}",
            120, 120, 120
        )),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_prints_what_it_did_until_it_failed() {
    if !node_ready("a_failed_run_prints_what_it_did_until_it_failed") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (generated, _) = transpile(dir.path());
    let state = dir.path().join("state.json");
    let sim = full_simulator(50, |_| {}).await;
    // The users phase commits; the usage reports then fail (their download host is not
    // allowlisted): the sync-failure's report says what the run did.
    let failed = run_node(
        &sim,
        &generated,
        &state,
        &[
            "--features",
            "users,usage-reports",
            "--mode",
            "full",
            "--json",
        ],
    )
    .await;
    assert_eq!(failed.output.status.code(), Some(1), "{}", failed.stderr());
    let reports: Value = serde_json::from_str(failed.stdout().trim())
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", failed.stdout()));
    let report = &reports[0];
    assert_eq!(report["error_kind"], "host-denied", "{report}");
    assert_eq!(report["tenant"], "contoso", "{report}");
    assert_eq!(report["mode"], "full", "{report}");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    let u = users(report);
    assert_eq!(counts(u, &["read", "created"]), [50, 50], "{u}");
    sim.shutdown().await;
}

#[test]
fn the_node_host_s_own_unit_tests_pass() {
    if !node_ready("the_node_host_s_own_unit_tests_pass") {
        return;
    }
    let output = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(example_dir())
        .output()
        .expect("run node --test");
    assert!(
        output.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
