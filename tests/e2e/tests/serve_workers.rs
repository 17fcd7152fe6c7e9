//! `m365sync serve` workers that stop mid-run, with the real binary: two workers sharing one
//! PostgreSQL database, one killed with SIGKILL while it syncs a slow tenant — the other
//! finishes that tenant once the dead worker's lease has expired, no tenant ever runs twice
//! at once, and the people are the directory's, none doubled; and a worker stopped by
//! SIGTERM during a 20,000-user sync (on every store back end) — it exits 0, the run is in
//! the sync log as interrupted, its job is queued again, and the next `serve` finishes it
//! from its checkpoint.

mod cli_process;
mod serve_process;

use std::time::Duration;

use m365sync_e2e::runs;
use m365sync_service::store::queue::{JobKind, JobState};
use serve_process::{Backend, Fleet, TenantOptions, assert_no_overlap, unix_ms};

const LIMIT: Duration = Duration::from_secs(120);

/// Users/delta requests a simulator has answered (one a page).
fn pages(fleet: &Fleet, tenant: &str) -> usize {
    fleet
        .sim(tenant)
        .graph_requests()
        .iter()
        .filter(|r| r.path.ends_with("/users/delta"))
        .count()
}

#[test]
fn a_killed_workers_tenant_is_finished_by_another_after_its_lease() {
    let Some(mut fleet) = Fleet::new(Backend::Postgres) else {
        return;
    };
    // Four pages of users, each answered after a second: a run of several seconds.
    fleet.add(
        "big",
        3000,
        |c| c.latency = Some(Duration::from_secs(1)),
        TenantOptions::default(),
    );
    fleet.add("small-a", 200, |_| {}, TenantOptions::default());
    fleet.add("small-b", 200, |_| {}, TenantOptions::default());
    let config = fleet.config("workers.toml", "workers = 2\nlease_secs = 10", "");
    let one = fleet.serve(&config, &[], &[]);
    let two = fleet.serve(&config, &[], &[]);
    let worker_id = |server: &serve_process::Server| -> String {
        server.get_json("/healthz")["worker"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (id_one, id_two) = (worker_id(&one), worker_id(&two));
    assert_ne!(id_one, id_two);

    // The big tenant's run is mid-way: its first page is in, the second asked for.
    let running = one.wait("big's run past its first page", LIMIT, || {
        let job = one.jobs_of("big").into_iter().last()?;
        (job["state"] == "running" && pages(&fleet, "big") >= 2).then_some(job)
    });
    let holder = running["worker"].as_str().unwrap().to_string();
    let (dead, survivor, survivor_id) = if holder == id_one {
        (&one, &two, &id_two)
    } else {
        assert_eq!(holder, id_two, "{running}");
        (&two, &one, &id_one)
    };
    dead.kill();
    let killed_at = jiff::Timestamp::now().as_millisecond();
    let stored_at_kill = fleet.people("big");
    assert!(
        (0..3000).contains(&stored_at_kill),
        "killed mid-run: {stored_at_kill} people stored"
    );

    // The dead worker's job keeps its lease until it expires: nobody else runs it before.
    let orphan = survivor
        .jobs_of("big")
        .into_iter()
        .find(|j| j["id"] == running["id"])
        .expect("big's job");
    let lease_until = orphan["lease_until_ms"].as_i64();
    if orphan["state"] == "running" && orphan["worker"] == holder.as_str() {
        assert!(
            lease_until.is_some_and(|until| until > killed_at),
            "the dead worker's lease was live when it died: {orphan}"
        );
    } else {
        panic!("the job was taken over within milliseconds of the kill: {orphan}");
    }
    let lease_until = lease_until.unwrap();

    // The survivor finishes it.
    let view = survivor.wait_tenant("big", "finished by the surviving worker", LIMIT, |t| {
        t["last_run"]["ok"] == true && t["running"] == false
    });
    assert_eq!(view["status"], "healthy", "{view}");
    let job = survivor
        .jobs_of("big")
        .into_iter()
        .find(|j| j["id"] == running["id"])
        .unwrap();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["worker"], survivor_id.as_str(), "{job}");
    assert_eq!(
        job["attempt"],
        running["attempt"].as_i64().unwrap() + 1,
        "taken over after a lapsed lease: a new attempt of the same job: {job}"
    );
    assert!(
        job["started_ms"].as_i64().unwrap() >= lease_until,
        "the survivor started only once the lease ({lease_until}) had expired: {job}"
    );
    let big_runs = survivor.runs_of("big");
    let ok: Vec<_> = big_runs.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len(), 1, "{big_runs:#?}");
    assert!(
        unix_ms(ok[0]["started_at"].as_str().unwrap()) >= lease_until,
        "{big_runs:#?}"
    );
    // It carried on from the dead run's checkpoint: it created only who was missing.
    let created = ok[0]["report"]["data_sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["data_set"] == "users")
        .expect("users in the report")["created"]
        .as_i64()
        .unwrap();
    assert_eq!(
        created + stored_at_kill,
        3000,
        "the survivor created who the dead run had not stored: {created} + {stored_at_kill}"
    );

    // Everyone is synced, once, and no tenant ever ran twice at once.
    survivor.wait("the small tenants synced", LIMIT, || {
        let tenants = survivor.tenants();
        ["small-a", "small-b"]
            .iter()
            .all(|t| tenants[*t]["last_run"]["ok"] == true)
            .then_some(())
    });
    for tenant in ["big", "small-a", "small-b"] {
        fleet.assert_ground_truth(tenant);
        let runs = survivor.runs_of(tenant);
        assert_no_overlap(tenant, &runs);
        assert!(
            runs.iter().all(|r| r["status"] == "ok"),
            "{tenant}: {runs:#?}"
        );
    }
    // Each small tenant ran once: the workers' schedulers queued its first run once.
    for tenant in ["small-a", "small-b"] {
        assert_eq!(
            survivor.runs_of(tenant).len(),
            1,
            "{tenant}: {:#?}",
            survivor.runs_of(tenant)
        );
    }
}

fn sigterm_mid_sync_requeues_the_run_and_the_next_serve_finishes_it(backend: Backend) {
    const USERS: usize = 20_000;
    let Some(mut fleet) = Fleet::new(backend) else {
        return;
    };
    fleet.add(
        "large",
        USERS,
        |c| c.latency = Some(Duration::from_millis(300)),
        TenantOptions::default(),
    );
    let config = fleet.config(
        "large.toml",
        "lease_secs = 10\nshutdown_grace_secs = 10",
        "",
    );
    let server = fleet.serve(&config, &[], &[]);
    server.wait("three pages of users", LIMIT, || {
        (pages(&fleet, "large") >= 3).then_some(())
    });
    let before = server.jobs_of("large");
    assert_eq!(before.len(), 1, "{before:#?}");
    assert_eq!(before[0]["state"], "running");

    let signalled = std::time::Instant::now();
    let status = server.stop("TERM", Duration::from_secs(90));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    // The run stops at its next batch boundary, well within the 10 s grace period.
    assert!(
        took < Duration::from_secs(12),
        "SIGTERM took {took:?} to stop serve (grace 10 s):\n{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("stopped (SIGTERM)"),
        "{}",
        server.stderr()
    );
    let stored = fleet.people("large");
    assert!(
        (1..USERS as i64).contains(&stored),
        "stopped mid-run: {stored} people stored"
    );
    let store = &fleet.store().store;
    let logged = fleet.block_on(runs(fleet.store(), "large"));
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert_eq!(logged[0].status, "interrupted", "{:?}", logged[0]);
    assert_eq!(logged[0].error_kind.as_deref(), Some("cancelled"));
    let jobs = fleet.block_on(store.jobs(None, 100)).unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let job = &jobs[0];
    assert_eq!(job.id, before[0]["id"].as_i64().unwrap());
    assert_eq!(job.state, JobState::Queued, "back in the queue: {job:?}");
    assert_eq!(job.kind, JobKind::Scheduled, "{job:?}");
    assert_eq!(
        job.attempt, 1,
        "a released job is not a new attempt: {job:?}"
    );
    let now = jiff::Timestamp::now().as_millisecond();
    let state = fleet
        .block_on(store.tenant_state("large", now))
        .unwrap()
        .unwrap();
    assert_eq!(state.consecutive_failures, 0, "not a failure: {state:?}");
    assert_eq!(state.attention, None);
    assert!(!state.running, "{state:?}");

    // The next start finishes it from its checkpoint.
    let server = fleet.serve(&config, &[], &[]);
    let view = server.wait_tenant("large", "finished by the next serve", LIMIT, |t| {
        t["last_run"]["ok"] == true && t["running"] == false
    });
    let logged = server.runs_of("large");
    let statuses: Vec<&str> = logged
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["interrupted", "ok"],
        "one interrupted run, then the one that finished it: {logged:#?}\nserver stderr:\n{}",
        server.stderr()
    );
    assert_eq!(view["status"], "healthy", "{view}");
    assert_eq!(view["people"], USERS as i64, "{view}");
    fleet.assert_ground_truth("large");
    assert_no_overlap("large", &logged);
    let created = logged[1]["report"]["data_sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["data_set"] == "users")
        .expect("users in the report")["created"]
        .as_i64()
        .unwrap();
    assert_eq!(
        created + stored,
        USERS as i64,
        "the second run created only who the first had not stored"
    );
    let jobs = server.jobs_of("large");
    assert_eq!(jobs.len(), 1, "the same job ran again: {jobs:#?}");
    assert_eq!(jobs[0]["state"], "succeeded", "{}", jobs[0]);
}

mod sigterm_mid_sync_requeues_the_run_and_the_next_serve_finishes_it {
    use super::*;

    #[test]
    fn sqlite() {
        sigterm_mid_sync_requeues_the_run_and_the_next_serve_finishes_it(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        sigterm_mid_sync_requeues_the_run_and_the_next_serve_finishes_it(Backend::Postgres);
    }
}
