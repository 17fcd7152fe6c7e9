//! Delta query: initial rounds, replays of a saved delta link (creates, partial updates,
//! `@removed` under each removal policy), resync after an expired delta token, runs stopped
//! part-way, retried bodies, permission gating and token renewal.

use super::*;
use crate::graph::token::base64url_encode;
use crate::sources::users;

/// A token for an app that holds User.Read.All.
fn sign_in(w: &mut World) {
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
}

fn incremental() -> SyncRequest {
    let mut req = request();
    req.options.mode = SyncMode::Incremental;
    req
}

/// Stores these people (active) and the delta link of round `round`.
fn saved(w: &mut World, people: &[u32], round: &str) {
    for &n in people {
        w.store.put(stored(n, PersonStatus::Active));
    }
    w.store
        .checkpoints
        .insert(USERS_DELTA_LINK.into(), delta_link(round));
    w.store
        .checkpoints
        .insert(USERS_DELTA_SELECT.into(), users::select(false));
    w.store.checkpoints.insert(
        USERS_FILTER.into(),
        crate::fakes::filter_checkpoint(&request().options.filter),
    );
}

/// The request prefix of a replay of round `round`'s delta link.
fn replay(round: &str) -> String {
    format!("GET {}", delta_link(round))
}

fn users(ns: &[u32]) -> Vec<serde_json::Value> {
    ns.iter().map(|&n| user_json(n)).collect()
}

fn counts(r: &SyncReport) -> (u32, u64, u64, u64, u64, u64) {
    let u = users_report(r);
    (
        u.pages,
        u.read,
        u.created,
        u.updated,
        u.unchanged,
        u.removed,
    )
}

fn codes(r: &SyncReport) -> Vec<&str> {
    r.warnings.iter().map(|w| w.code.as_str()).collect()
}

fn status(w: &World, n: u32) -> Option<PersonStatus> {
    w.store.people.get(&user_id(n)).map(|s| s.status)
}

#[test]
fn an_initial_round_of_three_pages_saves_the_delta_link_only_in_the_final_batch() {
    let mut w = World::new();
    sign_in(&mut w);
    script_round(
        &mut w.http,
        DELTA_FIRST,
        "r1",
        &[users(&[1, 2]), users(&[3, 4]), users(&[5, 6])],
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(counts(&report), (3, 6, 6, 0, 0, 0));
    assert_eq!(w.store.commits.len(), 3, "one batch per page");
    for (i, b) in w.store.commits.iter().enumerate() {
        assert_eq!(b.changes.len(), 2);
        let keys: Vec<_> = b.checkpoints.iter().map(|c| c.key.as_str()).collect();
        if i < 2 {
            assert!(keys.is_empty(), "batch {i}: {keys:?}");
            assert!(b.run.is_none());
        } else {
            assert_eq!(
                keys,
                vec![
                    USERS_DELTA_LINK,
                    USERS_DELTA_SELECT,
                    "users.size",
                    USERS_FILTER,
                    USERS_UNRESOLVED,
                    LAST_FULL_SYNC
                ]
            );
            assert_eq!(b.checkpoints[0].value, Some(delta_link("r1")));
            assert_eq!(b.run.as_ref(), Some(&report));
        }
    }
    // A next link is never saved anywhere.
    assert!(
        !format!("{:?}", w.store.commits).contains("$skiptoken"),
        "a next link was saved"
    );
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

/// Store 1..=6; replay: create 10, partial updates of 1 and 2, 5 replayed unchanged, 3
/// soft-deleted, 4 permanently deleted, 99 (never stored) deleted.
fn replay_world(policy: RemovalPolicy) -> (World, SyncRequest) {
    let mut w = World::new();
    saved(&mut w, &[1, 2, 3, 4, 5, 6], "r0");
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r0"),
        "r1",
        &[
            vec![
                user_json(10),
                serde_json::json!({"id": user_id(1), "department": "Research"}),
                serde_json::json!({"id": user_id(2), "officeLocation": "HQ", "mail": null}),
            ],
            vec![
                removed_json(3, "changed"),
                removed_json(4, "deleted"),
                removed_json(99, "deleted"),
                user_json(5),
            ],
        ],
    );
    let mut req = incremental();
    req.options.removal = policy;
    (w, req)
}

#[test]
fn a_replay_applies_creates_partial_updates_and_removals_under_each_policy() {
    use PersonStatus::*;
    for (policy, soft, hard) in [
        (RemovalPolicy::Keep, Some(Removed), Some(Removed)),
        (RemovalPolicy::Flag, Some(Flagged), Some(Flagged)),
        (RemovalPolicy::Deactivate, Some(Inactive), Some(Inactive)),
        // A soft-deleted user can be restored: marked removed, never deleted.
        (RemovalPolicy::Delete, Some(Removed), None),
    ] {
        let (mut w, req) = replay_world(policy);
        let report = run(&mut w.env(), &req).unwrap();
        w.http.assert_done();
        assert_eq!(report.mode, SyncMode::Incremental, "{policy:?}");
        assert_eq!(counts(&report), (2, 7, 1, 2, 1, 2), "{policy:?}");
        assert_eq!(users_report(&report).written, 5);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(status(&w, 3), soft, "{policy:?} soft delete");
        assert_eq!(status(&w, 4), hard, "{policy:?} permanent delete");
        assert_eq!(status(&w, 99), None, "unknown ids are ignored");
        assert_eq!(status(&w, 10), Some(Active));
        assert_eq!(w.store.people[&user_id(10)].person, person(10));

        // Partial updates: what is absent keeps its stored value, null clears.
        let mut one = person(1);
        one.department = Some("Research".into());
        assert_eq!(w.store.people[&user_id(1)].person, one);
        assert_eq!(
            w.store.people[&user_id(1)].fingerprint,
            merge::fingerprint(&one)
        );
        let mut two = person(2);
        two.office_location = Some("HQ".into());
        two.mail = None;
        assert_eq!(w.store.people[&user_id(2)].person, two);
        assert_eq!(w.store.people[&user_id(6)].person, person(6), "untouched");

        // One batch per page; the delta link only with the last, no full-sync marker,
        // and no search for the gone (a replay is not a full read).
        assert_eq!(w.store.commits.len(), 2);
        assert!(w.store.commits[0].checkpoints.is_empty());
        assert_eq!(
            w.store.commits[1].checkpoints,
            vec![
                Checkpoint {
                    key: USERS_DELTA_LINK.into(),
                    value: Some(delta_link("r1"))
                },
                Checkpoint {
                    key: USERS_DELTA_SELECT.into(),
                    value: Some(users::select(false))
                },
                Checkpoint {
                    key: USERS_FILTER.into(),
                    value: Some(crate::fakes::filter_checkpoint(&request().options.filter))
                },
                Checkpoint {
                    key: USERS_UNRESOLVED.into(),
                    value: None
                }
            ]
        );
        assert_eq!(
            w.store.list_calls, 1,
            "only to see whether the store is empty"
        );
        assert_eq!(
            w.store.find_calls, 4,
            "one find-people per page, one by email / UPN for the created user, and one for \
             the removals held to the round's end"
        );
        let log = format!("{:?}", w.log.lines);
        assert!(
            log.contains("1 removals of people never stored ignored"),
            "{log}"
        );
        assert_eq!(
            log.contains("1 soft-deleted (restorable) kept as removed"),
            policy == RemovalPolicy::Delete,
            "{log}"
        );
        // The replay sent the saved link as it is, with the page-size preference.
        assert_eq!(w.http.sent[1].url, delta_link("r0"));
        assert!(
            w.http.sent[1]
                .headers
                .iter()
                .any(|(n, v)| n == "Prefer" && v == "odata.maxpagesize=999")
        );
    }
}

#[test]
fn in_a_replay_an_absent_property_keeps_its_value_and_null_clears_it() {
    let mut w = World::new();
    saved(&mut w, &[1], "r0");
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r0"),
        "r1",
        &[vec![serde_json::json!({
            "id": user_id(1),
            "jobTitle": "Boss",
            "department": null,
            "assignedLicenses": [],
        })]],
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    assert_eq!(counts(&report), (1, 1, 0, 1, 0, 0));
    let mut want = person(1);
    want.job_title = Some("Boss".into());
    want.department = None;
    want.licences = vec![];
    assert_eq!(w.store.people[&user_id(1)].person, want);

    // An object with only its id changes nothing.
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r1"),
        "r2",
        &[vec![serde_json::json!({"id": user_id(1)})]],
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    assert_eq!(counts(&report), (1, 1, 0, 0, 1, 0));
    assert_eq!(w.store.people[&user_id(1)].person, want);
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r2"));

    // In an initial round an object is the whole state: absent means no value.
    let mut w2 = World::new();
    sign_in(&mut w2);
    let mut sparse = user_json(1);
    sparse.as_object_mut().unwrap().remove("department");
    script_round(&mut w2.http, DELTA_FIRST, "r1", &[vec![sparse]]);
    run(&mut w2.env(), &request()).unwrap();
    assert_eq!(w2.store.people[&user_id(1)].person.department, None);
}

#[test]
fn a_restored_user_is_active_again() {
    let mut w = World::new();
    saved(&mut w, &[1, 2], "r0");
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r0"),
        "r1",
        &[vec![removed_json(1, "changed")]],
    );
    let mut req = incremental();
    req.options.removal = RemovalPolicy::Delete;
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&report).removed, 1);
    assert_eq!(status(&w, 1), Some(PersonStatus::Removed));

    // Restored from deleted items: listed again, without annotation.
    sign_in(&mut w);
    script_round(&mut w.http, &replay("r1"), "r2", &[users(&[1])]);
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(counts(&report), (1, 1, 0, 1, 0, 0));
    assert_eq!(status(&w, 1), Some(PersonStatus::Active));
    assert_eq!(w.store.people[&user_id(1)].person, person(1));
}

#[test]
fn a_changed_user_not_in_the_store_is_created_when_it_has_a_upn_else_read_whole_by_batch() {
    let mut w = World::new();
    saved(&mut w, &[1], "r0");
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r0"),
        "r1",
        &[vec![
            // Created before a failed run, or let in by the filter since, say: only what
            // changed since, no UPN.
            serde_json::json!({"id": user_id(20), "department": "Research"}),
            serde_json::json!({"id": user_id(21), "jobTitle": null}),
            // With a UPN: stored with what it has.
            serde_json::json!({"id": user_id(22), "userPrincipalName": "new@contoso.com",
                               "department": "Research"}),
        ]],
    );
    // The two without a UPN are read whole with the round's $select in one JSON batch:
    // 20 exists, 21 is gone since.
    w.http.push_ok(
        "POST https://graph.test/v1.0/$batch",
        json_response(
            200,
            &serde_json::json!({"responses": [
                {"id": "2", "status": 404, "headers": {},
                 "body": {"error": {"code": "Request_ResourceNotFound", "message": "gone"}}},
                {"id": "1", "status": 200, "headers": {}, "body": user_json(20)},
            ]})
            .to_string(),
        ),
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    assert_eq!(counts(&report), (1, 3, 2, 0, 0, 0));
    let batch = w
        .http
        .sent
        .iter()
        .find(|r| r.url.ends_with("/$batch"))
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(batch.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body["requests"][0]["url"],
        format!("/users/{}?$select={}", user_id(20), users::select(false))
    );
    assert_eq!(body["requests"][1]["method"], "GET");
    assert_eq!(codes(&report), vec!["partial-unknown-user"]);
    assert!(
        report.warnings[0].message.contains("1 changed user(s)")
            && report.warnings[0].message.contains("next full sync"),
        "{}",
        report.warnings[0].message
    );
    assert_eq!(w.store.people[&user_id(20)].person, person(20));
    assert_eq!(status(&w, 21), None);
    let p = &w.store.people[&user_id(22)].person;
    assert_eq!(p.user_principal_name, "new@contoso.com");
    assert_eq!(p.department.as_deref(), Some("Research"));
    assert_eq!(p.user_type, "Member");
    // The round completed: its delta link is saved.
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

#[test]
fn a_replayed_update_that_fails_the_filter_follows_the_removal_policy() {
    let mut w = World::new();
    saved(&mut w, &[1, 2], "r0");
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r0"),
        "r1",
        &[vec![
            serde_json::json!({"id": user_id(1), "userType": "Guest"}),
        ]],
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    let u = users_report(&report);
    assert_eq!((u.removed, u.created, u.updated), (1, 0, 0));
    assert_eq!(u.filtered_out[0].reason, "guest");
    assert_eq!(status(&w, 1), Some(PersonStatus::Removed));
    assert_eq!(status(&w, 2), Some(PersonStatus::Active));
}

/// Store 1..=4 and the delta link of r0. Graph now has 1, 2, 3 and 5 (4 is gone).
fn expired_world() -> World {
    let mut w = World::new();
    saved(&mut w, &[1, 2, 3, 4], "r0");
    sign_in(&mut w);
    w
}

fn gone_answer(status: u16, code: &str) -> crate::platform::HttpResponse {
    let mut r = json_response(
        status,
        &format!(r#"{{"error":{{"code":"{code}","message":"The delta token is expired."}}}}"#),
    );
    r.headers.push((
        "Location".into(),
        "https://graph.test/v1.0/users/delta?$deltatoken=".into(),
    ));
    r
}

#[test]
fn an_expired_delta_token_falls_back_to_a_full_round_with_a_warning() {
    for (http_status, code) in [(410, "resyncRequired"), (400, "syncStateNotFound")] {
        let mut w = expired_world();
        w.http
            .push_ok(&replay("r0"), gone_answer(http_status, code));
        script_round(
            &mut w.http,
            DELTA_FIRST,
            "r1",
            &[users(&[1, 2]), users(&[3, 5])],
        );
        let report = run(&mut w.env(), &incremental()).unwrap();
        w.http.assert_done();
        assert_eq!(report.mode, SyncMode::Full, "{code}");
        assert_eq!(codes(&report), vec!["delta-expired"]);
        let m = &report.warnings[0].message;
        assert!(m.contains(&format!("HTTP {http_status} {code}")), "{m}");
        assert!(m.contains("full sync ran instead"), "{m}");
        assert!(!m.contains("DT-r0"), "{m}");
        // Created only 5; 4, not listed by the full round, is removed (policy keep).
        assert_eq!(counts(&report), (2, 4, 1, 0, 3, 1), "{code}");
        assert_eq!(w.store.people.len(), 5, "no duplicates");
        assert_eq!(status(&w, 4), Some(PersonStatus::Removed));
        assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
        assert!(w.store.checkpoints.contains_key(LAST_FULL_SYNC));
        assert!(
            w.log
                .lines
                .iter()
                .any(|(l, m)| *l == Level::Warn && m.contains("no longer accepts")),
        );
        assert_eq!(report.retries, 0);
    }
}

#[test]
fn a_resync_in_the_middle_of_a_replay_restarts_without_duplicates() {
    let mut w = expired_world();
    // The replay's first page creates 6 and is committed; its second page is gone.
    w.http.push_ok(
        &replay("r0"),
        json_response(
            200,
            &delta_body(&users(&[6]), Some(&delta_next("r0", 2)), None),
        ),
    );
    w.http.push_ok(
        &format!("GET {}", delta_next("r0", 2)),
        gone_answer(410, "syncStateNotFound"),
    );
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1, 2, 3, 6])]);
    let report = run(&mut w.env(), &incremental()).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(codes(&report), vec!["delta-expired"]);
    // 6 created once (by the replay), then unchanged in the full round.
    assert_eq!(counts(&report), (2, 5, 1, 0, 4, 1));
    assert_eq!(w.store.people.len(), 5);
    assert_eq!(upserts(&w), 2, "6 created, 4 marked removed; nothing twice");
    assert_eq!(status(&w, 4), Some(PersonStatus::Removed));
}

#[test]
fn an_initial_round_answered_with_a_resync_fails_instead_of_looping() {
    let mut w = World::new();
    sign_in(&mut w);
    w.http
        .push_ok(DELTA_FIRST, gone_answer(410, "resyncRequired"));
    let Err(SyncError::Http(f)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    w.http.assert_done();
    assert_eq!(f.status, Some(410));
    assert_eq!(f.graph_code.as_deref(), Some("resyncRequired"));
    assert!(w.store.commits.is_empty());
}

#[test]
fn a_full_sync_ignores_a_saved_delta_link_and_saves_a_new_one() {
    let mut w = World::new();
    saved(&mut w, &[1, 2], "r0");
    sign_in(&mut w);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(counts(&report), (1, 1, 0, 0, 1, 1));
    assert_eq!(status(&w, 2), Some(PersonStatus::Removed));
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

#[test]
fn a_run_that_fails_on_page_two_leaves_no_delta_link_and_the_next_run_finishes_the_job() {
    let mut w = World::new();
    sign_in(&mut w);
    w.http.push_ok(
        DELTA_FIRST,
        json_response(
            200,
            &delta_body(&users(&[1, 2]), Some(&delta_next("r1", 2)), None),
        ),
    );
    // A persistent server error (500 is not retried).
    w.http.push_ok(
        &format!("GET {}", delta_next("r1", 2)),
        json_response(
            500,
            r#"{"error":{"code":"generalException","message":"boom"}}"#,
        ),
    );
    let Err(SyncError::Http(f)) = run(&mut w.env(), &incremental()) else {
        panic!()
    };
    w.http.assert_done();
    assert_eq!(f.status, Some(500));
    assert_eq!(f.url, "https://graph.test/v1.0/users/delta?$skiptoken=...");
    assert_eq!(w.store.commits.len(), 1, "page 1 stands");
    assert!(
        w.store.checkpoints.is_empty(),
        "no delta link, no next link"
    );
    assert!(w.store.commits.iter().all(|b| b.run.is_none()));
    assert_eq!(w.store.people.len(), 2);

    // The next run has no delta link: an initial round, exact counts, nothing doubled.
    sign_in(&mut w);
    script_round(
        &mut w.http,
        DELTA_FIRST,
        "r2",
        &[users(&[1, 2]), users(&[3, 4]), users(&[5, 6])],
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Full);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(counts(&report), (3, 6, 4, 0, 2, 0));
    assert_eq!(w.store.people.len(), 6);
    assert_eq!(upserts(&w), 6, "each person written once");
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r2"));
}

#[test]
fn a_replay_that_fails_part_way_keeps_the_previous_delta_link_and_is_replayed_again() {
    let mut w = World::new();
    saved(&mut w, &[1, 2], "r0");
    sign_in(&mut w);
    w.http.push_ok(
        &replay("r0"),
        json_response(
            200,
            &delta_body(&users(&[3]), Some(&delta_next("r1", 2)), None),
        ),
    );
    let mut throttled = json_response(429, r#"{"error":{"code":"TooManyRequests"}}"#);
    throttled.headers.push(("Retry-After".into(), "100".into()));
    w.http
        .push_ok(&format!("GET {}", delta_next("r1", 2)), throttled.clone());
    w.http
        .push_ok(&format!("GET {}", delta_next("r1", 2)), throttled);
    // Throttling give-up (the retry budget is 120 s).
    let Err(SyncError::Http(f)) = run(&mut w.env(), &incremental()) else {
        panic!()
    };
    assert!(f.message.contains("retry budget"), "{}", f.message);
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r0"));
    assert_eq!(w.store.people.len(), 3, "page 1 (creating 3) stands");

    // Graph replays the same changes again (the link was not advanced).
    sign_in(&mut w);
    script_round(
        &mut w.http,
        &replay("r0"),
        "r1",
        &[users(&[3]), vec![removed_json(2, "deleted"), user_json(4)]],
    );
    let report = run(&mut w.env(), &incremental()).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Incremental);
    assert_eq!(counts(&report), (2, 3, 1, 0, 1, 1));
    assert_eq!(w.store.people.len(), 4);
    assert_eq!(status(&w, 2), Some(PersonStatus::Removed));
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

#[test]
fn truncated_and_invalid_bodies_are_read_again_and_counted_as_retries() {
    let mut w = World::new();
    sign_in(&mut w);
    w.http.push_ok(
        DELTA_FIRST,
        json_response(
            200,
            &delta_body(&users(&[1, 2]), Some(&delta_next("r1", 2)), None),
        ),
    );
    let page2 = format!("GET {}", delta_next("r1", 2));
    let good = delta_body(&users(&[3, 4]), None, Some(&delta_link("r1")));
    // Cut short in transfer: fewer bytes than its Content-Length.
    let mut cut = json_response(200, &good[..good.len() / 2]);
    cut.headers
        .push(("Content-Length".into(), good.len().to_string()));
    w.http.push_ok(&page2, cut);
    // A gateway's HTML error page with status 200.
    w.http.push_ok(
        &page2,
        json_response(200, "<html><body>Bad gateway</body></html>"),
    );
    w.http.push_ok(&page2, json_response(200, &good));
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    assert_eq!(report.retries, 2);
    assert_eq!(report.requests, 5, "token + page 1 + page 2 three times");
    assert!(report.retry_wait_ms > 0);
    assert_eq!(counts(&report), (2, 4, 4, 0, 0, 0));
    assert_eq!(w.store.people.len(), 4);
}

#[test]
fn a_last_page_without_a_delta_link_or_with_a_foreign_one_completes_nothing() {
    for delta in [
        None,
        Some("https://evil.test/v1.0/users/delta?$deltatoken=DT-x"),
    ] {
        let mut w = World::new();
        sign_in(&mut w);
        w.http.push_ok(
            DELTA_FIRST,
            json_response(
                200,
                &delta_body(&users(&[1, 2]), Some(&delta_next("r1", 2)), None),
            ),
        );
        w.http.push_ok(
            &format!("GET {}", delta_next("r1", 2)),
            json_response(200, &delta_body(&users(&[3]), None, delta)),
        );
        let Err(SyncError::BadResponse(f)) = run(&mut w.env(), &request()) else {
            panic!()
        };
        match delta {
            None => assert!(f.message.contains("neither"), "{}", f.message),
            Some(_) => {
                assert!(
                    f.message
                        .contains("its @odata.deltaLink leads to https://evil.test"),
                    "{}",
                    f.message
                );
                assert!(!f.message.contains("DT-x"));
            }
        }
        assert_eq!(w.store.commits.len(), 1, "page 1 only");
        assert!(w.store.checkpoints.is_empty());
    }
}

#[test]
fn a_saved_delta_link_to_another_host_is_never_sent_a_full_round_runs() {
    let mut w = World::new();
    saved(&mut w, &[1], "r0");
    w.store.checkpoints.insert(
        USERS_DELTA_LINK.into(),
        "https://old-graph.test/v1.0/users/delta?$deltatoken=DT-old".into(),
    );
    sign_in(&mut w);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
    let report = run(&mut w.env(), &incremental()).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(codes(&report), vec!["delta-link-unusable"]);
    assert!(
        report.warnings[0].message.contains("old-graph.test")
            && !report.warnings[0].message.contains("DT-old"),
        "{}",
        report.warnings[0].message
    );
    assert!(w.http.sent.iter().all(|r| !r.url.contains("old-graph")));
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

#[test]
fn a_dry_run_replay_commits_nothing_and_keeps_the_delta_link() {
    let (mut w, mut req) = replay_world(RemovalPolicy::Delete);
    req.options.dry_run = true;
    let before = w.store.people.clone();
    let report = run(&mut w.env(), &req).unwrap();
    assert!(report.dry_run);
    assert_eq!(counts(&report), (2, 7, 1, 2, 1, 2));
    assert!(w.store.commits.is_empty());
    assert_eq!(w.store.people, before);
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r0"));
}

/// An unsigned JWT with no `roles` claim at all (an app with no application permission).
fn jwt_without_roles() -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        base64url_encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        base64url_encode(br#"{"aud":"https://graph.test","appid":"client-1"}"#)
    )
}

#[test]
fn a_token_without_the_needed_role_stops_the_run_before_any_graph_request() {
    for token in [fake_jwt(&["Reports.Read.All"]), jwt_without_roles()] {
        let mut w = World::new();
        w.store
            .checkpoints
            .insert(USERS_DELTA_LINK.into(), delta_link("r0"));
        w.http
            .push_ok("POST https://login.test/", token_response(&token, 3600));
        let Err(SyncError::Permission(p)) = run(&mut w.env(), &incremental()) else {
            panic!()
        };
        w.http.assert_done();
        assert_eq!(p.permission, "User.Read.All");
        assert_eq!(p.feature, "users");
        assert_eq!(
            p.message,
            "Feature users needs the application permission User.Read.All, which this app \
             has not been granted; add it in the app registration's API permissions and \
             grant admin consent."
        );
        assert_eq!(w.http.sent.len(), 1, "only the token request");
        assert_eq!(w.store.calls(), 0, "nothing read or written");
        assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r0"));
        assert!(
            w.log
                .lines
                .iter()
                .any(|(l, m)| *l == Level::Error && m.contains("User.Read.All"))
        );
    }
}

#[test]
fn a_broader_role_or_an_unreadable_token_lets_the_run_go_on() {
    for (token, logged) in [
        (fake_jwt(&["Directory.Read.All"]), false),
        ("opaque-access-token".to_owned(), true),
    ] {
        let mut w = World::new();
        w.http
            .push_ok("POST https://login.test/", token_response(&token, 3600));
        script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
        let report = run(&mut w.env(), &request()).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(users_report(&report).created, 1);
        assert_eq!(
            w.log
                .lines
                .iter()
                .any(|(l, m)| *l == Level::Warn && m.contains("not a JWT")),
            logged
        );
    }
}

#[test]
fn a_short_lived_token_is_renewed_once_a_quarter_of_its_life_is_left() {
    // 40 s token: renewed when under min(300 s, 10 s) is left, i.e. from 30 s on.
    let mut w = World::new();
    let first = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&first, 40));
    w.http.push_ok(
        DELTA_FIRST,
        json_response(
            200,
            &delta_body(&users(&[1]), Some(&delta_next("r1", 2)), None),
        ),
    );
    let page2 = format!("GET {}", delta_next("r1", 2));
    let mut throttled = json_response(429, "{}");
    throttled.headers.push(("Retry-After".into(), "29".into()));
    w.http.push_ok(&page2, throttled);
    w.http.push_ok(
        &page2,
        json_response(
            200,
            &delta_body(&users(&[2]), Some(&delta_next("r1", 3)), None),
        ),
    );
    // At 29 s the token is still used; a second wait crosses 30 s.
    let page3 = format!("GET {}", delta_next("r1", 3));
    let mut throttled = json_response(429, "{}");
    throttled.headers.push(("Retry-After".into(), "2".into()));
    w.http.push_ok(&page3, throttled);
    w.http.push_ok(
        &page3,
        json_response(
            200,
            &delta_body(&users(&[3]), Some(&delta_next("r1", 4)), None),
        ),
    );
    let second = fake_jwt(&["User.Read.All", "Directory.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&second, 40));
    script_round(
        &mut w.http,
        &format!("GET {}", delta_next("r1", 4)),
        "r1",
        &[users(&[4])],
    );
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    assert_eq!(users_report(&report).created, 4);
    let tokens = w
        .http
        .sent
        .iter()
        .filter(|r| r.method == crate::platform::Method::Post)
        .count();
    assert_eq!(tokens, 2, "renewed once, not before every request");
    // At 29 s (page 3) the first token was still in use; a margin of half the lifetime would have renewed it at 20 s.
    let bearer = |r: &crate::platform::HttpRequest| {
        r.headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .map(|(_, v)| v.clone())
    };
    let page3_url = delta_next("r1", 3);
    for r in w.http.sent.iter().filter(|r| r.url == page3_url) {
        assert_eq!(bearer(r), Some(format!("Bearer {first}")));
    }
    let last = w.http.sent.last().unwrap();
    assert!(
        last.headers
            .iter()
            .any(|(n, v)| n == "Authorization" && *v == format!("Bearer {second}"))
    );
}

#[test]
fn an_invalid_authentication_token_mid_run_is_renewed_once_and_the_page_read_again() {
    let mut w = World::new();
    sign_in(&mut w);
    w.http.push_ok(
        DELTA_FIRST,
        json_response(
            200,
            &delta_body(&users(&[1]), Some(&delta_next("r1", 2)), None),
        ),
    );
    let page2 = format!("GET {}", delta_next("r1", 2));
    w.http.push_ok(
        &page2,
        json_response(
            401,
            r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}"#,
        ),
    );
    sign_in(&mut w);
    w.http.push_ok(
        &page2,
        json_response(
            200,
            &delta_body(&users(&[2]), None, Some(&delta_link("r1"))),
        ),
    );
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    assert_eq!(users_report(&report).created, 2);
    assert_eq!(report.requests, 5);
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

#[test]
fn secret_token_and_delta_token_appear_in_no_error_or_log_on_the_delta_paths() {
    let token = fake_jwt(&["User.Read.All"]);
    let echo = {
        let t = token.clone();
        move |status: u16, code: &str| {
            let link = delta_link("r0");
            json_response(
                status,
                &format!(
                    r#"{{"error":{{"code":"{code}","message":"secret {SECRET} token {t} link {link}"}}}}"#
                ),
            )
        }
    };
    let ok = {
        let t = token.clone();
        move |w: &mut World| {
            w.http
                .push_ok("POST https://login.test/", token_response(&t, 3600));
        }
    };
    type Script = Box<dyn Fn(&mut World)>;
    // (expected to succeed, script)
    let scenarios: Vec<(bool, Script)> = vec![
        // A resync answer that echoes everything, then a good full round.
        {
            let (ok, echo) = (ok.clone(), echo.clone());
            (
                true,
                Box::new(move |w| {
                    ok(w);
                    w.http.push_ok(&replay("r0"), echo(410, "resyncRequired"));
                    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
                }),
            )
        },
        // A replay that fails with an echo, twice 401 (renewed once), and 500.
        {
            let (ok, echo) = (ok.clone(), echo.clone());
            (
                false,
                Box::new(move |w| {
                    ok(w);
                    w.http
                        .push_ok(&replay("r0"), echo(401, "InvalidAuthenticationToken"));
                    ok(w);
                    w.http
                        .push_ok(&replay("r0"), echo(401, "InvalidAuthenticationToken"));
                }),
            )
        },
        {
            let (ok, echo) = (ok.clone(), echo.clone());
            (
                false,
                Box::new(move |w| {
                    ok(w);
                    w.http.push_ok(&replay("r0"), echo(500, "generalException"));
                }),
            )
        },
        // A body that is never JSON, quoting the token.
        {
            let ok = ok.clone();
            let t = token.clone();
            (
                false,
                Box::new(move |w| {
                    ok(w);
                    for _ in 0..3 {
                        w.http.push_ok(
                            &replay("r0"),
                            json_response(200, &format!(r#"{{"value": [{{"id": "{t}""#)),
                        );
                    }
                }),
            )
        },
        // A delta link to another host carrying the token.
        {
            let ok = ok.clone();
            let t = token.clone();
            (
                false,
                Box::new(move |w| {
                    ok(w);
                    w.http.push_ok(
                        &replay("r0"),
                        json_response(
                            200,
                            &delta_body(
                                &users(&[1]),
                                None,
                                Some(&format!("https://evil.test/?t={t}")),
                            ),
                        ),
                    );
                }),
            )
        },
        // No role: stopped before Graph.
        (
            false,
            Box::new(|w| {
                w.http.push_ok(
                    "POST https://login.test/",
                    token_response(&jwt_without_roles(), 3600),
                );
            }),
        ),
        // A successful replay, for the logs and the report.
        {
            let ok = ok.clone();
            (
                true,
                Box::new(move |w| {
                    ok(w);
                    script_round(
                        &mut w.http,
                        &replay("r0"),
                        "r1",
                        &[vec![removed_json(1, "deleted")]],
                    );
                }),
            )
        },
    ];
    let mut form = String::new();
    crate::url::form_encode(&mut form, SECRET);
    for (i, (succeeds, scenario)) in scenarios.iter().enumerate() {
        let mut w = World::new();
        saved(&mut w, &[1], "r0");
        scenario(&mut w);
        let result = run(&mut w.env(), &incremental());
        assert_eq!(result.is_ok(), *succeeds, "scenario {i}: {result:?}");
        w.http.assert_done();
        let mut shown = format!("{result:?}");
        for (_, line) in &w.log.lines {
            shown.push_str(line);
        }
        // The delta token may be stored (it is the checkpoint), never shown.
        for n in [SECRET, form.as_str(), token.as_str(), "DT-r0", "DT-r1"] {
            assert!(!shown.contains(n), "scenario {i} showed {n}: {shown}");
        }
        let mut stored = String::new();
        for b in &w.store.commits {
            stored.push_str(&format!("{b:?}"));
        }
        for n in [SECRET, form.as_str(), token.as_str()] {
            assert!(!stored.contains(n), "scenario {i} stored {n}");
        }
    }
}

#[test]
fn a_next_link_with_a_changing_counter_stops_at_the_plausible_bound() {
    use crate::sync::round::{MIN_ROUND_PAGES, plausible_pages};
    // A 1,000-person tenant (the size hint its last initial round saved): 2,100 pages at
    // most, whatever the links say.
    assert_eq!(plausible_pages(1_000), MIN_ROUND_PAGES + 100);
    let mut w = World::new();
    w.store
        .checkpoints
        .insert("users.size".into(), "1000".into());
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    // Every page links to a new counter value: no link repeats, the round never ends.
    let bound = plausible_pages(1_000) as usize;
    for page in 1..=bound {
        let expect = if page == 1 {
            DELTA_FIRST.to_owned()
        } else {
            format!("GET {}", delta_next("loop", page))
        };
        let next = delta_next("loop", page + 1);
        w.http.push_ok(
            &expect,
            json_response(200, &delta_body(&[], Some(&next), None)),
        );
    }
    let Err(SyncError::BadResponse(f)) = run(&mut w.env(), &request()) else {
        panic!("a counter loop must fail the round");
    };
    w.http.assert_done();
    assert!(f.message.contains("paging loop"), "{}", f.message);
    assert!(f.message.contains(&bound.to_string()), "{}", f.message);
}
