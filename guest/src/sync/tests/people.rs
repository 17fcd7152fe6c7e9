//! Matching, merge and preview through whole runs: accounts linked by email or UPN,
//! conflicts that create nothing, the field map naming changed fields, and a preview that
//! commits nothing and says why each account is in or out.

use super::*;
use crate::platform::Store;
use crate::types::{MatchKey, PersonKey, PersonOutcome, UpsertKind};

fn with_mail(n: u32, mail: &str) -> serde_json::Value {
    let mut u = user_json(n);
    u["mail"] = serde_json::json!(mail);
    u
}

fn upsert_kinds(w: &World) -> Vec<(String, UpsertKind)> {
    w.store
        .changes()
        .filter_map(|c| match c {
            Change::UpsertPerson(u) => Some((u.stored.person.object_id.clone(), u.kind)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_removed_persons_record_is_linked_and_an_active_ones_is_a_conflict() {
    let mut w = World::new();
    // Stored: user 1 (gone, removed) and user 2 (active).
    w.store.put(stored(1, PersonStatus::Removed));
    w.store.put(stored(2, PersonStatus::Active));
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    // New accounts 11 and 12 carry the emails of users 1 and 2; user 2 is listed too.
    w.http.push_ok(
        USERS_URL,
        json_response(
            200,
            &page_body(
                &[
                    with_mail(11, "USER1@contoso.com"),
                    with_mail(12, "user2@contoso.com"),
                    user_json(2),
                ],
                None,
            ),
        ),
    );
    let report = run(&mut w.env(), &request()).unwrap();
    let u = users_report(&report);
    assert_eq!(
        (u.created, u.linked, u.conflicts, u.unchanged),
        (0, 1, 1, 1)
    );
    assert!(!w.store.people.contains_key(&user_id(1)), "re-keyed");
    assert_eq!(w.store.people[&user_id(11)].status, PersonStatus::Active);
    assert!(!w.store.people.contains_key(&user_id(12)));
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].key, "user2@contoso.com");
    assert_eq!(report.conflicts[0].object_ids, [user_id(2), user_id(12)]);
    let link = w
        .store
        .changes()
        .find_map(|c| match c {
            Change::UpsertPerson(u) if u.kind == UpsertKind::Link => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(link.previous_object_id, Some(user_id(1)));
    assert!(
        link.changed_fields.contains(&"first-name".to_string()),
        "{link:?}"
    );
}

#[test]
fn two_new_accounts_with_one_email_are_both_left_out_on_a_first_sync() {
    let mut w = World::new();
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    w.http.push_ok(
        USERS_URL,
        json_response(
            200,
            &page_body(
                &[
                    with_mail(1, "dup@contoso.com"),
                    with_mail(2, "Dup@Contoso.com"),
                    user_json(3),
                ],
                None,
            ),
        ),
    );
    let report = run(&mut w.env(), &request()).unwrap();
    let u = users_report(&report);
    assert_eq!((u.created, u.conflicts), (1, 2));
    assert_eq!(report.conflicts.len(), 1, "one conflict, named once");
    assert_eq!(upsert_kinds(&w), [(user_id(3), UpsertKind::Create)]);
    // The store began empty: no lookup by id, email or UPN was needed.
    assert_eq!(w.store.find_calls, 0);
}

#[test]
fn across_pages_of_a_first_sync_a_claimed_email_is_looked_up_and_conflicts() {
    let mut w = World::new();
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    w.http.push_ok(
        USERS_URL,
        json_response(200, &page_body(&[user_json(1)], Some(&next_link(2)))),
    );
    w.http.push_ok(
        &format!("GET {}", next_link(2)),
        json_response(200, &page_body(&[with_mail(2, "user1@contoso.com")], None)),
    );
    let report = run(&mut w.env(), &request()).unwrap();
    assert_eq!(users_report(&report).conflicts, 1);
    assert!(!w.store.people.contains_key(&user_id(2)));
}

/// Every person written carries its own match keys: exactly the email and UPN keys the
/// engine looks it up by, however odd the addresses Graph sends; the store indexes those.
#[test]
fn a_written_person_carries_the_keys_it_is_looked_up_by() {
    // (mail, userPrincipalName) → (email-key, upn-key).
    let cases = [
        (
            (Some("Jane.Doe@Contoso.COM"), "JDoe@Contoso.OnMicrosoft.com"),
            (Some("jane.doe@contoso.com"), "jdoe@contoso.onmicrosoft.com"),
        ),
        (
            (Some("MailTo:Ann@contoso.com"), "mailto:ann@contoso.com"),
            (Some("ann@contoso.com"), "ann@contoso.com"),
        ),
        (
            (Some("bob@contoso.com."), "Bob@Contoso.com."),
            (Some("bob@contoso.com"), "bob@contoso.com"),
        ),
        (
            (
                Some("\u{200B}cy@contoso.com\u{FEFF}"),
                "\u{2060} Cy@contoso.com\u{00A0}",
            ),
            (Some("cy@contoso.com"), "cy@contoso.com"),
        ),
        // Not addresses: no email key, and no UPN key (the WIT's string is then empty).
        ((Some("dee"), "dee.contoso.com"), (None, "")),
        // A guest without mail: the email key is its own address.
        (
            (None, "Eve_Fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            (
                Some("eve@fabrikam.com"),
                "eve_fabrikam.com#ext#@contoso.onmicrosoft.com",
            ),
        ),
    ];
    let mut w = World::new();
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    let users: Vec<_> = cases
        .iter()
        .zip(1..)
        .map(|(((mail, upn), _), n)| {
            let mut u = user_json(n);
            u["mail"] = serde_json::json!(mail);
            u["userPrincipalName"] = serde_json::json!(upn);
            u
        })
        .collect();
    w.http
        .push_ok(USERS_URL, json_response(200, &page_body(&users, None)));
    let report = run(&mut w.env(), &request()).unwrap();
    assert_eq!(users_report(&report).created, cases.len() as u64);

    let upserts: Vec<_> = w
        .store
        .changes()
        .filter_map(|c| match c {
            Change::UpsertPerson(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(upserts.len(), cases.len());
    for (u, (_, (email, upn))) in upserts.iter().zip(&cases) {
        let p = &u.stored.person;
        assert_eq!(
            (u.email_key.as_deref(), u.upn_key.as_str()),
            (*email, *upn),
            "{p:?}"
        );
        // Exactly the lookup keys, under either match key.
        let mut carried: Vec<PersonKey> = u
            .email_key
            .clone()
            .map(PersonKey::Email)
            .into_iter()
            .collect();
        carried.extend(
            (!u.upn_key.is_empty()).then(|| PersonKey::UserPrincipalName(u.upn_key.clone())),
        );
        assert_eq!(crate::matching::keys(p, MatchKey::Email), carried);
        let mut by_upn = crate::matching::keys(p, MatchKey::UserPrincipalName);
        by_upn.reverse();
        assert_eq!(by_upn, carried);
        // The store finds the person by them (it indexes the carried keys only).
        let found = w.store.find_people(&carried).unwrap();
        assert!(
            found
                .iter()
                .all(|f| f.as_ref().map(|s| &s.person.object_id) == Some(&p.object_id)),
            "{p:?}"
        );
    }
}

#[test]
fn the_upn_match_key_tries_the_user_principal_name_first() {
    let mut w = World::new();
    let mut gone = stored(1, PersonStatus::Removed);
    gone.person.mail = Some("other@contoso.com".into());
    w.store.put(gone);
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    let mut renamed = user_json(5);
    renamed["userPrincipalName"] = serde_json::json!("user1@contoso.com");
    w.http
        .push_ok(USERS_URL, json_response(200, &page_body(&[renamed], None)));
    let mut req = request();
    req.options.match_key = MatchKey::UserPrincipalName;
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(users_report(&report).linked, 1);
    assert!(w.store.people.contains_key(&user_id(5)));
}

#[test]
fn a_preview_says_what_would_happen_to_each_account_and_commits_nothing() {
    let mut w = World::new();
    w.store.put(stored(2, PersonStatus::Active));
    w.store.put(stored(9, PersonStatus::Active));
    let token = fake_jwt(&["User.Read.All"]);
    w.http
        .push_ok("POST https://login.test/", token_response(&token, 3600));
    let mut changed = user_json(2);
    changed["jobTitle"] = serde_json::json!("Lead");
    w.http.push_ok(
        USERS_URL,
        json_response(
            200,
            &page_body(&[user_json(1), changed, user_json(7)], None),
        ),
    );
    let mut req = request();
    req.options.filter.enabled_only = true;
    req.options.field_map = vec![crate::types::FieldMapping {
        graph_property: "jobTitle".into(),
        platform_field: "title".into(),
    }];
    let p = preview(&mut w.env(), &req).unwrap();
    assert!(w.store.commits.is_empty(), "a preview commits nothing");
    assert!(p.report.dry_run);
    let outcome = |id: String| {
        p.people
            .iter()
            .find(|e| e.object_id == id)
            .map(|e| e.outcome.clone())
    };
    assert_eq!(outcome(user_id(1)), Some(PersonOutcome::Create));
    assert_eq!(
        outcome(user_id(2)),
        Some(PersonOutcome::Update(vec!["title".into()]))
    );
    // User 7 is disabled (every 7th is).
    assert_eq!(
        outcome(user_id(7)),
        Some(PersonOutcome::FilteredOut("enabled-only".into()))
    );
    // User 9 was not listed: it would be removed.
    assert_eq!(
        outcome(user_id(9)),
        Some(PersonOutcome::Remove(PersonStatus::Removed))
    );
}

#[test]
fn an_unknown_field_map_property_is_refused_before_signing_in() {
    let mut w = World::new();
    let mut req = request();
    req.options.field_map = vec![crate::types::FieldMapping {
        graph_property: "shoeSize".into(),
        platform_field: "shoe".into(),
    }];
    let Err(SyncError::InvalidRequest(m)) = run(&mut w.env(), &req) else {
        panic!()
    };
    assert!(m.contains("shoeSize"), "{m}");
    assert!(w.http.sent.is_empty());
}
