//! App-only sign-in with the OAuth 2.0 client-credentials grant of the Microsoft identity
//! platform: the token request, the token response, the run's token cache (renewed when
//! less than min(5 minutes, a quarter of its lifetime) is left), the JWT `roles` claim,
//! and AADSTS errors mapped to typed `auth-error`s an admin can act on. Nothing here ever
//! puts the secret, the request body or a token into an error.

use serde::Deserialize;

use crate::types::{AuthError, AuthFailure, HttpFailure, SyncError};
use crate::url::{display_url, form_encode, path_segment_encode};

/// Renew a token at most this long before it expires.
pub const RENEW_BEFORE_MS: u64 = 5 * 60 * 1000;

/// How long before expiry a token of `lifetime_ms` is renewed: five minutes, or a quarter
/// of its lifetime when that is shorter, so that a short-lived token is still used for
/// three quarters of its life instead of being renewed before every request.
pub fn renew_margin_ms(lifetime_ms: u64) -> u64 {
    RENEW_BEFORE_MS.min(lifetime_ms / 4)
}

/// What signing in needs. The secret lives only here, for the run.
pub struct Credentials {
    /// Identity platform base URL, no trailing slash.
    pub login: String,
    /// Graph base URL, no trailing slash (the token's audience).
    pub graph: String,
    pub tenant_id: String,
    pub client_id: String,
    pub secret: String,
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

    /// The form body of the token request.
    pub fn form_body(&self) -> Vec<u8> {
        let mut s = String::with_capacity(128 + self.secret.len());
        s.push_str("grant_type=client_credentials&client_id=");
        form_encode(&mut s, &self.client_id);
        s.push_str("&client_secret=");
        form_encode(&mut s, &self.secret);
        s.push_str("&scope=");
        form_encode(&mut s, &self.graph);
        form_encode(&mut s, "/.default");
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
/// "AADSTS...: ..."}`), the typed `auth` error for it; otherwise `None`.
pub fn map_token_failure(
    status: u16,
    body: &[u8],
    tenant_id: &str,
    client_id: &str,
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
    let detail = description
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(400)
        .collect::<String>();
    let code = aadsts.map(|c| format!("AADSTS{c}")).unwrap_or(error);
    let (failure, advice) = match aadsts {
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
}

/// The application roles (`roles` claim) of a JWT access token. The signature is not
/// checked: the token came straight from the identity platform, and the roles only decide
/// what the engine reports. Errors never contain the token.
pub fn token_roles(token: &str) -> Result<Vec<String>, &'static str> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("the access token is not a JWT (header.payload.signature)");
    };
    let bytes = base64url_decode(payload).ok_or("the access token's payload is not base64url")?;
    let claims: Claims = serde_json::from_slice(&bytes)
        .map_err(|_| "the access token's payload is not a JSON object with a roles list")?;
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
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            secret: "a+b/c=d&e f~".into(),
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
            String::from_utf8(c.form_body()).unwrap(),
            "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555\
             &client_secret=a%2Bb%2Fc%3Dd%26e+f%7E\
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
        match map_token_failure(401, &body, "contoso.com", "app-1") {
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
        let Some(SyncError::Auth(a)) = map_token_failure(400, body, "x", "app") else {
            panic!()
        };
        assert_eq!(a.failure, AuthFailure::TenantNotFound);
        assert_eq!(a.aadsts, Some(90_002));
        assert!(map_token_failure(500, b"<html>", "x", "app").is_none());
        assert!(map_token_failure(500, b"{}", "x", "app").is_none());
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
