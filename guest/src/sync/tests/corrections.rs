//! Data-correctness fixes of issue 13: object ids compared case-insensitively (normalised
//! to lower case on read), a deleted manager's references cleared, and each data set
//! counting a record once (created, updated, unchanged or removed).

use super::features::{ALL_ROLES, sign_in_with, with_features};
use super::*;
use crate::sources::users;

fn saved_replay(w: &mut World, people: &[u32], round: &str, managers: bool) {
    for &n in people {
        w.store.put(stored(n, PersonStatus::Active));
    }
    w.store
        .checkpoints
        .insert(USERS_DELTA_LINK.into(), delta_link(round));
    w.store
        .checkpoints
        .insert(USERS_DELTA_SELECT.into(), users::select(managers));
    w.store.checkpoints.insert(
        USERS_FILTER.into(),
        crate::fakes::filter_checkpoint(&request().options.filter),
    );
}

fn incremental(features: Features) -> SyncRequest {
    let mut req = with_features(features);
    req.options.mode = SyncMode::Incremental;
    req
}

#[test]
fn an_upper_case_id_in_a_replay_updates_the_stored_person() {
    let mut w = World::new();
    saved_replay(&mut w, &[10, 11], "r0", false);
    sign_in_with(&mut w, &["User.Read.All"]);
    let mut changed = user_json(10);
    changed["id"] = serde_json::Value::String(user_id(10).to_uppercase());
    changed["department"] = "Upper".into();
    let mut gone = removed_json(11, "deleted");
    gone["id"] = serde_json::Value::String(user_id(11).to_uppercase());
    script_round(
        &mut w.http,
        &format!("GET {}", delta_link("r0")),
        "r1",
        &[vec![changed, gone]],
    );
    let mut req = incremental(Features::USERS);
    req.options.removal = RemovalPolicy::Delete;
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    let u = users_report(&report);
    assert_eq!((u.created, u.updated, u.removed, u.conflicts), (0, 1, 1, 0));
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(
        w.store.people.keys().cloned().collect::<Vec<_>>(),
        vec![user_id(10)]
    );
    assert_eq!(
        w.store.people[&user_id(10)].person.department.as_deref(),
        Some("Upper")
    );
}

fn with_manager(n: u32, manager: u32) -> StoredPerson {
    let mut p = person(n);
    p.manager_id = Some(user_id(manager));
    StoredPerson {
        fingerprint: merge::fingerprint(&p),
        person: p,
        status: PersonStatus::Active,
    }
}

#[test]
fn a_deleted_manager_is_cleared_from_the_reports_who_kept_it() {
    let mut w = World::new();
    saved_replay(&mut w, &[1, 5], "r0", true);
    for n in [2, 3, 4, 6] {
        w.store.put(with_manager(n, 1));
    }
    sign_in_with(&mut w, &["User.Read.All"]);
    // 1 is deleted; 2 is re-sent without manager@delta (another change); 3 gets manager 5
    // in the same delta; 4 is not re-sent; 6 is re-sent on the last page, unchanged but
    // for its manager reference. Two pages: the first is committed before the last.
    let mut two = user_json(2);
    two["jobTitle"] = "Lead".into();
    let mut three = serde_json::json!({"id": user_id(3)});
    three["manager@delta"] =
        serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": user_id(5)}]);
    let six = serde_json::json!({"id": user_id(6), "department": "Moved"});
    script_round(
        &mut w.http,
        &format!("GET {}", delta_link("r0")),
        "r1",
        &[vec![two, three], vec![removed_json(1, "deleted"), six]],
    );
    let mut req = incremental(Features::USERS | Features::MANAGERS);
    req.options.removal = RemovalPolicy::Delete;
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    let manager = |n: u32| w.store.people[&user_id(n)].person.manager_id.clone();
    assert_eq!(manager(2), None);
    assert_eq!(manager(3), Some(user_id(5)), "the new manager is kept");
    assert_eq!(manager(4), None);
    assert_eq!(manager(6), None);
    assert_eq!(
        w.store.people[&user_id(6)].person.department.as_deref(),
        Some("Moved")
    );
    for s in w.store.people.values() {
        assert_eq!(
            s.fingerprint,
            merge::fingerprint(&s.person),
            "{}",
            s.person.object_id
        );
    }
    // 4's change names the manager field.
    let four = w
        .store
        .changes()
        .filter_map(|c| match c {
            Change::UpsertPerson(u) if u.stored.person.object_id == user_id(4) => Some(u),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(four.changed_fields, vec!["manager".to_owned()]);
    let u = users_report(&report);
    assert_eq!(
        (u.created, u.updated, u.unchanged, u.removed),
        (0, 4, 0, 1),
        "2, 3, 4 and 6 updated once each"
    );
    assert_eq!(u.written, 5);
}

#[test]
fn a_first_sync_with_sign_ins_counts_each_person_once() {
    let mut w = World::new();
    sign_in_with(&mut w, ALL_ROLES);
    script_round(
        &mut w.http,
        DELTA_FIRST,
        "r1",
        &[vec![user_json(1), user_json(2), user_json(3)]],
    );
    let sign_ins = serde_json::json!({"value": [
        {"id": user_id(1), "signInActivity": {"lastSignInDateTime": "2024-04-30T08:00:00Z"}},
        {"id": user_id(2), "signInActivity": {"lastSignInDateTime": "2024-04-30T09:00:00Z"}},
        {"id": user_id(3), "signInActivity": null}]});
    w.http.push_ok(
        "GET https://graph.test/v1.0/users?$select=id,signInActivity",
        json_response(200, &sign_ins.to_string()),
    );
    let req = with_features(Features::USERS | Features::SIGN_IN_ACTIVITY);
    let report = run(&mut w.env(), &req).unwrap();
    let u = users_report(&report);
    assert_eq!((u.created, u.updated, u.unchanged, u.written), (3, 0, 0, 3));
    assert_eq!(
        w.store.people[&user_id(1)].person.last_sign_in.as_deref(),
        Some("2024-04-30T08:00:00Z")
    );

    // A full rerun where only 2 signed in again: 2 updated, 1 and 3 unchanged.
    sign_in_with(&mut w, ALL_ROLES);
    script_round(
        &mut w.http,
        DELTA_FIRST,
        "r2",
        &[vec![user_json(1), user_json(2), user_json(3)]],
    );
    let sign_ins = serde_json::json!({"value": [
        {"id": user_id(1), "signInActivity": {"lastSignInDateTime": "2024-04-30T08:00:00Z"}},
        {"id": user_id(2), "signInActivity": {"lastSignInDateTime": "2024-05-01T09:00:00Z"}},
        {"id": user_id(3), "signInActivity": null}]});
    w.http.push_ok(
        "GET https://graph.test/v1.0/users?$select=id,signInActivity",
        json_response(200, &sign_ins.to_string()),
    );
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    let u = users_report(&report);
    assert_eq!((u.created, u.updated, u.unchanged, u.written), (0, 1, 2, 1));
}

// ---------------------------------------------------------------------------------------
// Reports: snapshots, counted against the fingerprints of the last run

fn script_mailboxes(w: &mut World, csv: &str) {
    let mut redirect = json_response(302, "");
    let location = "https://reports.download.test/data/download/MB?sig=S";
    redirect.headers = vec![("Location".into(), location.into())];
    w.http.push_ok(
        "GET https://graph.test/v1.0/reports/getMailboxUsageDetail(period='D7')",
        redirect,
    );
    w.http.push_ok(
        &format!("GET {location}"),
        crate::platform::HttpResponse {
            status: 200,
            headers: vec![],
            body: csv.as_bytes().to_vec(),
        },
    );
}

fn mailbox_csv(rows: &[(u32, u64)]) -> String {
    let mut csv =
        String::from("Report Refresh Date,User Principal Name,Item Count,Storage Used (Byte)\n");
    for (n, items) in rows {
        csv.push_str(&format!("2024-04-30,user{n}@contoso.com,{items},100\n"));
    }
    csv
}

fn report_writes(w: &World) -> usize {
    w.store
        .changes()
        .filter(|c| {
            matches!(
                c,
                Change::UpsertMailbox(_) | Change::UpsertUsage(_) | Change::ReplaceReport(_)
            )
        })
        .count()
}

#[test]
fn mailbox_counts_are_created_then_unchanged_then_updated_and_dropped_rows_go() {
    let mut w = World::new();
    for n in [1, 2, 3] {
        w.store.put(stored(n, PersonStatus::Active));
    }
    let req = with_features(Features::MAILBOXES);
    let counts = |r: &SyncReport| {
        let d = r
            .data_sets
            .iter()
            .find(|d| d.data_set == DataSet::Mailboxes)
            .unwrap();
        (d.created, d.updated, d.unchanged, d.removed, d.written)
    };
    // First run: every row created.
    sign_in_with(&mut w, &["Reports.Read.All"]);
    script_mailboxes(&mut w, &mailbox_csv(&[(1, 10), (2, 20), (3, 30)]));
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(counts(&report), (3, 0, 0, 0, 3));
    assert_eq!(w.store.mailboxes.len(), 3);

    // The same report again: all unchanged, nothing written.
    let before = report_writes(&w);
    sign_in_with(&mut w, &["Reports.Read.All"]);
    script_mailboxes(&mut w, &mailbox_csv(&[(1, 10), (2, 20), (3, 30)]));
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(counts(&report), (0, 0, 3, 0, 0));
    assert_eq!(report_writes(&w), before, "zero writes");

    // One row changed: one update, one write.
    sign_in_with(&mut w, &["Reports.Read.All"]);
    script_mailboxes(&mut w, &mailbox_csv(&[(1, 10), (2, 21), (3, 30)]));
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(counts(&report), (0, 1, 2, 0, 1));
    assert_eq!(report_writes(&w), before + 1);
    assert_eq!(w.store.mailboxes[&user_id(2)].item_count, 21);

    // 3 dropped out of the report: its row is gone (the report replaced).
    sign_in_with(&mut w, &["Reports.Read.All"]);
    script_mailboxes(&mut w, &mailbox_csv(&[(1, 10), (2, 21)]));
    let report = run(&mut w.env(), &req).unwrap();
    assert_eq!(counts(&report), (0, 0, 2, 1, 1));
    assert!(!w.store.mailboxes.contains_key(&user_id(3)));
    assert_eq!(w.store.mailboxes.len(), 2);

    // A download that fails (403) keeps the stored rows.
    sign_in_with(&mut w, &["Reports.Read.All"]);
    w.http.push_ok(
        "GET https://graph.test/v1.0/reports/getMailboxUsageDetail(period='D7')",
        json_response(
            403,
            r#"{"error":{"code":"Forbidden","message":"no licence"}}"#,
        ),
    );
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert!(
        report.warnings.iter().any(|x| x.code == "forbidden"),
        "{:?}",
        report.warnings
    );
    assert_eq!(w.store.mailboxes.len(), 2, "rows kept");
}

// ---------------------------------------------------------------------------------------
// Groups and subscriptions: counted against the fingerprints of the last run

fn groups_page(entries: Vec<serde_json::Value>, link: &str) -> crate::platform::HttpResponse {
    json_response(
        200,
        &serde_json::json!({"value": entries, "@odata.deltaLink": link}).to_string(),
    )
}

fn group(id: &str, name: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "displayName": name, "mail": null,
        "groupTypes": [], "mailEnabled": false, "securityEnabled": true})
}

fn set_counts(r: &SyncReport, d: DataSet) -> (u64, u64, u64, u64) {
    let d = r.data_sets.iter().find(|x| x.data_set == d).unwrap();
    (d.created, d.updated, d.unchanged, d.written)
}

fn group_upserts(w: &World) -> usize {
    w.store
        .changes()
        .filter(|c| matches!(c, Change::UpsertGroup(_)))
        .count()
}

#[test]
fn groups_count_created_then_unchanged_without_writes_then_updated() {
    let mut w = World::new();
    let link = |r: &str| format!("https://graph.test/v1.0/groups/delta?$deltatoken=GD-{r}");
    sign_in_with(&mut w, &["GroupMember.Read.All"]);
    w.http.push_ok(
        "GET https://graph.test/v1.0/groups/delta?$select=",
        groups_page(vec![group("g1", "One"), group("g2", "Two")], &link("r1")),
    );
    let full = with_features(Features::GROUPS);
    let report = run(&mut w.env(), &full).unwrap();
    assert_eq!(set_counts(&report, DataSet::Groups), (2, 0, 0, 2));

    // A replay that lists g1 again as it was: unchanged, not written.
    let before = group_upserts(&w);
    sign_in_with(&mut w, &["GroupMember.Read.All"]);
    w.http.push_ok(
        &format!("GET {}", link("r1")),
        groups_page(vec![group("g1", "One")], &link("r2")),
    );
    let mut incremental = full.clone();
    incremental.options.mode = SyncMode::Incremental;
    let report = run(&mut w.env(), &incremental).unwrap();
    assert_eq!(set_counts(&report, DataSet::Groups), (0, 0, 1, 0));
    assert_eq!(group_upserts(&w), before, "zero writes");

    // g2 renamed: one update.
    sign_in_with(&mut w, &["GroupMember.Read.All"]);
    w.http.push_ok(
        &format!("GET {}", link("r2")),
        groups_page(vec![group("g2", "Two renamed")], &link("r3")),
    );
    let report = run(&mut w.env(), &incremental).unwrap();
    w.http.assert_done();
    assert_eq!(set_counts(&report, DataSet::Groups), (0, 1, 0, 1));
    assert_eq!(group_upserts(&w), before + 1);
    assert_eq!(w.store.groups["g2"].display_name, "Two renamed");
}

#[test]
fn subscriptions_count_created_then_unchanged_without_writes_then_updated() {
    let mut w = World::new();
    let skus = |consumed: u32| {
        json_response(
            200,
            &serde_json::json!({"value": [
                {"skuId": "05E9A617-0261-4CEE-BB44-138D3EF5D965", "skuPartNumber": "SPE_E3",
                 "consumedUnits": consumed, "prepaidUnits": {"enabled": 50}},
                {"skuId": "aaaaaaaa-0000-4000-8000-000000000001", "skuPartNumber": "CUSTOM",
                 "consumedUnits": 1, "prepaidUnits": {"enabled": 2}}]})
            .to_string(),
        )
    };
    let req = with_features(Features::LICENCES);
    let writes = |w: &World| {
        w.store
            .changes()
            .filter(|c| matches!(c, Change::UpsertSubscription(_)))
            .count()
    };
    for (consumed, want, total) in [
        (40, (2, 0, 0, 2), 2),
        (40, (0, 0, 2, 0), 2),
        (41, (0, 1, 1, 1), 3),
    ] {
        sign_in_with(&mut w, &["Organization.Read.All"]);
        w.http
            .push_ok("GET https://graph.test/v1.0/subscribedSkus", skus(consumed));
        let report = run(&mut w.env(), &req).unwrap();
        assert_eq!(
            set_counts(&report, DataSet::Subscriptions),
            want,
            "{consumed}"
        );
        assert_eq!(writes(&w), total, "{consumed}");
    }
    w.http.assert_done();
    // SKU ids are kept in lower case.
    assert!(
        w.store
            .subscriptions
            .contains_key("05e9a617-0261-4cee-bb44-138d3ef5d965")
    );
}

#[test]
fn organization_and_domains_count_created_then_unchanged_without_writes_then_updated() {
    let mut w = World::new();
    let organization = |name: &str| {
        json_response(
            200,
            &serde_json::json!({"value": [{"id": "tenant-guid", "displayName": name,
                "verifiedDomains": [{"name": "contoso.com", "isDefault": true,
                                      "isInitial": false, "type": "Managed"}]}]})
            .to_string(),
        )
    };
    let domains = |verified: bool| {
        json_response(
            200,
            &serde_json::json!({"value": [
                {"id": "contoso.com", "isDefault": true, "isInitial": false, "isVerified": true},
                {"id": "new.contoso.com", "isDefault": false, "isInitial": false,
                 "isVerified": verified}]})
            .to_string(),
        )
    };
    let writes = |w: &World| {
        w.store
            .changes()
            .filter(|c| matches!(c, Change::UpsertOrganization(_) | Change::UpsertDomain(_)))
            .count()
    };
    let req = with_features(Features::ORGANIZATION);
    // (name, verified) → (organization counts, domain counts, writes so far)
    for (name, verified, org, dom, total) in [
        ("Contoso", false, (1, 0, 0, 1), (2, 0, 0, 2), 3),
        ("Contoso", false, (0, 0, 1, 0), (0, 0, 2, 0), 3),
        ("Contoso Ltd", true, (0, 1, 0, 1), (0, 1, 1, 1), 5),
    ] {
        sign_in_with(&mut w, &["Organization.Read.All", "Domain.Read.All"]);
        w.http.push_ok(
            "GET https://graph.test/v1.0/organization",
            organization(name),
        );
        w.http
            .push_ok("GET https://graph.test/v1.0/domains", domains(verified));
        let report = run(&mut w.env(), &req).unwrap();
        assert_eq!(set_counts(&report, DataSet::Organization), org, "{name}");
        assert_eq!(set_counts(&report, DataSet::Domains), dom, "{name}");
        assert_eq!(writes(&w), total, "{name}");
    }
    w.http.assert_done();
    assert_eq!(
        w.store
            .organization
            .as_ref()
            .map(|o| o.display_name.as_str()),
        Some("Contoso Ltd")
    );
}
