//! The Graph client of one run: what a request needs, the run's counters, and GETs of
//! Graph URLs: a 2xx body as it is ([`GraphClient::get`]) or parsed
//! ([`GraphClient::get_json`], a body that arrived cut short or is not JSON read again,
//! as a GET is idempotent), Graph's "resync" answers to a delta query told apart
//! ([`Reply::Resync`]), any other answer a typed `sync-error`. The parts live beside it:
//! the token and the authorised send ([`super::session`]), the retry policy
//! ([`super::retry`]), the errors ([`super::errors`]), report downloads
//! ([`super::report`]) and JSON batches ([`super::batch`]).

use super::errors;
use super::report;
use super::retry::{self, Retry, RetryPolicy, Tries};
use super::session::Session;
use super::token::{Credentials, Proof};
use crate::platform::{Assertions, Clock, Http, HttpResponse, Method};
use crate::redact::Redactor;
use crate::types::{HttpFailure, SyncError};
use crate::url::delta_token;

// Where these items lived before the client was split, for the callers that name them so.
pub use super::errors::{bad_json, is_resync};
pub use super::report::ReportAnswer;

/// What a request needs, so that a refusal can name the permission and the feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    pub permission: &'static str,
    pub feature: &'static str,
}

/// Counters for the sync log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent, token requests and retries included.
    pub requests: u32,
    pub retries: u32,
    pub retry_wait_ms: u64,
}

/// What a GET came to: the answer, or Graph's word that the delta (change-tracking) state
/// is gone and the round must start again from scratch.
#[derive(Debug)]
pub enum Reply<T> {
    Ok(T),
    Resync(HttpFailure),
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// serde_json's error. A syntax error or an early end means the body is not JSON or
    /// was cut short in transfer: it is fetched again. A data error (valid JSON of the
    /// wrong shape) is not.
    Json(serde_json::Error),
    /// Valid JSON that is not usable; not fetched again.
    Unusable(SyncError),
}

impl From<serde_json::Error> for BodyError {
    fn from(e: serde_json::Error) -> Self {
        BodyError::Json(e)
    }
}

/// The fields are the graph module's: each of its parts adds its methods
/// (`impl GraphClient` in [`super::session`], [`super::retry`], [`super::report`] and
/// [`super::batch`]).
pub struct GraphClient<'e> {
    pub(super) http: &'e mut dyn Http,
    pub(super) clock: &'e mut dyn Clock,
    /// Where client assertions come from (credentials of [`Proof::Assertion`]).
    pub(super) assertions: Option<&'e mut dyn Assertions>,
    pub(super) session: Session,
    pub(super) retry: Retry,
    pub(super) redactor: Redactor,
    pub stats: Stats,
}

impl<'e> GraphClient<'e> {
    pub fn new(http: &'e mut dyn Http, clock: &'e mut dyn Clock, creds: Credentials) -> Self {
        let mut redactor = Redactor::default();
        if let Proof::Secret(secret) = &creds.proof {
            redactor.add(secret);
        }
        let seed = clock.now_ms() ^ 0x9e37_79b9_7f4a_7c15;
        GraphClient {
            http,
            clock,
            assertions: None,
            session: Session::new(creds),
            retry: Retry::new(RetryPolicy::default(), seed),
            redactor,
            stats: Stats::default(),
        }
    }

    /// Takes client assertions from `assertions` (the host's `credentials` import), one for
    /// each token request, when the credentials are a [`Proof::Assertion`].
    pub fn with_assertions(mut self, assertions: &'e mut dyn Assertions) -> Self {
        self.assertions = Some(assertions);
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry.set_policy(policy);
        self
    }

    /// The Graph base URL (no trailing slash).
    pub fn graph(&self) -> &str {
        self.session.graph()
    }

    /// The token endpoint it signs in at (`{login}/{tenant-id}/oauth2/v2.0/token`).
    pub fn token_url(&self) -> String {
        self.session.token_url()
    }

    /// Knows the secret, every client assertion and token of the run so far, and the delta
    /// tokens of the URLs read.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// GETs a Graph URL (absolute, on the Graph endpoint) and returns the body of a 2xx.
    pub fn get(&mut self, url: &str, need: Need) -> Result<Vec<u8>, SyncError> {
        match self.fetch(url, need, &[])? {
            Reply::Ok(response) => Ok(response.body),
            Reply::Resync(f) => Err(SyncError::Http(f)),
        }
    }

    /// GETs a Graph URL with these extra headers and parses the 2xx body. A body that is
    /// cut short (shorter than its Content-Length) or is not JSON is fetched again, up to
    /// the transport attempt cap, since a GET is idempotent; then it fails as a
    /// `bad-response` naming the URL (tokens hidden) and `what` was expected.
    pub fn get_json<T>(
        &mut self,
        url: &str,
        need: Need,
        headers: &[(&str, &str)],
        what: &str,
        mut parse: impl FnMut(&[u8]) -> Result<T, BodyError>,
    ) -> Result<Reply<T>, SyncError> {
        let mut tries = Tries::default();
        loop {
            let attempts = tries.start();
            let response = match self.fetch(url, need, headers)? {
                Reply::Ok(response) => response,
                Reply::Resync(f) => return Ok(Reply::Resync(f)),
            };
            let problem = match retry::cut_short(&response) {
                Some(why) => why,
                None => match parse(&response.body) {
                    Ok(value) => return Ok(Reply::Ok(value)),
                    Err(BodyError::Unusable(e)) => return Err(e),
                    Err(BodyError::Json(e)) if !retry::retryable_json(&e) => {
                        return Err(errors::bad_json(url, what, &e));
                    }
                    Err(BodyError::Json(e)) => e.to_string(),
                },
            };
            drop(response);
            let Some(delay) = self.retry.before_reading_again(&tries) else {
                return Err(errors::invalid_answer(
                    Method::Get,
                    url,
                    what,
                    &problem,
                    attempts,
                ));
            };
            self.wait_to_retry(&mut tries, delay, 1);
        }
    }

    /// GETs `url` with the bearer token ([`Self::send_authorised`]) and returns a 2xx
    /// response; a resync answer comes back as [`Reply::Resync`], any other non-2xx as a
    /// typed error.
    fn fetch(
        &mut self,
        url: &str,
        need: Need,
        extra: &[(&str, &str)],
    ) -> Result<Reply<HttpResponse>, SyncError> {
        self.fetch_with(url, need, extra, false)
    }

    /// [`Self::fetch`]; with `redirects`, a 3xx answer is returned as it is (not followed).
    pub(super) fn fetch_with(
        &mut self,
        url: &str,
        need: Need,
        extra: &[(&str, &str)],
        redirects: bool,
    ) -> Result<Reply<HttpResponse>, SyncError> {
        // A delta token is a bearer capability for the tenant's change feed: Graph might
        // echo it in an error message, so it is masked like the access token.
        if let Some(t) = delta_token(url) {
            self.redactor.add(t);
        }
        let sent = self.send_authorised(Method::Get, url, extra, None)?;
        let status = sent.response.status;
        if (200..300).contains(&status) || (redirects && report::is_redirect(status)) {
            return Ok(Reply::Ok(sent.response));
        }
        if is_resync(status, &sent.response.body) {
            return Ok(Reply::Resync(errors::status_failure(
                Method::Get,
                url,
                &sent.response,
                sent.attempts,
                &self.redactor,
            )));
        }
        Err(errors::answer(
            Method::Get,
            url,
            &sent.response,
            sent.attempts,
            need,
            &self.redactor,
        ))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::fakes::{FakeClock, FakeHttp, json_response, token_response};

    pub(crate) const NEED: Need = Need {
        permission: "User.Read.All",
        feature: "users",
    };

    pub(crate) fn creds() -> Credentials {
        crate::fakes::credentials()
    }

    fn parse_x(body: &[u8]) -> Result<u32, BodyError> {
        #[derive(Deserialize)]
        struct X {
            x: u32,
        }
        let v: X = serde_json::from_slice(body)?;
        if v.x == 0 {
            return Err(BodyError::Unusable(SyncError::Unsupported("zero".into())));
        }
        Ok(v.x)
    }

    #[test]
    fn a_body_that_is_not_json_or_cut_short_is_read_again() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(200, "<html>proxy error</html>"),
        );
        let mut cut = json_response(200, r#"{"x":"#);
        cut.headers.push(("Content-Length".into(), "7".into()));
        http.push_ok("GET https://graph.test/a", cut);
        let mut whole = json_response(200, r#"{"x":7}"#);
        whole.headers.push(("content-length".into(), "7".into()));
        http.push_ok("GET https://graph.test/a", whole);
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let got = c
            .get_json(
                "https://graph.test/a",
                NEED,
                &[("Prefer", "p=1")],
                "thing",
                parse_x,
            )
            .unwrap();
        assert!(matches!(got, Reply::Ok(7)), "{got:?}");
        assert_eq!(c.stats.requests, 4);
        assert_eq!(c.stats.retries, 2);
        assert!(c.stats.retry_wait_ms > 0);
        drop(c);
        http.assert_done();
        assert_eq!(clock.sleeps.len(), 2);
        assert!(
            http.sent[1..]
                .iter()
                .all(|r| r.headers.iter().any(|(n, v)| n == "Prefer" && v == "p=1"))
        );
    }

    #[test]
    fn a_body_that_stays_bad_is_a_bad_response_and_wrong_shapes_are_not_retried() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        for _ in 0..3 {
            http.push_ok(
                "GET https://graph.test/a?$deltatoken=SECRETDT",
                json_response(200, "{\"x\": 1,"),
            );
        }
        // Valid JSON of the wrong type: read once.
        http.push_ok(
            "GET https://graph.test/b",
            json_response(200, r#"{"x":"one"}"#),
        );
        // Valid JSON the parser refuses: read once, its error as it is.
        http.push_ok("GET https://graph.test/c", json_response(200, r#"{"x":0}"#));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let e = c
            .get_json(
                "https://graph.test/a?$deltatoken=SECRETDT",
                NEED,
                &[],
                "thing",
                parse_x,
            )
            .unwrap_err();
        let SyncError::BadResponse(f) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(f.url, "https://graph.test/a?$deltatoken=...");
        assert!(f.message.contains("not a valid thing"), "{}", f.message);
        assert!(f.message.contains("EOF"), "{}", f.message);
        assert!(f.message.contains("after 3 attempts"), "{}", f.message);
        assert!(!f.message.contains("SECRETDT"), "{}", f.message);
        assert_eq!(c.stats.retries, 2);
        let SyncError::BadResponse(f) = c
            .get_json("https://graph.test/b", NEED, &[], "thing", parse_x)
            .unwrap_err()
        else {
            panic!()
        };
        assert!(f.message.contains("invalid type"), "{}", f.message);
        assert_eq!(
            c.get_json("https://graph.test/c", NEED, &[], "thing", parse_x)
                .unwrap_err(),
            SyncError::Unsupported("zero".into())
        );
        assert_eq!(c.stats.retries, 2);
        drop(c);
        http.assert_done();
    }

    #[test]
    fn a_resync_answer_is_a_reply_not_an_error() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        let mut gone = json_response(
            410,
            r#"{"error":{"code":"resyncRequired","message":"Resync required."}}"#,
        );
        gone.headers.push((
            "Location".into(),
            "https://graph.test/v1.0/users/delta?$deltatoken=".into(),
        ));
        http.push_ok("GET https://graph.test/d", gone.clone());
        http.push_ok("GET https://graph.test/d", gone);
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let Reply::Resync(f) = c
            .get_json(
                "https://graph.test/d?$deltatoken=T",
                NEED,
                &[],
                "thing",
                parse_x,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(f.status, Some(410));
        assert_eq!(f.graph_code.as_deref(), Some("resyncRequired"));
        assert_eq!(f.url, "https://graph.test/d?$deltatoken=...");
        assert_eq!(c.stats.retries, 0, "a resync answer is not retried");
        // Plain `get` has no use for it: an http error.
        let SyncError::Http(f) = c.get("https://graph.test/d", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(410));
    }
}
