//! HTTP-level tests: a real simulator on loopback, driven by a minimal
//! hand-written HTTP/1.1 client (no extra dependencies).

use std::collections::HashSet;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Host, SimConfig, Simulator, TenantSpec};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`url` absolute, http only) and reads the whole reply.
async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

async fn token_reply(sim: &Simulator, tenant: &str, secret: &str, scope: &str) -> Reply {
    let c = sim.credentials();
    let body = form(&[
        ("client_id", &c.client_id),
        ("scope", scope),
        ("client_secret", secret),
        ("grant_type", "client_credentials"),
    ]);
    send(
        "POST",
        &format!("{}/{tenant}/oauth2/v2.0/token", sim.login_url()),
        &[FORM],
        Some(&body),
    )
    .await
}

async fn token(sim: &Simulator) -> String {
    let c = sim.credentials();
    let r = token_reply(
        sim,
        &c.tenant_id,
        &c.client_secret,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

async fn start(users: usize) -> Simulator {
    Simulator::start(SimConfig::new(TenantSpec::new(42, users)))
        .await
        .expect("start")
}

fn assert_sts_error(r: &Reply, status: u16, error: &str, code: u64) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"], error, "{}", r.body);
    assert_eq!(v["error_codes"][0], code, "{}", r.body);
    let desc = v["error_description"].as_str().expect("description");
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert!(desc.contains("\r\nTrace ID: "));
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(v[field].is_string(), "{field} in {}", r.body);
    }
}

#[tokio::test]
async fn token_success_and_graph_call() {
    let sim = start(250).await;
    let c = sim.credentials();
    let r = token_reply(
        &sim,
        &c.tenant_id,
        &c.client_secret,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    let at = v["access_token"].as_str().expect("token");
    assert_eq!(at.split('.').count(), 3);

    // Graph's application id names Graph too, and a domain name works as the
    // tenant. The simulator's own Graph URL is not Microsoft Graph's resource
    // of any cloud (concepts/deployments.md): AADSTS70011.
    let domain = sim.tenant().default_domain().to_string();
    let r = token_reply(
        &sim,
        &domain,
        &c.client_secret,
        "00000003-0000-0000-c000-000000000000/.default",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let scope = format!("{}/.default", sim.graph_url());
    let r = token_reply(&sim, &domain, &c.client_secret, &scope).await;
    assert_sts_error(&r, 400, "invalid_scope", 70_011);

    let auth = format!("Bearer {at}");
    let r = send(
        "GET",
        &format!("{}/v1.0/users", sim.graph_url()),
        &[("Authorization", &auth), ("client-request-id", "abc-123")],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
        )
    );
    assert_eq!(r.header("client-request-id"), Some("abc-123"));
    assert!(r.header("request-id").is_some_and(crate::rng::is_guid));
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!("{}/v1.0/$metadata#users", sim.graph_url())
    );
    let users = v["value"].as_array().expect("value");
    assert_eq!(users.len(), 100);
    let first = users[0].as_object().expect("object");
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut expected = crate::userprops::DEFAULT_SELECT.to_vec();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    // On the wire the properties come in the documented order, id last.
    let upn_at = r.body.find("\"userPrincipalName\"").expect("upn");
    let id_at = r.body.find("\"id\"").expect("id");
    assert!(upn_at < id_at);
    assert!(
        v["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.contains("$skiptoken=X%27"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn token_errors() {
    let sim = start(10).await;
    let c = sim.credentials();
    let graph = "https://graph.microsoft.com/.default";

    let r = token_reply(&sim, &c.tenant_id, "wrong-secret", graph).await;
    assert_sts_error(&r, 401, "invalid_client", 7_000_215);
    assert!(!r.body.contains("wrong-secret"));
    assert!(!r.body.contains(&c.client_secret));

    let r = token_reply(
        &sim,
        "11111111-2222-4333-8444-555555555555",
        &c.client_secret,
        graph,
    )
    .await;
    assert_sts_error(&r, 400, "invalid_request", 90_002);
    let r = token_reply(&sim, "not-our-tenant.example", &c.client_secret, graph).await;
    assert_sts_error(&r, 400, "invalid_request", 90_002);

    let body = form(&[
        ("client_id", "00000000-1111-4222-8333-444444444444"),
        ("scope", graph),
        ("client_secret", &c.client_secret),
        ("grant_type", "client_credentials"),
    ]);
    let url = sim.token_url();
    let r = send("POST", &url, &[FORM], Some(&body)).await;
    assert_sts_error(&r, 400, "unauthorized_client", 700_016);

    let body = form(&[("client_id", &c.client_id), ("scope", graph)]);
    let r = send("POST", &url, &[FORM], Some(&body)).await;
    assert_sts_error(&r, 400, "invalid_request", 900_144);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("'grant_type'")
    );

    let body = form(&[
        ("client_id", &c.client_id),
        ("scope", graph),
        ("client_secret", &c.client_secret),
        ("grant_type", "password"),
    ]);
    let r = send("POST", &url, &[FORM], Some(&body)).await;
    assert_sts_error(&r, 400, "unsupported_grant_type", 70_003);

    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, "User.Read.All").await;
    assert_sts_error(&r, 400, "invalid_scope", 1_002_012);

    let body = form(&[
        ("client_id", &c.client_id),
        ("scope", graph),
        ("grant_type", "client_credentials"),
    ]);
    let r = send("POST", &url, &[FORM], Some(&body)).await;
    assert_sts_error(&r, 401, "invalid_client", 7_000_218);

    // Nothing recorded may contain the secret.
    let log = format!("{:?}", sim.requests());
    assert!(!log.contains(&c.client_secret));
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.host == Host::Login && !r.authorization)
    );
    sim.shutdown().await;

    let mut config = SimConfig::new(TenantSpec::new(42, 10));
    config.secret_expired = true;
    let sim = Simulator::start(config).await.expect("start");
    let c = sim.credentials();
    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, graph).await;
    assert_sts_error(&r, 401, "invalid_client", 7_000_222);
    let r = token_reply(&sim, &c.tenant_id, "nope", graph).await;
    assert_sts_error(&r, 401, "invalid_client", 7_000_215);
    sim.shutdown().await;
}

#[tokio::test]
async fn basic_auth_is_accepted() {
    let sim = start(5).await;
    let c = sim.credentials();
    let basic =
        crate::util::b64url_encode(format!("{}:{}", c.client_id, c.client_secret).as_bytes());
    let auth = format!("Basic {basic}");
    let body = form(&[
        ("scope", "https://graph.microsoft.com/.default"),
        ("grant_type", "client_credentials"),
    ]);
    let r = send(
        "POST",
        &sim.token_url(),
        &[FORM, ("Authorization", &auth)],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_2500_users() {
    let sim = start(2500).await;
    let at = token(&sim).await;
    let auth = format!("Bearer {at}");
    let mut url = format!(
        "{}/v1.0/users?%24select=id%2CdisplayName%2Cmail&%24top=999",
        sim.graph_url()
    );
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r = send("GET", &url, &[("Authorization", &auth)], None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        let v = r.json();
        assert_eq!(
            v["@odata.context"],
            format!(
                "{}/v1.0/$metadata#users(id,displayName,mail)",
                sim.graph_url()
            )
        );
        for u in v["value"].as_array().expect("value") {
            assert_eq!(u.as_object().map(|o| o.len()), Some(3));
            ids.push(u["id"].as_str().expect("id").to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&sim.graph_url()));
                assert!(next.contains("$select=id,displayName,mail"));
                assert!(next.contains("$top=999"));
                url = next.to_string();
            }
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 2500);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 2500);
    let tenant = sim.tenant();
    let truth: Vec<&String> = tenant.users.iter().map(|u| &u.id).collect();
    assert_eq!(ids.iter().collect::<Vec<_>>(), truth);
    let graph_requests = sim
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Graph)
        .collect::<Vec<_>>();
    assert_eq!(graph_requests.len(), 3);
    assert!(
        graph_requests
            .iter()
            .all(|r| r.authorization && r.status == 200)
    );
    assert_eq!(graph_requests[0].path, "/v1.0/users");
    assert!(graph_requests[1].query.contains("$skiptoken="));
    sim.shutdown().await;
}

fn assert_graph_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{}", r.body);
    assert!(v["error"]["message"].is_string());
    let inner = &v["error"]["innerError"];
    for field in ["date", "request-id", "client-request-id"] {
        assert!(inner[field].is_string(), "{field} in {}", r.body);
    }
    assert!(r.header("request-id").is_some());
    assert!(r.header("client-request-id").is_some());
}

#[tokio::test]
async fn graph_errors() {
    let sim = start(300).await;
    let g = sim.graph_url();
    let r = send("GET", &format!("{g}/v1.0/users"), &[], None).await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert!(r.header("www-authenticate").is_some());
    let r = send(
        "GET",
        &format!("{g}/v1.0/users"),
        &[("Authorization", "Bearer not.a.token")],
        None,
    )
    .await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");

    let at = token(&sim).await;
    let auth = format!("Bearer {at}");
    let h = [("Authorization", auth.as_str())];
    let get = |path: &str| format!("{g}{path}");

    let r = send("GET", &get("/v1.0/users?$top=1000"), &h, None).await;
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = send("GET", &get("/v1.0/users?$top=0"), &h, None).await;
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = send("GET", &get("/v1.0/users?$select=id,nope"), &h, None).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("'nope'")
    );
    let r = send("GET", &get("/v1.0/users?$select=aboutMe"), &h, None).await;
    assert_graph_error(&r, 501, "NotImplemented");
    let r = send(
        "GET",
        &get("/v1.0/users?$skiptoken=X%27DEADBEEF%27"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = send("GET", &get("/v1.0/users?$skiptoken=garbage"), &h, None).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = send(
        "GET",
        &get("/v1.0/users?$filter=startswith(displayName,'a')"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = send("GET", &get("/v1.0/users?$select=%zz"), &h, None).await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = send("GET", &get("/v1.0/me"), &h, None).await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = send("GET", &get("/v1.0/nothing"), &h, None).await;
    assert_graph_error(&r, 400, "BadRequest");
    let r = send(
        "GET",
        &get("/v1.0/users/00000000-0000-4000-8000-000000000000"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    let r = send("POST", &get("/v1.0/users"), &h, Some("{}")).await;
    assert_graph_error(&r, 405, "Request_BadRequest");
    let r = send("GET", &get("/v1.0/users?$count=true"), &h, None).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    // Default roles (User.Read.All) do not cover the organization.
    let r = send("GET", &get("/v1.0/organization"), &h, None).await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");

    // A tampered skip token from a real nextLink is rejected.
    let r = send("GET", &get("/v1.0/users?$top=5"), &h, None).await;
    let next = r.json()["@odata.nextLink"]
        .as_str()
        .expect("next")
        .to_string();
    let tampered = next.replacen("%27445370740", "%27445370741", 1);
    assert_ne!(tampered, next);
    let r = send("GET", &tampered, &h, None).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = send("GET", &next, &h, None).await;
    assert_eq!(r.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn other_resources_and_single_users() {
    let mut config = SimConfig::new(TenantSpec::new(9, 400));
    config.roles = vec!["Directory.Read.All".to_string()];
    let sim = Simulator::start(config).await.expect("start");
    let g = sim.graph_url();
    let at = token(&sim).await;
    let auth = format!("Bearer {at}");
    let h = [
        ("Authorization", auth.as_str()),
        ("ConsistencyLevel", "eventual"),
    ];

    let r = send("GET", &format!("{g}/v1.0/organization"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["value"][0]["id"], sim.tenant().id.as_str());
    assert_eq!(v["value"][0]["displayName"], sim.tenant().name.as_str());
    assert!(
        v["value"][0]["verifiedDomains"]
            .as_array()
            .is_some_and(|d| d.len() >= 3)
    );

    let r = send("GET", &format!("{g}/v1.0/subscribedSkus"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let skus = r.json()["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(skus.len(), sim.tenant().skus.len());
    for s in &skus {
        assert!(s["prepaidUnits"]["enabled"].as_u64() >= s["consumedUnits"].as_u64());
    }

    let r = send(
        "GET",
        &format!("{g}/v1.0/domains?$select=ID,isDefault"),
        &h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!("{g}/v1.0/$metadata#domains(id,isDefault)")
    );
    assert_eq!(v["value"][0].as_object().map(|o| o.len()), Some(2));

    let r = send("GET", &format!("{g}/v1.0/users/$count"), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "400");
    let r = send(
        "GET",
        &format!("{g}/v1.0/users?$count=true&$top=10"),
        &h,
        None,
    )
    .await;
    assert_eq!(r.json()["@odata.count"], 400);

    let tenant = sim.tenant();
    let guest = tenant.users.iter().find(|u| u.is_guest()).expect("a guest");
    let encoded = guest.user_principal_name.replace('#', "%23");
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/{encoded}?$select=id,userType,mail"),
        &h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["id"], guest.id.as_str());
    assert_eq!(v["userType"], "Guest");
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap_or("")
            .ends_with("#users(id,userType,mail)/$entity")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sim = start(3).await;
    let graph = sim.graph_url();
    let login = sim.login_url();
    let r = send("GET", &format!("{graph}/v1.0/users"), &[], None).await;
    assert_eq!(r.status, 401);
    assert_eq!(sim.request_count(), 1);
    sim.shutdown().await;
    for url in [graph, login] {
        let addr = url.trim_start_matches("http://").to_string();
        assert!(TcpStream::connect(addr).await.is_err());
    }
}

#[tokio::test]
async fn keep_alive_serves_several_requests_per_connection() {
    let sim = start(3).await;
    let addr = sim.graph_url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let req = format!("GET /v1.0/users HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    for _ in 0..3 {
        stream.write_all(req.as_bytes()).await.expect("write");
        // Read one full response: headers, then Content-Length bytes.
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.expect("read head");
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .expect("content-length");
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.expect("body");
    }
    assert_eq!(sim.request_count(), 3);
    sim.shutdown().await;
}

mod batch;
mod changes;
mod clouds;
mod credentials;
mod extended;
mod interop;
mod onboarding;
mod partner;
