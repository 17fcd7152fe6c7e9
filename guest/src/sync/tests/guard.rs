//! The removal guard: a run that would remove more people than it allows stops before it
//! commits any removal (in full rounds and in replays), keeps the delta link, and says how
//! to proceed; `allow` lets the removals through.

use super::*;
use crate::sources::users;
use crate::types::RemovalGuard;

const STORED: u32 = 50;

/// 50 active people stored, with a saved delta link "old" and the default filter.
fn world() -> World {
    let mut w = World::new();
    for n in 1..=STORED {
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
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    w
}

/// The default guard of the host: 10 % and 500 people.
fn guarded(mut req: SyncRequest) -> SyncRequest {
    req.options.removal_guard = RemovalGuard {
        max_percent: 10,
        max_count: 500,
        allow: false,
    };
    req.options.removal = RemovalPolicy::Delete;
    req
}

/// An incremental run whose filter now takes only a domain nobody has.
fn narrowed() -> SyncRequest {
    let mut req = guarded(request());
    req.options.mode = SyncMode::Incremental;
    req.options.filter.domains = vec!["fabrikam.example".into()];
    req
}

fn everyone() -> Vec<serde_json::Value> {
    (1..=STORED).map(user_json).collect()
}

#[test]
fn a_filter_that_now_excludes_everyone_stops_before_removing_anyone() {
    let mut w = world();
    // The filter changed: an initial round, which lists everyone (and leaves all out).
    script_round(&mut w.http, DELTA_FIRST, "new", &[everyone()]);
    let failure = super::super::run(&mut w.env(), &narrowed()).unwrap_err();
    w.http.assert_done();
    let SyncError::MassRemoval(m) = &failure.error else {
        panic!("{:?}", failure.error);
    };
    // 10 % of 50 is 5, below the percent rule's floor of 10.
    assert_eq!((m.would_remove, m.stored, m.allowed), (50, 50, 10));
    for words in [
        "50 of the 50 people",
        "tenant contoso",
        "max_removal_percent / max_removals",
        "--allow-mass-removal",
    ] {
        assert!(m.message.contains(words), "{words}: {}", m.message);
    }
    assert_eq!(w.store.people.len(), 50, "nothing removed");
    assert!(
        w.store
            .people
            .values()
            .all(|p| p.status == PersonStatus::Active)
    );
    assert!(
        !w.store
            .changes()
            .any(|c| matches!(c, Change::DeletePerson(_))),
        "no removal committed"
    );
    // The delta link and the filter stay as they were: the next run meets the removals again.
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("old"));
    assert_eq!(
        w.store.checkpoints[USERS_FILTER],
        crate::fakes::filter_checkpoint(&request().options.filter)
    );
    assert_eq!(failure.report.mode, SyncMode::Full);
}

#[test]
fn allow_lets_a_mass_removal_through() {
    let mut w = world();
    script_round(&mut w.http, DELTA_FIRST, "new", &[everyone()]);
    let mut req = narrowed();
    req.options.removal_guard.allow = true;
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&report).removed, 50);
    assert!(w.store.people.is_empty());
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("new"));
}

#[test]
fn removals_under_the_limits_are_committed() {
    let mut w = world();
    // A full round that lists all but 5 (10 %, not more): they are removed.
    let listed: Vec<_> = (6..=STORED).map(user_json).collect();
    script_round(&mut w.http, DELTA_FIRST, "new", &[listed]);
    let report = run(&mut w.env(), &guarded(request())).unwrap();
    assert_eq!(users_report(&report).removed, 5);
    assert_eq!(w.store.people.len(), 45);

    // The count limit applies too: 3 removals with max-count 2 stop.
    let mut w = world();
    let listed: Vec<_> = (4..=STORED).map(user_json).collect();
    script_round(&mut w.http, DELTA_FIRST, "new", &[listed]);
    let mut req = guarded(request());
    req.options.removal_guard.max_count = 2;
    let failure = super::super::run(&mut w.env(), &req).unwrap_err();
    let SyncError::MassRemoval(m) = &failure.error else {
        panic!("{:?}", failure.error);
    };
    assert_eq!((m.would_remove, m.allowed), (3, 2));
    assert_eq!(w.store.people.len(), 50);
}

#[test]
fn a_replay_with_too_many_removals_stops_and_the_next_run_meets_them_again() {
    let mut w = world();
    let mut req = guarded(request());
    req.options.mode = SyncMode::Incremental;
    // 12 deleted (24 %, more than the floor of 10) over two pages; a person updated on
    // page 1 is committed anyway.
    let mut changed = user_json(40);
    changed["jobTitle"] = "Captain".into();
    let page1: Vec<_> = (1..=6)
        .map(|n| removed_json(n, "deleted"))
        .chain([changed])
        .collect();
    let page2: Vec<_> = (7..=12).map(|n| removed_json(n, "deleted")).collect();
    let replay = format!("GET {}", delta_link("old"));
    script_round(&mut w.http, &replay, "r1", &[page1.clone(), page2.clone()]);
    let failure = super::super::run(&mut w.env(), &req).unwrap_err();
    let SyncError::MassRemoval(m) = &failure.error else {
        panic!("{:?}", failure.error);
    };
    assert_eq!((m.would_remove, m.stored, m.allowed), (12, 50, 10));
    assert_eq!(w.store.people.len(), 50, "nothing removed");
    assert_eq!(
        w.store.people[&user_id(40)].person.job_title.as_deref(),
        Some("Captain"),
        "the run's other changes stand"
    );
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("old"));
    assert_eq!(failure.report.mode, SyncMode::Incremental);

    // The next run replays the same link; with allow, the removals go through.
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    script_round(&mut w.http, &replay, "r2", &[page1, page2]);
    req.options.removal_guard.allow = true;
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(users_report(&report).removed, 12);
    assert_eq!(w.store.people.len(), 38);
}

#[test]
fn a_dry_run_only_warns() {
    let mut w = world();
    script_round(&mut w.http, DELTA_FIRST, "new", &[everyone()]);
    let mut req = narrowed();
    req.options.dry_run = true;
    let report = run(&mut w.env(), &req).unwrap();
    assert!(report.warnings.iter().any(|w| w.code == "mass-removal"));
    assert_eq!(users_report(&report).removed, 50, "what a run would do");
    assert!(w.store.commits.is_empty());
}

#[test]
fn people_already_removed_do_not_count() {
    let mut w = world();
    // 45 of the 50 were marked removed before: deleting them now is not a mass removal
    // of active people (4 active ones go: 8 %).
    for n in 1..=45 {
        w.store.people.get_mut(&user_id(n)).unwrap().status = PersonStatus::Removed;
    }
    script_round(&mut w.http, DELTA_FIRST, "new", &[vec![user_json(50)]]);
    let report = run(&mut w.env(), &guarded(request())).unwrap();
    assert_eq!(users_report(&report).removed, 49);
    assert_eq!(w.store.people.len(), 1);
}

#[test]
fn a_small_tenant_losing_a_few_people_is_not_a_mass_removal() {
    // 10 of 50 go (20 %): the percent rule allows at least PERCENT_FLOOR (10) removals.
    let mut w = world();
    let listed: Vec<_> = (11..=STORED).map(user_json).collect();
    script_round(&mut w.http, DELTA_FIRST, "new", &[listed]);
    let report = run(&mut w.env(), &guarded(request())).unwrap();
    assert_eq!(users_report(&report).removed, 10);
    assert_eq!(w.store.people.len(), 40);

    // One more is past the floor and the percent: the run stops.
    let mut w = world();
    let listed: Vec<_> = (12..=STORED).map(user_json).collect();
    script_round(&mut w.http, DELTA_FIRST, "new", &[listed]);
    let failure = super::super::run(&mut w.env(), &guarded(request())).unwrap_err();
    let SyncError::MassRemoval(m) = &failure.error else {
        panic!("{:?}", failure.error);
    };
    assert_eq!((m.would_remove, m.allowed), (11, 10));
    assert_eq!(w.store.people.len(), 50);
}
