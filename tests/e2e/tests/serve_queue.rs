//! `m365sync serve`'s queue through its API, with the real binary on every store back end:
//! "sync now" overtakes a scheduled run that was queued before it, and a paused tenant is
//! neither run nor scheduled (sync now answers 409) until it is resumed.

mod cli_process;
mod serve_process;

use std::time::Duration;

use serde_json::Value;
use serve_process::{Backend, Fleet, Server, TenantOptions};

const LIMIT: Duration = Duration::from_secs(120);

/// A slow tenant: four pages of users, each answered after 700 ms.
fn add_slow(fleet: &mut Fleet, name: &str) {
    fleet.add(
        name,
        3000,
        |c| c.latency = Some(Duration::from_millis(700)),
        TenantOptions::default(),
    );
}

fn job(server: &Server, id: i64) -> Value {
    server
        .jobs()
        .into_iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("no job {id}"))
}

fn ms(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{value} is not a time"))
}

fn sync_now_overtakes_a_queued_scheduled_run(backend: Backend) {
    let Some(mut fleet) = Fleet::new(backend) else {
        return;
    };
    // Never synced, all three are queued at once, in name order: the slow one runs first
    // and holds the only worker while the other two wait.
    add_slow(&mut fleet, "a-slow");
    fleet.add("b-scheduled", 20, |_| {}, TenantOptions::default());
    fleet.add("c-manual", 20, |_| {}, TenantOptions::default());
    let config = fleet.config("queue.toml", "workers = 1\nlease_secs = 10", "");
    let server = fleet.serve(&config, &[], &[]);

    let (scheduled, manual) =
        server.wait("a-slow running while b and c wait, queued", LIMIT, || {
            let jobs = server.jobs();
            let queued = |tenant: &str| {
                jobs.iter()
                    .find(|j| j["tenant"] == tenant && j["state"] == "queued")
                    .cloned()
            };
            let running = jobs
                .iter()
                .any(|j| j["tenant"] == "a-slow" && j["state"] == "running");
            match (running, queued("b-scheduled"), queued("c-manual")) {
                (true, Some(b), Some(c)) => Some((b, c)),
                _ => None,
            }
        });
    assert_eq!(scheduled["kind"], "scheduled", "{scheduled}");
    assert_eq!(manual["kind"], "scheduled", "{manual}");
    assert!(
        ms(&scheduled["id"]) < ms(&manual["id"]),
        "b's job was queued first"
    );

    // Sync c now: its queued job becomes the manual one.
    let reply = server.post("/v1/tenants/c-manual/sync");
    assert_eq!(reply.status, 202, "{}", reply.text());
    let accepted = reply.json();
    assert_eq!(accepted["job_id"], manual["id"], "{accepted}");
    assert_eq!(accepted["merged"], true, "{accepted}");
    let slow = server.jobs_of("a-slow").pop().expect("a-slow's job");
    assert_eq!(
        slow["state"], "running",
        "sync now was asked while the slow tenant held the worker: {slow}"
    );
    assert_eq!(job(&server, ms(&manual["id"]))["kind"], "manual");

    server.wait("all three synced", LIMIT, || {
        let tenants = server.tenants();
        tenants
            .values()
            .all(|t| t["status"] == "healthy" && t["last_run"]["ok"] == true)
            .then_some(())
    });
    let slow = job(&server, ms(&slow["id"]));
    let scheduled = job(&server, ms(&scheduled["id"]));
    let manual = job(&server, ms(&manual["id"]));
    for job in [&slow, &scheduled, &manual] {
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    // One worker: each started after the one before it ended; c's manual job first.
    assert!(
        ms(&manual["started_ms"]) >= ms(&slow["finished_ms"]),
        "{slow}\n{manual}"
    );
    assert!(
        ms(&manual["started_ms"]) < ms(&scheduled["started_ms"]),
        "the manual job started before the scheduled one queued ahead of it:\n{manual}\n{scheduled}"
    );
    assert!(
        ms(&scheduled["started_ms"]) >= ms(&manual["finished_ms"]),
        "{manual}\n{scheduled}"
    );
    // The sync log says the same: a, then c, then b.
    let started = |tenant: &str| {
        let runs = server.runs_of(tenant);
        assert_eq!(runs.len(), 1, "{tenant}: {runs:#?}");
        serve_process::unix_ms(runs[0]["started_at"].as_str().unwrap())
    };
    assert!(started("a-slow") < started("c-manual"));
    assert!(started("c-manual") < started("b-scheduled"));

    // Sync now with nothing queued: a new manual job, not merged; unknown tenants: 404.
    let reply = server.post("/v1/tenants/b-scheduled/sync");
    assert_eq!(reply.status, 202, "{}", reply.text());
    let accepted = reply.json();
    assert_eq!(accepted["merged"], false, "{accepted}");
    assert!(ms(&accepted["job_id"]) > ms(&manual["id"]), "{accepted}");
    let reply = server.post("/v1/tenants/nobody/sync");
    assert_eq!(reply.status, 404, "{}", reply.text());
    server.wait("b's second run", LIMIT, || {
        (server.runs_of("b-scheduled").len() == 2).then_some(())
    });
}

mod sync_now_overtakes_a_queued_scheduled_run {
    use super::*;

    #[test]
    fn sqlite() {
        sync_now_overtakes_a_queued_scheduled_run(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        sync_now_overtakes_a_queued_scheduled_run(Backend::Postgres);
    }
}

fn a_paused_tenant_is_neither_run_nor_scheduled_until_resumed(backend: Backend) {
    let Some(mut fleet) = Fleet::new(backend) else {
        return;
    };
    add_slow(&mut fleet, "a-busy");
    fleet.add("p", 30, |_| {}, TenantOptions::default());
    let config = fleet.config("pause.toml", "workers = 1\nlease_secs = 10", "");
    let server = fleet.serve(&config, &[], &[]);

    // p's first job is queued behind the busy tenant: pause p then.
    let queued = server.wait("a-busy running, p queued", LIMIT, || {
        let jobs = server.jobs();
        let running = jobs
            .iter()
            .any(|j| j["tenant"] == "a-busy" && j["state"] == "running");
        let queued = jobs
            .iter()
            .find(|j| j["tenant"] == "p" && j["state"] == "queued")
            .cloned();
        queued.filter(|_| running)
    });
    let reply = server.post("/v1/tenants/p/pause");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let paused = reply.json();
    assert_eq!(paused["status"], "paused", "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");

    // Sync now is refused while paused.
    let reply = server.post("/v1/tenants/p/sync");
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert!(reply.text().contains("paused"), "{}", reply.text());

    // The busy tenant ends and the worker is free: p's job still waits, for a while.
    server.wait_tenant("a-busy", "synced", LIMIT, |t| t["last_run"]["ok"] == true);
    std::thread::sleep(Duration::from_millis(1500));
    let waiting = job(&server, ms(&queued["id"]));
    assert_eq!(
        waiting["state"], "queued",
        "a paused tenant is not run: {waiting}"
    );
    assert!(server.runs_of("p").is_empty());
    assert_eq!(server.tenant("p")["status"], "paused");
    assert_eq!(
        server.metric("m365sync_tenants{status=\"paused\"}"),
        Some(1.0)
    );

    // Resumed, the same job runs.
    let reply = server.post("/v1/tenants/p/resume");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["paused"], false);
    let view = server.wait_tenant("p", "synced after resume", LIMIT, |t| {
        t["last_run"]["ok"] == true && t["running"] == false
    });
    assert_eq!(view["status"], "healthy", "{view}");
    assert_eq!(view["people"], 30, "{view}");
    let ran = job(&server, ms(&queued["id"]));
    assert_eq!(ran["state"], "succeeded", "{ran}");
    assert_eq!(server.jobs_of("p").len(), 1, "the queued job ran, no other");

    // Paused again, a run missed while paused (its next run is in the past) is not
    // scheduled: no job is queued and its next run is not moved on.
    let reply = server.post("/v1/tenants/p/pause");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let now = jiff::Timestamp::now().as_millisecond();
    let missed = now - 60_000;
    let store = &fleet.store().store;
    let state = fleet
        .block_on(store.tenant_state("p", now))
        .expect("read p's state")
        .expect("p is served");
    let moved = fleet
        .block_on(store.set_next_run("p", state.next_run_ms, Some(missed)))
        .expect("set p's next run");
    assert!(moved, "p's next run is the one just read");
    let before = server.tenant("p");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.jobs_of("p").len(), 1, "{:#?}", server.jobs_of("p"));
    let after = server.tenant("p");
    assert_eq!(after["next_run"], before["next_run"], "{after}");
    assert_eq!(
        serve_process::unix_ms(after["next_run"].as_str().unwrap()),
        missed,
        "{after}"
    );
    assert_eq!(server.post("/v1/tenants/p/sync").status, 409);

    // Resumed, the missed run is caught up (once), and its next run moves on.
    assert_eq!(server.post("/v1/tenants/p/resume").status, 200);
    server.wait("p's missed run caught up", LIMIT, || {
        let runs = server.runs_of("p");
        (runs.len() == 2 && runs[1]["status"] == "ok").then_some(())
    });
    let jobs = server.jobs_of("p");
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    assert_eq!(jobs[1]["kind"], "scheduled", "{}", jobs[1]);
    let view = server.wait_tenant("p", "healthy", LIMIT, |t| t["status"] == "healthy");
    let next = serve_process::unix_ms(view["next_run"].as_str().unwrap());
    assert!(
        next > jiff::Timestamp::now().as_millisecond(),
        "the next run moved on: {view}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.runs_of("p").len(), 2, "caught up once");

    // And sync now works again.
    let reply = server.post("/v1/tenants/p/sync");
    assert_eq!(reply.status, 202, "{}", reply.text());
    server.wait("p's sync now ran", LIMIT, || {
        (server.runs_of("p").len() == 3).then_some(())
    });
}

mod a_paused_tenant_is_neither_run_nor_scheduled_until_resumed {
    use super::*;

    #[test]
    fn sqlite() {
        a_paused_tenant_is_neither_run_nor_scheduled_until_resumed(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        a_paused_tenant_is_neither_run_nor_scheduled_until_resumed(Backend::Postgres);
    }
}
