//! HTTP tests of the run-time behaviours: users/delta over a changing
//! directory, throttling schedules, fault injection and token expiry.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Reply, assert_graph_error, send, start, token};
use crate::{Fault, FaultKind, Host, Simulator, Throttle};

const SELECT: &str = "$select=displayName,jobTitle,mail";

/// Follows a delta round from `url` to its deltaLink; returns the pages.
async fn round(url: &str, headers: &[(&str, &str)]) -> (Vec<Reply>, String) {
    let mut pages = Vec::new();
    let mut url = url.to_string();
    loop {
        let r = send("GET", &url, headers, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let next = v["@odata.nextLink"].as_str().map(str::to_string);
        let delta = v["@odata.deltaLink"].as_str().map(str::to_string);
        pages.push(r);
        match (next, delta) {
            (Some(n), None) => {
                assert!(n.contains("/v1.0/users/delta?$skiptoken="), "{n}");
                url = n;
            }
            (None, Some(d)) => {
                assert!(d.contains("/v1.0/users/delta?$deltatoken="), "{d}");
                return (pages, d);
            }
            other => panic!("a page needs exactly one link: {other:?}"),
        }
        assert!(pages.len() < 1000);
    }
}

fn values(pages: &[Reply]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p.json()["value"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn by_id(items: &[Value]) -> HashMap<String, Value> {
    items
        .iter()
        .map(|v| (v["id"].as_str().expect("id").to_string(), v.clone()))
        .collect()
}

async fn auth(sim: &Simulator) -> String {
    format!("Bearer {}", token(sim).await)
}

#[tokio::test]
async fn delta_initial_round_and_replays() {
    let sim = start(2500).await;
    let g = sim.graph_url();
    let auth = auth(&sim).await;
    let h = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=999"),
    ];

    // Initial round: 999 + 999 + 502, then a deltaLink.
    let (pages, delta_link) = round(&format!("{g}/v1.0/users/delta?{SELECT}"), &h).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p.json()["value"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(sizes, vec![999, 999, 502]);
    for p in &pages {
        assert_eq!(
            p.header("preference-applied"),
            Some("odata.maxpagesize=999")
        );
        assert_eq!(
            p.json()["@odata.context"],
            format!("{g}/v1.0/$metadata#users(displayName,jobTitle,mail)")
        );
    }
    let items = values(&pages);
    let tenant = sim.tenant();
    let ids: Vec<&str> = items
        .iter()
        .map(|v| v["id"].as_str().expect("id"))
        .collect();
    let truth: Vec<&str> = tenant.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, truth);
    let truth_by_id: HashMap<&str, &crate::User> =
        tenant.users.iter().map(|u| (u.id.as_str(), u)).collect();
    for v in &items {
        let o = v.as_object().expect("object");
        assert!(o.get("@removed").is_none());
        assert!(
            o.keys()
                .all(|k| ["id", "displayName", "jobTitle", "mail"].contains(&k.as_str()))
        );
        let u = truth_by_id[v["id"].as_str().expect("id")];
        assert_eq!(v["displayName"], u.display_name.as_str());
        // "If the property has never been set before it will not be included".
        match &u.job_title {
            Some(t) => assert_eq!(v["jobTitle"], t.as_str()),
            None => assert!(o.get("jobTitle").is_none(), "{v}"),
        }
    }

    // A replay without changes: empty value, new deltaLink.
    let (pages, delta_link) = round(&delta_link, &h).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].json()["value"], serde_json::json!([]));

    // Changes.
    let created = sim.create_users(3);
    let updated: Vec<String> = vec![truth[10].to_string(), truth[20].to_string()];
    sim.update_users(&updated, |u| {
        u.job_title = Some("Chief Delta Officer".into())
    });
    // A change to a property that is not selected does not show up.
    sim.update_users(&[truth[30].to_string()], |u| {
        u.city = Some("Nowhere".into())
    });
    let soft = truth[40].to_string();
    let hard = truth[50].to_string();
    sim.delete_users(std::slice::from_ref(&soft), false);
    sim.delete_users(std::slice::from_ref(&hard), true);

    let (pages, delta_link) = round(&delta_link, &h).await;
    let items = values(&pages);
    assert_eq!(items.len(), 7, "{items:?}");
    let got = by_id(&items);
    let now = sim.tenant();
    for id in &created {
        let v = &got[id];
        let u = now
            .users
            .iter()
            .find(|u| &u.id == id)
            .expect("created user");
        assert_eq!(v["displayName"], u.display_name.as_str());
        assert!(v.get("@removed").is_none());
    }
    for id in &updated {
        // Default behaviour: the selected properties, changed or not
        // (user-delta.md, "Default: return the same properties…").
        let v = &got[id];
        let u = now
            .users
            .iter()
            .find(|u| &u.id == id)
            .expect("updated user");
        assert_eq!(v["jobTitle"], "Chief Delta Officer");
        assert_eq!(v["displayName"], u.display_name.as_str());
    }
    assert!(!got.contains_key(truth[30]));
    assert_eq!(got[&soft]["@removed"]["reason"], "changed");
    assert_eq!(got[&hard]["@removed"]["reason"], "deleted");
    assert_eq!(got[&soft].as_object().map(|o| o.len()), Some(2));
    assert!(!now.users.iter().any(|u| u.id == soft || u.id == hard));

    // Prefer: return=minimal → only id and the changed properties.
    sim.update_users(&updated[..1], |u| {
        u.job_title = None;
        u.city = Some("Elsewhere".into());
    });
    sim.restore_users(std::slice::from_ref(&soft));
    let hm = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=999, return=minimal"),
    ];
    let (pages, delta_link) = round(&delta_link, &hm).await;
    assert_eq!(
        pages[0].header("preference-applied"),
        Some("odata.maxpagesize=999, return=minimal")
    );
    let items = values(&pages);
    assert_eq!(items.len(), 2, "{items:?}");
    let got = by_id(&items);
    let changed = got[&updated[0]].as_object().expect("object");
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed["jobTitle"].is_null());
    // Restored: back in full, no annotation (delta-query-users.md).
    let restored = got[&soft].as_object().expect("object");
    assert!(restored.get("@removed").is_none());
    assert!(restored.get("displayName").is_some());

    // Without the header the update shows all selected properties, the one
    // set to null included.
    sim.update_users(&updated[1..], |u| u.job_title = None);
    let (pages, _) = round(&delta_link, &h).await;
    let items = values(&pages);
    assert_eq!(items.len(), 1);
    assert!(items[0]["jobTitle"].is_null());
    assert!(items[0].get("displayName").is_some());

    // Deleted users are gone from /users too.
    let r = send("GET", &format!("{g}/v1.0/users/{hard}"), &h[..1], None).await;
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    sim.shutdown().await;
}

#[tokio::test]
async fn delta_page_sizes_tokens_and_resync() {
    let sim = start(450).await;
    let g = sim.graph_url();
    let auth = auth(&sim).await;
    let h = [("Authorization", auth.as_str())];

    // Default page size 200; $top is not supported for users/delta and is
    // ignored; the fully qualified function name works too.
    for path in [
        "/v1.0/users/delta?$top=5",
        "/v1.0/users/microsoft.graph.delta()",
    ] {
        let (pages, _) = round(&format!("{g}{path}"), &h).await;
        let sizes: Vec<usize> = pages
            .iter()
            .map(|p| p.json()["value"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, vec![200, 200, 50]);
        assert!(pages[0].header("preference-applied").is_none());
        // Default property set (user-delta.md, example 1).
        assert!(pages[0].json()["value"][0]["userPrincipalName"].is_string());
    }
    // An exact page size; above 999 it is capped.
    let hp = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=7"),
    ];
    let r = send("GET", &format!("{g}/v1.0/users/delta"), &hp, None).await;
    assert_eq!(r.json()["value"].as_array().map(Vec::len), Some(7));
    let hp = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=5000"),
    ];
    let r = send("GET", &format!("{g}/v1.0/users/delta"), &hp, None).await;
    assert_eq!(
        r.header("preference-applied"),
        Some("odata.maxpagesize=999")
    );
    assert_eq!(r.json()["value"].as_array().map(Vec::len), Some(450));

    // Sync from now.
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/delta?$deltatoken=latest&{SELECT}"),
        &h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["value"], serde_json::json!([]));
    let latest = r.json()["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    let (first, delta_link) = round(&format!("{g}/v1.0/users/delta?{SELECT}"), &h).await;
    let next_link = first[0].json()["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    assert!(!next_link.contains("$select"), "{next_link}");
    let id = sim.tenant().users[3].id.clone();
    sim.update_users(std::slice::from_ref(&id), |u| {
        u.display_name = "Renamed".into()
    });
    let (pages, _) = round(&latest, &h).await;
    let items = values(&pages);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["displayName"], "Renamed");
    // The token keeps $select.
    assert!(items[0].as_object().is_some_and(|o| {
        o.keys()
            .all(|k| ["id", "displayName", "jobTitle", "mail"].contains(&k.as_str()))
    }));

    // $select with a $skiptoken is not supported.
    let r = send("GET", &format!("{next_link}&$select=id"), &h, None).await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A tampered token: 400.
    let (base, tok) = delta_link.split_once("$deltatoken=").expect("token");
    let mut chars: Vec<char> = tok.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let forged = format!(
        "{base}$deltatoken={}",
        chars.into_iter().collect::<String>()
    );
    let r = send("GET", &forged, &h, None).await;
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/delta?$skiptoken=garbage"),
        &h,
        None,
    )
    .await;
    assert_graph_error(&r, 400, "Request_BadRequest");

    // Expired tokens: 410 Gone, syncStateNotFound, Location for a new round.
    sim.expire_delta_tokens();
    for stale in [&delta_link, &next_link] {
        let r = send("GET", stale, &h, None).await;
        assert_graph_error(&r, 410, "syncStateNotFound");
        let location = r.header("location").expect("Location").to_string();
        assert_eq!(
            location,
            format!("{g}/v1.0/users/delta?$select=displayName,jobTitle,mail&$deltatoken=")
        );
        let (pages, _) = round(&location, &h).await;
        assert_eq!(values(&pages).len(), 450);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn delta_needs_user_read_roles() {
    let sim = start(20).await;
    let g = sim.graph_url();
    sim.set_roles(vec!["Group.Read.All".into()]);
    let auth = auth(&sim).await;
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/delta"),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    sim.set_roles(vec!["Directory.Read.All".into()]);
    let auth = self::auth(&sim).await;
    let r = send(
        "GET",
        &format!("{g}/v1.0/users/delta"),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_schedules() {
    let sim = start(5).await;
    let g = sim.graph_url();
    let auth = auth(&sim).await;
    let h = [("Authorization", auth.as_str())];
    let url = format!("{g}/v1.0/users?$top=1");

    sim.set_throttle(Some(Throttle::every(2, 7)));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = send("GET", &url, &h, None).await;
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("7"));
            let v = r.json();
            assert_eq!(v["error"]["code"], "TooManyRequests");
            assert_eq!(v["error"]["message"], "Please retry again later.");
            assert_eq!(v["error"]["innerError"]["status"], "429");
            assert_eq!(v["error"]["innerError"]["code"], "429");
            assert!(v["error"]["innerError"]["request-id"].is_string());
        }
        statuses.push(r.status);
        // Token requests are not Graph requests: never throttled, not counted.
        token(&sim).await;
    }
    assert_eq!(statuses, vec![200, 429, 200, 429, 200, 429]);
    let recorded: Vec<u16> = sim.graph_requests().iter().map(|r| r.status).collect();
    assert_eq!(&recorded[recorded.len() - 6..], &statuses[..]);

    // A burst of 503s without Retry-After, counted afresh.
    sim.set_throttle(Some(Throttle {
        every_nth: None,
        burst: Some((2, 3)),
        status: 503,
        retry_after_secs: None,
    }));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = send("GET", &url, &h, None).await;
        if r.status == 503 {
            assert!(r.header("retry-after").is_none());
            assert_graph_error(&r, 503, "serviceNotAvailable");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![200, 503, 503, 503, 200, 200]);
    sim.set_throttle(None);
    assert_eq!(send("GET", &url, &h, None).await.status, 200);
    sim.shutdown().await;
}

/// A raw GET: everything the server sent before closing (or the read error).
async fn raw_get(url: &str, auth: &str) -> (Vec<u8>, Option<std::io::Error>) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("server closes the connection");
    (buf, read.err())
}

/// Splits a raw response into status, Content-Length and body bytes.
fn parse_raw(raw: &[u8]) -> (u16, Option<usize>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let len = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .and_then(|v| v.trim().parse().ok())
    });
    (status, len, raw[end + 4..].to_vec())
}

#[tokio::test]
async fn injected_faults() {
    let sim = start(30).await;
    let g = sim.graph_url();
    let auth = auth(&sim).await;
    let url = format!("{g}/v1.0/users?$top=5");

    // ServerError: the second request only.
    sim.inject_fault(Some(Fault {
        after_graph_requests: 1,
        count: Some(1),
        kind: FaultKind::ServerError,
    }));
    let h = [("Authorization", auth.as_str())];
    assert_eq!(send("GET", &url, &h, None).await.status, 200);
    let r = send("GET", &url, &h, None).await;
    assert_graph_error(&r, 500, "generalException");
    assert_eq!(send("GET", &url, &h, None).await.status, 200);

    // ResetConnection: no response at all, recorded with status 0.
    sim.inject_fault(Some(Fault {
        after_graph_requests: 0,
        count: Some(1),
        kind: FaultKind::ResetConnection,
    }));
    let (raw, _) = raw_get(&url, &auth).await;
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    let last = sim.graph_requests().pop().expect("recorded");
    assert_eq!((last.status, last.path.as_str()), (0, "/v1.0/users"));
    assert_eq!(send("GET", &url, &h, None).await.status, 200);

    // TruncatedBody: a 200 promising more than it sends.
    sim.inject_fault(Some(Fault {
        after_graph_requests: 0,
        count: Some(1),
        kind: FaultKind::TruncatedBody,
    }));
    let (raw, _) = raw_get(&url, &auth).await;
    let (status, len, body) = parse_raw(&raw);
    assert_eq!(status, 200);
    let len = len.expect("Content-Length");
    assert!(
        !body.is_empty() && body.len() < len,
        "{} of {len}",
        body.len()
    );
    assert_eq!(sim.graph_requests().pop().map(|r| r.status), Some(200));

    // InvalidJson, until cleared.
    sim.inject_fault(Some(Fault {
        after_graph_requests: 0,
        count: None,
        kind: FaultKind::InvalidJson,
    }));
    for _ in 0..3 {
        let (raw, _) = raw_get(&url, &auth).await;
        let (status, len, body) = parse_raw(&raw);
        assert_eq!(status, 200);
        assert_eq!(len, Some(body.len()));
        assert!(serde_json::from_slice::<Value>(&body).is_err());
    }
    sim.inject_fault(None);
    let r = send("GET", &url, &h, None).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["value"].is_array());
    assert!(sim.requests().iter().any(|r| r.host == Host::Login));
    sim.shutdown().await;
}

#[tokio::test]
async fn expired_access_tokens_need_a_new_one() {
    let sim = start(5).await;
    let g = sim.graph_url();
    let old = auth(&sim).await;
    let url = format!("{g}/v1.0/users");
    assert_eq!(
        send("GET", &url, &[("Authorization", &old)], None)
            .await
            .status,
        200
    );
    sim.expire_tokens();
    let r = send("GET", &url, &[("Authorization", &old)], None).await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    let msg = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains("Lifetime validation failed") && msg.contains("expired"),
        "{msg}"
    );
    let new = auth(&sim).await;
    assert_eq!(
        send("GET", &url, &[("Authorization", &new)], None)
            .await
            .status,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn delta_pages_of_100k_users_are_cheap() {
    let sim = start(100_000).await;
    let g = sim.graph_url();
    let auth = auth(&sim).await;
    let h = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=999"),
    ];
    let started = std::time::Instant::now();
    let (pages, delta_link) = round(&format!("{g}/v1.0/users/delta?$select=id"), &h).await;
    assert_eq!(pages.len(), 101);
    let ids: HashSet<String> = values(&pages)
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ids.len(), 100_000);
    eprintln!("initial round of 100k users: {:?}", started.elapsed());
    // A replay reading a few changes pages through the version index.
    let all: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    let some: Vec<String> = all.iter().step_by(10_000).cloned().collect();
    sim.delete_users(&some, false);
    let hs = [
        ("Authorization", auth.as_str()),
        ("Prefer", "odata.maxpagesize=3"),
    ];
    let started = std::time::Instant::now();
    let (pages, _) = round(&delta_link, &hs).await;
    assert_eq!(pages.len(), 4);
    assert_eq!(values(&pages).len(), 10);
    eprintln!(
        "replay of 10 changes in pages of 3: {:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}
