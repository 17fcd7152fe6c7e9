//! The data sets besides users, each from scripted Graph answers: managers (manager@delta),
//! a changed `$select`, sign-in activity (premium and not), licences, the organization and
//! its domains, groups (initial and replayed rounds, members spread over pages), feature
//! gating and the failure policy of optional phases.

use super::*;
use crate::fakes::FakeStore;
use crate::sources::users;
use crate::types::{Domain, Group, Organization};

/// Every role the engine may need.
pub const ALL_ROLES: &[&str] = &[
    "User.Read.All",
    "AuditLog.Read.All",
    "GroupMember.Read.All",
    "Organization.Read.All",
    "Domain.Read.All",
    "Reports.Read.All",
];

pub fn sign_in_with(w: &mut World, roles: &[&str]) {
    w.http.push_ok(
        "POST https://login.test/",
        token_response(&fake_jwt(roles), 3600),
    );
}

pub fn with_features(features: Features) -> SyncRequest {
    let mut req = request();
    req.options.features = features;
    req
}

fn codes(r: &SyncReport) -> Vec<&str> {
    r.warnings.iter().map(|w| w.code.as_str()).collect()
}

fn data_set(r: &SyncReport, d: DataSet) -> &DataSetReport {
    r.data_sets
        .iter()
        .find(|x| x.data_set == d)
        .unwrap_or_else(|| panic!("no {d:?} report in {:?}", r.data_sets))
}

fn with_manager(n: u32, manager: Option<u32>) -> serde_json::Value {
    let mut u = user_json(n);
    if let Some(m) = manager {
        u["manager@delta"] =
            serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": user_id(m)}]);
    }
    u
}

const MANAGERS_FIRST: &str = "GET https://graph.test/v1.0/users/delta?$select=";

// ---------------------------------------------------------------------------------------
// Managers and the select checkpoint

#[test]
fn managers_come_from_manager_delta_and_a_removal_clears_them() {
    let mut w = World::new();
    sign_in_with(&mut w, &["User.Read.All"]);
    script_round(
        &mut w.http,
        MANAGERS_FIRST,
        "r1",
        &[vec![
            with_manager(1, Some(9)),
            with_manager(2, Some(1)),
            with_manager(3, None),
        ]],
    );
    let req = with_features(Features::USERS | Features::MANAGERS);
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let first = &w.http.sent[1].url;
    assert!(
        first.ends_with(",employeeHireDate,proxyAddresses,manager"),
        "{first}"
    );
    let manager = |w: &World, n| w.store.people[&user_id(n)].person.manager_id.clone();
    assert_eq!(manager(&w, 1), Some(user_id(9)));
    assert_eq!(manager(&w, 2), Some(user_id(1)));
    assert_eq!(manager(&w, 3), None);
    assert_eq!(
        w.store.checkpoints[USERS_DELTA_SELECT],
        users::select(true),
        "the select is saved with the delta link"
    );

    // A replay: 1 loses its manager (a removal entry), 2 gets another, 3 is listed without
    // manager@delta (unchanged manager: kept).
    sign_in_with(&mut w, &["User.Read.All"]);
    let mut one = serde_json::json!({"id": user_id(1)});
    one["manager@delta"] = serde_json::json!([{"@odata.type": "#microsoft.graph.user",
        "id": user_id(9), "@removed": {"reason": "deleted"}}]);
    let mut two = serde_json::json!({"id": user_id(2), "jobTitle": "Lead"});
    two["manager@delta"] =
        serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": user_id(3)}]);
    let three = serde_json::json!({"id": user_id(3), "department": "New"});
    script_round(
        &mut w.http,
        &format!("GET {}", delta_link("r1")),
        "r2",
        &[vec![one, two, three]],
    );
    let mut req = req.clone();
    req.options.mode = SyncMode::Incremental;
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Incremental);
    assert_eq!(manager(&w, 1), None);
    assert_eq!(manager(&w, 2), Some(user_id(3)));
    let mut three = person(3);
    three.department = Some("New".into());
    assert_eq!(w.store.people[&user_id(3)].person, three);
    let s = &w.store.people[&user_id(2)];
    assert_eq!(s.fingerprint, merge::fingerprint(&s.person));
}

#[test]
fn without_managers_a_full_round_keeps_the_stored_manager_and_last_sign_in() {
    let mut w = World::new();
    let mut p = person(1);
    p.manager_id = Some(user_id(9));
    p.last_sign_in = Some("2024-04-01T00:00:00Z".into());
    w.store.put(StoredPerson {
        fingerprint: merge::fingerprint(&p),
        person: p.clone(),
        status: PersonStatus::Active,
    });
    sign_in_with(&mut w, &["User.Read.All"]);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[vec![user_json(1)]]);
    let report = run(&mut w.env(), &request()).unwrap();
    let u = data_set(&report, DataSet::Users);
    assert_eq!((u.unchanged, u.updated), (1, 0));
    assert_eq!(w.store.people[&user_id(1)].person, p);
}

#[test]
fn a_changed_select_forces_a_full_round_with_an_info_line() {
    // A delta link saved by a round without managers (or by an engine that did not save
    // its select): replaying it would never return manager@delta.
    for saved_select in [Some(users::select(false)), None] {
        let mut w = World::new();
        for n in [1, 2, 3] {
            w.store.put(StoredPerson {
                fingerprint: merge::fingerprint(&person(n)),
                person: person(n),
                status: PersonStatus::Active,
            });
        }
        w.store
            .checkpoints
            .insert(USERS_DELTA_LINK.into(), delta_link("r0"));
        if let Some(s) = &saved_select {
            w.store
                .checkpoints
                .insert(USERS_DELTA_SELECT.into(), s.clone());
        }
        sign_in_with(&mut w, &["User.Read.All"]);
        script_round(
            &mut w.http,
            MANAGERS_FIRST,
            "r1",
            &[vec![with_manager(1, Some(2)), user_json(2)]],
        );
        let mut req = with_features(Features::USERS | Features::MANAGERS);
        req.options.mode = SyncMode::Incremental;
        let report = run(&mut w.env(), &req).unwrap();
        w.http.assert_done();
        assert_eq!(report.mode, SyncMode::Full, "{saved_select:?}");
        assert!(report.warnings.is_empty(), "an info line, not a warning");
        assert!(
            w.http.sent.iter().all(|r| !r.url.contains("DT-r0")),
            "the old link is not replayed"
        );
        assert!(
            w.log.lines.iter().any(|(l, m)| *l == Level::Info
                && m.contains("properties read changed")
                && m.contains(",manager now")),
            "{:?}",
            w.log.lines
        );
        assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
        assert_eq!(w.store.checkpoints[USERS_DELTA_SELECT], users::select(true));
        // A full round: 3, not listed, is removed.
        assert_eq!(
            w.store.people[&user_id(3)].status,
            PersonStatus::Removed,
            "{saved_select:?}"
        );
        assert_eq!(
            w.store.people[&user_id(1)].person.manager_id,
            Some(user_id(2))
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sign-in activity

const SIGN_INS: &str = "GET https://graph.test/v1.0/users?$select=id,signInActivity&$top=500";

fn sign_in_page(entries: &[(u32, Option<&str>)], next: Option<&str>) -> String {
    let value: Vec<_> = entries
        .iter()
        .map(|(n, t)| match t {
            Some(t) => serde_json::json!({"id": user_id(*n), "signInActivity": {"lastSignInDateTime": t, "lastSignInRequestId": "r"}}),
            None => serde_json::json!({"id": user_id(*n), "signInActivity": null}),
        })
        .collect();
    let mut v = serde_json::json!({"value": value});
    if let Some(n) = next {
        v["@odata.nextLink"] = n.into();
    }
    v.to_string()
}

#[test]
fn sign_in_activity_updates_the_stored_people_page_by_page() {
    let mut w = World::new();
    sign_in_with(&mut w, ALL_ROLES);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1, 2, 3])]);
    let next = "https://graph.test/v1.0/users?$select=id,signInActivity&$top=500&$skiptoken=S2";
    w.http.push_ok(
        SIGN_INS,
        json_response(
            200,
            &sign_in_page(
                &[
                    (1, Some("2024-04-30T08:00:00Z")),
                    (99, Some("2024-04-30T09:00:00Z")),
                ],
                Some(next),
            ),
        ),
    );
    w.http.push_ok(
        &format!("GET {next}"),
        json_response(
            200,
            &sign_in_page(&[(2, None), (3, Some("2024-04-29T07:00:00Z"))], None),
        ),
    );
    let req = with_features(Features::USERS | Features::SIGN_IN_ACTIVITY);
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let last = |w: &World, n| w.store.people[&user_id(n)].person.last_sign_in.clone();
    assert_eq!(last(&w, 1).as_deref(), Some("2024-04-30T08:00:00Z"));
    assert_eq!(last(&w, 2), None);
    assert_eq!(last(&w, 3).as_deref(), Some("2024-04-29T07:00:00Z"));
    assert!(!w.store.people.contains_key(&user_id(99)), "never created");
    for n in [1, 3] {
        let s = &w.store.people[&user_id(n)];
        assert_eq!(s.fingerprint, merge::fingerprint(&s.person));
    }
    // Users page, then one batch per sign-in page with changes, then the report.
    let batches: Vec<usize> = w.store.commits.iter().map(|b| b.changes.len()).collect();
    assert_eq!(batches, vec![3, 1, 1, 0]);
    assert!(w.store.commits[3].run.is_some());
    assert_eq!(report.data_sets.len(), 1, "sign-ins join the users report");
    let u = data_set(&report, DataSet::Users);
    // Created, then their last sign-in set: counted once, as created.
    assert_eq!((u.pages, u.created, u.updated, u.written), (3, 3, 0, 3));

    // The same sign-ins again: nothing to write.
    sign_in_with(&mut w, ALL_ROLES);
    script_round(&mut w.http, DELTA_FIRST, "r2", &[users(&[1, 2, 3])]);
    w.http.push_ok(
        SIGN_INS,
        json_response(
            200,
            &sign_in_page(
                &[
                    (1, Some("2024-04-30T08:00:00Z")),
                    (2, None),
                    (3, Some("2024-04-29T07:00:00Z")),
                ],
                None,
            ),
        ),
    );
    let before = w.store.commits.len();
    let report = run(&mut w.env(), &req).unwrap();
    let u = data_set(&report, DataSet::Users);
    assert_eq!(
        (u.unchanged, u.updated),
        (3, 0),
        "last sign-in kept by the users round"
    );
    // The users' final batch (its delta link) before the pass, and the report after it.
    assert_eq!(w.store.commits.len() - before, 2);
    assert!(
        w.store.commits[before..]
            .iter()
            .all(|b| b.changes.is_empty())
    );
}

#[test]
fn a_tenant_without_premium_gets_one_warning_and_the_run_goes_on() {
    let mut w = World::new();
    sign_in_with(&mut w, ALL_ROLES);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
    w.http.push_ok(
        SIGN_INS,
        json_response(
            403,
            r#"{"error":{"code":"Authentication_RequestFromNonPremiumTenantOrB2CTenant","message":"Neither tenant is B2C or tenant doesn't have premium license","innerError":{"request-id":"x"}}}"#,
        ),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/subscribedSkus",
        json_response(200, r#"{"value": []}"#),
    );
    let req = with_features(Features::USERS | Features::SIGN_IN_ACTIVITY | Features::LICENCES);
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(codes(&report), vec!["sign-in-activity-unavailable"]);
    let m = &report.warnings[0].message;
    assert!(
        m.contains("Microsoft Entra ID P1 or P2") && m.contains("AuditLog.Read.All"),
        "{m}"
    );
    assert_eq!(w.store.people.len(), 1);
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
    assert!(w.store.commits.last().unwrap().run.is_some());
}

// ---------------------------------------------------------------------------------------
// Licences, organization, domains

#[test]
fn licences_name_products_and_warn_once_about_unknown_skus() {
    let mut w = World::new();
    sign_in_with(&mut w, &["Organization.Read.All"]);
    let next = "https://graph.test/v1.0/subscribedSkus?$skiptoken=p2";
    w.http.push_ok(
        "GET https://graph.test/v1.0/subscribedSkus",
        json_response(
            200,
            &serde_json::json!({"@odata.nextLink": next, "value": [
                {"skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965", "skuPartNumber": "SPE_E3",
                 "consumedUnits": 40, "prepaidUnits": {"enabled": 50, "suspended": 0, "warning": 5, "lockedOut": 0},
                 "servicePlans": [{"servicePlanId": "a", "servicePlanName": "TEAMS1", "provisioningStatus": "Success", "appliesTo": "User"}]},
                {"skuId": "aaaaaaaa-0000-4000-8000-000000000001", "skuPartNumber": "CONTOSO_CUSTOM",
                 "consumedUnits": 1, "prepaidUnits": {"enabled": 2}}
            ]})
            .to_string(),
        ),
    );
    w.http.push_ok(
        &format!("GET {next}"),
        json_response(
            200,
            &serde_json::json!({"value": [
                {"skuId": "bbbbbbbb-0000-4000-8000-000000000002", "skuPartNumber": "FABRIKAM_ADDON", "consumedUnits": 0}
            ]})
            .to_string(),
        ),
    );
    let report = run(&mut w.env(), &with_features(Features::LICENCES)).unwrap();
    w.http.assert_done();
    assert_eq!(codes(&report), vec!["unknown-sku"]);
    let m = &report.warnings[0].message;
    assert!(m.starts_with("2 subscribed SKU(s)"), "{m}");
    assert!(
        m.contains("CONTOSO_CUSTOM (aaaaaaaa-0000-4000-8000-000000000001)"),
        "{m}"
    );
    assert!(m.contains("FABRIKAM_ADDON"), "{m}");
    let e3 = &w.store.subscriptions["05e9a617-0261-4cee-bb44-138d3ef5d965"];
    assert_eq!(e3.product_name, "Microsoft 365 E3");
    assert_eq!(
        (e3.enabled_units, e3.warning_units, e3.consumed_units),
        (50, 5, 40)
    );
    assert_eq!(e3.service_plans, vec!["TEAMS1"]);
    assert_eq!(
        w.store.subscriptions["aaaaaaaa-0000-4000-8000-000000000001"].product_name,
        "CONTOSO_CUSTOM"
    );
    // One batch: the SKUs with the run's report; no users were read.
    assert_eq!(w.store.commits.len(), 1);
    assert_eq!(w.store.commits[0].changes.len(), 3);
    assert!(w.store.commits[0].run.is_some());
    assert_eq!(
        report.mode,
        SyncMode::Full,
        "no delta round: the mode asked for"
    );
    let s = data_set(&report, DataSet::Subscriptions);
    assert_eq!((s.pages, s.read, s.written), (2, 3, 3));
    assert!(w.store.people.is_empty() && w.store.list_calls == 0);
}

#[test]
fn organization_and_domains_in_one_batch() {
    let mut w = World::new();
    sign_in_with(&mut w, &["Organization.Read.All", "Domain.Read.All"]);
    w.http.push_ok(
        "GET https://graph.test/v1.0/organization",
        json_response(
            200,
            r#"{"value": [{"id": "tenant-guid", "displayName": "Contoso Ltd", "countryLetterCode": "GB",
                "verifiedDomains": [
                  {"name": "contoso.onmicrosoft.com", "isDefault": false, "isInitial": true, "type": "Managed"},
                  {"name": "contoso.co.uk", "isDefault": true, "isInitial": false, "type": "Managed"}]}]}"#,
        ),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/domains",
        json_response(
            200,
            r#"{"value": [
              {"id": "contoso.co.uk", "isDefault": true, "isInitial": false, "isVerified": true},
              {"id": "contoso.onmicrosoft.com", "isDefault": false, "isInitial": true, "isVerified": true},
              {"id": "new.contoso.co.uk", "isDefault": false, "isInitial": false, "isVerified": false}]}"#,
        ),
    );
    let report = run(&mut w.env(), &with_features(Features::ORGANIZATION)).unwrap();
    w.http.assert_done();
    assert!(report.warnings.is_empty());
    assert_eq!(
        w.store.organization,
        Some(Organization {
            tenant_id: "tenant-guid".into(),
            display_name: "Contoso Ltd".into(),
            country: Some("GB".into()),
            default_domain: Some("contoso.co.uk".into()),
            verified_domains: vec!["contoso.co.uk".into(), "contoso.onmicrosoft.com".into()],
        })
    );
    assert_eq!(w.store.domains.len(), 3);
    assert_eq!(
        w.store.domains["new.contoso.co.uk"],
        Domain {
            name: "new.contoso.co.uk".into(),
            is_default: false,
            is_initial: false,
            is_verified: false
        }
    );
    assert_eq!(w.store.commits.len(), 1, "one batch, with the report");
    assert_eq!(w.store.commits[0].changes.len(), 4);
    assert_eq!(data_set(&report, DataSet::Organization).read, 1);
    assert_eq!(data_set(&report, DataSet::Domains).written, 3);
}

// ---------------------------------------------------------------------------------------
// Groups

const GROUPS_FIRST: &str = "GET https://graph.test/v1.0/groups/delta?$select=displayName,mail,groupTypes,mailEnabled,securityEnabled,members";

fn groups_next(round: &str, page: usize) -> String {
    format!("https://graph.test/v1.0/groups/delta?$skiptoken=GS-{round}-{page}")
}

fn groups_link(round: &str) -> String {
    format!("https://graph.test/v1.0/groups/delta?$deltatoken=GD-{round}")
}

fn script_groups(w: &mut World, first: &str, round: &str, pages: &[Vec<serde_json::Value>]) {
    for (i, entries) in pages.iter().enumerate() {
        let expect = if i == 0 {
            first.to_owned()
        } else {
            format!("GET {}", groups_next(round, i + 1))
        };
        let last = i + 1 == pages.len();
        let mut v = serde_json::json!({"value": entries});
        if last {
            v["@odata.deltaLink"] = groups_link(round).into();
        } else {
            v["@odata.nextLink"] = groups_next(round, i + 2).into();
        }
        w.http.push_ok(&expect, json_response(200, &v.to_string()));
    }
}

fn member(id: &str) -> serde_json::Value {
    serde_json::json!({"@odata.type": "#microsoft.graph.user", "id": id})
}

fn member_removed(id: &str) -> serde_json::Value {
    serde_json::json!({"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": "deleted"}})
}

fn group(id: &str, name: &str, members: Vec<serde_json::Value>) -> serde_json::Value {
    let mut g = serde_json::json!({"id": id, "displayName": name, "mail": null,
        "groupTypes": [], "mailEnabled": false, "securityEnabled": true});
    if !members.is_empty() {
        g["members@delta"] = members.into();
    }
    g
}

fn members(store: &FakeStore, g: &str) -> Vec<String> {
    store
        .members
        .get(g)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn an_initial_groups_round_resets_each_group_once_and_merges_members_over_pages() {
    let mut w = World::new();
    // Stale state from before: g1 had u9, who left while no delta link was usable.
    w.store
        .members
        .insert("g1".into(), ["u9".to_owned()].into());
    sign_in_with(&mut w, &["GroupMember.Read.All"]);
    let mut m365 = group(
        "g3",
        "Project X",
        vec![
            member("u1"),
            serde_json::json!({"@odata.type": "#microsoft.graph.device", "id": "d1"}),
        ],
    );
    m365["groupTypes"] = serde_json::json!(["Unified"]);
    m365["mailEnabled"] = true.into();
    m365["mail"] = "px@contoso.com".into();
    script_groups(
        &mut w,
        GROUPS_FIRST,
        "r1",
        &[
            vec![
                group("g1", "Sales", vec![member("u1"), member("u2")]),
                group("g2", "Empty", vec![]),
            ],
            // The same large group again, with the rest of its members, then another group.
            vec![group("g1", "Sales", vec![member("u3")]), m365],
        ],
    );
    let report = run(&mut w.env(), &with_features(Features::GROUPS)).unwrap();
    w.http.assert_done();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(members(&w.store, "g1"), vec!["u1", "u2", "u3"]);
    assert_eq!(
        members(&w.store, "g3"),
        vec!["u1"],
        "the device is not stored"
    );
    assert_eq!(w.store.groups["g3"].kind, "microsoft-365");
    assert_eq!(w.store.groups["g1"].kind, "security");
    assert_eq!(w.store.groups.len(), 3);
    // Page 1: g1 reset and rebuilt in one batch; page 2 only adds g1's members.
    let c = &w.store.commits;
    assert_eq!(c.len(), 2);
    assert!(matches!(&c[0].changes[0], Change::DeleteGroup(id) if id == "g1"));
    assert!(matches!(&c[0].changes[1], Change::UpsertGroup(g) if g.object_id == "g1"));
    assert!(
        matches!(&c[0].changes[2], Change::GroupMembers(m) if m.group_id == "g1" && m.added == vec!["u1", "u2"])
    );
    let g1_page2: Vec<_> = c[1]
        .changes
        .iter()
        .filter(|ch| match ch {
            Change::DeleteGroup(id) => id == "g1",
            Change::UpsertGroup(g) => g.object_id == "g1",
            Change::GroupMembers(m) => m.group_id == "g1",
            _ => false,
        })
        .collect();
    assert_eq!(g1_page2.len(), 1, "{g1_page2:?}");
    assert!(matches!(g1_page2[0], Change::GroupMembers(m) if m.added == vec!["u3"]));
    // The delta link and select only in the final batch, with the report.
    assert!(c[0].checkpoints.is_empty());
    let keys: Vec<_> = c[1].checkpoints.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            GROUPS_DELTA_LINK,
            GROUPS_DELTA_SELECT,
            "groups.size",
            crate::sync::groups::GROUPS_FINGERPRINTS
        ]
    );
    assert!(c[1].run.is_some());
    let g = data_set(&report, DataSet::Groups);
    // A first sync: every group is new.
    assert_eq!(
        (g.pages, g.read, g.created, g.updated, g.removed),
        (2, 4, 3, 0, 0)
    );
    let m = data_set(&report, DataSet::GroupMembers);
    assert_eq!((m.created, m.removed), (4, 0));
    assert_eq!(
        m.filtered_out,
        vec![ReasonCount {
            reason: "not-a-user".into(),
            count: 1
        }]
    );
    assert!(
        w.log
            .lines
            .iter()
            .any(|(_, l)| l.contains("1 of other types (not users) ignored")),
        "{:?}",
        w.log.lines
    );

    // A replay: u1 leaves g1 and u4 joins; g2 is deleted; g3's member list spans two
    // entries of the same round.
    sign_in_with(&mut w, &["GroupMember.Read.All"]);
    script_groups(
        &mut w,
        &format!("GET {}", groups_link("r1")),
        "r2",
        &[
            vec![
                group("g1", "Sales EMEA", vec![member_removed("u1"), member("u4")]),
                serde_json::json!({"id": "g2", "@removed": {"reason": "changed"}}),
                serde_json::json!({"id": "g3", "members@delta": [member("u5")]}),
            ],
            vec![serde_json::json!({"id": "g3", "members@delta": [member_removed("u1")]})],
        ],
    );
    let mut req = with_features(Features::GROUPS);
    req.options.mode = SyncMode::Incremental;
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(report.mode, SyncMode::Incremental);
    assert_eq!(members(&w.store, "g1"), vec!["u2", "u3", "u4"]);
    assert_eq!(w.store.groups["g1"].display_name, "Sales EMEA");
    assert!(!w.store.groups.contains_key("g2"));
    assert_eq!(members(&w.store, "g3"), vec!["u5"]);
    assert_eq!(
        w.store.groups["g3"],
        Group {
            object_id: "g3".into(),
            display_name: "Project X".into(),
            mail: Some("px@contoso.com".into()),
            kind: "microsoft-365".into()
        },
        "an entry with members only leaves the group's properties"
    );
    assert!(
        !w.store.commits[2..]
            .iter()
            .flat_map(|b| &b.changes)
            .any(|c| matches!(c, Change::DeleteGroup(id) if id != "g2")),
        "a replay resets nothing"
    );
    assert_eq!(w.store.checkpoints[GROUPS_DELTA_LINK], groups_link("r2"));
    let g = data_set(&report, DataSet::Groups);
    assert_eq!((g.read, g.updated, g.removed), (4, 1, 1));
    let m = data_set(&report, DataSet::GroupMembers);
    assert_eq!((m.created, m.removed, m.written), (2, 2, 4));
}

#[test]
fn an_expired_groups_delta_link_runs_an_initial_round_with_a_warning() {
    let mut w = World::new();
    w.store.groups.insert(
        "g1".into(),
        Group {
            object_id: "g1".into(),
            display_name: "Sales".into(),
            mail: None,
            kind: "security".into(),
        },
    );
    w.store
        .members
        .insert("g1".into(), ["u1".to_owned(), "u9".to_owned()].into());
    w.store
        .checkpoints
        .insert(GROUPS_DELTA_LINK.into(), groups_link("r0"));
    w.store.checkpoints.insert(
        GROUPS_DELTA_SELECT.into(),
        crate::sources::groups::SELECT.into(),
    );
    sign_in_with(&mut w, &["GroupMember.Read.All"]);
    w.http.push_ok(
        &format!("GET {}", groups_link("r0")),
        json_response(
            410,
            r#"{"error":{"code":"resyncRequired","message":"Resync required."}}"#,
        ),
    );
    script_groups(
        &mut w,
        GROUPS_FIRST,
        "r1",
        &[vec![group("g1", "Sales", vec![member("u1")])]],
    );
    let mut req = with_features(Features::GROUPS);
    req.options.mode = SyncMode::Incremental;
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(codes(&report), vec!["delta-expired"]);
    assert!(
        report.warnings[0]
            .message
            .contains("saved groups delta link")
    );
    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(members(&w.store, "g1"), vec!["u1"], "rebuilt: u9 is gone");
    assert_eq!(w.store.checkpoints[GROUPS_DELTA_LINK], groups_link("r1"));
}

// ---------------------------------------------------------------------------------------
// Gating and the failure policy

#[test]
fn a_feature_whose_role_is_missing_is_skipped_and_users_go_on() {
    let mut w = World::new();
    sign_in_with(&mut w, &["User.Read.All"]);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1, 2])]);
    let req = with_features(Features::USERS | Features::GROUPS | Features::MAILBOXES);
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(
        codes(&report),
        vec!["permission-missing", "permission-missing"]
    );
    assert!(report.warnings[0].message.contains("GroupMember.Read.All"));
    assert!(report.warnings[1].message.contains("Reports.Read.All"));
    assert_eq!(w.store.people.len(), 2);
    assert!(
        w.http
            .sent
            .iter()
            .all(|r| !r.url.contains("/groups") && !r.url.contains("/reports")),
        "no request for a stopped feature"
    );
    assert_eq!(report.data_sets.len(), 1);
}

#[test]
fn graph_403_in_an_optional_phase_is_a_warning_other_failures_end_the_run() {
    // A 403 from Graph (the token's roles looked right, say, or it was not a JWT).
    let mut w = World::new();
    sign_in_with(&mut w, ALL_ROLES);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
    w.http.push_ok(
        "GET https://graph.test/v1.0/subscribedSkus",
        json_response(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
        ),
    );
    w.http.push_ok(
        "GET https://graph.test/v1.0/organization",
        json_response(
            403,
            r#"{"error":{"code":"Forbidden","message":"Not for you."}}"#,
        ),
    );
    let req = with_features(Features::USERS | Features::LICENCES | Features::ORGANIZATION);
    let report = run(&mut w.env(), &req).unwrap();
    w.http.assert_done();
    assert_eq!(codes(&report), vec!["permission-missing", "forbidden"]);
    assert!(report.warnings[0].message.contains("Organization.Read.All"));
    assert!(report.warnings[1].message.contains("organization"));
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));

    // A 500 ends the run; the users' batch stands.
    let mut w = World::new();
    sign_in_with(&mut w, ALL_ROLES);
    script_round(&mut w.http, DELTA_FIRST, "r1", &[users(&[1])]);
    w.http.push_ok(
        "GET https://graph.test/v1.0/subscribedSkus",
        json_response(
            500,
            r#"{"error":{"code":"generalException","message":"boom"}}"#,
        ),
    );
    let req = with_features(Features::USERS | Features::LICENCES);
    let Err(SyncError::Http(f)) = run(&mut w.env(), &req) else {
        panic!()
    };
    assert_eq!(f.status, Some(500));
    assert_eq!(
        w.store.commits.len(),
        1,
        "the users' final batch was committed"
    );
    assert!(
        w.store.commits[0].run.is_none(),
        "no report for a failed run"
    );
    assert_eq!(w.store.checkpoints[USERS_DELTA_LINK], delta_link("r1"));
}

fn users(ns: &[u32]) -> Vec<serde_json::Value> {
    ns.iter().map(|&n| user_json(n)).collect()
}
