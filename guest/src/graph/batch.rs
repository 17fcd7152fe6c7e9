//! JSON batching: up to 20 GETs in one `POST {graph}/v1.0/$batch`, for reads of single
//! objects by id ([`GraphClient::get_batch`]). Only GETs are ever batched: the engine
//! changes nothing in the tenant, and the POST is only the envelope.
//!
//! Per microsoftgraph/microsoft-graph-docs-contrib: concepts/json-batching.md:
//! - the body is `{"requests": [{"id", "method", "url"}]}`, the `url` "the relative
//!   resource URL for the individual request" (`/users/{id}?$select=...`), each `id`
//!   unique in the batch; "JSON batch requests are currently limited to 20 individual
//!   requests", so longer lists go in several batches;
//! - the answer is `{"responses": [{"id", "status", "headers", "body"}]}`, where
//!   "individual responses might appear in a different order than the requests": they are
//!   matched to the requests by `id`, and results come back in the order asked for;
//! - "If the batch request itself is malformed, the status code is 400. If the batch
//!   request is parseable, the status code is 200. A 200 status code on the batch
//!   response headers doesn't indicate that the individual requests inside the batch
//!   succeeded": every response's own status decides.
//!
//! Throttling, per concepts/throttling.md ("Throttling and batching"): "Requests in a
//! batch are evaluated individually against throttling limits and if any request exceeds
//! the limits, it fails with a status of 429 ... The batch itself fails with a status code
//! of 424 (Failed Dependency)" (so a 424 carrying `responses` is read like a 200). "You
//! should retry each failed request from the batch using the value provided in the
//! retry-after response header from the JSON content. You may retry all the failed
//! requests in a new batch after the longest retry-after value." So the requests that got
//! 429, 503 or 504 (the statuses the client retries on their own) are sent again, and only
//! they, after the largest `Retry-After` among them (exponential backoff when none has
//! one), within the client's attempt cap and wait budget; each is counted as a retry in
//! the run's stats, the wait as retry wait. The batch POST itself is sent like any request
//! (throttling and transport failures retried, a 401 renews the token once), and a batch
//! answer that is not JSON or was cut short is read again (a batch of GETs is idempotent).
//!
//! A request's 404 is an answer, not a failure: the object is gone (`None`). Any other
//! failed request is the typed error the same GET would get on its own (a 403
//! `Authorization_RequestDenied` names the permission, and so on), naming its URL.

use std::collections::BTreeMap;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::client::{GraphClient, Need};
use super::errors;
use super::retry::{self, Tries};
use crate::platform::{HttpResponse, Method};
use crate::types::SyncError;
use crate::url::display_url;

/// Requests one batch may carry (json-batching.md, "Batch size limitations").
pub const MAX_REQUESTS: usize = 20;

/// What one GET of a batch came to: the body of its 2xx answer, or `None` for a 404.
pub type Found = Option<Vec<u8>>;

#[derive(Serialize)]
struct BatchRequest<'a> {
    requests: Vec<SubRequest<'a>>,
}

#[derive(Serialize)]
struct SubRequest<'a> {
    id: String,
    method: &'static str,
    url: &'a str,
}

#[derive(Deserialize)]
struct BatchAnswer {
    responses: Option<Vec<SubAnswer>>,
}

#[derive(Deserialize)]
struct SubAnswer {
    id: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    body: Option<Captured>,
}

impl GraphClient<'_> {
    /// GETs each of `paths` (relative to the version root, e.g.
    /// `/users/{id}?$select=id,mail`) through JSON batches of at most [`MAX_REQUESTS`],
    /// and returns one result per path, in the order given: the JSON body of its 2xx
    /// answer, or `None` when Graph answered 404. `need` names the permission a 403
    /// refers to.
    pub fn get_batch(&mut self, paths: &[String], need: Need) -> Result<Vec<Found>, SyncError> {
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(MAX_REQUESTS) {
            out.extend(self.one_batch(chunk, need)?);
        }
        Ok(out)
    }

    /// One batch of at most [`MAX_REQUESTS`] GETs, throttled ones sent again.
    fn one_batch(&mut self, paths: &[String], need: Need) -> Result<Vec<Found>, SyncError> {
        let url = format!("{}/v1.0/$batch", self.graph());
        let mut results: Vec<Option<Found>> = vec![None; paths.len()];
        let mut pending: Vec<usize> = (0..paths.len()).collect();
        let mut tries = Tries::default();
        loop {
            let attempts = tries.start();
            let answers = self.send_batch(&url, paths, &pending, need)?;
            let mut throttled: Vec<(usize, HttpResponse)> = Vec::new();
            for (i, answer) in pending.iter().copied().zip(answers) {
                match answer.status {
                    200..=299 => results[i] = Some(Some(answer.body)),
                    // errors.md: "404 Not Found: The requested resource doesn't exist."
                    404 => results[i] = Some(None),
                    s if retry::is_throttled(s) => throttled.push((i, answer)),
                    _ => return Err(self.request_error(&paths[i], &answer, attempts, need)),
                }
            }
            let Some(first) = throttled.first().map(|(i, _)| *i) else {
                break;
            };
            // "after the longest retry-after value" (throttling.md).
            let longest = throttled
                .iter()
                .filter_map(|(_, a)| retry::retry_after_ms(a))
                .max();
            let Some(delay) = self.retry.after_throttling(&tries, longest) else {
                let (i, answer) = &throttled[0];
                return Err(self.request_error(&paths[*i], answer, attempts, need));
            };
            if !self.retry.within_budget(&tries, delay) {
                let url = self.absolute(&paths[first]);
                let doing = format!(
                    "GET {} (in a JSON batch, with {} other request(s)) kept being throttled",
                    display_url(&url),
                    throttled.len() - 1
                );
                return Err(errors::over_retry_budget(
                    &url,
                    &doing,
                    attempts,
                    delay,
                    self.retry.policy(),
                ));
            }
            self.wait_to_retry(&mut tries, delay, throttled.len() as u32);
            pending = throttled.into_iter().map(|(i, _)| i).collect();
        }
        Ok(results.into_iter().map(Option::flatten).collect())
    }

    /// The failed answer of the request of `path` as the error the same GET would get on
    /// its own, saying it was in a batch.
    fn request_error(
        &self,
        path: &str,
        answer: &HttpResponse,
        attempts: u32,
        need: Need,
    ) -> SyncError {
        let e = errors::answer(
            Method::Get,
            &self.absolute(path),
            answer,
            attempts,
            need,
            self.redactor(),
        );
        in_batch(e)
    }

    /// POSTs the requests `pending` (indexes into `paths`) as one batch and returns their
    /// answers, in the order of `pending`.
    fn send_batch(
        &mut self,
        url: &str,
        paths: &[String],
        pending: &[usize],
        need: Need,
    ) -> Result<Vec<HttpResponse>, SyncError> {
        let body = serde_json::to_vec(&BatchRequest {
            requests: pending
                .iter()
                .map(|&i| SubRequest {
                    id: (i + 1).to_string(),
                    method: "GET",
                    url: &paths[i],
                })
                .collect(),
        })
        .map_err(|e| bad(url, &format!("the batch could not be written: {e}")))?;
        let mut tries = Tries::default();
        loop {
            let reads = tries.start();
            let sent = self.send_authorised(
                Method::Post,
                url,
                &[("Content-Type", "application/json")],
                Some(&body),
            )?;
            let response = &sent.response;
            let refused = || {
                errors::answer(
                    Method::Post,
                    url,
                    response,
                    sent.attempts,
                    need,
                    self.redactor(),
                )
            };
            // 424: the batch envelope throttling.md describes when a request was throttled.
            let envelope = (200..300).contains(&response.status) || response.status == 424;
            if !envelope {
                return Err(refused());
            }
            let problem = match retry::cut_short(response) {
                Some(why) => why,
                None => match super::json::from_body::<BatchAnswer>(&response.body) {
                    Ok(BatchAnswer {
                        responses: Some(list),
                    }) => return self.match_answers(url, paths, pending, list),
                    // A 424 that is not a batch answer is an error answer.
                    _ if response.status == 424 => return Err(refused()),
                    Ok(BatchAnswer { responses: None }) => {
                        return Err(bad(url, "it has no \"responses\" list"));
                    }
                    Err(e) if !retry::retryable_json(&e) => return Err(bad(url, &e.to_string())),
                    Err(e) => e.to_string(),
                },
            };
            drop(sent);
            let Some(delay) = self.retry.before_reading_again(&tries) else {
                return Err(bad(url, &format!("{problem} (after {reads} attempts)")));
            };
            self.wait_to_retry(&mut tries, delay, 1);
        }
    }

    /// The answers of `pending`, by id, in its order.
    fn match_answers(
        &self,
        url: &str,
        paths: &[String],
        pending: &[usize],
        list: Vec<SubAnswer>,
    ) -> Result<Vec<HttpResponse>, SyncError> {
        let mut answers: Vec<Option<HttpResponse>> = vec![None; pending.len()];
        for (n, a) in list.into_iter().enumerate() {
            let Some(id) = a.id.as_deref().map(str::trim) else {
                return Err(bad(url, &format!("response #{} has no id", n + 1)));
            };
            // Ids the engine did not send are no answer to anything it asked.
            let Some(slot) = pending.iter().position(|&i| (i + 1).to_string() == id) else {
                continue;
            };
            let Some(status) = a.status else {
                return Err(bad(
                    url,
                    &format!("the response to request {id} has no status"),
                ));
            };
            answers[slot] = Some(HttpResponse {
                status,
                headers: a.headers.unwrap_or_default().into_iter().collect(),
                body: a.body.map(|b| b.0).unwrap_or_default(),
            });
        }
        answers
            .into_iter()
            .zip(pending)
            .map(|(a, &i)| {
                a.ok_or_else(|| {
                    bad(
                        url,
                        &format!(
                            "it has no response to request {} (GET {})",
                            i + 1,
                            display_url(&self.absolute(&paths[i]))
                        ),
                    )
                })
            })
            .collect()
    }

    /// The absolute URL of a request of a batch, for messages.
    fn absolute(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.graph())
    }
}

/// Says that a request's error happened inside a JSON batch.
fn in_batch(e: SyncError) -> SyncError {
    match e {
        SyncError::Http(mut f) => {
            f.message.push_str(" (in a JSON batch)");
            SyncError::Http(f)
        }
        other => other,
    }
}

/// The batch answer from `url` is not usable.
fn bad(url: &str, why: &str) -> SyncError {
    errors::invalid_answer(Method::Post, url, "JSON batch answer", why, 1)
}

/// A JSON value kept as JSON text, to be parsed later by whoever asked for it (serde_json's
/// `RawValue` needs a feature the engine does not enable, and `serde_json::Value` would
/// pull a tree type into the component for a handful of users).
struct Captured(Vec<u8>);

impl<'de> Deserialize<'de> for Captured {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        d.deserialize_any(Writer(&mut out))?;
        Ok(Captured(out))
    }
}

/// Writes the value it visits as JSON text.
struct Writer<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Writer<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Writer<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        serde_json::to_writer(&mut *self.0, &v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        serde_json::to_writer(&mut *self.0, v).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Writer(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !first {
                self.0.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *self.0, key.as_ref()).map_err(de::Error::custom)?;
            self.0.push(b':');
            map.next_value_seed(Writer(&mut *self.0))?;
        }
        self.0.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeClock, FakeHttp, json_response, token_response};
    use crate::graph::token::Credentials;
    use crate::platform::HttpRequest;

    const NEED: Need = Need {
        permission: "User.Read.All",
        feature: "users",
    };
    const BATCH: &str = "POST https://graph.test/v1.0/$batch";

    fn creds() -> Credentials {
        crate::fakes::credentials()
    }

    fn paths(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("/users/u{i}?$select=id")).collect()
    }

    /// The (id, url) pairs a batch request carried.
    fn carried(req: &HttpRequest) -> Vec<(String, String)> {
        assert_eq!(req.method, Method::Post);
        assert!(
            req.headers
                .iter()
                .any(|(n, v)| n == "Content-Type" && v == "application/json")
        );
        assert!(req.headers.iter().any(|(n, _)| n == "Authorization"));
        let v: serde_json::Value = serde_json::from_slice(req.body.as_deref().unwrap()).unwrap();
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["method"], "GET", "only GETs are batched");
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["url"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn ok(id: &str, body: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"id": id, "status": 200,
            "headers": {"Content-Type": "application/json"}, "body": body})
    }

    fn err(id: &str, status: u16, code: &str, headers: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"id": id, "status": status, "headers": headers,
            "body": {"error": {"code": code, "message": format!("{code} happened."),
                "innerError": {"date": "2024-05-01T00:00:00", "request-id": "r"}}}})
    }

    fn answer(responses: Vec<serde_json::Value>) -> HttpResponse {
        json_response(
            200,
            &serde_json::json!({ "responses": responses }).to_string(),
        )
    }

    #[test]
    fn results_come_in_request_order_whatever_the_answer_order() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok(
            BATCH,
            answer(vec![
                ok(
                    "3",
                    serde_json::json!({"id": "u3", "n": [1, 2.5, true, null, "x\"y"]}),
                ),
                err("2", 404, "Request_ResourceNotFound", serde_json::json!({})),
                ok(
                    "1",
                    serde_json::json!({"id": "u1", "nested": {"a": {}, "b": []}}),
                ),
            ]),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let got = c.get_batch(&paths(3), NEED).unwrap();
        assert_eq!(c.stats.requests, 2);
        assert_eq!(c.stats.retries, 0);
        drop(c);
        let bodies: Vec<Option<serde_json::Value>> = got
            .iter()
            .map(|b| b.as_ref().map(|b| serde_json::from_slice(b).unwrap()))
            .collect();
        assert_eq!(
            bodies,
            vec![
                Some(serde_json::json!({"id": "u1", "nested": {"a": {}, "b": []}})),
                None,
                Some(serde_json::json!({"id": "u3", "n": [1, 2.5, true, null, "x\"y"]})),
            ]
        );
        assert_eq!(
            carried(&http.sent[1]),
            vec![
                ("1".to_owned(), "/users/u1?$select=id".to_owned()),
                ("2".to_owned(), "/users/u2?$select=id".to_owned()),
                ("3".to_owned(), "/users/u3?$select=id".to_owned()),
            ]
        );
        http.assert_done();
    }

    #[test]
    fn more_than_twenty_go_in_several_batches() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        // Ids are per batch (1..=20); each batch answers in reverse.
        for (offset, len) in [(0, 20), (20, 20), (40, 5)] {
            let responses = (1..=len)
                .rev()
                .map(|i| {
                    let user = format!("u{}", offset + i);
                    ok(&i.to_string(), serde_json::json!({ "id": user }))
                })
                .collect();
            http.push_ok(BATCH, answer(responses));
        }
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let got = c.get_batch(&paths(45), NEED).unwrap();
        drop(c);
        assert_eq!(got.len(), 45);
        for (i, body) in got.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_slice(body.as_ref().unwrap()).unwrap();
            assert_eq!(v["id"], format!("u{}", i + 1));
        }
        let sizes: Vec<usize> = http.sent[1..].iter().map(|r| carried(r).len()).collect();
        assert_eq!(sizes, vec![20, 20, 5]);
        http.assert_done();
    }

    #[test]
    fn a_throttled_request_is_sent_again_alone_after_the_longest_retry_after() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok(
            BATCH,
            answer(vec![
                ok("1", serde_json::json!({"id": "u1"})),
                err(
                    "2",
                    429,
                    "TooManyRequests",
                    serde_json::json!({"Retry-After": "3"}),
                ),
                ok("3", serde_json::json!({"id": "u3"})),
                err(
                    "4",
                    503,
                    "serviceNotAvailable",
                    serde_json::json!({"retry-after": "7"}),
                ),
            ]),
        );
        // The 424 envelope of throttling.md is read like a 200.
        let mut second = answer(vec![
            ok("4", serde_json::json!({"id": "u4"})),
            err("2", 429, "TooManyRequests", serde_json::json!({})),
        ]);
        second.status = 424;
        http.push_ok(BATCH, second);
        http.push_ok(
            BATCH,
            answer(vec![ok("2", serde_json::json!({"id": "u2"}))]),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let got = c.get_batch(&paths(4), NEED).unwrap();
        assert!(got.iter().all(Option::is_some));
        let stats = c.stats;
        drop(c);
        // Two sent again after 7 s (the longest Retry-After), then one after a backoff.
        assert_eq!(clock.sleeps.len(), 2);
        assert_eq!(clock.sleeps[0], 7000);
        assert!(
            (1000..=2000).contains(&clock.sleeps[1]),
            "{:?}",
            clock.sleeps
        );
        assert_eq!(stats.retries, 3, "each request sent again counts");
        assert_eq!(stats.retry_wait_ms, clock.sleeps.iter().sum::<u64>());
        assert_eq!(stats.requests, 4);
        let ids = |n: usize| -> Vec<String> {
            carried(&http.sent[n])
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        assert_eq!(ids(1), vec!["1", "2", "3", "4"]);
        assert_eq!(ids(2), vec!["2", "4"]);
        assert_eq!(ids(3), vec!["2"]);
        http.assert_done();
    }

    #[test]
    fn throttling_inside_a_batch_stops_at_the_attempt_cap_and_the_wait_budget() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        for _ in 0..6 {
            http.push_ok(
                BATCH,
                answer(vec![err(
                    "1",
                    429,
                    "TooManyRequests",
                    serde_json::json!({"Retry-After": "1"}),
                )]),
            );
        }
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.get_batch(&paths(1), NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(429));
        assert_eq!(f.url, "https://graph.test/v1.0/users/u1?$select=id");
        assert!(f.message.contains("after 6 attempts"), "{}", f.message);
        assert!(f.message.contains("in a JSON batch"), "{}", f.message);
        assert_eq!(c.stats.retries, 5);
        drop(c);
        http.assert_done();

        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok(
            BATCH,
            answer(vec![err(
                "1",
                429,
                "TooManyRequests",
                serde_json::json!({"Retry-After": "500"}),
            )]),
        );
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.get_batch(&paths(1), NEED).unwrap_err() else {
            panic!()
        };
        assert!(f.message.contains("retry budget"), "{}", f.message);
        http.assert_done();
    }

    #[test]
    fn request_errors_are_typed_like_single_requests() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok(
            BATCH,
            answer(vec![
                ok("1", serde_json::json!({"id": "u1"})),
                err(
                    "2",
                    403,
                    "Authorization_RequestDenied",
                    serde_json::json!({}),
                ),
            ]),
        );
        http.push_ok(
            BATCH,
            answer(vec![err(
                "1",
                400,
                "Request_BadRequest",
                serde_json::json!({}),
            )]),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Permission(p) = c.get_batch(&paths(2), NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(p.permission, "User.Read.All");
        assert_eq!(p.feature, "users");
        assert!(p.message.contains("/v1.0/users/u2"), "{}", p.message);
        let SyncError::Http(f) = c.get_batch(&paths(1), NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(400));
        assert_eq!(f.graph_code.as_deref(), Some("Request_BadRequest"));
        assert_eq!(f.url, "https://graph.test/v1.0/users/u1?$select=id");
        drop(c);
        http.assert_done();
    }

    #[test]
    fn the_batch_post_is_retried_like_any_request() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        let mut throttled = json_response(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"Please retry again later."}}"#,
        );
        throttled.headers.push(("Retry-After".into(), "2".into()));
        http.push_ok(BATCH, throttled);
        http.push_ok(
            BATCH,
            json_response(
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"expired"}}"#,
            ),
        );
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok(
            BATCH,
            answer(vec![ok("1", serde_json::json!({"id": "u1"}))]),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        assert!(c.get_batch(&paths(1), NEED).unwrap()[0].is_some());
        assert_eq!(c.stats.retries, 1);
        drop(c);
        assert_eq!(clock.sleeps, vec![2000]);
        let last = http.sent.last().unwrap();
        assert!(last.headers.iter().any(|(_, v)| v == "Bearer tok-2"));
        http.assert_done();

        // A refusal of the batch itself is typed like any answer.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok(
            BATCH,
            json_response(
                403,
                r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
            ),
        );
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Permission(p) = c.get_batch(&paths(1), NEED).unwrap_err() else {
            panic!()
        };
        assert!(
            p.message.contains("POST https://graph.test/v1.0/$batch"),
            "{}",
            p.message
        );
    }

    #[test]
    fn a_malformed_batch_answer_is_a_bad_response_naming_the_url() {
        // Not JSON (or cut short): read again, then a bad response.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        for _ in 0..3 {
            http.push_ok(BATCH, json_response(200, "<html>gateway</html>"));
        }
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::BadResponse(f) = c.get_batch(&paths(1), NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.url, "https://graph.test/v1.0/$batch");
        assert!(
            f.message.contains("POST https://graph.test/v1.0/$batch"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("not a valid JSON batch answer"),
            "{}",
            f.message
        );
        assert!(f.message.contains("after 3 attempts"), "{}", f.message);
        assert_eq!(c.stats.retries, 2);
        drop(c);
        http.assert_done();

        // JSON of the wrong shape, or a request left unanswered: at once.
        for (body, expect) in [
            (r#"{"value": []}"#, "no \"responses\" list"),
            (r#"{"responses": {}}"#, "invalid type"),
            (
                r#"{"responses": [{"status": 200}]}"#,
                "response #1 has no id",
            ),
            (r#"{"responses": [{"id": "1"}]}"#, "request 1 has no status"),
            (
                r#"{"responses": [{"id": "9", "status": 200, "body": {}}]}"#,
                "no response to request 1 (GET https://graph.test/v1.0/users/u1?$select=id)",
            ),
        ] {
            let mut http = FakeHttp::new();
            http.push_ok("POST https://login.test/", token_response("tok", 3600));
            http.push_ok(BATCH, json_response(200, body));
            let mut c = GraphClient::new(&mut http, &mut clock, creds());
            let SyncError::BadResponse(f) = c.get_batch(&paths(1), NEED).unwrap_err() else {
                panic!("{body}")
            };
            assert_eq!(f.url, "https://graph.test/v1.0/$batch");
            assert!(f.message.contains(expect), "{expect}: {}", f.message);
            assert_eq!(c.stats.retries, 0, "{body}");
            drop(c);
            http.assert_done();
        }
    }

    #[test]
    fn captured_values_are_valid_json() {
        let text = r#"{"a": [1, -2, 3.25, "é\n\"q\"", {"b": null, "c": [[], {}]}], "d": false}"#;
        let Captured(raw) = serde_json::from_str(text).unwrap();
        let again: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let want: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(again, want);
    }
}
