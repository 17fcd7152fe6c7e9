//! App-only sign-in with the OAuth 2.0 client-credentials grant of the Microsoft identity
//! platform: the token request (the app proves itself with a client secret or a client
//! assertion, see [`super::assertion`]), the token response, the run's token cache
//! (renewed when less than min(5 minutes, a quarter of its lifetime) is left), the JWT
//! `roles` claim, and AADSTS errors mapped to typed `auth-error`s an admin can act on.
//! Nothing here ever puts the secret, an assertion, the request body or a token into an
//! error.

use serde::Deserialize;

use super::assertion::{self, AssertionFacts};
use crate::redact::Redactor;
use crate::types::{AuthError, AuthFailure, Cloud, HttpFailure, SyncError};
use crate::url::{display_url, form_encode, path_segment_encode};

/// Renew a token at most this long before it expires.
pub const RENEW_BEFORE_MS: u64 = 5 * 60 * 1000;

/// How long before expiry a token of `lifetime_ms` is renewed: five minutes, or a quarter
/// of its lifetime when that is shorter, so that a short-lived token is still used for
/// three quarters of its life instead of being renewed before every request.
pub fn renew_margin_ms(lifetime_ms: u64) -> u64 {
    RENEW_BEFORE_MS.min(lifetime_ms / 4)
}

/// The Microsoft Graph resource of a cloud: its service root, which is also the
/// application ID URI a token is asked for (`{resource}/.default`). From the table
/// "Microsoft Graph and Graph Explorer service root endpoints" of
/// microsoftgraph/microsoft-graph-docs-contrib: concepts/deployments.md ("Access tokens
/// acquired for a national cloud deployment are not interchangeable with those acquired
/// for the global service or any other national cloud"). It does not follow the Graph base
/// URL the engine sends requests to: that may be overridden (a proxy, a simulator) while
/// the token must still be for the tenant's cloud.
pub fn graph_resource(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "https://graph.microsoft.com",
        Cloud::UsGov => "https://graph.microsoft.us",
        Cloud::UsGovDod => "https://dod-graph.microsoft.us",
        Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
    }
}

/// A cloud as a tenant config names it (`cloud = "us-gov"`).
pub fn cloud_name(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "global",
        Cloud::UsGov => "us-gov",
        Cloud::UsGovDod => "us-gov-dod",
        Cloud::China => "china",
    }
}

/// How the app proves who it is (the tenant's `credential-kind`).
pub enum Proof {
    /// The client secret, read once for the run; it lives only here.
    Secret(String),
    /// A client assertion the host makes for each token request
    /// (`credentials.client-assertion`); the engine keeps none.
    Assertion,
}

/// What one token request sends to prove the app's identity.
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    /// `client_secret`.
    Secret(&'a str),
    /// `client_assertion_type` and `client_assertion` (certificate-credentials.md, "Using a
    /// client assertion").
    Assertion(&'a str),
}

/// What signing in needs.
pub struct Credentials {
    /// Identity platform base URL, no trailing slash.
    pub login: String,
    /// Graph base URL, no trailing slash (where requests go).
    pub graph: String,
    /// The tenant's cloud: the token is for its Graph resource ([`graph_resource`]).
    pub cloud: Cloud,
    pub tenant_id: String,
    pub client_id: String,
    pub proof: Proof,
}

impl Credentials {
    /// `{login}/{tenant-id}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login,
            path_segment_encode(&self.tenant_id)
        )
    }

    /// The `scope` of the token request: the cloud's Graph resource with `/.default`
    /// ("the resource identifier (application ID URI) of the resource you want, affixed
    /// with the .default suffix", MicrosoftDocs/entra-docs:
    /// docs/identity-platform/v2-oauth2-client-creds-grant-flow.md).
    pub fn scope(&self) -> String {
        format!("{}/.default", graph_resource(self.cloud))
    }

    /// The form body of a token request that proves the app's identity with `auth`.
    pub fn form_body(&self, auth: ClientAuth<'_>) -> Vec<u8> {
        let proof_len = match auth {
            ClientAuth::Secret(v) | ClientAuth::Assertion(v) => v.len(),
        };
        let mut s = String::with_capacity(192 + proof_len);
        s.push_str("grant_type=client_credentials&client_id=");
        form_encode(&mut s, &self.client_id);
        match auth {
            ClientAuth::Secret(secret) => {
                s.push_str("&client_secret=");
                form_encode(&mut s, secret);
            }
            ClientAuth::Assertion(jwt) => {
                s.push_str("&client_assertion_type=");
                form_encode(&mut s, assertion::ASSERTION_TYPE);
                s.push_str("&client_assertion=");
                form_encode(&mut s, jwt);
            }
        }
        s.push_str("&scope=");
        form_encode(&mut s, &self.scope());
        s.into_bytes()
    }
}

/// An access token and when (monotonic ms) to stop using it.
pub struct AccessToken {
    pub value: String,
    /// Monotonic time after which the token must be renewed before use.
    pub renew_at_ms: u64,
}

impl AccessToken {
    pub fn usable_at(&self, now_ms: u64) -> bool {
        now_ms < self.renew_at_ms
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token_type: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<Seconds>,
    access_token: Option<String>,
}

/// `expires_in` is a number in v2.0 responses but a string in some older ones.
enum Seconds {
    Number(u64),
    Text(String),
}

/// Reads a number or a string (a visitor rather than `#[serde(untagged)]`, which would
/// buffer the value and pull a lot of code into the component).
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Seconds>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Seconds>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number of seconds")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Seconds::Number(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Seconds::Text(v.to_owned())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Reads a successful token response. `requested_at_ms` is when the request was sent.
pub fn parse_token_response(
    body: &[u8],
    token_url: &str,
    requested_at_ms: u64,
) -> Result<AccessToken, SyncError> {
    let bad = |message: String| {
        SyncError::BadResponse(HttpFailure {
            url: display_url(token_url),
            status: Some(200),
            graph_code: None,
            message,
        })
    };
    // The serde message could quote a value from the body (a token): report only where.
    let r: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the token endpoint's answer is not the expected JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let value = r
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("the token endpoint's answer has no access_token".into()))?;
    if let Some(tt) = &r.token_type
        && !tt.eq_ignore_ascii_case("bearer")
    {
        return Err(bad(format!(
            "the token endpoint issued a token of type {tt:?}, expected Bearer"
        )));
    }
    if value.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(bad(
            "the access token contains characters that cannot go in an HTTP header".into(),
        ));
    }
    let expires_in_s = match r.expires_in {
        Some(Seconds::Number(n)) => n,
        Some(Seconds::Text(s)) => s.trim().parse().map_err(|_| {
            bad("the token endpoint's expires_in is not a number of seconds".into())
        })?,
        None => return Err(bad("the token endpoint's answer has no expires_in".into())),
    };
    let lifetime_ms = expires_in_s.saturating_mul(1000);
    // Renew 5 minutes early, or with a quarter of the lifetime left for a token that lives
    // less than 20 minutes.
    let margin = renew_margin_ms(lifetime_ms);
    Ok(AccessToken {
        value,
        renew_at_ms: requested_at_ms.saturating_add(lifetime_ms - margin),
    })
}

#[derive(Deserialize)]
struct AadError {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// If the body is an identity-platform error (`{"error": "...", "error_description":
/// "AADSTS...: ..."}`), the typed `auth` error for it; otherwise `None`. The description
/// Microsoft gave is quoted masked by `redactor` (a token endpoint or proxy may echo the
/// secret or the assertion), masked before it is cut to length. `assertion`: what the
/// client assertion the request carried says about itself (none with a client secret),
/// for the advice on a refused assertion.
pub fn map_token_failure(
    status: u16,
    body: &[u8],
    creds: &Credentials,
    assertion: Option<&AssertionFacts>,
    redactor: &Redactor,
) -> Option<SyncError> {
    let e: AadError = serde_json::from_slice(body).ok()?;
    let error = e.error?;
    let description = e.error_description.unwrap_or_default();
    let aadsts = e
        .error_codes
        .first()
        .copied()
        .or_else(|| aadsts_in(&description));
    // The description's first line is Microsoft's explanation; the rest is trace ids.
    let detail = redactor.truncated(description.lines().next().unwrap_or("").trim(), 400);
    let code = aadsts.map(|c| format!("AADSTS{c}")).unwrap_or(error);
    // A refused client assertion (`invalid-assertion`): its own codes, in
    // `assertion::refusal`.
    let refused = aadsts.and_then(|c| assertion::refusal(c, assertion, creds));
    let (failure, advice) = match refused {
        Some(advice) => (AuthFailure::InvalidAssertion, advice),
        None => failure_of(aadsts, creds),
    };
    let mut message = format!("Sign-in failed ({code}, HTTP {status}): {advice}");
    if !detail.is_empty() {
        message.push_str(" Microsoft said: ");
        message.push_str(&detail);
    }
    Some(SyncError::Auth(AuthError {
        failure,
        aadsts,
        message,
    }))
}

/// The failure and the advice for an AADSTS code that is not about a client assertion.
fn failure_of(aadsts: Option<u32>, creds: &Credentials) -> (AuthFailure, String) {
    let (tenant_id, client_id) = (creds.tenant_id.as_str(), creds.client_id.as_str());
    match aadsts {
        Some(7_000_215) => (
            AuthFailure::InvalidSecret,
            format!(
                "the client secret configured for app {client_id} is wrong. In the Microsoft \
                 Entra admin center, open App registrations > {client_id} > Certificates & \
                 secrets, and configure the secret's Value (not its Secret ID) as this \
                 tenant's client-secret."
            ),
        ),
        Some(7_000_222) => (
            AuthFailure::ExpiredSecret,
            format!(
                "the client secret of app {client_id} has expired and must be rotated: in the \
                 Microsoft Entra admin center, open App registrations > {client_id} > \
                 Certificates & secrets, add a new client secret, and configure its Value as \
                 this tenant's client-secret."
            ),
        ),
        Some(700_016) => (
            AuthFailure::AppNotFound,
            format!(
                "no application with client id {client_id} was found in the directory of \
                 tenant {tenant_id}. Check the client id, and that an administrator of this \
                 tenant has added the app (admin consent to a multi-tenant app)."
            ),
        ),
        Some(90_002) | Some(90_023) => (
            AuthFailure::TenantNotFound,
            format!(
                "tenant {tenant_id} was not found. Check the tenant id (a directory GUID or a \
                 verified domain) and that the tenant is in the configured cloud."
            ),
        ),
        // AADSTS70011 InvalidScope, "The scope requested by the app is invalid"
        // (MicrosoftDocs/entra-docs: docs/identity-platform/reference-error-codes.md), with
        // the 400 `invalid_scope` body of v2-oauth2-client-creds-grant-flow.md ("Error
        // response"). The engine always asks for `{cloud's Graph}/.default`, so the scope
        // is refused when the identity platform it reached serves another cloud: the
        // tenant (or the sign-in endpoint) is not in the configured cloud.
        Some(70_011) => (
            AuthFailure::Other,
            format!(
                "the identity platform refused the token scope {scope}, the Microsoft Graph \
                 resource of the {cloud} cloud this tenant is configured for. Tenant \
                 {tenant_id} is probably in another Microsoft cloud than configured: set \
                 `cloud` in the tenant config to the tenant's cloud (global, us-gov, \
                 us-gov-dod or china), and if the endpoints are overridden, point them at \
                 that cloud's sign-in and Graph hosts (or a proxy for them).",
                scope = creds.scope(),
                cloud = cloud_name(creds.cloud),
            ),
        ),
        Some(65_001) | Some(650_057) | Some(500_011) => (
            AuthFailure::ConsentMissing,
            format!(
                "an administrator of tenant {tenant_id} has not consented to app {client_id} \
                 (or to its Microsoft Graph permissions). Grant admin consent in the Microsoft \
                 Entra admin center: Enterprise applications > the app > Permissions."
            ),
        ),
        _ => (
            AuthFailure::Other,
            format!("signing in to tenant {tenant_id} with app {client_id} failed."),
        ),
    }
}

/// The number in the first `AADSTSnnnn` of a text.
fn aadsts_in(text: &str) -> Option<u32> {
    let at = text.find("AADSTS")?;
    let digits: String = text[at + 6..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[derive(Deserialize)]
struct Claims {
    /// Absent (or null) when the app holds no application permission.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// The directory (tenant) id the token was issued for.
    #[serde(default)]
    tid: Option<String>,
}

/// The claims of a JWT access token (signature not checked); `what` names the claim
/// wanted, for the error. Errors never contain the token.
fn claims(token: &str, what: &'static str) -> Result<Claims, &'static str> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("the access token is not a JWT (header.payload.signature)");
    };
    let bytes = base64url_decode(payload).ok_or("the access token's payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| what)
}

/// The directory (tenant) id of a JWT access token (`tid` claim), when it carries one
/// (access-token-claims-reference: "tid — the tenant the user [or app] is signing in to").
pub fn token_tenant_id(token: &str) -> Result<Option<String>, &'static str> {
    let claims = claims(
        token,
        "the access token's payload is not a JSON object with a tid",
    )?;
    Ok(claims.tid.filter(|t| !t.trim().is_empty()))
}

/// The application roles (`roles` claim) of a JWT access token. The signature is not
/// checked: the token came straight from the identity platform, and the roles only decide
/// what the engine reports. Errors never contain the token.
pub fn token_roles(token: &str) -> Result<Vec<String>, &'static str> {
    let claims = claims(
        token,
        "the access token's payload is not a JSON object with a roles list",
    )?;
    Ok(claims.roles.unwrap_or_default())
}

/// Decodes base64url, with or without padding.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover character (6 bits) cannot end valid base64.
    (bits < 6).then_some(out)
}

#[cfg(test)]
pub(crate) fn base64url_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            login: "https://login.microsoftonline.com".into(),
            graph: "https://graph.microsoft.com".into(),
            cloud: Cloud::Global,
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            proof: Proof::Secret("a+b/c=d&e f~".into()),
        }
    }

    #[test]
    fn token_request_is_form_encoded() {
        let c = creds();
        assert_eq!(
            c.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            String::from_utf8(c.form_body(ClientAuth::Secret("a+b/c=d&e f~"))).unwrap(),
            "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555\
             &client_secret=a%2Bb%2Fc%3Dd%26e+f%7E\
             &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        );
        // certificate-credentials.md, "Using a client assertion": the assertion instead of
        // the secret, with its fixed type.
        assert_eq!(
            String::from_utf8(c.form_body(ClientAuth::Assertion("eyJh.eyJp.c2ln-_"))).unwrap(),
            "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion=eyJh.eyJp.c2ln-_\
             &scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        );
    }

    #[test]
    fn parses_token_responses() {
        let t = parse_token_response(
            br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.eyJ1.c2ln"}"#,
            "https://login/t/oauth2/v2.0/token",
            1_000,
        )
        .unwrap();
        assert_eq!(t.value, "eyJ0.eyJ1.c2ln");
        assert_eq!(t.renew_at_ms, 1_000 + 3_599_000 - RENEW_BEFORE_MS);
        assert!(t.usable_at(1_000));
        assert!(!t.usable_at(t.renew_at_ms));

        // v1-style string expires_in; a short-lived token renews with a quarter left.
        let t = parse_token_response(
            br#"{"token_type":"bearer","expires_in":"120","access_token":"x"}"#,
            "u",
            0,
        )
        .unwrap();
        assert_eq!(t.renew_at_ms, 90_000);
        assert_eq!(renew_margin_ms(3_600_000), RENEW_BEFORE_MS);
        assert_eq!(renew_margin_ms(1_200_000), RENEW_BEFORE_MS);
        assert_eq!(renew_margin_ms(600_000), 150_000);
        assert_eq!(renew_margin_ms(0), 0);
    }

    #[test]
    fn bad_token_responses_are_typed_and_never_quote_the_body() {
        for body in [
            &br#"{"token_type":"Bearer","expires_in":"soon","access_token":"SECRET-TOKEN"}"#[..],
            br#"{"token_type":"Bearer","expires_in":3600}"#,
            br#"{"token_type":"pop","expires_in":3600,"access_token":"SECRET-TOKEN"}"#,
            br#"{"access_token":"SECRET-TOKEN"}"#,
            br#"{"access_token":["SECRET-TOKEN"]}"#,
            br#"{"token_type":"Bearer","expires_in":1,"access_token":"SECRET TOKEN"}"#,
            b"<html>SECRET-TOKEN</html>",
        ] {
            let e = parse_token_response(body, "https://login/t/oauth2/v2.0/token", 0)
                .err()
                .unwrap();
            let SyncError::BadResponse(f) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(f.url, "https://login/t/oauth2/v2.0/token");
            assert!(!format!("{e:?}").contains("SECRET"), "{e:?}");
        }
    }

    fn aad(code: u32, description: &str) -> Vec<u8> {
        serde_json::json!({
            "error": "invalid_client",
            "error_description": description,
            "error_codes": [code],
            "timestamp": "2024-05-01 12:00:00Z",
            "trace_id": "t",
            "correlation_id": "c",
        })
        .to_string()
        .into_bytes()
    }

    fn failure_of(code: u32) -> (AuthFailure, Option<u32>, String) {
        let body = aad(
            code,
            &format!("AADSTS{code}: Something happened.\r\nTrace ID: abc\r\nCorrelation ID: def"),
        );
        let creds = Credentials {
            tenant_id: "contoso.com".into(),
            client_id: "app-1".into(),
            ..creds()
        };
        match map_token_failure(401, &body, &creds, None, &Redactor::default()) {
            Some(SyncError::Auth(a)) => (a.failure, a.aadsts, a.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aadsts_codes_map_to_failures() {
        assert_eq!(failure_of(7_000_215).0, AuthFailure::InvalidSecret);
        assert_eq!(failure_of(7_000_222).0, AuthFailure::ExpiredSecret);
        assert_eq!(failure_of(700_016).0, AuthFailure::AppNotFound);
        assert_eq!(failure_of(90_002).0, AuthFailure::TenantNotFound);
        assert_eq!(failure_of(90_023).0, AuthFailure::TenantNotFound);
        assert_eq!(failure_of(65_001).0, AuthFailure::ConsentMissing);
        assert_eq!(failure_of(650_057).0, AuthFailure::ConsentMissing);
        assert_eq!(failure_of(500_011).0, AuthFailure::ConsentMissing);
        assert_eq!(failure_of(50_034).0, AuthFailure::Other);
        let (_, code, msg) = failure_of(7_000_222);
        assert_eq!(code, Some(7_000_222));
        assert!(msg.contains("expired"), "{msg}");
        assert!(msg.contains("rotated"), "{msg}");
        assert!(msg.contains("Certificates & secrets"), "{msg}");
        assert!(msg.contains("AADSTS7000222"), "{msg}");
        assert!(msg.contains("Something happened."), "{msg}");
        assert!(!msg.contains("Trace ID"), "{msg}");
        let (_, _, msg) = failure_of(7_000_215);
        assert!(msg.contains("app-1") && msg.contains("wrong"), "{msg}");
    }

    #[test]
    fn aadsts_code_from_description_when_codes_are_missing() {
        let body = br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#;
        let Some(SyncError::Auth(a)) =
            map_token_failure(400, body, &creds(), None, &Redactor::default())
        else {
            panic!()
        };
        assert_eq!(a.failure, AuthFailure::TenantNotFound);
        assert_eq!(a.aadsts, Some(90_002));
        assert!(map_token_failure(500, b"<html>", &creds(), None, &Redactor::default()).is_none());
        assert!(map_token_failure(500, b"{}", &creds(), None, &Redactor::default()).is_none());
    }

    #[test]
    fn the_scope_is_the_clouds_graph_resource_whatever_the_base_url() {
        for (cloud, scope) in [
            (
                Cloud::Global,
                "https%3A%2F%2Fgraph.microsoft.com%2F.default",
            ),
            (Cloud::UsGov, "https%3A%2F%2Fgraph.microsoft.us%2F.default"),
            (
                Cloud::UsGovDod,
                "https%3A%2F%2Fdod-graph.microsoft.us%2F.default",
            ),
            (
                Cloud::China,
                "https%3A%2F%2Fmicrosoftgraph.chinacloudapi.cn%2F.default",
            ),
        ] {
            // Overridden base URLs (a proxy, a simulator) do not change the resource.
            let c = Credentials {
                login: "http://127.0.0.1:4000".into(),
                graph: "http://127.0.0.1:5000".into(),
                cloud,
                ..creds()
            };
            let body = String::from_utf8(c.form_body(ClientAuth::Assertion("a.b.c"))).unwrap();
            assert!(body.ends_with(&format!("&scope={scope}")), "{body}");
            assert!(!body.contains("127.0.0.1"), "{body}");
        }
    }

    #[test]
    fn an_invalid_scope_says_the_tenant_is_in_another_cloud() {
        // The "Error response" example of v2-oauth2-client-creds-grant-flow.md.
        let body = serde_json::json!({
            "error": "invalid_scope",
            "error_description": "AADSTS70011: The provided value for the input parameter \
                'scope' is not valid. The scope https://graph.microsoft.com/.default is not \
                valid.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: \
                fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2016-01-09 02:02:12Z",
            "error_codes": [70011],
            "timestamp": "2016-01-09 02:02:12Z",
            "trace_id": "255d1aef-8c98-452f-ac51-23d051240864",
            "correlation_id": "fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7",
        })
        .to_string();
        let body = body.as_bytes();
        let Some(SyncError::Auth(a)) =
            map_token_failure(400, body, &creds(), None, &Redactor::default())
        else {
            panic!()
        };
        assert_eq!(a.failure, AuthFailure::Other);
        assert_eq!(a.aadsts, Some(70_011));
        for want in [
            "AADSTS70011",
            "another Microsoft cloud",
            "set `cloud` in the tenant config",
            "https://graph.microsoft.com/.default",
            "global cloud",
            "is not valid",
        ] {
            assert!(a.message.contains(want), "{want}: {}", a.message);
        }
        assert!(!a.message.contains("Trace ID"), "{}", a.message);
        let us = Credentials {
            cloud: Cloud::UsGov,
            ..creds()
        };
        let Some(SyncError::Auth(a)) =
            map_token_failure(400, body, &us, None, &Redactor::default())
        else {
            panic!()
        };
        assert!(
            a.message.contains("https://graph.microsoft.us/.default"),
            "{}",
            a.message
        );
        assert!(a.message.contains("us-gov cloud"), "{}", a.message);
    }

    #[test]
    fn reads_roles_from_jwt() {
        let payload = base64url_encode(
            br#"{"aud":"https://graph.microsoft.com","roles":["User.Read.All","Reports.Read.All"]}"#,
        );
        let token = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(
            token_roles(&token).unwrap(),
            vec!["User.Read.All", "Reports.Read.All"]
        );
        let no_roles = format!("h.{}.s", base64url_encode(br#"{"aud":"x"}"#));
        assert!(token_roles(&no_roles).unwrap().is_empty());
        let null_roles = format!("h.{}.s", base64url_encode(br#"{"roles":null}"#));
        assert!(token_roles(&null_roles).unwrap().is_empty());
        assert!(token_roles("opaque-token").is_err());
        assert!(token_roles("a.!!!.c").is_err());
        assert!(token_roles(&format!("a.{}.c", base64url_encode(b"[1]"))).is_err());
    }

    #[test]
    fn base64url_round_trips() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xff, 0xfe, 0x00],
        ] {
            assert_eq!(base64url_decode(&base64url_encode(data)).unwrap(), data);
        }
        assert_eq!(base64url_decode("Zm9vYg==").unwrap(), b"foob");
        assert!(base64url_decode("Z").is_none());
    }
}
