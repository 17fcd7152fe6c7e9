//! Resuming a delta round a run left unfinished: progress checkpoints at a bounded
//! interval, the next run carrying on at the saved next link with the round's state (the
//! ids an initial round saw, the removals it held back), and a fresh round when Graph
//! refuses the saved link.

use super::*;
use crate::sources::users;
use crate::sync::round::{PROGRESS_MS, PROGRESS_PAGES};

/// A token for an app that holds User.Read.All.
fn sign_in(w: &mut World) {
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
}

/// Page `p` (1-based) of a round of `pages` pages named `round`, one user each (user `p`),
/// with the entries `extra` besides.
fn push_page(
    w: &mut World,
    first: &str,
    round: &str,
    p: usize,
    pages: usize,
    extra: &[serde_json::Value],
) {
    let expect = if p == 1 {
        first.to_owned()
    } else {
        format!("GET {}", delta_next(round, p))
    };
    let mut entries = vec![user_json(p as u32)];
    entries.extend_from_slice(extra);
    let last = p == pages;
    let next = (!last).then(|| delta_next(round, p + 1));
    let delta = last.then(|| delta_link(round));
    w.http.push_ok(
        &expect,
        json_response(
            200,
            &delta_body(&entries, next.as_deref(), delta.as_deref()),
        ),
    );
}

/// A Graph error answer that is not retried.
fn refused(status: u16, code: &str) -> crate::platform::HttpResponse {
    json_response(
        status,
        &serde_json::json!({"error": {"code": code, "message": "refused"}}).to_string(),
    )
}

fn graph_requests(w: &World) -> usize {
    w.http
        .sent
        .iter()
        .filter(|r| r.url.starts_with("https://graph.test/"))
        .count()
}

const PAGES: usize = 25;
/// The first run fails on this page (after the progress checkpoint of page 20).
const FAILING: usize = 23;

#[test]
fn an_interrupted_initial_round_is_resumed_where_its_progress_was_saved() {
    assert_eq!(
        PROGRESS_PAGES, 20,
        "the scripts below assume 20 pages a checkpoint"
    );
    let mut w = World::new();
    // Stored before: user 1 (listed on page 1, before the crash) and user 900 (gone).
    for n in [1, 900] {
        w.store.put(stored(n, PersonStatus::Active));
    }
    let req = request();
    sign_in(&mut w);
    for p in 1..FAILING {
        push_page(&mut w, DELTA_FIRST, "a", p, PAGES, &[]);
    }
    w.http.push_ok(
        &format!("GET {}", delta_next("a", FAILING)),
        refused(400, "badRequest"),
    );
    let failure = super::super::run(&mut w.env(), &req).unwrap_err();
    assert!(
        matches!(failure.error, SyncError::Http(_)),
        "{:?}",
        failure.error
    );
    w.http.assert_done();
    // Progress was saved with page 20: the resume checkpoint names page 21's link.
    let head: serde_json::Value = serde_json::from_str(&w.store.checkpoints[USERS_RESUME]).unwrap();
    assert_eq!(head["next"], delta_next("a", PROGRESS_PAGES as usize + 1));
    assert_eq!(head["round"], "initial");
    assert!(!w.store.checkpoints.contains_key(USERS_DELTA_LINK));
    assert_eq!(w.store.people[&user_id(900)].status, PersonStatus::Active);

    // The next run carries on at page 21: pages 21..=25, not the whole round again.
    let sent_before = graph_requests(&w);
    sign_in(&mut w);
    for p in PROGRESS_PAGES as usize + 1..=PAGES {
        push_page(&mut w, DELTA_FIRST, "a", p, PAGES, &[]);
    }
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(
        graph_requests(&w) - sent_before,
        PAGES - PROGRESS_PAGES as usize
    );
    assert_eq!(report.mode, SyncMode::Full);
    assert!(
        w.log
            .lines
            .iter()
            .any(|(_, l)| l.contains("resuming the users initial round")),
        "{:?}",
        w.log.lines
    );
    // Exactly the people not in the tenant are removed: 900, not user 1 (seen before the
    // crash), nor anyone listed.
    assert_eq!(users_report(&report).removed, 1);
    assert_eq!(w.store.people[&user_id(900)].status, PersonStatus::Removed);
    for n in 1..=PAGES as u32 {
        assert_eq!(
            w.store.people[&user_id(n)].status,
            PersonStatus::Active,
            "user {n}"
        );
    }
    assert_eq!(w.store.people.len(), PAGES + 1, "nobody doubled");
    // The final batch saved the delta link and cleared the resume state.
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("a"));
    assert!(
        !w.store
            .checkpoints
            .keys()
            .any(|k| k.starts_with(USERS_RESUME)),
        "{:?}",
        w.store.checkpoints.keys().collect::<Vec<_>>()
    );
}

#[test]
fn removals_a_replay_held_back_survive_the_resume() {
    let mut w = World::new();
    for n in [1, 2, 3] {
        w.store.put(stored(n, PersonStatus::Active));
    }
    w.store
        .checkpoints
        .insert(USERS_DELTA_LINK.into(), delta_link("old"));
    w.store
        .checkpoints
        .insert(USERS_DELTA_SELECT.into(), users::select(false));
    w.store.checkpoints.insert(
        USERS_FILTER.into(),
        crate::fakes::filter_checkpoint(&request().options.filter),
    );
    let mut req = request();
    req.options.mode = SyncMode::Incremental;
    req.options.removal = RemovalPolicy::Delete;
    let replay = format!("GET {}", delta_link("old"));
    sign_in(&mut w);
    for p in 1..FAILING {
        // User 2 is deleted on page 3, before the progress checkpoint.
        let extra = if p == 3 {
            vec![removed_json(2, "deleted")]
        } else {
            vec![]
        };
        push_page(&mut w, &replay, "r", p, PAGES, &extra);
    }
    w.http.push_ok(
        &format!("GET {}", delta_next("r", FAILING)),
        refused(400, "badRequest"),
    );
    let failure = super::super::run(&mut w.env(), &req).unwrap_err();
    assert_eq!(failure.report.mode, SyncMode::Incremental);
    assert!(
        w.store.people.contains_key(&user_id(2)),
        "held back to the round's end"
    );
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("old"));

    sign_in(&mut w);
    for p in PROGRESS_PAGES as usize + 1..=PAGES {
        push_page(&mut w, &replay, "r", p, PAGES, &[]);
    }
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Incremental);
    assert_eq!(users_report(&report).removed, 1);
    assert!(
        !w.store.people.contains_key(&user_id(2)),
        "the held removal was carried"
    );
    assert!(w.store.people.contains_key(&user_id(3)));
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r"));
}

#[test]
fn a_slow_round_saves_progress_after_the_time_bound_too() {
    let mut w = World::new();
    sign_in(&mut w);
    push_page(&mut w, DELTA_FIRST, "s", 1, 3, &[]);
    // Page 2 is throttled for longer than the time bound (the fake clock advances by the
    // wait), then answered.
    let mut throttled = refused(429, "TooManyRequests");
    throttled
        .headers
        .push(("Retry-After".into(), (PROGRESS_MS / 1000 + 1).to_string()));
    w.http
        .push_ok(&format!("GET {}", delta_next("s", 2)), throttled);
    push_page(&mut w, DELTA_FIRST, "s", 2, 3, &[]);
    push_page(&mut w, DELTA_FIRST, "s", 3, 3, &[]);
    run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    // Page 2's batch carries the resume checkpoint (page 1's did not); the final batch
    // clears it.
    let saves: Vec<bool> = w
        .store
        .commits
        .iter()
        .map(|b| {
            b.checkpoints
                .iter()
                .any(|c| c.key == USERS_RESUME && c.value.is_some())
        })
        .collect();
    assert_eq!(saves, vec![false, true, false], "{:?}", w.store.commits);
    assert!(!w.store.checkpoints.contains_key(USERS_RESUME));
}

#[test]
fn a_refused_resume_link_runs_a_fresh_round_with_a_warning() {
    for (status, code) in [(400, "badRequest"), (410, "syncStateNotFound")] {
        let mut w = World::new();
        w.store.put(stored(1, PersonStatus::Active));
        let req = request();
        let old = "https://graph.test/v1.0/users/delta?$skiptoken=ST-expired";
        let head = serde_json::json!({
            "round": "initial",
            "next": old,
            "select": users::select(false),
            "basis": crate::fakes::filter_checkpoint(&req.options.filter),
            "chunks": 1,
        });
        w.store
            .checkpoints
            .insert(USERS_RESUME.into(), head.to_string());
        w.store.checkpoints.insert(
            format!("{USERS_RESUME}.1"),
            serde_json::json!({"seen": [user_id(7)]}).to_string(),
        );
        sign_in(&mut w);
        w.http.push_ok(&format!("GET {old}"), refused(status, code));
        script_round(&mut w.http, DELTA_FIRST, "f", &[vec![user_json(2)]]);
        let report = run(&mut w.env(), &req).unwrap();
        w.http.assert_done();
        assert!(
            report.warnings.iter().any(|w| w.code == "resume-refused"),
            "{status}: {:?}",
            report.warnings
        );
        // The fresh round listed only user 2: user 1 is gone (the old state is not used).
        assert_eq!(w.store.people[&user_id(1)].status, PersonStatus::Removed);
        assert_eq!(w.store.people[&user_id(2)].status, PersonStatus::Active);
        assert!(
            !w.store
                .checkpoints
                .keys()
                .any(|k| k.starts_with(USERS_RESUME))
        );
    }
}

#[test]
fn a_resume_state_of_another_filter_is_not_resumed() {
    let mut w = World::new();
    let mut req = request();
    let head = serde_json::json!({
        "round": "initial",
        "next": "https://graph.test/v1.0/users/delta?$skiptoken=ST-x",
        "select": users::select(false),
        "basis": crate::fakes::filter_checkpoint(&req.options.filter),
        "chunks": 0,
    });
    w.store
        .checkpoints
        .insert(USERS_RESUME.into(), head.to_string());
    req.options.filter.domains = vec!["contoso.com".into()];
    sign_in(&mut w);
    script_round(&mut w.http, DELTA_FIRST, "f", &[vec![user_json(2)]]);
    run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert!(!w.store.checkpoints.contains_key(USERS_RESUME));
}

#[test]
fn a_preview_reads_the_whole_round_and_leaves_a_saved_resume_point_alone() {
    let mut w = World::new();
    let req = request();
    sign_in(&mut w);
    for p in 1..FAILING {
        push_page(&mut w, DELTA_FIRST, "a", p, PAGES, &[]);
    }
    w.http.push_ok(
        &format!("GET {}", delta_next("a", FAILING)),
        refused(400, "badRequest"),
    );
    super::super::run(&mut w.env(), &req).unwrap_err();
    let saved = w.store.checkpoints[USERS_RESUME].clone();

    // A preview shows every account, so it reads the round from its first page.
    sign_in(&mut w);
    for p in 1..=PAGES {
        push_page(&mut w, DELTA_FIRST, "b", p, PAGES, &[]);
    }
    let preview = crate::sync::preview(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(preview.people.len(), PAGES);
    assert_eq!(
        w.store.checkpoints[USERS_RESUME], saved,
        "the resume point stands"
    );
}
