//! The run's session with Graph: the app-only access token (fetched at sign-in, renewed
//! before it expires, and once after a 401) and the one loop that sends a request with
//! it as the bearer token. Every request to Graph goes through [`GraphClient::send_authorised`];
//! only the token request itself and report downloads (which must not carry the token)
//! do not.

use super::client::GraphClient;
use super::errors;
use super::retry::Sent;
use super::token::{self, AccessToken, Credentials};
use crate::platform::{HttpRequest, Method};
use crate::types::{AuthError, AuthFailure, SyncError};

/// The credentials of the run and the access token issued with them, if any.
pub(super) struct Session {
    creds: Credentials,
    token: Option<AccessToken>,
}

impl Session {
    pub(super) fn new(creds: Credentials) -> Self {
        Session { creds, token: None }
    }

    /// The Graph base URL (no trailing slash).
    pub(super) fn graph(&self) -> &str {
        &self.creds.graph
    }
}

impl GraphClient<'_> {
    /// Signs in now (or reuses a still valid token) and returns the access token.
    pub fn sign_in(&mut self) -> Result<&str, SyncError> {
        let now = self.clock.now_ms();
        if !self
            .session
            .token
            .as_ref()
            .is_some_and(|t| t.usable_at(now))
        {
            self.fetch_token()?;
        }
        match &self.session.token {
            Some(t) => Ok(&t.value),
            None => Err(SyncError::Auth(AuthError {
                failure: AuthFailure::Other,
                aadsts: None,
                message: "signing in produced no token".into(),
            })),
        }
    }

    fn fetch_token(&mut self) -> Result<(), SyncError> {
        self.session.token = None;
        let url = self.session.creds.token_url();
        let req = HttpRequest {
            method: Method::Post,
            url,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: Some(self.session.creds.form_body()),
        };
        let started = self.clock.now_ms();
        let sent = self.send_with_retry(&req)?;
        let r = &sent.response;
        if (200..300).contains(&r.status) {
            let t = token::parse_token_response(&r.body, &req.url, started)?;
            self.redactor.add(&t.value);
            self.session.token = Some(t);
            return Ok(());
        }
        if let Some(e) =
            token::map_token_failure(r.status, &r.body, &self.session.creds, &self.redactor)
        {
            return Err(e);
        }
        Err(SyncError::Http(errors::status_failure(
            req.method,
            &req.url,
            r,
            sent.attempts,
            &self.redactor,
        )))
    }

    /// Sends `method url` to Graph with the bearer token, `Accept: application/json`, the
    /// `extra` headers and `body`, throttling and transport failures retried. A 401 (the
    /// token expired or was revoked early) signs in again and sends once more; the answer
    /// then, whatever its status, is the caller's to read, with the attempts it took.
    pub(super) fn send_authorised(
        &mut self,
        method: Method,
        url: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Sent, SyncError> {
        let mut renewed = false;
        loop {
            let bearer = format!("Bearer {}", self.sign_in()?);
            let mut headers = Vec::with_capacity(2 + extra.len());
            headers.push(("Authorization".to_owned(), bearer));
            headers.push(("Accept".to_owned(), "application/json".to_owned()));
            headers.extend(
                extra
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            let req = HttpRequest {
                method,
                url: url.to_owned(),
                headers,
                body: body.map(<[u8]>::to_vec),
            };
            let sent = self.send_with_retry(&req)?;
            if sent.response.status == 401 && !renewed {
                renewed = true;
                self.fetch_token()?;
                continue;
            }
            return Ok(sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fakes::{FakeClock, FakeHttp, fake_jwt, json_response, token_response};
    use crate::graph::client::GraphClient;
    use crate::graph::client::tests::{NEED, creds};
    use crate::types::{AuthFailure, SyncError};

    #[test]
    fn gets_with_bearer_token_and_caches_it() {
        let token = fake_jwt(&["User.Read.All"]);
        let mut http = FakeHttp::new();
        http.push_ok(
            "POST https://login.test/tenant-1/oauth2/v2.0/token",
            token_response(&token, 3600),
        );
        http.push_ok(
            "GET https://graph.test/v1.0/a",
            json_response(200, r#"{"x":1}"#),
        );
        http.push_ok(
            "GET https://graph.test/v1.0/b",
            json_response(200, r#"{"x":2}"#),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        assert_eq!(
            c.get("https://graph.test/v1.0/a", NEED).unwrap(),
            br#"{"x":1}"#
        );
        assert_eq!(
            c.get("https://graph.test/v1.0/b", NEED).unwrap(),
            br#"{"x":2}"#
        );
        assert_eq!(c.stats.requests, 3);
        drop(c);
        let sent = &http.sent;
        assert_eq!(sent.len(), 3);
        let auth = sent[1]
            .headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .unwrap();
        assert_eq!(auth.1, format!("Bearer {token}"));
        assert!(sent[1].body.is_none());
        http.assert_done();
    }

    #[test]
    fn renews_token_five_minutes_before_expiry() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(3_600_000 - RENEW_MARGIN_TEST);
        c.get("https://graph.test/a", NEED).unwrap();
        drop(c);
        http.assert_done();
        assert!(
            http.sent[3]
                .headers
                .iter()
                .any(|(_, v)| v == "Bearer tok-2")
        );
    }
    const RENEW_MARGIN_TEST: u64 = 5 * 60 * 1000 - 1;

    #[test]
    fn renews_once_after_401() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok("GET https://graph.test/a", json_response(401, r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}"#));
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        drop(c);
        http.assert_done();

        // A second 401 is an error, not a loop.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"nope"}}"#,
            ),
        );
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"nope"}}"#,
            ),
        );
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.get("https://graph.test/a", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(401));
        assert_eq!(f.graph_code.as_deref(), Some("InvalidAuthenticationToken"));
        drop(c);
        http.assert_done();
    }

    #[test]
    fn token_endpoint_errors() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", json_response(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Auth(a) = c.get("https://graph.test/x", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(a.failure, AuthFailure::InvalidSecret);
        drop(c);
        http.assert_done();
        // The token request carries the form, and nothing else does.
        assert!(
            String::from_utf8_lossy(http.sent[0].body.as_deref().unwrap())
                .contains("client_secret=the-client-secret")
        );

        let mut http = FakeHttp::new();
        http.push_ok(
            "POST https://login.test/",
            json_response(404, "<html>not here</html>"),
        );
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.sign_in().unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(404));
        assert_eq!(f.url, "https://login.test/tenant-1/oauth2/v2.0/token");
    }

    #[test]
    fn a_short_lived_token_is_renewed_with_a_quarter_of_its_life_left() {
        // 600 s: renewed when less than min(300 s, 150 s) = 150 s is left, i.e. at 450 s.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 600));
        for _ in 0..3 {
            http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        }
        http.push_ok("POST https://login.test/", token_response("tok-2", 600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(300_000);
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(149_999);
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(1);
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(c.stats.requests, 6, "two token requests for four GETs");
        drop(c);
        http.assert_done();
        let bearers: Vec<_> = http
            .sent
            .iter()
            .filter_map(|r| r.headers.iter().find(|(n, _)| n == "Authorization"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            bearers,
            vec![
                "Bearer tok-1",
                "Bearer tok-1",
                "Bearer tok-1",
                "Bearer tok-2"
            ]
        );
    }
}
