//! Several syncs in one process writing one SQLite file, with the real binary: the tenants
//! of one config synced at once (`m365sync sync`, several at a time by default), and
//! `m365sync serve` with two workers. A sync keeps its write transaction open across a few
//! batches (the deferral policy, at most a couple of seconds), so the others' writes wait
//! for it: they must wait that long, not fail with "database is locked" nor hold up the
//! whole process (its HTTP, its signals) for SQLite's 30 s busy timeout.

mod cli_process;
mod serve_process;

use std::time::{Duration, Instant};

use serve_process::{Backend, Fleet, TenantOptions, run_with_deadline};

/// Two slow tenants: six pages of users each, every answer after 300 ms (about 2-3 s a
/// sync alone).
fn two_slow_tenants() -> Fleet {
    let mut fleet = Fleet::new(Backend::Sqlite).expect("SQLite is always there");
    for name in ["one", "two"] {
        fleet.add(
            name,
            5000,
            |c| c.latency = Some(Duration::from_millis(300)),
            TenantOptions::default(),
        );
    }
    fleet
}

#[test]
fn a_configs_tenants_sync_at_once_into_one_sqlite_file() {
    let fleet = two_slow_tenants();
    let config = fleet.config("two.toml", "", "");
    let mut sync = fleet.command(&["sync", "--json", "--db", &fleet.db()]);
    sync.arg("--config").arg(&config);
    let started = Instant::now();
    let output = run_with_deadline(sync, Duration::from_secs(180));
    let took = started.elapsed();
    assert!(output.status.success(), "{}", cli_process::text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("database is locked"), "{stderr}");
    for name in ["one", "two"] {
        fleet.assert_ground_truth(name);
    }
    // Each waited for the other's transaction (seconds), not for SQLite's busy timeout.
    assert!(
        took < Duration::from_secs(25),
        "two syncs of about 3 s each took {took:?}"
    );
}

#[test]
fn serve_with_two_workers_on_one_sqlite_file_never_stalls() {
    let fleet = two_slow_tenants();
    let config = fleet.config("two-workers.toml", "workers = 2\nlease_secs = 10", "");
    let server = fleet.serve(&config, &[], &[]);
    let started = Instant::now();
    server.wait("both tenants synced", Duration::from_secs(180), || {
        let tenants = server.tenants();
        tenants
            .values()
            .all(|t| t["last_run"]["ok"] == true)
            .then_some(())
    });
    let took = started.elapsed();
    for name in ["one", "two"] {
        let runs = server.runs_of(name);
        assert_eq!(
            runs.len(),
            1,
            "{name}: one run, no refusal of its own lock: {runs:#?}\nserver stderr:\n{}",
            server.stderr()
        );
        let jobs = server.jobs_of(name);
        assert_eq!(jobs.len(), 1, "{jobs:#?}");
        assert_eq!(jobs[0]["attempt"], 1, "its lease never lapsed: {}", jobs[0]);
        fleet.assert_ground_truth(name);
    }
    assert!(
        !server.stderr().contains("database is locked"),
        "{}",
        server.stderr()
    );
    assert!(
        took < Duration::from_secs(25),
        "two syncs of about 3 s each took {took:?}\n{}",
        server.stderr()
    );
}
