//! Runs of the whole sync against scripted Graph answers and an in-memory store.

use super::*;
use crate::fakes::{
    DEFAULT_DELTA_LINK, DELTA_FIRST, SECRET, World, cert_assertion, delta_body, delta_link,
    delta_next, fake_jwt, json_response, page_body, person, removed_json, request, script_round,
    token_response, user_id, user_json,
};
use crate::merge;
use crate::platform::TransportError;
use crate::types::{
    Attribute, AttributeFilter, AuthFailure, Change, Checkpoint, CredentialKind, PersonStatus,
    ReasonCount, StoredPerson, SyncRequest,
};

const USERS_URL: &str = DELTA_FIRST;

/// A run's error, as most tests check it; `super::run` gives the failure with its report.
fn run(env: &mut Env<'_>, req: &SyncRequest) -> Result<SyncReport, SyncError> {
    super::run(env, req).map_err(|f| f.error)
}

fn next_link(page: u32) -> String {
    format!("https://graph.test/v1.0/users/delta?$skiptoken=page{page}")
}

/// Scripts a token and the given pages of users (by number), linked by next links.
fn script_pages(w: &mut World, pages: &[&[u32]]) -> String {
    let token = fake_jwt(&["User.Read.All"]);
    w.http.push_ok(
        "POST https://login.test/tenant-1/oauth2/v2.0/token",
        token_response(&token, 3600),
    );
    for (i, users) in pages.iter().enumerate() {
        let json: Vec<_> = users.iter().map(|&n| user_json(n)).collect();
        let next = (i + 1 < pages.len()).then(|| next_link(i as u32 + 2));
        let expect = if i == 0 {
            USERS_URL.to_owned()
        } else {
            format!("GET {}", next_link(i as u32 + 1))
        };
        w.http.push_ok(
            &expect,
            json_response(200, &page_body(&json, next.as_deref())),
        );
    }
    token
}

fn stored(n: u32, status: PersonStatus) -> StoredPerson {
    let p = person(n);
    StoredPerson {
        fingerprint: merge::fingerprint(&p),
        person: p,
        status,
    }
}

fn users_report(r: &SyncReport) -> &DataSetReport {
    assert_eq!(r.data_sets.len(), 1);
    assert_eq!(r.data_sets[0].data_set, DataSet::Users);
    &r.data_sets[0]
}

fn upserts(w: &World) -> usize {
    w.store
        .changes()
        .filter(|c| matches!(c, Change::UpsertPerson(_)))
        .count()
}

#[test]
fn three_pages_make_three_batches_and_a_complete_report() {
    let mut w = World::new();
    script_pages(&mut w, &[&[1, 2], &[3, 4], &[5, 6]]);
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();

    assert_eq!(w.store.commits.len(), 3);
    for (i, b) in w.store.commits.iter().enumerate() {
        assert_eq!(b.changes.len(), 2, "batch {i}");
        assert_eq!(
            b.run.is_some(),
            i == 2,
            "only the last batch carries the report"
        );
    }
    let last = &w.store.commits[2];
    assert_eq!(last.run.as_ref(), Some(&report));
    assert_eq!(
        last.checkpoints,
        vec![
            Checkpoint {
                key: "users.delta-link".into(),
                value: Some(DEFAULT_DELTA_LINK.into())
            },
            Checkpoint {
                key: "users.delta-select".into(),
                value: Some(crate::sources::users::select(false))
            },
            // The round's size, the hint that bounds later rounds' pages.
            Checkpoint {
                key: "users.size".into(),
                value: Some("6".into())
            },
            Checkpoint {
                key: "users.filter".into(),
                value: Some(crate::fakes::filter_checkpoint(&request().options.filter))
            },
            Checkpoint {
                key: "users.unresolved".into(),
                value: None
            },
            Checkpoint {
                key: "users.last-full-sync".into(),
                value: Some("2024-05-01T00:00:00.000Z".into())
            }
        ]
    );
    assert!(
        w.store.commits[..2]
            .iter()
            .all(|b| b.checkpoints.is_empty()),
        "no delta link (and never a next link) before the final batch"
    );
    assert_eq!(
        w.store.find_calls, 0,
        "the store began empty: it holds nothing the pages could find"
    );

    assert_eq!(report.tenant_key, "contoso");
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(report.started_at, "2024-05-01T00:00:00.000Z");
    assert_eq!(report.requests, 4, "token + 3 pages");
    assert_eq!(report.retries, 0);
    assert!(!report.dry_run);
    assert!(report.warnings.is_empty());
    let u = users_report(&report);
    assert_eq!(
        (
            u.pages,
            u.read,
            u.created,
            u.updated,
            u.unchanged,
            u.removed
        ),
        (3, 6, 6, 0, 0, 0)
    );
    assert_eq!(u.written, 6);
    assert_eq!(u.conflicts, 0);
    assert!(u.filtered_out.is_empty());

    assert_eq!(w.store.people.len(), 6);
    let s = &w.store.people[&user_id(3)];
    assert_eq!(s.status, PersonStatus::Active);
    assert_eq!(s.person, person(3));
    assert_eq!(s.fingerprint, merge::fingerprint(&person(3)));

    assert_eq!(
        w.log.progress,
        vec![
            (DataSet::Users, 2, None),
            (DataSet::Users, 4, None),
            (DataSet::Users, 6, None)
        ]
    );
    let lines: Vec<_> = w.log.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(lines.contains(&"signed in to tenant contoso"), "{lines:?}");
    assert!(lines.contains(&"users page 3: 2 read"), "{lines:?}");

    // Paging follows Graph's next links; every Graph request carries the token, asks for
    // 999-user pages with the Prefer header (users/delta does not support $top), and has
    // no body.
    let urls: Vec<_> = w.http.sent.iter().map(|r| r.url.as_str()).collect();
    assert!(!urls[1].contains("$top"), "{}", urls[1]);
    assert_eq!(urls[2], next_link(2));
    assert_eq!(urls[3], next_link(3));
    assert!(w.http.sent[1..].iter().all(|r| r.body.is_none()));
    for r in &w.http.sent[1..] {
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| n == "Prefer" && v == "odata.maxpagesize=999"),
            "{:?}",
            r.headers
        );
    }
}

#[test]
fn second_sync_with_the_same_data_changes_nothing() {
    let mut w = World::new();
    script_pages(&mut w, &[&[1, 2], &[3, 4], &[5, 6]]);
    run(&mut w.env(), &request()).unwrap();
    let first_commits = w.store.commits.len();
    let first_upserts = upserts(&w);
    assert_eq!(first_upserts, 6);
    assert_eq!(w.store.find_calls, 0, "the store began empty");

    script_pages(&mut w, &[&[1, 2], &[3, 4], &[5, 6]]);
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    // The gone-pass reads the page's unseen ids: none here, so only the pages look up.
    assert_eq!(
        w.store.find_calls, 3,
        "one find-people per page of a stocked store"
    );
    let u = users_report(&report);
    assert_eq!(
        (
            u.read,
            u.created,
            u.updated,
            u.unchanged,
            u.removed,
            u.written
        ),
        (6, 0, 0, 6, 0, 0)
    );
    assert_eq!(upserts(&w), first_upserts, "no upserts");
    let second: Vec<_> = w.store.commits[first_commits..].to_vec();
    assert_eq!(second.len(), 1, "only the final batch, with the report");
    assert!(second[0].changes.is_empty());
    assert!(second[0].run.is_some());
}

#[test]
fn a_changed_field_is_an_update() {
    let mut w = World::new();
    script_pages(&mut w, &[&[1, 2, 3]]);
    run(&mut w.env(), &request()).unwrap();

    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    let mut changed = user_json(2);
    changed["jobTitle"] = "Chief Tester".into();
    w.http.push_ok(
        USERS_URL,
        json_response(
            200,
            &page_body(&[user_json(1), changed, user_json(3)], None),
        ),
    );
    let before = w.store.commits.len();
    let report = run(&mut w.env(), &request()).unwrap();
    let u = users_report(&report);
    assert_eq!((u.created, u.updated, u.unchanged), (0, 1, 2));
    let batch = &w.store.commits[before];
    assert_eq!(batch.changes.len(), 1);
    let Change::UpsertPerson(s) = &batch.changes[0] else {
        panic!()
    };
    assert_eq!(s.stored.person.job_title.as_deref(), Some("Chief Tester"));
    assert_eq!(s.kind, crate::types::UpsertKind::Update);
    assert_eq!(s.changed_fields, ["job-title"]);
    assert_eq!(
        w.store.people[&user_id(2)].person.job_title.as_deref(),
        Some("Chief Tester")
    );
}

#[test]
fn throttled_page_is_retried_after_retry_after() {
    let mut w = World::new();
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    let mut throttled = json_response(
        429,
        r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
    );
    throttled.headers.push(("Retry-After".into(), "3".into()));
    w.http.push_ok(USERS_URL, throttled);
    w.http.push_ok(
        USERS_URL,
        json_response(200, &page_body(&[user_json(1)], None)),
    );
    let report = run(&mut w.env(), &request()).unwrap();
    assert_eq!(w.clock.sleeps, vec![3000]);
    assert_eq!(
        (report.requests, report.retries, report.retry_wait_ms),
        (3, 1, 3000)
    );
    assert_eq!(report.elapsed_ms, 3000);
    assert_eq!(users_report(&report).created, 1);
}

#[test]
fn missing_permission_names_user_read_all() {
    let mut w = World::new();
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    w.http.push_ok(
        USERS_URL,
        json_response(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"x"}}}"#,
        ),
    );
    let Err(SyncError::Permission(p)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert_eq!(p.permission, "User.Read.All");
    assert_eq!(p.feature, "users");
    assert!(w.store.commits.is_empty());
    assert!(
        w.log
            .lines
            .iter()
            .any(|(l, m)| *l == Level::Error && m.contains("User.Read.All"))
    );
}

#[test]
fn invalid_json_is_a_bad_response_naming_the_url() {
    let mut w = World::new();
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    w.http.push_ok(
        USERS_URL,
        json_response(200, &page_body(&[user_json(1)], Some(&next_link(2)))),
    );
    // Not JSON, every time it is read (3 attempts).
    for _ in 0..3 {
        w.http.push_ok(
            &format!("GET {}", next_link(2)),
            json_response(200, r#"{"value": [{"id": "x",}]}"#),
        );
    }
    let Err(SyncError::BadResponse(f)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    w.http.assert_done();
    assert_eq!(f.url, "https://graph.test/v1.0/users/delta?$skiptoken=...");
    assert!(f.message.contains("line 1 column"), "{}", f.message);
    assert!(f.message.contains("after 3 attempts"), "{}", f.message);
    assert!(
        f.message.contains("https://graph.test/v1.0/users/delta"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("page2"), "{}", f.message);
    // The first page stands, committed; nothing of the bad page, and no final batch.
    assert_eq!(w.store.commits.len(), 1);
    assert!(w.store.commits[0].run.is_none());
    assert!(w.store.checkpoints.is_empty());
}

#[test]
fn foreign_next_link_is_refused_and_never_followed() {
    let mut w = World::new();
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    w.http.push_ok(
        USERS_URL,
        json_response(
            200,
            &page_body(
                &[user_json(1)],
                Some("https://attacker.example/v1.0/users?$skiptoken=x"),
            ),
        ),
    );
    let Err(SyncError::BadResponse(f)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert!(f.message.contains("attacker.example"), "{}", f.message);
    assert!(
        f.message.contains("not to the Graph endpoint"),
        "{}",
        f.message
    );
    assert_eq!(w.http.sent.len(), 2);
    assert!(w.http.sent.iter().all(|r| !r.url.contains("attacker")));
    assert!(w.store.commits.is_empty());
}

#[test]
fn wrong_secret_is_an_auth_error_and_touches_no_storage() {
    let mut w = World::new();
    w.http.push_ok(
        "POST https://login.test/",
        json_response(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2024-05-01 00:00:00Z","error_codes":[7000215],"timestamp":"2024-05-01 00:00:00Z","trace_id":"1","correlation_id":"2"}"#,
        ),
    );
    let Err(SyncError::Auth(a)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert_eq!(a.failure, AuthFailure::InvalidSecret);
    assert_eq!(a.aadsts, Some(7_000_215));
    assert_eq!(w.store.calls(), 0);
    assert_eq!(w.http.sent.len(), 1);
}

#[test]
fn expired_secret_says_to_rotate_it() {
    let mut w = World::new();
    w.http.push_ok(
        "POST https://login.test/",
        json_response(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app 'client-1' are expired.","error_codes":[7000222]}"#,
        ),
    );
    let Err(SyncError::Auth(a)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert_eq!(a.failure, AuthFailure::ExpiredSecret);
    assert!(
        a.message.contains("expired") && a.message.contains("rotated"),
        "{}",
        a.message
    );
    assert!(
        a.message.contains("Certificates & secrets"),
        "{}",
        a.message
    );
    assert_eq!(w.store.calls(), 0);
}

/// Store: 1 (in Graph, passes), 2 (gone), 3 (in Graph, filtered out by department),
/// 4 (gone, already removed), 5 (gone, flagged). Graph lists 1 and 3.
fn removal_world(policy: RemovalPolicy) -> (World, SyncRequest) {
    let mut w = World::new();
    w.store.put(stored(1, PersonStatus::Active));
    w.store.put(stored(2, PersonStatus::Active));
    w.store.put(stored(3, PersonStatus::Active));
    w.store.put(stored(4, PersonStatus::Removed));
    w.store.put(stored(5, PersonStatus::Flagged));
    script_pages(&mut w, &[&[1, 3]]);
    let mut req = request();
    req.options.removal = policy;
    req.options.filter.attributes = vec![AttributeFilter {
        attribute: Attribute::Department,
        include: vec![],
        exclude: vec!["Dept 3".into()],
    }];
    (w, req)
}

fn statuses(w: &World) -> Vec<(u32, Option<PersonStatus>)> {
    (1..=5)
        .map(|n| (n, w.store.people.get(&user_id(n)).map(|s| s.status)))
        .collect()
}

#[test]
fn removal_policy_keep_marks_removed() {
    let (mut w, req) = removal_world(RemovalPolicy::Keep);
    let report = run(&mut w.env(), &req).unwrap();
    let u = users_report(&report);
    assert_eq!((u.unchanged, u.removed, u.written), (1, 3, 3));
    assert_eq!(
        u.filtered_out,
        vec![ReasonCount {
            reason: "attribute:department".into(),
            count: 1
        }]
    );
    use PersonStatus::*;
    assert_eq!(
        statuses(&w),
        vec![
            (1, Some(Active)),
            (2, Some(Removed)),
            (3, Some(Removed)),
            (4, Some(Removed)),
            (5, Some(Removed))
        ]
    );
    // Kept as stored: same fields and fingerprint.
    assert_eq!(w.store.people[&user_id(2)].person, person(2));
    assert_eq!(w.store.commits.len(), 1);

    // A second run finds nothing more to remove.
    script_pages(&mut w, &[&[1, 3]]);
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&report).removed, 0);
    assert!(w.store.commits.last().unwrap().changes.is_empty());
}

#[test]
fn removal_policy_flag_and_deactivate() {
    use PersonStatus::*;
    for (policy, status) in [
        (RemovalPolicy::Flag, Flagged),
        (RemovalPolicy::Deactivate, Inactive),
    ] {
        let (mut w, req) = removal_world(policy);
        let report = run(&mut w.env(), &req).unwrap();
        let expected_removed = if status == Flagged { 3 } else { 4 };
        assert_eq!(
            users_report(&report).removed,
            expected_removed,
            "{policy:?}"
        );
        let st = statuses(&w);
        assert_eq!(st[0], (1, Some(Active)));
        assert!(
            st[1..].iter().all(|(_, s)| *s == Some(status)),
            "{policy:?}: {st:?}"
        );
    }
}

#[test]
fn removal_policy_delete_deletes() {
    let (mut w, req) = removal_world(RemovalPolicy::Delete);
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&report).removed, 4);
    let deleted: Vec<_> = w
        .store
        .changes()
        .filter_map(|c| match c {
            Change::DeletePerson(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        vec![user_id(3), user_id(2), user_id(4), user_id(5)]
    );
    assert_eq!(
        statuses(&w),
        vec![
            (1, Some(PersonStatus::Active)),
            (2, None),
            (3, None),
            (4, None),
            (5, None)
        ]
    );
}

#[test]
fn a_returning_person_is_active_again() {
    let mut w = World::new();
    w.store.put(stored(1, PersonStatus::Removed));
    script_pages(&mut w, &[&[1]]);
    let report = run(&mut w.env(), &request()).unwrap();
    assert_eq!(users_report(&report).updated, 1);
    assert_eq!(w.store.people[&user_id(1)].status, PersonStatus::Active);
}

#[test]
fn removal_scan_pages_through_stored_ids_and_batches_large_removals() {
    let mut w = World::new();
    for n in 100..6100 {
        w.store.put(stored(n, PersonStatus::Active));
    }
    script_pages(&mut w, &[&[1]]);
    let mut req = request();
    req.options.removal = RemovalPolicy::Delete;
    req.options.removal_guard.allow = true;
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&report).removed, 6000);
    assert_eq!(
        w.store.list_calls, 8,
        "one to see whether the store is empty, 6 full pages of 1000, then an empty one"
    );
    assert_eq!(w.store.commits.len(), 2);
    // The first batch holds the page's create and the first 5000 removals.
    assert_eq!(w.store.commits[0].changes.len(), 5001);
    assert!(w.store.commits[0].run.is_none());
    assert_eq!(w.store.commits[1].changes.len(), 1000);
    assert_eq!(w.store.people.len(), 1);
}

#[test]
fn dry_run_commits_nothing_but_reports_everything() {
    let (mut w, mut req) = removal_world(RemovalPolicy::Delete);
    req.options.dry_run = true;
    let before = w.store.people.clone();
    let report = run(&mut w.env(), &req).unwrap();
    assert!(report.dry_run);
    assert!(w.store.commits.is_empty());
    assert_eq!(w.store.people, before);
    assert!(w.store.checkpoints.is_empty());
    let u = users_report(&report);
    assert_eq!((u.read, u.unchanged, u.removed), (2, 1, 4));
    assert!(w.log.lines.iter().any(|(_, l)| l.contains("dry run")));
}

#[test]
fn filtered_out_counts_per_reason() {
    let mut w = World::new();
    let mut guest = user_json(10);
    guest["userType"] = "Guest".into();
    let mut disabled = user_json(11);
    disabled["accountEnabled"] = false.into();
    let mut other_domain = user_json(13);
    other_domain["mail"] = "x@fabrikam.com".into();
    let mut no_mail = user_json(17);
    no_mail["mail"] = serde_json::Value::Null;
    let mut unlicensed = user_json(15);
    unlicensed["assignedLicenses"] = serde_json::json!([]);
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    w.http.push_ok(
        USERS_URL,
        json_response(
            200,
            &page_body(
                &[
                    user_json(1),
                    guest,
                    disabled,
                    other_domain,
                    no_mail,
                    unlicensed,
                ],
                None,
            ),
        ),
    );
    let mut req = request();
    req.options.filter.domains = vec!["contoso.com".into()];
    req.options.filter.enabled_only = true;
    req.options.filter.licensed_only = true;
    let report = run(&mut w.env(), &req).unwrap();
    let u = users_report(&report);
    assert_eq!((u.read, u.created), (6, 1));
    let reasons: Vec<_> = u
        .filtered_out
        .iter()
        .map(|r| (r.reason.as_str(), r.count))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("domain", 2),
            ("enabled-only", 1),
            ("guest", 1),
            ("licensed-only", 1)
        ]
    );
    assert_eq!(w.store.people.len(), 1);
}

#[test]
fn users_listed_twice_are_imported_once_and_the_last_state_wins() {
    // delta-query-overview.md: an entity may be contained more than once in a round.
    let mut w = World::new();
    let mut later = user_json(2);
    later["jobTitle"] = "Later".into();
    let mut earlier = user_json(3);
    earlier["jobTitle"] = "Earlier".into();
    let mut latest = user_json(3);
    latest["jobTitle"] = "Latest".into();
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    script_round(
        &mut w.http,
        USERS_URL,
        "r1",
        &[
            vec![user_json(1), user_json(2)],
            vec![later, earlier, latest],
        ],
    );
    let report = run(&mut w.env(), &request()).unwrap();
    w.http.assert_done();
    let u = users_report(&report);
    assert_eq!((u.read, u.created, u.updated), (5, 3, 1));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(w.store.people.len(), 3);
    assert_eq!(
        w.store.people[&user_id(2)].person.job_title.as_deref(),
        Some("Later")
    );
    assert_eq!(
        w.store.people[&user_id(3)].person.job_title.as_deref(),
        Some("Latest")
    );
    assert!(
        w.log
            .lines
            .iter()
            .any(|(_, l)| l.contains("2 listed more than once")),
        "{:?}",
        w.log.lines
    );
}

#[test]
fn empty_tenant_commits_only_the_final_batch() {
    let mut w = World::new();
    script_pages(&mut w, &[&[]]);
    let report = run(&mut w.env(), &request()).unwrap();
    assert_eq!(users_report(&report).pages, 1);
    assert_eq!(w.store.commits.len(), 1);
    assert_eq!(w.store.find_calls, 0, "no storage call for an empty page");
    assert_eq!(
        w.store.checkpoints[LAST_FULL_SYNC],
        "2024-05-01T00:00:00.000Z"
    );
}

#[test]
fn a_first_incremental_sync_runs_an_initial_round_without_a_warning() {
    let mut w = World::new();
    script_pages(&mut w, &[&[1]]);
    let mut req = request();
    req.options.mode = SyncMode::Incremental;
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(report.mode, SyncMode::Full);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(
        w.log
            .lines
            .iter()
            .any(|(l, m)| *l == Level::Info && m.contains("no users delta link was saved yet")),
        "{:?}",
        w.log.lines
    );
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], DEFAULT_DELTA_LINK);
}

#[test]
fn storage_failures_are_storage_errors() {
    let mut w = World::new();
    script_pages(&mut w, &[&[1]]);
    w.store.fail_commit = Some(StorageError::Unavailable("database is locked".into()));
    let Err(SyncError::Storage(m)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert_eq!(m, "commit failed: storage unavailable: database is locked");
}

#[test]
fn host_denial_names_the_authority() {
    let mut w = World::new();
    w.http.push_err(
        "POST https://login.test/",
        TransportError::Denied {
            authority: "login.test".into(),
        },
    );
    assert_eq!(
        run(&mut w.env(), &request()),
        Err(SyncError::HostDenied("login.test".into()))
    );
}

#[test]
fn endpoints_lose_one_trailing_slash() {
    let mut w = World::new();
    script_pages(&mut w, &[&[1]]);
    let mut req = request();
    req.tenant.endpoints.graph = "https://graph.test/".into();
    req.tenant.endpoints.login = "https://login.test/".into();
    run(&mut w.env(), &req).unwrap();
    assert_eq!(
        w.http.sent[0].url,
        "https://login.test/tenant-1/oauth2/v2.0/token"
    );
    assert!(
        w.http.sent[1]
            .url
            .starts_with("https://graph.test/v1.0/users/delta?")
    );
}

#[test]
fn invalid_requests_fail_before_any_request() {
    type Edit = fn(&mut SyncRequest);
    let cases: Vec<(Edit, &str)> = vec![
        (|r| r.tenant.key = " ".into(), "tenant.key"),
        (|r| r.tenant.tenant_id = "".into(), "tenant.tenant-id"),
        (|r| r.tenant.tenant_id = "a/b".into(), "tenant.tenant-id"),
        (|r| r.tenant.client_id = "".into(), "tenant.client-id"),
        (
            |r| r.tenant.endpoints.graph = "graph.microsoft.com".into(),
            "tenant.endpoints.graph",
        ),
        (
            |r| r.tenant.endpoints.graph = "https://g.test/?x=1".into(),
            "tenant.endpoints.graph",
        ),
        (
            |r| r.tenant.endpoints.login = "ftp://login".into(),
            "tenant.endpoints.login",
        ),
        (
            |r| r.options.features = Features::empty(),
            "options.features",
        ),
        (
            |r| r.options.usage_periods = vec![7, 14],
            "options.usage-periods",
        ),
    ];
    for (edit, field) in cases {
        let mut w = World::new();
        let mut req = request();
        edit(&mut req);
        match run(&mut w.env(), &req) {
            Err(SyncError::InvalidRequest(m)) => assert!(m.starts_with(field), "{m}"),
            other => panic!("{field}: {other:?}"),
        }
        assert!(w.http.sent.is_empty());
    }
}

#[test]
fn managers_need_users_before_any_request() {
    let mut w = World::new();
    let mut req = request();
    req.options.features = Features::MANAGERS | Features::USAGE_REPORTS;
    let Err(SyncError::InvalidRequest(m)) = run(&mut w.env(), &req) else {
        panic!()
    };
    assert!(m.starts_with("options.features"), "{m}");
    assert!(m.contains("enable users"), "{m}");
    assert!(check_features(Features::all()).is_ok());
    assert!(w.http.sent.is_empty());
}

#[test]
fn missing_or_unreadable_secret_names_the_secret() {
    let mut w = World::new();
    w.secrets.0.clear();
    let Err(SyncError::Secret(m)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert_eq!(
        m,
        "secret \"client-secret\" is not configured for tenant contoso"
    );

    w.secrets.0.insert(
        "client-secret".into(),
        Err(
            crate::bindings::m365sync::engine::secrets::SecretError::Unreadable(
                "/etc/m365sync/contoso.secret".into(),
            ),
        ),
    );
    let Err(SyncError::Secret(m)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert!(m.contains("/etc/m365sync/contoso.secret"), "{m}");
    w.secrets.0.insert("client-secret".into(), Ok(" \n".into()));
    let Err(SyncError::Secret(m)) = run(&mut w.env(), &request()) else {
        panic!()
    };
    assert!(m.contains("empty"), "{m}");
    assert!(w.http.sent.is_empty());
}

#[test]
fn a_run_that_signs_in_with_an_assertion_reads_no_secret_and_reveals_no_assertion() {
    let jwt = cert_assertion(1);
    let mut req = request();
    req.tenant.credential = CredentialKind::ClientAssertion;

    // No secret is configured, and none is read.
    let mut w = World::new();
    w.secrets.0.clear();
    w.credentials.push(Ok(jwt.clone()));
    script_pages(&mut w, &[&[1, 2]]);
    let r = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&r).created, 2);
    let form = String::from_utf8(w.http.sent[0].body.clone().unwrap()).unwrap();
    assert!(
        form.contains(&format!("&client_assertion={jwt}&")),
        "{form}"
    );
    assert_eq!(
        w.credentials.audiences,
        vec!["https://login.test/tenant-1/oauth2/v2.0/token"]
    );

    // Graph echoing it: masked in the error and the log.
    let mut w = World::new();
    w.credentials.push(Ok(jwt.clone()));
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(&["User.Read.All"]), 3600),
    );
    w.http.push_ok(
        USERS_URL,
        json_response(
            400,
            &format!(r#"{{"error":{{"code":"Echo","message":"you signed in with {jwt}"}}}}"#),
        ),
    );
    let e = run(&mut w.env(), &req).unwrap_err();
    let shown = format!("{e:?} {:?}", w.log.lines);
    assert!(shown.contains("you signed in with [redacted]"), "{shown}");
    assert!(!shown.contains(&jwt[..40]), "{shown}");

    // The tenant asks for an assertion the host cannot make: nothing is sent.
    let mut w = World::new();
    let Err(SyncError::Secret(m)) = run(&mut w.env(), &req) else {
        panic!()
    };
    assert!(m.contains("no assertion credential"), "{m}");
    assert!(w.http.sent.is_empty());
}

#[test]
fn secret_and_token_appear_in_no_error_log_or_report() {
    let token = fake_jwt(&["User.Read.All"]);
    let t = token.clone();
    let echo = move |status: u16| {
        json_response(
            status,
            &format!(
                r#"{{"error":{{"code":"Echo","message":"you sent secret {SECRET} and token {t} and Bearer {t}"}}}}"#
            ),
        )
    };
    // Each scenario: what Graph and the identity platform answer after the secret is read.
    type Script = Box<dyn Fn(&mut World)>;
    let t = token.clone();
    let ok_token = move |w: &mut World| {
        w.http
            .push_ok("POST https://login.test/", token_response(&t, 3600));
    };
    let scenarios: Vec<Script> = vec![
        // The identity platform echoes the secret in its error description.
        Box::new(|w| {
            w.http.push_ok(
                "POST https://login.test/",
                json_response(
                    401,
                    &format!(
                        r#"{{"error":"invalid_client","error_description":"AADSTS7000215: bad secret {SECRET}","error_codes":[7000215]}}"#
                    ),
                ),
            )
        }),
        // A proxy echoes the form body (URL-encoded secret) in an HTML error.
        Box::new(|w| {
            let mut form = String::new();
            crate::url::form_encode(&mut form, SECRET);
            w.http.push_ok(
                "POST https://login.test/",
                json_response(
                    502,
                    &format!("<html>bad gateway for client_secret={form}</html>"),
                ),
            )
        }),
        // A token response that is not JSON but contains the token.
        {
            let t = token.clone();
            Box::new(move |w| {
                w.http.push_ok(
                    "POST https://login.test/",
                    json_response(200, &format!("access_token={t}")),
                )
            })
        },
        // Graph echoes the token in 500, 400, 401 (twice: renewed once) and 403 errors.
        {
            let (ok, echo) = (ok_token.clone(), echo.clone());
            Box::new(move |w| {
                ok(w);
                w.http.push_ok(USERS_URL, echo(500));
            })
        },
        {
            let (ok, echo) = (ok_token.clone(), echo.clone());
            Box::new(move |w| {
                ok(w);
                w.http.push_ok(USERS_URL, echo(400));
            })
        },
        {
            let (ok, echo) = (ok_token.clone(), echo.clone());
            Box::new(move |w| {
                ok(w);
                w.http.push_ok(USERS_URL, echo(401));
                ok(w);
                w.http.push_ok(USERS_URL, echo(401));
            })
        },
        {
            let (ok, echo) = (ok_token.clone(), echo.clone());
            Box::new(move |w| {
                ok(w);
                let mut r = echo(403);
                r.body = String::from_utf8(r.body)
                    .unwrap()
                    .replace("Echo", "Authorization_RequestDenied")
                    .into_bytes();
                w.http.push_ok(USERS_URL, r);
            })
        },
        // Invalid JSON quoting the token; a transport error quoting it.
        {
            let ok = ok_token.clone();
            let t = token.clone();
            Box::new(move |w| {
                ok(w);
                w.http.push_ok(
                    USERS_URL,
                    json_response(200, &format!(r#"{{"value": "{t}"}}"#)),
                );
            })
        },
        {
            let ok = ok_token.clone();
            let t = token.clone();
            Box::new(move |w| {
                ok(w);
                for _ in 0..3 {
                    w.http.push_err(
                        USERS_URL,
                        TransportError::Protocol(format!("reset after Bearer {t}")),
                    );
                }
            })
        },
        // A next link to another host, carrying the token.
        {
            let ok = ok_token.clone();
            let t = token.clone();
            Box::new(move |w| {
                ok(w);
                w.http.push_ok(
                    USERS_URL,
                    json_response(
                        200,
                        &page_body(&[user_json(1)], Some(&format!("https://evil.test/?t={t}"))),
                    ),
                );
            })
        },
        // A successful run, for the logs and the report.
        {
            let ok = ok_token.clone();
            Box::new(move |w| {
                ok(w);
                w.http.push_ok(
                    USERS_URL,
                    json_response(200, &page_body(&[user_json(1)], None)),
                );
            })
        },
    ];
    let mut form = String::new();
    crate::url::form_encode(&mut form, SECRET);
    let needles = [SECRET.to_owned(), form, token.clone()];
    for (i, scenario) in scenarios.iter().enumerate() {
        let mut w = World::new();
        scenario(&mut w);
        let result = run(&mut w.env(), &request());
        assert_eq!(
            result.is_ok(),
            i == scenarios.len() - 1,
            "scenario {i}: {result:?}"
        );
        let mut haystack = format!("{result:?}");
        for (_, line) in &w.log.lines {
            haystack.push_str(line);
        }
        for b in &w.store.commits {
            haystack.push_str(&format!("{b:?}"));
        }
        for n in &needles {
            assert!(
                !haystack.contains(n.as_str()),
                "scenario {i} leaked {n}: {haystack}"
            );
        }
        // The secret went only into the token request's body.
        for r in &w.http.sent {
            let body = r
                .body
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            assert!(!r.url.contains(SECRET) && r.headers.iter().all(|(_, v)| !v.contains(SECRET)));
            if r.method == crate::platform::Method::Get {
                assert!(body.is_empty());
            }
        }
    }

    // Usage reports: Graph redirects to a pre-authenticated download URL on another host.
    // The bearer token never goes there, and the download URL (a capability) is never
    // shown, even when the download host echoes it or everything else in an error.
    const DOWNLOAD: &str = "https://reports.download.test/data/download/SECRETPATH0?sig=SECRETSIG0";
    const REPORT: &str = "GET https://graph.test/v1.0/reports/getMailboxUsageDetail(period='D7')";
    let redirect = || {
        let mut r = json_response(302, "");
        r.headers.push(("Location".into(), DOWNLOAD.into()));
        r
    };
    let csv = "Report Refresh Date,User Principal Name,Storage Used (Byte),Item Count\n2024-05-01,user1@contoso.com,100,2\n";
    type Download = Box<dyn Fn(&mut World)>;
    // The token each download scenario's run is issued.
    let t = fake_jwt(&["User.Read.All", "Reports.Read.All"]);
    let downloads: Vec<(bool, Download)> = vec![
        (
            true,
            Box::new(move |w| {
                w.http.push_ok(REPORT, redirect());
                w.http.push_ok(
                    &format!("GET {DOWNLOAD}"),
                    crate::platform::HttpResponse {
                        status: 200,
                        headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                        body: csv.as_bytes().to_vec(),
                    },
                );
            }),
        ),
        (
            false,
            Box::new(move |w| {
                w.http.push_ok(REPORT, redirect());
                w.http.push_ok(
                    &format!("GET {DOWNLOAD}"),
                    json_response(
                        500,
                        &format!(r#"{{"error":{{"code":"Echo","message":"you asked for {DOWNLOAD} with {t}"}}}}"#),
                    ),
                );
            }),
        ),
        (
            false,
            Box::new(move |w| {
                w.http.push_ok(REPORT, redirect());
                for _ in 0..3 {
                    w.http.push_err(
                        &format!("GET {DOWNLOAD}"),
                        TransportError::Protocol(format!("reset while reading {DOWNLOAD}")),
                    );
                }
            }),
        ),
    ];
    let mut req = request();
    req.options.features = Features::USERS | Features::MAILBOXES;
    for (i, (succeeds, scenario)) in downloads.iter().enumerate() {
        let mut w = World::new();
        w.http.push_ok(
            "POST https://login.test/",
            token_response(&fake_jwt(&["User.Read.All", "Reports.Read.All"]), 3600),
        );
        w.http.push_ok(
            USERS_URL,
            json_response(200, &page_body(&[user_json(1)], None)),
        );
        // The token of this world (with Reports.Read.All) is the one to look for.
        let world_token = fake_jwt(&["User.Read.All", "Reports.Read.All"]);
        scenario(&mut w);
        let result = run(&mut w.env(), &req);
        w.http.assert_done();
        assert_eq!(
            result.is_ok(),
            *succeeds,
            "download scenario {i}: {result:?}"
        );
        let mut shown = format!("{result:?}");
        for (_, line) in &w.log.lines {
            shown.push_str(line);
        }
        for b in &w.store.commits {
            shown.push_str(&format!("{b:?}"));
        }
        for n in [SECRET, &world_token, &token, "SECRETPATH0", "SECRETSIG0"] {
            assert!(
                !shown.contains(n),
                "download scenario {i} showed {n}: {shown}"
            );
        }
        let to_download: Vec<_> = w
            .http
            .sent
            .iter()
            .filter(|r| r.url.starts_with("https://reports.download.test/"))
            .collect();
        assert!(!to_download.is_empty());
        for r in to_download {
            assert!(
                r.headers
                    .iter()
                    .all(|(n, v)| !n.eq_ignore_ascii_case("authorization")
                        && !v.contains(&world_token)
                        && !v.contains(SECRET)),
                "the bearer token went to the download host: {:?}",
                r.headers
            );
            assert!(r.body.is_none());
        }
        if *succeeds {
            assert_eq!(w.store.mailboxes[&user_id(1)].storage_used_bytes, 100);
        } else {
            let Err(SyncError::Http(f)) = &result else {
                panic!("{result:?}")
            };
            assert_eq!(f.url, "https://reports.download.test/...");
        }
    }
}

mod corrections;
mod delta;
mod features;
mod guard;
mod people;
mod reports;
mod resume;
mod tenant;
