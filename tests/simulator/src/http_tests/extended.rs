//! HTTP tests of groups and groups/delta, the manager on users/delta,
//! signInActivity, subscribedSkus, the organization and domains, and the usage
//! reports with their download host.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Reply, assert_graph_error, send, token};
use crate::{GroupKind, Host, ReportKind, SimConfig, Simulator, TenantSpec};

async fn start_with(users: usize, roles: &[&str], tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(42, users));
    config.roles = roles.iter().map(|r| r.to_string()).collect();
    tweak(&mut config);
    Simulator::start(config).await.expect("start")
}

async fn bearer(sim: &Simulator) -> String {
    format!("Bearer {}", token(sim).await)
}

/// Follows a delta round; returns the pages and the deltaLink.
async fn round(url: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut pages = Vec::new();
    let mut url = url.to_string();
    loop {
        let r = send("GET", &url, headers, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let next = v["@odata.nextLink"].as_str().map(str::to_string);
        let delta = v["@odata.deltaLink"].as_str().map(str::to_string);
        pages.push(v);
        match (next, delta) {
            (Some(n), None) => url = n,
            (None, Some(d)) => return (pages, d),
            other => panic!("a page needs exactly one link: {other:?}"),
        }
        assert!(pages.len() < 2000);
    }
}

fn items(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["value"].as_array().cloned().unwrap_or_default())
        .collect()
}

const GROUP_SELECT: &str =
    "$select=displayName,mail,groupTypes,mailEnabled,securityEnabled,members";

#[tokio::test]
async fn groups_delta_initial_round_and_replay() {
    let sim = start_with(600, &["GroupMember.Read.All"], |_| {}).await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let h = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=50"),
    ];
    let (pages, delta_link) = round(&format!("{g}/v1.0/groups/delta?{GROUP_SELECT}"), &h).await;
    assert!(delta_link.contains("/v1.0/groups/delta?$deltatoken="));
    for p in &pages {
        assert_eq!(
            p["@odata.context"],
            format!(
                "{g}/v1.0/$metadata#groups(displayName,mail,groupTypes,mailEnabled,securityEnabled,members)"
            )
        );
        // Every group and every member entry counts against the page size.
        let weight: usize = p["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|v| 1 + v["members@delta"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(weight <= 50, "{weight}");
    }
    // Merge the pages: a large group comes back on several pages, with the
    // same properties and further members.
    let tenant = sim.tenant();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen_on_pages: HashMap<String, usize> = HashMap::new();
    for v in items(&pages) {
        let id = v["id"].as_str().expect("id").to_string();
        assert!(v.get("@removed").is_none());
        let truth = tenant.group(&id).expect("a real group");
        assert_eq!(v["displayName"], truth.display_name.as_str());
        assert_eq!(v["groupTypes"], serde_json::json!(truth.kind.group_types()));
        assert_eq!(v["mailEnabled"], truth.kind.mail_enabled());
        assert_eq!(v["securityEnabled"], truth.kind.security_enabled());
        match &truth.mail {
            Some(m) => assert_eq!(v["mail"], m.as_str()),
            // Never-set properties are left out.
            None => assert!(v.get("mail").is_none(), "{v}"),
        }
        *seen_on_pages.entry(id.clone()).or_default() += 1;
        let list = members.entry(id).or_default();
        match v.get("members@delta") {
            Some(m) => {
                for e in m.as_array().expect("array") {
                    assert_eq!(e["@odata.type"], "#microsoft.graph.user");
                    assert!(e.get("@removed").is_none());
                    list.push(e["id"].as_str().expect("id").to_string());
                }
            }
            None => assert!(truth.members.is_empty(), "no members@delta without members"),
        }
    }
    assert_eq!(members.len(), tenant.groups.len());
    for grp in &tenant.groups {
        assert_eq!(members[&grp.id], grp.members, "{}", grp.display_name);
    }
    assert!(
        seen_on_pages.values().any(|&n| n > 1),
        "a group spans pages"
    );
    let kinds: HashSet<GroupKind> = tenant.groups.iter().map(|g| g.kind).collect();
    assert_eq!(kinds.len(), 4);

    // A replay without changes is empty.
    let (pages, delta_link) = round(&delta_link, &h).await;
    assert_eq!(items(&pages).len(), 0);

    // Membership changes, a deleted group, a new group.
    let target = tenant
        .groups
        .iter()
        .find(|g| g.kind == GroupKind::Microsoft365 && g.members.len() > 3)
        .expect("a group with members");
    let outsider = tenant
        .users
        .iter()
        .find(|u| !target.members.contains(&u.id))
        .expect("someone outside")
        .id
        .clone();
    let leaving = target.members[1].clone();
    sim.add_group_members(&target.id, std::slice::from_ref(&outsider));
    sim.remove_group_members(&target.id, std::slice::from_ref(&leaving));
    let security = tenant
        .groups
        .iter()
        .find(|g| g.kind == GroupKind::Security)
        .expect("a security group");
    sim.delete_group(&security.id);
    let new_members = vec![tenant.users[1].id.clone(), tenant.users[2].id.clone()];
    let created = sim.create_group("Launch Team", GroupKind::Distribution, &new_members);

    let (pages, delta_link) = round(&delta_link, &h).await;
    let got = items(&pages);
    let by_id: HashMap<&str, &Value> = got
        .iter()
        .map(|v| (v["id"].as_str().expect("id"), v))
        .collect();
    assert_eq!(by_id.len(), 3, "{got:?}");
    let changed = by_id[target.id.as_str()];
    assert_eq!(changed["displayName"], target.display_name.as_str());
    let entries = changed["members@delta"].as_array().expect("members@delta");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .any(|e| e["id"] == outsider.as_str() && e.get("@removed").is_none())
    );
    assert!(entries.iter().any(|e| e["id"] == leaving.as_str()
        && e["@removed"]["reason"] == "deleted"
        && e["@odata.type"] == "#microsoft.graph.user"));
    // A security group is deleted for good.
    let gone = by_id[security.id.as_str()];
    assert_eq!(gone["@removed"]["reason"], "deleted");
    assert_eq!(gone.as_object().map(|o| o.len()), Some(2));
    let new = by_id[created.as_str()];
    assert_eq!(new["displayName"], "Launch Team");
    assert_eq!(new["members@delta"].as_array().map(Vec::len), Some(2));
    assert_eq!(new["groupTypes"], serde_json::json!([]));

    // A Microsoft 365 group goes to the deleted items: "changed"; a member's
    // deletion shows in members@delta; return=minimal leaves properties out.
    sim.delete_group(&target.id);
    let other = tenant
        .groups
        .iter()
        .find(|g| g.id != target.id && g.id != security.id && !g.members.is_empty())
        .expect("another group");
    sim.delete_users(std::slice::from_ref(&other.members[0]), false);
    let minimal = [
        ("Authorization", auth.as_str()),
        ("Prefer", "return=minimal"),
    ];
    let (pages, delta_link) = round(&delta_link, &minimal).await;
    let got = items(&pages);
    let by_id: HashMap<&str, &Value> = got
        .iter()
        .map(|v| (v["id"].as_str().expect("id"), v))
        .collect();
    assert_eq!(by_id[target.id.as_str()]["@removed"]["reason"], "changed");
    let o = by_id[other.id.as_str()];
    assert!(o.get("displayName").is_none(), "minimal: {o}");
    assert_eq!(o["members@delta"][0]["id"], other.members[0].as_str());
    assert_eq!(o["members@delta"][0]["@removed"]["reason"], "deleted");
    let (pages, _) = round(&delta_link, &h).await;
    assert!(items(&pages).is_empty());

    // Tokens are per collection, and expire with the users' ones.
    let users_link = delta_link.replace("/groups/delta", "/users/delta");
    let r = send("GET", &users_link, &h, None).await;
    assert_ne!(r.status, 200);
    sim.expire_delta_tokens();
    let r = send("GET", &delta_link, &h, None).await;
    assert_graph_error(&r, 410, "syncStateNotFound");
    assert!(r.header("location").is_some_and(|l| l.ends_with("/v1.0/groups/delta?$select=displayName,mail,groupTypes,mailEnabled,securityEnabled,members&$deltatoken=")));
    sim.shutdown().await;
}

#[tokio::test]
async fn groups_list_paging_select_and_roles() {
    let sim = start_with(600, &["Group.Read.All"], |_| {}).await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let h = [("Authorization", auth.as_str())];
    let mut url = format!("{g}/v1.0/groups?$select=id,displayName,groupTypes&$top=7");
    let mut ids = Vec::new();
    loop {
        let r = send("GET", &url, &h, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        for item in v["value"].as_array().expect("value") {
            assert_eq!(item.as_object().map(|o| o.len()), Some(3));
            ids.push(item["id"].as_str().expect("id").to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    let truth: Vec<String> = sim.tenant().groups.iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids, truth);
    let one = &sim.tenant().groups[0];
    let r = send("GET", &format!("{g}/v1.0/groups/{}", one.id), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["mailNickname"], one.mail_nickname.as_str());
    // Members of a group, paged.
    let big = sim
        .tenant()
        .groups
        .iter()
        .find(|g| g.members.len() > 10)
        .cloned()
        .expect("a group with members");
    let mut url = format!(
        "{g}/v1.0/groups/{}/members?$select=id,displayName&$top=4",
        big.id
    );
    let mut got = Vec::new();
    loop {
        let r = send("GET", &url, &h, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        for m in v["value"].as_array().expect("value") {
            assert_eq!(m["@odata.type"], "#microsoft.graph.user");
            got.push(m["id"].as_str().expect("id").to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(got, big.members);
    let r = send("GET", &format!("{g}/v1.0/groups?$select=members"), &h, None).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    sim.set_roles(vec!["User.Read.All".into()]);
    let auth = bearer(&sim).await;
    let r = send(
        "GET",
        &format!("{g}/v1.0/groups/delta"),
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    sim.shutdown().await;
}

#[tokio::test]
async fn manager_on_users_delta() {
    let sim = start_with(400, &["User.Read.All"], |_| {}).await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let h = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=999"),
    ];
    let (pages, link) = round(
        &format!("{g}/v1.0/users/delta?$select=displayName,manager"),
        &h,
    )
    .await;
    let (_, default_link) = round(&format!("{g}/v1.0/users/delta"), &h).await;
    let tenant = sim.tenant();
    let all = items(&pages);
    assert_eq!(all.len(), tenant.users.len());
    for (v, u) in all.iter().zip(&tenant.users) {
        assert_eq!(v["id"], u.id.as_str());
        match &u.manager_id {
            Some(m) => {
                assert_eq!(
                    v["manager@delta"],
                    serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": m}])
                );
            }
            None => assert!(v.get("manager@delta").is_none()),
        }
    }
    let with_manager: Vec<&crate::User> = tenant
        .users
        .iter()
        .filter(|u| u.manager_id.is_some())
        .collect();
    let moved = with_manager[5].id.clone();
    let orphaned = with_manager[6].id.clone();
    let old_manager = with_manager[6].manager_id.clone().expect("manager");
    let new_manager = tenant.users[0].id.clone();
    sim.update_users(std::slice::from_ref(&moved), |u| {
        u.manager_id = Some(new_manager.clone())
    });
    sim.update_users(std::slice::from_ref(&orphaned), |u| u.manager_id = None);
    let (pages, _) = round(&link, &h).await;
    let got = items(&pages);
    assert_eq!(got.len(), 2, "{got:?}");
    let by_id: HashMap<&str, &Value> = got
        .iter()
        .map(|v| (v["id"].as_str().expect("id"), v))
        .collect();
    assert_eq!(
        by_id[moved.as_str()]["manager@delta"],
        serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": new_manager}])
    );
    assert_eq!(
        by_id[orphaned.as_str()]["manager@delta"],
        serde_json::json!([{"@odata.type": "#microsoft.graph.user", "id": old_manager, "@removed": {"reason": "deleted"}}])
    );
    // Without $select the manager (a navigation property) is not tracked.
    let (pages, _) = round(&default_link, &h).await;
    assert!(items(&pages).is_empty());

    // /users/{id}/manager.
    let r = send("GET", &format!("{g}/v1.0/users/{moved}/manager"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], new_manager.as_str());
    assert_eq!(r.json()["@odata.type"], "#microsoft.graph.user");
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/{orphaned}/manager"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");

    // The new properties through $select.
    let u = &tenant.users[10];
    let r = send(
        "GET",
        &format!(
            "{g}/v1.0/users/{}?$select=employeeHireDate,proxyAddresses,companyName",
            u.id
        ),
        &h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["proxyAddresses"], serde_json::json!(u.proxy_addresses));
    assert_eq!(v["companyName"], serde_json::json!(u.company_name));
    assert_eq!(
        v["employeeHireDate"],
        serde_json::json!(u.employee_hire_date)
    );
    let r = send(
        "GET",
        &format!("{g}/v1.0/users?$select=id,manager"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    sim.shutdown().await;
}

#[tokio::test]
async fn sign_in_activity_needs_the_role_and_a_premium_tenant() {
    let sim = start_with(300, &["User.Read.All", "AuditLog.Read.All"], |_| {}).await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let h = [("Authorization", auth.as_str())];
    let r = send(
        "GET",
        &format!("{g}/v1.0/users?$select=id,signInActivity&$top=999"),
        &h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let page = v["value"].as_array().expect("value");
    assert_eq!(page.len(), 120, "pages of at most 120 users");
    assert!(v["@odata.nextLink"].as_str().is_some());
    let tenant = sim.tenant();
    for (item, u) in page.iter().zip(&tenant.users) {
        match &u.last_sign_in {
            Some(t) => {
                let a = &item["signInActivity"];
                assert_eq!(a["lastSignInDateTime"], t.as_str());
                for k in [
                    "lastNonInteractiveSignInDateTime",
                    "lastNonInteractiveSignInRequestId",
                    "lastSignInRequestId",
                    "lastSuccessfulSignInDateTime",
                    "lastSuccessfulSignInRequestId",
                ] {
                    assert!(a[k].is_string(), "{k} in {a}");
                }
            }
            None => assert!(item.get("signInActivity").is_none(), "{item}"),
        }
    }
    // Not on users/delta.
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/delta?$select=id,signInActivity"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 400, "BadRequest");
    // Not in $select=*.
    let r = send("GET", &format!("{g}/v1.0/users?$select=*&$top=1"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["value"][0].get("signInActivity").is_none());

    // Without AuditLog.Read.All.
    sim.set_roles(vec!["User.Read.All".into()]);
    let auth = bearer(&sim).await;
    let r = send(
        "GET",
        &format!("{g}/v1.0/users?$select=id,signInActivity"),
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    sim.shutdown().await;

    // A tenant without Entra ID P1/P2.
    let sim = start_with(30, &["User.Read.All", "AuditLog.Read.All"], |c| {
        c.premium = false
    })
    .await;
    let auth = bearer(&sim).await;
    let r = send(
        "GET",
        &format!("{}/v1.0/users?$select=id,signInActivity", sim.graph_url()),
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_graph_error(
        &r,
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    );
    assert_eq!(
        r.json()["error"]["message"],
        "Neither tenant is B2C or tenant doesn't have premium license"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn subscribed_skus_organization_and_domains() {
    let sim = start_with(800, &["Organization.Read.All", "Domain.Read.All"], |_| {}).await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let h = [("Authorization", auth.as_str())];
    let tenant = sim.tenant();
    let r = send("GET", &format!("{g}/v1.0/subscribedSkus"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let skus = r.json()["value"].as_array().cloned().expect("value");
    assert_eq!(skus.len(), tenant.skus.len());
    let mut plan_names = HashSet::new();
    for (s, truth) in skus.iter().zip(&tenant.skus) {
        assert_eq!(s["skuId"], truth.sku_id.as_str());
        assert!(crate::rng::is_guid(s["skuId"].as_str().unwrap_or("")));
        assert_eq!(s["consumedUnits"], truth.consumed_units);
        assert_eq!(s["accountId"], tenant.id.as_str());
        assert_eq!(s["accountName"], tenant.name.as_str());
        assert_eq!(s["appliesTo"], "User");
        assert_eq!(s["capabilityStatus"], "Enabled");
        assert_eq!(s["id"], format!("{}_{}", tenant.id, truth.sku_id));
        assert!(s["subscriptionIds"][0].is_string());
        let p = &s["prepaidUnits"];
        assert_eq!(p["enabled"], truth.prepaid_enabled);
        assert_eq!(p["suspended"], truth.suspended);
        assert_eq!(p["warning"], truth.warning);
        assert_eq!(p["lockedOut"], 0);
        let plans = s["servicePlans"].as_array().expect("plans");
        assert_eq!(plans.len(), truth.service_plans.len());
        for plan in plans {
            assert!(crate::rng::is_guid(
                plan["servicePlanId"].as_str().unwrap_or("")
            ));
            assert_eq!(plan["provisioningStatus"], "Success");
            assert!(["User", "Company"].contains(&plan["appliesTo"].as_str().unwrap_or("")));
            plan_names.insert(plan["servicePlanName"].as_str().unwrap_or("").to_string());
        }
    }
    for name in [
        "EXCHANGE_S_ENTERPRISE",
        "TEAMS1",
        "SHAREPOINTENTERPRISE",
        "MCOSTANDARD",
        "YAMMER_ENTERPRISE",
        "OFFICESUBSCRIPTION",
    ] {
        assert!(plan_names.contains(name), "{name}");
    }
    // The SKU no Microsoft table knows, assigned to a few users.
    let custom = skus
        .iter()
        .find(|s| s["skuPartNumber"] == "CONTOSO_CUSTOM_ADDON")
        .expect("custom SKU");
    let custom_id = custom["skuId"].as_str().expect("id");
    assert!(crate::names::sku_info(custom_id).is_none());
    let holders = tenant
        .users
        .iter()
        .filter(|u| u.assigned_licenses.iter().any(|l| l == custom_id))
        .count();
    assert!((3..=80).contains(&holders), "{holders}");
    assert!(
        skus.iter()
            .any(|s| s["prepaidUnits"]["suspended"].as_u64() > Some(0))
    );

    let r = send("GET", &format!("{g}/v1.0/organization"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let org = &r.json()["value"][0];
    assert_eq!(org["id"], tenant.id.as_str());
    assert_eq!(org["displayName"], tenant.name.as_str());
    assert_eq!(org["tenantType"], "AAD");
    assert_eq!(
        org["countryLetterCode"],
        tenant.country_letter_code.as_str()
    );
    let verified = org["verifiedDomains"].as_array().expect("verifiedDomains");
    assert_eq!(
        verified.len(),
        tenant.domains.iter().filter(|d| d.is_verified).count()
    );
    for d in verified {
        for k in ["name", "isDefault", "isInitial", "capabilities", "type"] {
            assert!(d.get(k).is_some(), "{k}");
        }
    }
    assert_eq!(
        verified.iter().filter(|d| d["isInitial"] == true).count(),
        1
    );
    let r = send("GET", &format!("{g}/v1.0/domains"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for d in r.json()["value"].as_array().expect("value") {
        for k in [
            "id",
            "authenticationType",
            "isDefault",
            "isInitial",
            "isRoot",
            "isVerified",
            "supportedServices",
        ] {
            assert!(d.get(k).is_some(), "{k}");
        }
    }
    sim.shutdown().await;
}

/// Parses CSV (RFC 4180) lines into fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

async fn download(sim: &Simulator, auth: &str, url: &str) -> Reply {
    let r = send("GET", url, &[("Authorization", auth)], None).await;
    assert_eq!(r.status, 302, "{url}: {}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let location = r.header("location").expect("Location").to_string();
    assert!(
        location.starts_with(&format!("{}/data/download/", sim.download_url())),
        "{location}"
    );
    let d = send("GET", &location, &[], None).await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.header("content-type"), Some("application/octet-stream"));
    d
}

#[tokio::test]
async fn usage_reports_redirect_to_the_download_host() {
    let sim = start_with(700, &["Reports.Read.All"], |_| {}).await;
    assert!(
        sim.download_url().starts_with("http://127.0.0.2:"),
        "{}",
        sim.download_url()
    );
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    for kind in ReportKind::ALL {
        let suffix = if kind == ReportKind::M365AppUser {
            "?$format=text/csv"
        } else {
            ""
        };
        let url = format!(
            "{g}/v1.0/reports/{}(period='D7'){suffix}",
            kind.function_name()
        );
        let d = download(&sim, &auth, &url).await;
        assert!(d.body.starts_with('\u{feff}'), "BOM");
        let rows = parse_csv(&d.body['\u{feff}'.len_utf8()..]);
        assert_eq!(rows[0], kind.columns(), "{kind:?}");
        let truth = sim.report_rows(kind, 7);
        assert_eq!(
            rows.len() - 1,
            truth.len(),
            "{kind:?}: one row per user in scope"
        );
        for (row, t) in rows[1..].iter().zip(&truth) {
            let expected: Vec<&str> = t.cells.iter().map(|(_, v)| v.as_str()).collect();
            assert_eq!(row, &expected, "{kind:?}");
            if let Some(i) = kind
                .columns()
                .iter()
                .position(|c| *c == "User Principal Name")
            {
                assert_eq!(row[i], t.user_principal_name);
            }
        }
        let refresh = &rows[1][0];
        assert_eq!(refresh.len(), 10, "YYYY-MM-DD");
        if !matches!(
            kind,
            ReportKind::SkypeForBusinessActivity | ReportKind::YammerActivity
        ) {
            // Most users show activity (Skype for Business Online is retired;
            // few people use Viva Engage).
            let active = truth
                .iter()
                .filter(|r| r.last_activity_date.is_some())
                .count();
            assert!(active * 2 > truth.len(), "{kind:?}");
        }
    }
    // Email: some users idle for 30+ days, some never active.
    let email = sim.report_rows(ReportKind::EmailActivity, 30);
    let refresh = crate::util::parse_civil_date(&sim.tenant().report_refresh_date).expect("date");
    assert!(email.iter().any(|r| {
        r.last_activity_date
            .as_deref()
            .and_then(crate::util::parse_civil_date)
            .is_some_and(|d| refresh - d >= 30)
    }));
    assert!(email.iter().any(|r| r.last_activity_date.is_none()));
    // Reports lag a few days behind today.
    let today = (crate::util::unix_now() / 86_400) as i64;
    assert!((2..=4).contains(&(today - refresh)));
    let mailbox = sim.report_rows(ReportKind::MailboxUsage, 7);
    assert!(
        mailbox
            .iter()
            .all(|r| r.storage_used_bytes.is_some() && r.item_count.is_some())
    );

    // Periods.
    for period in ["D30", "D90", "D180"] {
        let url = format!("{g}/v1.0/reports/getTeamsUserActivityUserDetail(period='{period}')");
        let d = download(&sim, &auth, &url).await;
        let rows = parse_csv(&d.body['\u{feff}'.len_utf8()..]);
        let n = &period[1..];
        assert!(
            rows[1..]
                .iter()
                .all(|r| r.last().map(String::as_str) == Some(n))
        );
    }
    let h = [("Authorization", auth.as_str())];
    for bad in ["period='D8'", "period='d7'", "period=D7", "period='D365'"] {
        let r = send(
            "GET",
            &format!("{g}/v1.0/reports/getEmailActivityUserDetail({bad})"),
            &h,
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = send(
        "GET",
        &format!("{g}/v1.0/reports/getEmailActivityUserDetail(period='D8')"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 400, "InvalidArgument");
    let r = send(
        "GET",
        &format!("{g}/v1.0/reports/getNothing(period='D7')"),
        &h,
        None,
    )
    .await;
    assert_eq!(r.status, 400);

    // The download URL is pre-authenticated: a bearer token sent there is
    // refused; a tampered one is unknown.
    let r = send(
        "GET",
        &format!("{g}/v1.0/reports/getMailboxUsageDetail(period='D7')"),
        &h,
        None,
    )
    .await;
    let location = r.header("location").expect("Location").to_string();
    let leaked = send("GET", &location, &[("Authorization", auth.as_str())], None).await;
    assert_eq!(leaked.status, 400, "{}", leaked.body);
    let mut tampered = location.clone();
    let last = tampered.pop().expect("char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(send("GET", &tampered, &[], None).await.status, 404);
    assert_eq!(send("GET", &location, &[], None).await.status, 200);
    let downloads: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Download)
        .collect();
    assert!(downloads.iter().any(|r| r.authorization && r.status == 400));
    assert!(
        downloads
            .iter()
            .any(|r| !r.authorization && r.status == 200)
    );

    // Reports need Reports.Read.All.
    sim.set_roles(vec!["User.Read.All".into()]);
    let other = bearer(&sim).await;
    let r = send(
        "GET",
        &format!("{g}/v1.0/reports/getMailboxUsageDetail(period='D7')"),
        &[("Authorization", other.as_str())],
        None,
    )
    .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    sim.shutdown().await;
}

#[tokio::test]
async fn concealed_report_names() {
    let sim = start_with(200, &["Reports.Read.All", "ReportSettings.Read.All"], |c| {
        c.concealed_reports = true
    })
    .await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let r = send(
        "GET",
        &format!("{g}/v1.0/admin/reportSettings"),
        &[("Authorization", auth.as_str())],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["displayConcealedNames"], true);
    let tenant = sim.tenant();
    let upns: HashSet<String> = tenant
        .users
        .iter()
        .map(|u| u.user_principal_name.to_lowercase())
        .collect();
    let names: HashSet<&str> = tenant
        .users
        .iter()
        .map(|u| u.display_name.as_str())
        .collect();
    let ids: HashSet<&str> = tenant.users.iter().map(|u| u.id.as_str()).collect();
    for kind in [
        ReportKind::EmailActivity,
        ReportKind::TeamsUserActivity,
        ReportKind::MailboxUsage,
    ] {
        let d = download(
            &sim,
            &auth,
            &format!("{g}/v1.0/reports/{}(period='D30')", kind.function_name()),
        )
        .await;
        let rows = parse_csv(&d.body['\u{feff}'.len_utf8()..]);
        let truth = sim.report_rows(kind, 30);
        let upn_at = rows[0]
            .iter()
            .position(|c| c == "User Principal Name")
            .expect("upn");
        for (row, t) in rows[1..].iter().zip(&truth) {
            let upn = &row[upn_at];
            assert_eq!(upn.len(), 32, "{upn}");
            assert!(
                upn.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
            );
            assert_eq!(upn, &t.concealed_user_principal_name);
            assert!(!upns.contains(&upn.to_lowercase()));
            if let Some(i) = rows[0].iter().position(|c| c == "Display Name") {
                assert_eq!(row[i], t.concealed_display_name);
                assert!(!names.contains(row[i].as_str()));
            }
            if let Some(i) = rows[0].iter().position(|c| c == "User Id") {
                assert!(crate::rng::is_guid(&row[i]));
                assert!(!ids.contains(row[i].as_str()));
            }
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn groups_delta_and_reports_of_100k_users() {
    let sim = start_with(100_000, &["Directory.Read.All", "Reports.Read.All"], |_| {}).await;
    let g = sim.graph_url();
    let auth = bearer(&sim).await;
    let h = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=999"),
    ];
    let started = std::time::Instant::now();
    let (pages, _) = round(
        &format!("{g}/v1.0/groups/delta?$select=displayName,members"),
        &h,
    )
    .await;
    let entries: usize = items(&pages)
        .iter()
        .map(|v| v["members@delta"].as_array().map_or(0, Vec::len))
        .sum();
    let tenant = sim.tenant();
    assert_eq!(
        entries,
        tenant.groups.iter().map(|g| g.members.len()).sum::<usize>()
    );
    eprintln!(
        "groups/delta initial round, {} groups, {entries} members, {} pages: {:?}",
        tenant.groups.len(),
        pages.len(),
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let d = download(
        &sim,
        &auth,
        &format!("{g}/v1.0/reports/getTeamsUserActivityUserDetail(period='D30')"),
    )
    .await;
    let lines = d.body.lines().count();
    assert_eq!(
        lines - 1,
        tenant.report_rows(ReportKind::TeamsUserActivity, 30).len()
    );
    eprintln!(
        "Teams report of {} rows ({} bytes): {:?}",
        lines - 1,
        d.body.len(),
        started.elapsed()
    );
    sim.shutdown().await;
}
