//! HTTP tests of the app registration with its credentials
//! (application-get.md) and of the partner's delegated admin relationships
//! (tenantrelationship-list-delegatedadminrelationships.md).

use std::collections::HashSet;

use serde_json::Value;

use super::{assert_graph_error, send, token};
use crate::credentials::fixtures::{APP_CERT, APP_KEY};
use crate::util::{b64_encode, unix_now};
use crate::{
    DelegatedAdminRelationship, RelationshipStatus, SimConfig, Simulator, TenantSpec,
    sample_delegated_admin_relationships,
};

async fn start(roles: &[&str], tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(42, 5));
    config.roles = roles.iter().map(|r| r.to_string()).collect();
    tweak(&mut config);
    Simulator::start(config).await.expect("start")
}

async fn get(sim: &Simulator, path_and_query: &str) -> super::Reply {
    let auth = format!("Bearer {}", token(sim).await);
    send(
        "GET",
        &format!("{}{path_and_query}", sim.graph_url()),
        &[("Authorization", &auth)],
        None,
    )
    .await
}

fn parse_time(s: &str) -> u64 {
    let days = crate::util::parse_civil_date(&s[..10]).expect("date");
    let h: u64 = s[11..13].parse().expect("h");
    let m: u64 = s[14..16].parse().expect("m");
    let sec: u64 = s[17..19].parse().expect("s");
    days as u64 * 86_400 + h * 3600 + m * 60 + sec
}

#[tokio::test]
async fn the_application_shows_its_secrets_and_certificates() {
    let sim = start(&["Application.Read.All"], |c| {
        c.certificates = vec![APP_CERT.to_string()]
    })
    .await;
    let c = sim.credentials();
    let r = get(
        &sim,
        &format!(
            "/v1.0/applications(appId='{}')?$select=passwordCredentials,keyCredentials",
            c.client_id
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(
        v["@odata.context"].as_str().is_some_and(|s| s
            .ends_with("/v1.0/$metadata#applications(passwordCredentials,keyCredentials)/$entity")),
        "{}",
        r.body
    );
    assert!(
        v.get("appId").is_none(),
        "only the selected properties: {}",
        r.body
    );
    let secrets = v["passwordCredentials"].as_array().expect("secrets");
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0]["hint"], &c.client_secret[..3]);
    assert!(secrets[0]["secretText"].is_null());
    let end = parse_time(secrets[0]["endDateTime"].as_str().expect("end"));
    assert!(end > unix_now() + 700 * 86_400, "about two years left");
    let keys = v["keyCredentials"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["type"], "AsymmetricX509Cert");
    assert_eq!(keys[0]["usage"], "Verify");
    assert_eq!(keys[0]["displayName"], "CN=m365sync test app");
    let sha1 = crate::credentials::parse_certificate(APP_CERT)
        .expect("cert")
        .sha1;
    assert_eq!(keys[0]["customKeyIdentifier"], b64_encode(&sha1));
    assert!(
        keys[0]["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("MII")),
        "key with $select"
    );
    // The notAfter of the fixture: 2126.
    assert!(
        keys[0]["endDateTime"]
            .as_str()
            .is_some_and(|e| e.starts_with("2126-"))
    );

    // Without $select: the default properties, the key itself withheld; by
    // object id too.
    let r = get(
        &sim,
        &format!("/v1.0/applications(appId='{}')", c.client_id),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["appId"], c.client_id.as_str());
    assert!(v["keyCredentials"][0]["key"].is_null());
    let id = v["id"].as_str().expect("id").to_string();
    let r = get(
        &sim,
        &format!("/v1.0/applications/{id}?$select=id,displayName"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], id.as_str());

    // Someone else's app, a property that does not exist.
    let r = get(
        &sim,
        "/v1.0/applications(appId='00000000-0000-0000-0000-000000000000')",
    )
    .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    let r = get(
        &sim,
        &format!("/v1.0/applications(appId='{}')?$select=bogus", c.client_id),
    )
    .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_application_needs_application_read_all() {
    let sim = start(&["User.Read.All"], |_| {}).await;
    let c = sim.credentials();
    let r = get(
        &sim,
        &format!("/v1.0/applications(appId='{}')", c.client_id),
    )
    .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    let r = send(
        "GET",
        &format!(
            "{}/v1.0/applications(appId='{}')",
            sim.graph_url(),
            c.client_id
        ),
        &[],
        None,
    )
    .await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_expired_secret_shows_an_end_in_the_past() {
    let sim = start(&["Application.ReadWrite.All"], |c| {
        c.secret_expired = true;
        c.certificates = vec![APP_CERT.to_string()];
    })
    .await;
    let c = sim.credentials();
    // The secret no longer works; a certificate does.
    let assertion = crate::assertions::client_assertion_for_tests(
        APP_KEY,
        APP_CERT,
        &c.client_id,
        &sim.token_url(),
        300,
    )
    .expect("sign");
    let body = super::form(&[
        ("client_id", &c.client_id),
        ("scope", "https://graph.microsoft.com/.default"),
        ("grant_type", "client_credentials"),
        ("client_assertion_type", crate::assertions::JWT_BEARER),
        ("client_assertion", &assertion),
    ]);
    let r = send("POST", &sim.token_url(), &[super::FORM], Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let auth = format!(
        "Bearer {}",
        r.json()["access_token"].as_str().expect("token")
    );
    let r = send(
        "GET",
        &format!(
            "{}/v1.0/applications(appId='{}')?$select=passwordCredentials",
            sim.graph_url(),
            c.client_id
        ),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let end = r.json()["passwordCredentials"][0]["endDateTime"]
        .as_str()
        .map(parse_time)
        .expect("end");
    assert!(end < unix_now(), "an expired secret ends in the past");
    sim.shutdown().await;
}

#[tokio::test]
async fn delegated_admin_relationships_page_and_filter() {
    let sim = start(&["DelegatedAdminRelationship.Read.All"], |c| {
        c.delegated_admin_relationships =
            sample_delegated_admin_relationships("partner-tenant", 3, 7);
    })
    .await;
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["@odata.context"].as_str().is_some_and(|s| {
        s.ends_with("/v1.0/tenantRelationships/$metadata#delegatedAdminRelationships")
    }));
    assert_eq!(
        v["value"].as_array().map(Vec::len),
        Some(2),
        "default page size"
    );
    let first = &v["value"][0];
    assert_eq!(
        first["@odata.type"],
        "#microsoft.graph.delegatedAdminRelationship"
    );
    assert!(first["@odata.etag"].is_string());
    assert!(first["customer"]["tenantId"].is_string());
    assert!(first["accessDetails"]["unifiedRoles"][0]["roleDefinitionId"].is_string());
    // Follow every page: all seven, each once.
    let auth = format!("Bearer {}", token(&sim).await);
    let mut seen = Vec::new();
    let mut url = Some(format!(
        "{}/v1.0/tenantRelationships/delegatedAdminRelationships",
        sim.graph_url()
    ));
    while let Some(u) = url {
        let r = send("GET", &u, &[("Authorization", &auth)], None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        for item in v["value"].as_array().cloned().unwrap_or_default() {
            seen.push(item["id"].as_str().unwrap_or_default().to_string());
        }
        url = v["@odata.nextLink"].as_str().map(str::to_string);
        assert!(seen.len() <= 7);
    }
    let expected: Vec<String> = sim
        .delegated_admin_relationships()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);

    // $top, $count, $select and $filter, carried into the next link.
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships?$filter=status%20eq%20'active'&$top=1&$count=true&$select=id,status",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let active = sim
        .delegated_admin_relationships()
        .iter()
        .filter(|r| r.status == RelationshipStatus::Active)
        .count();
    assert_eq!(v["@odata.count"], active);
    assert_eq!(v["value"][0]["status"], "active");
    assert!(v["value"][0].get("customer").is_none());
    let next = v["@odata.nextLink"].as_str().expect("next").to_string();
    assert!(
        next.contains("$filter=status%20eq%20%27active%27"),
        "{next}"
    );
    assert!(
        next.contains("$top=1") && next.contains("$select=id,status"),
        "{next}"
    );
    let r = send("GET", &next, &[("Authorization", &auth)], None).await;
    let v: Value = r.json();
    assert_eq!(v["value"][0]["status"], "active");
    assert!(v.get("@odata.count").is_none());

    // One by id; an unknown id; an unsupported filter; a forged skip token.
    let id = &seen[2];
    let r = get(
        &sim,
        &format!("/v1.0/tenantRelationships/delegatedAdminRelationships/{id}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], id.as_str());
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships/nope",
    )
    .await;
    assert_graph_error(&r, 404, "itemNotFound");
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships?$filter=displayName%20eq%20'x'",
    )
    .await;
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships?$skiptoken=X%27AB%27",
    )
    .await;
    assert_graph_error(&r, 400, "Request_BadRequest");

    // Replaced at run time.
    let now = unix_now();
    let mut one = DelegatedAdminRelationship::new("p", "c", "Contoso", RelationshipStatus::Expired);
    one.end = Some(now - 1);
    sim.set_delegated_admin_relationships(vec![one.clone()]);
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships",
    )
    .await;
    let v = r.json();
    assert_eq!(v["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["value"][0]["status"], "expired");
    assert!(v.get("@odata.nextLink").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn delegated_admin_relationships_need_their_permission() {
    let sim = start(&["Directory.Read.All"], |c| {
        c.delegated_admin_relationships = sample_delegated_admin_relationships("p", 3, 2);
    })
    .await;
    let r = get(
        &sim,
        "/v1.0/tenantRelationships/delegatedAdminRelationships",
    )
    .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    let r = get(&sim, "/v1.0/tenantRelationships/delegatedAdminCustomers").await;
    assert_graph_error(&r, 501, "NotImplemented");
    sim.shutdown().await;
}
