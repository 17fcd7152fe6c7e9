//! The run's session with Graph: the app-only access token (fetched at sign-in, renewed
//! before it expires, and once after a 401; each token request proves the app's identity
//! with the client secret or a fresh client assertion from the host) and the one loop that
//! sends a request with it as the bearer token. Every request to Graph goes through [`GraphClient::send_authorised`];
//! only the token request itself and report downloads (which must not carry the token)
//! do not.

use super::assertion::{self, AssertionFacts};
use super::client::GraphClient;
use super::errors;
use super::retry::Sent;
use super::token::{self, AccessToken, ClientAuth, Credentials, Proof};
use crate::platform::{HttpRequest, Method};
use crate::types::{AuthError, AuthFailure, SyncError};

/// The credentials of the run and the access token issued with them, if any.
pub(super) struct Session {
    creds: Credentials,
    token: Option<AccessToken>,
    /// What the client assertion of the last token request said about itself (never the
    /// assertion), for the advice when the identity platform refuses it.
    assertion: Option<AssertionFacts>,
}

impl Session {
    pub(super) fn new(creds: Credentials) -> Self {
        Session {
            creds,
            token: None,
            assertion: None,
        }
    }

    /// The Graph base URL (no trailing slash).
    pub(super) fn graph(&self) -> &str {
        &self.creds.graph
    }

    pub(super) fn token_url(&self) -> String {
        self.creds.token_url()
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

    /// A client assertion for the token endpoint `audience`, asked of the host for this one
    /// request and kept by no one: the redactor learns it before it is sent, and the
    /// session keeps only what it says about itself.
    fn client_assertion(&mut self, audience: &str) -> Result<String, SyncError> {
        let creds = &self.session.creds;
        let Some(source) = self.assertions.as_deref_mut() else {
            return Err(assertion::credential_error(
                crate::bindings::m365sync::engine::credentials::CredentialError::NotConfigured(
                    "this call of the engine has no credentials import".into(),
                ),
                creds,
            ));
        };
        let given = source
            .client_assertion(audience)
            .map_err(|e| assertion::credential_error(e, creds))?;
        self.redactor.add(&given);
        let jwt = given.trim();
        if jwt.is_empty() {
            return Err(assertion::empty_assertion(creds));
        }
        self.redactor.add(jwt);
        self.session.assertion = Some(AssertionFacts::of(jwt, &creds.client_id));
        Ok(jwt.to_owned())
    }

    fn fetch_token(&mut self) -> Result<(), SyncError> {
        self.session.token = None;
        self.session.assertion = None;
        let url = self.session.creds.token_url();
        // The audience of an assertion is the token endpoint the request goes to
        // (certificate-credentials.md, "Claims (payload)": aud).
        let assertion = match self.session.creds.proof {
            Proof::Assertion => Some(self.client_assertion(&url)?),
            Proof::Secret(_) => None,
        };
        let body = match (&self.session.creds.proof, assertion.as_deref()) {
            (Proof::Secret(secret), _) => self.session.creds.form_body(ClientAuth::Secret(secret)),
            (Proof::Assertion, jwt) => self
                .session
                .creds
                .form_body(ClientAuth::Assertion(jwt.unwrap_or_default())),
        };
        drop(assertion);
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
            body: Some(body),
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
        if let Some(e) = token::map_token_failure(
            r.status,
            &r.body,
            &self.session.creds,
            self.session.assertion.as_ref(),
            &self.redactor,
        ) {
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

    /// The test tenant's credentials, signing in with client assertions.
    fn assertion_creds() -> crate::graph::token::Credentials {
        crate::graph::token::Credentials {
            proof: crate::graph::token::Proof::Assertion,
            ..creds()
        }
    }

    fn form_of(r: &crate::platform::HttpRequest) -> String {
        String::from_utf8(r.body.clone().unwrap()).unwrap()
    }

    #[test]
    fn an_assertion_is_asked_for_each_token_request_and_sent_instead_of_a_secret() {
        use crate::fakes::{FakeCredentials, cert_assertion};
        let mut http = FakeHttp::new();
        let mut assertions = FakeCredentials::default();
        assertions.push(Ok(format!("{}\n", cert_assertion(1))));
        assertions.push(Ok(cert_assertion(2)));
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"expired"}}"#,
            ),
        );
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, assertion_creds())
            .with_assertions(&mut assertions);
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(c.stats.requests, 4);
        drop(c);
        http.assert_done();
        // A fresh one for the renewal after the 401, for the exact token endpoint.
        assert_eq!(
            assertions.audiences,
            vec!["https://login.test/tenant-1/oauth2/v2.0/token"; 2]
        );
        let (first, second) = (form_of(&http.sent[0]), form_of(&http.sent[2]));
        assert!(
            first.starts_with(
                "grant_type=client_credentials&client_id=client-1\
                 &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                 &client_assertion="
            ),
            "{first}"
        );
        // Trimmed of the newline a token file ends with.
        assert!(
            first.contains(&format!("&client_assertion={}&scope=", cert_assertion(1))),
            "{first}"
        );
        assert!(second.contains(&cert_assertion(2)), "{second}");
        assert!(!first.contains("client_secret") && !second.contains("client_secret"));
        // Only the token requests carry it.
        assert!(http.sent[1].body.is_none() && http.sent[3].body.is_none());
    }

    #[test]
    fn a_refused_assertion_is_invalid_assertion_naming_the_certificate_and_never_quoting_it() {
        use crate::fakes::{FakeCredentials, cert_assertion};
        let jwt = cert_assertion(1);
        // An identity platform (or a proxy) that echoes what it was sent.
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": format!(
                "AADSTS700027: Client assertion failed signature validation. Assertion: {jwt}\r\nTrace ID: t"
            ),
            "error_codes": [700027],
        })
        .to_string();
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", json_response(401, &body));
        let mut assertions = FakeCredentials::default();
        assertions.push(Ok(jwt.clone()));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, assertion_creds())
            .with_assertions(&mut assertions);
        let e = c.sign_in().unwrap_err();
        let e = c.redactor().error(e);
        let SyncError::Auth(a) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(a.failure, AuthFailure::InvalidAssertion);
        assert_eq!(a.aadsts, Some(700_027));
        for want in [
            "AADSTS700027",
            &format!("SHA-256 thumbprint {}", "AB".repeat(32)),
            "Certificates & secrets > Certificates",
            "failed signature validation",
        ] {
            assert!(a.message.contains(want), "{want}: {}", a.message);
        }
        let shown = format!("{e:?}");
        let signature = jwt.rsplit('.').next().unwrap();
        assert!(!shown.contains(signature), "{shown}");
        assert!(!shown.contains(&jwt[..40]), "{shown}");
    }

    #[test]
    fn no_assertion_to_be_had_is_a_secret_error_and_nothing_is_sent() {
        use crate::bindings::m365sync::engine::credentials::CredentialError;
        use crate::fakes::FakeCredentials;
        for (answer, want) in [
            (
                Err(CredentialError::NotConfigured(
                    "no certificate or federated_token_file in tenant contoso".into(),
                )),
                "no certificate or federated_token_file in tenant contoso",
            ),
            (
                Err(CredentialError::Unreadable(
                    "key file /etc/m365sync/app.key: EACCES".into(),
                )),
                "key file /etc/m365sync/app.key: EACCES",
            ),
            (Ok(" \n".to_owned()), "empty client assertion"),
        ] {
            let mut http = FakeHttp::new();
            let mut assertions = FakeCredentials::default();
            assertions.push(answer);
            let mut clock = FakeClock::default();
            let mut c = GraphClient::new(&mut http, &mut clock, assertion_creds())
                .with_assertions(&mut assertions);
            let SyncError::Secret(m) = c.sign_in().unwrap_err() else {
                panic!()
            };
            assert!(m.contains(want), "{want}: {m}");
            drop(c);
            assert!(http.sent.is_empty());
        }
        // A client built without the import cannot make up for it.
        let mut http = FakeHttp::new();
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, assertion_creds());
        assert!(matches!(c.sign_in(), Err(SyncError::Secret(_))));
    }
}
