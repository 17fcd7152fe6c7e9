//! HTTP tests of the simulator's interoperability switches and faults: a
//! server that reads only Content-Length bodies
//! (`SimConfig::content_length_bodies_only`), report functions a cloud does not
//! serve (`SimConfig::unserved_reports`), a paging loop and a lying
//! `Content-Length` (`FaultKind::PagingLoop`, `FaultKind::LyingContentLength`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{FORM, assert_graph_error, assert_sts_error, form, send, token, token_reply};
use crate::{Fault, FaultKind, SimConfig, Simulator, TenantSpec};

async fn start_with(users: usize, adjust: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(42, users));
    adjust(&mut config);
    Simulator::start(config).await.expect("start")
}

/// Sends `body` chunked (`Transfer-Encoding: chunked`, no Content-Length) and
/// returns the raw reply.
async fn post_chunked(url: &str, body: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        FORM.1,
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    String::from_utf8(raw).expect("utf-8")
}

#[tokio::test]
async fn a_server_reading_only_content_length_bodies_misses_a_chunked_grant_type() {
    for only_content_length in [false, true] {
        let sim = start_with(3, |c| c.content_length_bodies_only = only_content_length).await;
        let c = sim.credentials();
        let body = form(&[
            ("client_id", &c.client_id),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", &c.client_secret),
            ("grant_type", "client_credentials"),
        ]);
        let raw = post_chunked(&sim.token_url(), &body).await;
        let (head, json) = raw.split_once("\r\n\r\n").expect("head");
        if only_content_length {
            assert!(head.starts_with("HTTP/1.1 400"), "{head}");
            let v: serde_json::Value = serde_json::from_str(json).expect("json");
            assert_eq!(v["error"], "invalid_request", "{json}");
            assert_eq!(v["error_codes"][0], 900_144, "{json}");
            let d = v["error_description"].as_str().expect("description");
            assert!(
                d.starts_with(
                    "AADSTS900144: The request body must contain the following parameter: \
                     'grant_type'."
                ),
                "{d}"
            );
        } else {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
        // A body with Content-Length is read either way.
        let r = token_reply(
            &sim,
            &c.tenant_id,
            &c.client_secret,
            "https://graph.microsoft.com/.default",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // And a Content-Length body without grant_type is the same STS error.
        let r = send("POST", &sim.token_url(), &[FORM], Some("client_id=x")).await;
        assert_sts_error(&r, 400, "invalid_request", 900_144);
    }
}

#[tokio::test]
async fn an_unserved_report_function_is_a_bad_request_naming_its_segment() {
    let sim = start_with(5, |c| {
        c.roles = vec!["User.Read.All".into(), "Reports.Read.All".into()];
        c.unserved_reports = vec!["getYammerActivityUserDetail".into()];
    })
    .await;
    let auth = format!("Bearer {}", token(&sim).await);
    let r = send(
        "GET",
        &format!(
            "{}/v1.0/reports/getYammerActivityUserDetail(period=%27D7%27)",
            sim.graph_url()
        ),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_graph_error(&r, 400, "BadRequest");
    assert_eq!(
        r.json()["error"]["message"],
        "Resource not found for the segment 'getYammerActivityUserDetail'."
    );
    // Another report is served as ever.
    let r = send(
        "GET",
        &format!(
            "{}/v1.0/reports/getEmailActivityUserDetail(period='D7')",
            sim.graph_url()
        ),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.body);
}

#[tokio::test]
async fn a_paging_loop_links_the_second_page_back_to_the_first() {
    let sim = start_with(2500, |_| {}).await;
    let auth = format!("Bearer {}", token(&sim).await);
    sim.inject_fault(Some(Fault {
        after_graph_requests: 0,
        count: None,
        kind: FaultKind::PagingLoop,
    }));
    let first = format!("{}/v1.0/users?%24top=999", sim.graph_url());
    let r = send("GET", &first, &[("Authorization", &auth)], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.json()["@odata.nextLink"]
        .as_str()
        .expect("a next link")
        .to_string();
    assert_ne!(second, first);
    let r = send("GET", &second, &[("Authorization", &auth)], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["@odata.nextLink"], first.as_str());
    assert_eq!(r.json()["value"].as_array().map(Vec::len), Some(999));
    // The first page links on to the second again: A → B → A → B …
    let r = send("GET", &first, &[("Authorization", &auth)], None).await;
    assert_eq!(r.json()["@odata.nextLink"], second.as_str());
}

#[tokio::test]
async fn a_lying_content_length_announces_255_mb_and_sends_12_bytes() {
    let sim = start_with(5, |_| {}).await;
    let auth = format!("Bearer {}", token(&sim).await);
    sim.inject_fault(Some(Fault {
        after_graph_requests: 0,
        count: Some(1),
        kind: FaultKind::LyingContentLength,
    }));
    let authority = sim.graph_url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&authority).await.expect("connect");
    let req = format!(
        "GET /v1.0/organization HTTP/1.1\r\nHost: {authority}\r\nAuthorization: {auth}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    // The server closes the connection after the 12 bytes.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-length: 255000000"),
        "{head}"
    );
    assert_eq!(body.len(), 12, "{body:?}");
}
