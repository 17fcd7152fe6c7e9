//! The stored tenant is bound to its directory: the first run that signs in commits the
//! token's `tid` before any data; a later run signed in to another directory fails with
//! `tenant-mismatch` before it reads or writes anything. Also: a failed run's report names
//! the mode that ran and its requests.

use super::*;
use crate::graph::token::base64url_encode;

const DIRECTORY: &str = "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0";
const OTHER: &str = "0b7e4c29-5f1a-4d1e-9c3b-7a2d8e6f1c40";

/// An unsigned JWT with User.Read.All and this `tid` (if any).
fn jwt(tid: Option<&str>) -> String {
    let mut payload = serde_json::json!({"aud": "https://graph.test", "roles": ["User.Read.All"]});
    if let Some(tid) = tid {
        payload["tid"] = tid.into();
    }
    format!(
        "{}.{}.c2lnbmF0dXJl",
        base64url_encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        base64url_encode(payload.to_string().as_bytes())
    )
}

fn sign_in(w: &mut World, tid: Option<&str>) {
    w.http
        .push_ok("POST https://login.test/", token_response(&jwt(tid), 3600));
}

#[test]
fn the_first_run_binds_the_store_to_the_tokens_directory_before_any_data() {
    let mut w = World::new();
    sign_in(&mut w, Some(&DIRECTORY.to_uppercase()));
    script_round(&mut w.http, DELTA_FIRST, "a", &[vec![user_json(1)]]);
    run(&mut w.env(), &request()).unwrap();
    let first = &w.store.commits[0];
    assert!(first.changes.is_empty(), "{first:?}");
    assert_eq!(
        first.checkpoints,
        vec![Checkpoint {
            key: DIRECTORY_ID.into(),
            value: Some(DIRECTORY.into())
        }]
    );
    // The same directory again: no new binding, the run goes on.
    sign_in(&mut w, Some(DIRECTORY));
    script_round(&mut w.http, DELTA_FIRST, "b", &[vec![user_json(1)]]);
    let commits = w.store.commits.len();
    run(&mut w.env(), &request()).unwrap();
    assert!(
        w.store.commits[commits..]
            .iter()
            .all(|b| b.checkpoints.iter().all(|c| c.key != DIRECTORY_ID))
    );
}

#[test]
fn another_directory_under_the_same_name_fails_before_reading_or_writing() {
    let mut w = World::new();
    for n in [1, 2] {
        w.store.put(stored(n, PersonStatus::Active));
    }
    w.store
        .checkpoints
        .insert(DIRECTORY_ID.into(), DIRECTORY.into());
    let before = w.store.people.clone();
    sign_in(&mut w, Some(OTHER));
    let mut req = request();
    req.options.removal = RemovalPolicy::Delete;
    let error = run(&mut w.env(), &req).unwrap_err();
    let SyncError::TenantMismatch(message) = &error else {
        panic!("{error:?}");
    };
    for words in [
        "tenant contoso",
        DIRECTORY,
        OTHER,
        "another tenant name",
        "m365sync reset --tenant contoso",
    ] {
        assert!(message.contains(words), "{words}: {message}");
    }
    w.http.assert_done();
    assert_eq!(w.http.sent.len(), 1, "only the token request");
    assert!(w.store.commits.is_empty());
    assert_eq!(w.store.people, before);
    assert_eq!(w.store.list_calls + w.store.find_calls, 0);
}

#[test]
fn without_a_tid_the_configured_guid_binds_and_a_domain_does_not() {
    let mut w = World::new();
    sign_in(&mut w, None);
    script_round(&mut w.http, DELTA_FIRST, "a", &[vec![user_json(1)]]);
    let mut req = request();
    req.tenant.tenant_id = OTHER.into();
    run(&mut w.env(), &req).unwrap();
    assert_eq!(w.store.checkpoints[DIRECTORY_ID], OTHER);

    // A domain name is no directory id: nothing to bind.
    let mut w = World::new();
    sign_in(&mut w, None);
    script_round(&mut w.http, DELTA_FIRST, "a", &[vec![user_json(1)]]);
    let mut req = request();
    req.tenant.tenant_id = "contoso.onmicrosoft.com".into();
    run(&mut w.env(), &req).unwrap();
    assert!(!w.store.checkpoints.contains_key(DIRECTORY_ID));
}

#[test]
fn a_store_with_data_but_no_binding_is_bound_by_its_next_run() {
    let mut w = World::new();
    w.store.put(stored(1, PersonStatus::Active));
    sign_in(&mut w, Some(DIRECTORY));
    script_round(&mut w.http, DELTA_FIRST, "a", &[vec![user_json(1)]]);
    run(&mut w.env(), &request()).unwrap();
    assert_eq!(w.store.checkpoints[DIRECTORY_ID], DIRECTORY);
    assert_eq!(w.store.people[&user_id(1)].status, PersonStatus::Active);
}

#[test]
fn a_failed_run_reports_the_mode_that_ran_and_its_requests() {
    // Incremental asked, no delta link saved: an initial (full) round runs and fails on
    // its second page; the report says full, and counts the token and both pages.
    let mut w = World::new();
    sign_in(&mut w, None);
    w.http.push_ok(
        DELTA_FIRST,
        json_response(
            200,
            &delta_body(&[user_json(1)], Some(&delta_next("a", 2)), None),
        ),
    );
    w.http.push_ok(
        &format!("GET {}", delta_next("a", 2)),
        json_response(
            400,
            r#"{"error":{"code":"badRequest","message":"refused"}}"#,
        ),
    );
    let mut req = request();
    req.options.mode = SyncMode::Incremental;
    let failure = super::super::run(&mut w.env(), &req).unwrap_err();
    assert!(
        matches!(failure.error, SyncError::Http(_)),
        "{:?}",
        failure.error
    );
    assert_eq!(failure.report.mode, SyncMode::Full);
    assert_eq!(failure.report.requests, 3);
    let users = &failure.report.data_sets[0];
    assert_eq!(
        (users.data_set, users.pages, users.read),
        (DataSet::Users, 1, 1)
    );
}
