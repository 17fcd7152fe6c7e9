//! `POST /v1.0/$batch`: JSON batching, as
//! microsoftgraph/microsoft-graph-docs-contrib: concepts/json-batching.md
//! describes it.
//!
//! * The body is `{"requests": [{"id", "method", "url", "headers"?}, ...]}`;
//!   "JSON batch requests are currently limited to 20 individual requests".
//!   An `id` is required, "Not case-sensitive. Must be unique in the batch,
//!   otherwise, the batch request fails with a `400` error code"; the `url` is
//!   "the relative resource URL for the individual request" (`/users`, not
//!   `https://graph.microsoft.com/v1.0/users`). "If the batch request itself is
//!   malformed, the status code is `400`."
//! * Each request is answered by the handlers that answer it on its own
//!   (`graph::serve`), with the batch's `Authorization` and its own `headers`:
//!   a method other than GET gets the 405 `Request_BadRequest` the page's
//!   example shows for request 4. `dependsOn` is not implemented (per-request
//!   501).
//! * The answer is `200` with `{"responses": [{"id", "status", "headers",
//!   "body"}]}`: "If the batch request is parseable, the status code is `200`.
//!   A `200` status code on the batch response headers doesn't indicate that
//!   the individual requests inside the batch succeeded". The responses come
//!   in reverse order, as "individual responses might appear in a different
//!   order than the requests".
//! * Throttling (concepts/throttling.md, "Throttling and batching"): "Requests
//!   in a batch are evaluated individually against throttling limits and if
//!   any request exceeds the limits, it fails with a `status` of `429` and an
//!   error similar to the one provided above" — here when the batch
//!   throttling schedule (`Simulator::set_batch_throttle`) is due, with its
//!   `Retry-After` among the request's `headers` ("retry each failed request
//!   from the batch using the value provided in the `retry-after` response
//!   header from the JSON content"). The same section says "the batch itself
//!   fails with a status code of `424`", which json-batching.md contradicts
//!   (200 for a parseable batch); the simulator follows json-batching.md.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use serde_json::{Map, Value, json};

use crate::BatchedRequest;
use crate::graph::{self, Reply};
use crate::odata::GraphError;
use crate::server::Shared;
use crate::token::validate_bearer;
use crate::util::percent_decode;

/// Requests a batch may hold (json-batching.md, "Batch size limitations").
pub const MAX_REQUESTS: usize = 20;

/// Largest batch body read. Graph documents no size; 4 MiB is far more than 20
/// GETs need.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// `/v1.0/$batch` (the `$` may arrive percent-encoded).
pub fn is_batch<B>(req: &Request<B>) -> bool {
    let mut segments = req.uri().path().split('/').filter(|s| !s.is_empty());
    matches!(
        (segments.next(), segments.next(), segments.next()),
        (Some("v1.0"), Some(s), None)
            if percent_decode(s, false).is_some_and(|d| d.eq_ignore_ascii_case("$batch"))
    )
}

/// The answer to a batch that is not usable as a whole.
fn malformed(message: impl Into<String>) -> GraphError {
    GraphError::new(400, "BadRequest", message)
}

/// One request of the batch, checked.
struct Step {
    id: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    depends_on: bool,
}

/// Reads and checks the payload: the whole batch's 400, or its requests.
fn parse_payload(body: &[u8]) -> Result<Vec<Step>, GraphError> {
    let invalid = || malformed("Invalid batch payload format.");
    let payload: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    let requests = payload
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(invalid)?;
    if requests.is_empty() {
        return Err(invalid());
    }
    if requests.len() > MAX_REQUESTS {
        // The 400 is documented ("If the batch request itself is malformed");
        // the code and words are those of the Graph SDKs' own check
        // ("MaximumValueExceeded: Number of batch request steps exceeds the
        // maximum value of 20.").
        return Err(GraphError::new(
            400,
            "MaximumValueExceeded",
            format!("Number of batch request steps exceeds the maximum value of {MAX_REQUESTS}."),
        ));
    }
    let mut steps: Vec<Step> = Vec::with_capacity(requests.len());
    for r in requests {
        let text = |name: &str| {
            r.get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (Some(id), Some(method), Some(url)) = (text("id"), text("method"), text("url")) else {
            return Err(invalid());
        };
        if steps.iter().any(|s| s.id.eq_ignore_ascii_case(&id)) {
            return Err(malformed(format!(
                "Batch request contains duplicate request id '{id}'."
            )));
        }
        let headers = match r.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            Some(_) => return Err(invalid()),
        };
        steps.push(Step {
            id,
            method,
            url,
            headers,
            depends_on: r.get("dependsOn").is_some_and(|d| !d.is_null()),
        });
    }
    Ok(steps)
}

/// The request one step stands for: GET (or whatever it says) of `/v1.0` plus
/// its relative URL, with the batch's `Authorization` and its own headers.
fn step_request(
    step: &Step,
    authorization: Option<&HeaderValue>,
) -> Result<Request<()>, GraphError> {
    let lower = step.url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(malformed(format!(
            "Invalid request URL '{}': the url of a request in a batch is relative to the version root, e.g. /users.",
            step.url
        )));
    }
    let uri = format!("/v1.0/{}", step.url.trim_start_matches('/'));
    let method = Method::from_bytes(step.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| malformed(format!("Invalid method '{}'.", step.method)))?;
    let mut builder = Request::builder().method(method).uri(&uri);
    if let Some(auth) = authorization {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    for (name, value) in &step.headers {
        if name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(malformed(format!("Invalid header '{name}'.")));
        };
        builder = builder.header(n, v);
    }
    builder
        .body(())
        .map_err(|_| malformed(format!("Invalid request URL '{}'.", step.url)))
}

/// A response as an entry of `responses`: `{"id", "status", "headers", "body"}`.
async fn entry(id: &str, response: Response<Full<Bytes>>) -> (u16, Value) {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().to_string(), Value::String(v.to_string()));
        }
    }
    let json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let status = parts.status.as_u16();
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.to_string()));
    out.insert("status".into(), json!(status));
    out.insert("headers".into(), Value::Object(headers));
    if !bytes.is_empty() {
        let body = if json {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        out.insert("body".into(), body);
    }
    (status, Value::Object(out))
}

/// `POST /v1.0/$batch`.
pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ids = graph::ids(shared, &req);
    if req.method() != Method::POST {
        let e = GraphError::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        );
        let mut r = graph::error_response(shared, &e, &ids);
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("POST"));
        return r;
    }
    let authorization = req.headers().get(AUTHORIZATION).cloned();
    if let Err(e) = validate_bearer(shared, authorization.as_ref().and_then(|v| v.to_str().ok())) {
        return graph::error_response(shared, &e, &ids);
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return graph::error_response(
                shared,
                &malformed("Invalid batch payload format."),
                &ids,
            );
        }
    };
    let steps = match parse_payload(&body) {
        Ok(steps) => steps,
        Err(e) => return graph::error_response(shared, &e, &ids),
    };
    let batch = shared.next_batch();
    let mut responses = Vec::with_capacity(steps.len());
    let mut log = Vec::with_capacity(steps.len());
    for step in &steps {
        let sub_ids = graph::ids(shared, &Request::new(()));
        let (response, path, query) = match step_request(step, authorization.as_ref()) {
            Err(e) => (
                graph::error_response(shared, &e, &sub_ids),
                step.url.clone(),
                String::new(),
            ),
            Ok(sub) => {
                let path = sub.uri().path().to_string();
                let query = sub.uri().query().unwrap_or("").to_string();
                let response = if step.depends_on {
                    let e = GraphError::new(
                        501,
                        "NotImplemented",
                        "The simulator does not implement dependsOn in batches.",
                    );
                    graph::error_response(shared, &e, &sub_ids)
                } else if let Some((status, retry_after)) = shared.intercept_batched() {
                    graph::throttled(shared, &sub, status, retry_after)
                } else {
                    graph::serve(shared, &sub)
                };
                (response, path, query)
            }
        };
        let (status, value) = entry(&step.id, response).await;
        log.push(BatchedRequest {
            batch,
            id: step.id.clone(),
            method: step.method.to_ascii_uppercase(),
            path,
            query,
            status,
        });
        responses.push(value);
    }
    shared.record_batched(log);
    // "Individual responses might appear in a different order than the
    // requests": the last first.
    responses.reverse();
    let body = serde_json::to_vec(&json!({ "responses": responses })).unwrap_or_default();
    Reply::Json(body).into_response(&ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_batch_path() {
        for (path, yes) in [
            ("/v1.0/$batch", true),
            ("/v1.0/%24batch", true),
            ("/v1.0/$BATCH/", true),
            ("/beta/$batch", false),
            ("/v1.0/users", false),
            ("/v1.0/$batch/x", false),
        ] {
            let req = Request::builder().uri(path).body(()).expect("request");
            assert_eq!(is_batch(&req), yes, "{path}");
        }
    }

    #[test]
    fn payload_checks() {
        let steps = parse_payload(
            br#"{"requests":[{"id":"1","method":"GET","url":"/users/a"},
                {"id":"2","method":"get","url":"users?$top=1","headers":{"ConsistencyLevel":"eventual"}}]}"#,
        )
        .expect("valid");
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[1].headers,
            vec![("ConsistencyLevel".to_string(), "eventual".to_string())]
        );
        let r = step_request(&steps[1], None).expect("request");
        assert_eq!(r.uri().path(), "/v1.0/users");
        assert_eq!(r.method(), Method::GET);

        for bad in [
            &b"not json"[..],
            br#"{"value":[]}"#,
            br#"{"requests":[]}"#,
            br#"{"requests":[{"id":"1","url":"/users"}]}"#,
            br#"{"requests":[{"id":"1","method":"GET","url":"/users","headers":[1]}]}"#,
        ] {
            let e = parse_payload(bad).err().expect("invalid");
            assert_eq!((e.status, e.code), (400, "BadRequest"), "{bad:?}");
        }
        let e = parse_payload(
            br#"{"requests":[{"id":"a","method":"GET","url":"/users"},{"id":"A","method":"GET","url":"/users"}]}"#,
        )
        .err()
        .expect("duplicate ids");
        assert!(e.message.contains("duplicate"), "{}", e.message);
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
            .collect();
        let body = serde_json::to_vec(&json!({ "requests": many })).expect("json");
        let e = parse_payload(&body).err().expect("too many");
        assert_eq!((e.status, e.code), (400, "MaximumValueExceeded"));
        assert!(e.message.contains("20"), "{}", e.message);

        let absolute = Step {
            id: "1".into(),
            method: "GET".into(),
            url: "https://graph.microsoft.com/v1.0/users".into(),
            headers: Vec::new(),
            depends_on: false,
        };
        assert_eq!(
            step_request(&absolute, None).err().map(|e| e.status),
            Some(400)
        );
    }
}
