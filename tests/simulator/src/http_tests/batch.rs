//! HTTP tests of `POST /v1.0/$batch` (concepts/json-batching.md): requests
//! answered by the usual handlers, in another order, the batch limits, and
//! throttling inside a batch (concepts/throttling.md, "Throttling and
//! batching").

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Reply, assert_graph_error, send, start, token};
use crate::{Host, Simulator, Throttle};

async fn bearer(sim: &Simulator) -> String {
    format!("Bearer {}", token(sim).await)
}

async fn post_batch(sim: &Simulator, auth: &str, requests: Value) -> Reply {
    let body = json!({ "requests": requests }).to_string();
    send(
        "POST",
        &format!("{}/v1.0/$batch", sim.graph_url()),
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        Some(&body),
    )
    .await
}

/// The `responses` of a batch answer, by id.
fn by_id(r: &Reply) -> HashMap<String, Value> {
    r.json()["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|v| (v["id"].as_str().expect("id").to_string(), v.clone()))
        .collect()
}

#[tokio::test]
async fn a_batch_runs_each_get_through_the_graph_handlers() {
    let sim = start(30).await;
    let auth = bearer(&sim).await;
    let users = sim.tenant().users;
    let (a, b) = (&users[3], &users[4]);
    let r = post_batch(
        &sim,
        &auth,
        json!([
            {"id": "1", "method": "GET", "url": format!("/users/{}?$select=id,userPrincipalName,department", a.id)},
            {"id": "2", "method": "GET", "url": format!("users/{}", b.user_principal_name)},
            {"id": "3", "method": "GET", "url": "/users/00000000-0000-4000-8000-000000000000"},
            {"id": "4", "method": "DELETE", "url": format!("/users/{}", a.id)},
            {"id": "5", "method": "GET", "url": "/users?$top=2"},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let order: Vec<&str> = v["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|v| v["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order, vec!["5", "4", "3", "2", "1"], "another order");
    let got = by_id(&r);
    let one = &got["1"];
    assert_eq!(one["status"], 200);
    assert!(
        one["headers"]["content-type"]
            .as_str()
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let body = one["body"].as_object().expect("body");
    assert_eq!(body["id"], a.id.as_str());
    assert_eq!(body["userPrincipalName"], a.user_principal_name.as_str());
    assert!(
        body["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("#users(id,userPrincipalName,department)/$entity"))
    );
    assert_eq!(got["2"]["status"], 200);
    assert_eq!(got["2"]["body"]["id"], b.id.as_str());
    assert_eq!(got["3"]["status"], 404);
    assert_eq!(
        got["3"]["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    // The read-only simulator answers other methods as the page's example
    // answers request 4.
    assert_eq!(got["4"]["status"], 405);
    assert_eq!(got["4"]["body"]["error"]["code"], "Request_BadRequest");
    assert_eq!(got["5"]["body"]["value"].as_array().map(Vec::len), Some(2));

    // The batch is one Graph request; what it carried is in the batch log.
    let graph = sim.graph_requests();
    let last = graph.last().expect("batch recorded");
    assert_eq!(
        (last.method.as_str(), last.path.as_str(), last.status),
        ("POST", "/v1.0/$batch", 200)
    );
    let log = sim.batched_requests();
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|e| e.batch == 1));
    let statuses: Vec<(&str, u16)> = log.iter().map(|e| (e.id.as_str(), e.status)).collect();
    assert_eq!(
        statuses,
        vec![("1", 200), ("2", 200), ("3", 404), ("4", 405), ("5", 200)]
    );
    assert_eq!(log[0].path, format!("/v1.0/users/{}", a.id));
    assert_eq!(log[0].query, "$select=id,userPrincipalName,department");
    assert_eq!(log[3].method, "DELETE");
    assert!(
        sim.tenant().users.iter().any(|u| u.id == a.id),
        "nothing deleted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_malformed_or_oversized_batch_is_a_400_and_needs_a_token() {
    let sim = start(5).await;
    let auth = bearer(&sim).await;
    let url = format!("{}/v1.0/$batch", sim.graph_url());
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    let many: Vec<Value> = (1..=21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users?$top=1"}))
        .collect();
    let r = post_batch(&sim, &auth, Value::Array(many.clone())).await;
    assert_graph_error(&r, 400, "MaximumValueExceeded");
    let r = post_batch(&sim, &auth, Value::Array(many[..20].to_vec())).await;
    assert_eq!(r.status, 200, "20 requests are allowed: {}", r.body);
    assert_eq!(by_id(&r).len(), 20);

    for body in [
        "{\"requests\": [",
        "{\"value\": []}",
        "{\"requests\": [{\"id\": \"1\", \"url\": \"/users\"}]}",
    ] {
        let r = send("POST", &url, &h, Some(body)).await;
        assert_graph_error(&r, 400, "BadRequest");
    }
    let r = post_batch(
        &sim,
        &auth,
        json!([
            {"id": "x", "method": "GET", "url": "/users"},
            {"id": "X", "method": "GET", "url": "/users"},
        ]),
    )
    .await;
    assert_graph_error(&r, 400, "BadRequest");

    // The batch call itself is authenticated like any Graph request.
    let r = send(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        Some("{\"requests\": []}"),
    )
    .await;
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    // Only POST.
    let r = send("GET", &url, &h[..1], None).await;
    assert_graph_error(&r, 405, "Request_BadRequest");
    assert_eq!(r.header("allow"), Some("POST"));
    // Nothing malformed was logged as batched.
    assert_eq!(sim.batched_requests().len(), 20);
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_inside_a_batch_are_throttled_one_by_one() {
    let sim = start(12).await;
    let auth = bearer(&sim).await;
    let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    let requests: Vec<Value> = ids[..4]
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": (i + 1).to_string(), "method": "GET", "url": format!("/users/{id}")}))
        .collect();

    sim.set_batch_throttle(Some(Throttle::every(2, 3)));
    let r = post_batch(&sim, &auth, Value::Array(requests.clone())).await;
    assert_eq!(r.status, 200, "the batch itself is answered: {}", r.body);
    let got = by_id(&r);
    for id in ["2", "4"] {
        let t = &got[id];
        assert_eq!(t["status"], 429, "{t}");
        assert_eq!(t["headers"]["retry-after"], "3");
        assert_eq!(t["body"]["error"]["code"], "TooManyRequests");
        assert_eq!(t["body"]["error"]["innerError"]["status"], "429");
    }
    for id in ["1", "3"] {
        assert_eq!(got[id]["status"], 200);
    }
    // Resending only the throttled two: counted on (3rd and 4th request).
    let again: Vec<Value> = vec![requests[1].clone(), requests[3].clone()];
    let r = post_batch(&sim, &auth, Value::Array(again)).await;
    let got = by_id(&r);
    assert_eq!(
        (got["2"]["status"].as_u64(), got["4"]["status"].as_u64()),
        (Some(200), Some(429))
    );
    sim.set_batch_throttle(None);
    let log = sim.batched_requests();
    assert_eq!(
        log.iter().map(|e| (e.batch, e.status)).collect::<Vec<_>>(),
        vec![(1, 200), (1, 429), (1, 200), (1, 429), (2, 200), (2, 429)]
    );

    // The Graph schedule counts the batch call as one request and throttles
    // it whole.
    sim.set_throttle(Some(Throttle::every(1, 9)));
    let r = post_batch(&sim, &auth, Value::Array(requests)).await;
    assert_graph_error(&r, 429, "TooManyRequests");
    assert_eq!(r.header("retry-after"), Some("9"));
    sim.set_throttle(None);
    assert_eq!(
        sim.batched_requests().len(),
        6,
        "a throttled batch ran nothing"
    );
    assert!(
        sim.requests()
            .iter()
            .filter(|r| r.host == Host::Graph)
            .all(|r| r.method == "POST" && r.path == "/v1.0/$batch")
    );
    sim.shutdown().await;
}
