//! The login host's admin consent endpoint: a tenant's administrator grants a
//! multi-tenant app its permissions, which creates the app's service principal
//! in the tenant. Until then the token endpoint does not know the app there
//! (AADSTS700016, `token.rs`).
//!
//! `GET /{tenant}/v2.0/adminconsent?client_id&scope&redirect_uri&state` shows a
//! page where the "administrator" accepts or declines (one form, two buttons,
//! posting back to the same URL); the POST redirects to `redirect_uri` with the
//! outcome. The v1 endpoint `GET /{tenant}/adminconsent?client_id&state&redirect_uri`
//! (no `scope`) works the same with its own response parameters.
//!
//! Pages relied on (MicrosoftDocs/entra-docs):
//! - docs/identity-platform/v2-admin-consent.md: the request (`tenant` "in GUID
//!   or friendly name format OR generically referenced with `organizations`";
//!   `client_id`, `redirect_uri` "must exactly match one of the redirect URIs
//!   that you registered", `state`, `scope` Required), the successful response
//!   (`admin_consent=True&tenant=…&scope=…&state=…`) and the error response
//!   (`admin_consent=True&error=consent_required&error_description=AADSTS65004%3a+The+resource+owner+or+authorization+server+denied+the+request.%0d%0aTrace+ID…&state=…`).
//! - docs/identity-platform/v2-oauth2-client-creds-grant-flow.md, "Request the
//!   permissions from a directory admin": the v1 endpoint, its success
//!   (`tenant=…&state=…&admin_consent=True`) and its refusal
//!   (`error=permission_denied&error_description=The+admin+canceled+the+request`).
//! - docs/identity-platform/reference-error-codes.md: AADSTS700016
//!   UnauthorizedClient_DoesNotMatchRequest, AADSTS50011 InvalidReplyTo,
//!   AADSTS900144, AADSTS70011 InvalidScope, AADSTS90002, AADSTS65004.
//!
//! Errors about the client or the redirect URI are shown on an error page,
//! never redirected: RFC 6749 §4.1.2.1, "If the request fails due to a
//! missing, invalid, or mismatching redirection URI, or if the client
//! identifier is missing or invalid, the authorization server SHOULD inform the
//! resource owner of the error and MUST NOT automatically redirect". Other
//! errors (the scope) are redirected, as the v2 page's error response is.
//! AADSTS50011's text is the service's own as public error reports show it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};

use crate::server::Shared;
use crate::token::{StsError, missing, resolve_tenant, sts};
use crate::util::{
    form_urlencode, html_escape, parse_form, percent_decode, split_query, sts_timestamp,
};

/// Which admin consent endpoint was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/{tenant}/v2.0/adminconsent` (v2-admin-consent.md).
    V2,
    /// `/{tenant}/adminconsent` (v2-oauth2-client-creds-grant-flow.md).
    V1,
}

/// A request's parameters, checked.
struct Consent {
    redirect_uri: String,
    scope: Option<String>,
    state: Option<String>,
}

/// An outcome: an error page, or a redirect.
enum Outcome {
    Page(u16, String),
    Redirect(String),
}

pub(crate) async fn handle(
    shared: &Shared,
    tenant: &str,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("").to_string();
    let params: Vec<(String, String)> = split_query(&query)
        .map(|(k, v)| {
            (
                percent_decode(k, true).unwrap_or_default(),
                percent_decode(v, true).unwrap_or_default(),
            )
        })
        .collect();
    let method = req.method().clone();
    let outcome = match check(shared, tenant, endpoint, &params) {
        Err(outcome) => outcome,
        Ok(consent) if method == Method::GET => {
            let action = format!("{}?{}", req.uri().path(), query);
            Outcome::Page(200, consent_page(shared, &consent, &action))
        }
        Ok(consent) if method == Method::POST => {
            let body = Limited::new(req.into_body(), 16 * 1024)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let form = std::str::from_utf8(&body)
                .ok()
                .and_then(parse_form)
                .unwrap_or_default();
            let decision = form
                .iter()
                .find(|(k, _)| k == "decision")
                .map(|(_, v)| v.as_str());
            match decision {
                Some("approve") => {
                    shared.set_consented(true);
                    Outcome::Redirect(approved(shared, endpoint, &consent))
                }
                Some("decline") => Outcome::Redirect(declined(shared, endpoint, &consent)),
                _ => Outcome::Page(
                    400,
                    error_page(
                        shared,
                        &sts(
                            400,
                            "invalid_request",
                            90_004,
                            "The request isn't properly formatted.",
                        ),
                    ),
                ),
            }
        }
        Ok(_) => Outcome::Page(
            400,
            error_page(
                shared,
                &sts(
                    400,
                    "invalid_request",
                    900_561,
                    format!(
                        "The endpoint only accepts GET, POST requests. Received a {method} request."
                    ),
                ),
            ),
        ),
    };
    match outcome {
        Outcome::Page(status, html) => {
            let mut r = Response::new(Full::new(Bytes::from(html)));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache"),
            );
            r
        }
        Outcome::Redirect(location) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::FOUND;
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    r.headers_mut().insert(LOCATION, v);
                }
                Err(_) => *r.status_mut() = StatusCode::BAD_REQUEST,
            }
            r.headers_mut().insert(
                CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache"),
            );
            r
        }
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Whether the app may be sent back to `uri`: one of `SimConfig::redirect_uris`
/// exactly, or, when none is configured, any loopback URL
/// (`http://127.0.0.1…`, `http://localhost…`), as a local app registers.
fn redirect_allowed(shared: &Shared, uri: &str) -> bool {
    let registered = &shared.config.redirect_uris;
    if !registered.is_empty() {
        return registered.iter().any(|r| r == uri);
    }
    ["http://127.0.0.1", "http://localhost"].iter().any(|base| {
        uri.strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
    })
}

fn check(
    shared: &Shared,
    tenant: &str,
    endpoint: Endpoint,
    params: &[(String, String)],
) -> Result<Consent, Outcome> {
    let page = |e: StsError| Outcome::Page(e.status, error_page(shared, &e));
    // `organizations` (and `common`, which the v1 page uses; the v2 page
    // advises against it for personal accounts only) stand for the tenant the
    // administrator signs in to: the simulated one.
    let lower = tenant.to_ascii_lowercase();
    if lower != "organizations" && lower != "common" {
        resolve_tenant(shared, tenant).map_err(page)?;
    }
    let client_id = param(params, "client_id").ok_or_else(|| page(missing("client_id")))?;
    if !client_id.eq_ignore_ascii_case(&shared.config.client_id) {
        return Err(page(sts(
            400,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                shared.tenant.name
            ),
        )));
    }
    let redirect_uri =
        param(params, "redirect_uri").ok_or_else(|| page(missing("redirect_uri")))?;
    if !redirect_allowed(shared, redirect_uri) {
        return Err(page(sts(
            400,
            "invalid_request",
            50_011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        )));
    }
    let state = param(params, "state").map(str::to_string);
    let redirect_error = |e: StsError| {
        Outcome::Redirect(redirect_with_error(
            shared,
            endpoint,
            redirect_uri,
            &e,
            state.as_deref(),
        ))
    };
    let scope = match endpoint {
        Endpoint::V1 => None,
        Endpoint::V2 => {
            let scope = param(params, "scope").ok_or_else(|| redirect_error(missing("scope")))?;
            if let Some(bad) = scope.split_whitespace().find(|s| !scope_known(shared, s)) {
                return Err(redirect_error(sts(
                    400,
                    "invalid_scope",
                    70_011,
                    format!(
                        "The provided value for the input parameter 'scope' is not valid. The scope {bad} is not valid."
                    ),
                )));
            }
            Some(scope.to_string())
        }
    };
    Ok(Consent {
        redirect_uri: redirect_uri.to_string(),
        scope,
        state,
    })
}

/// A scope the consent can be for: the OpenID Connect scopes ("This can
/// include the OIDC scopes (`openid`, `profile`, `email`)") and
/// `offline_access`, or a permission of the cloud's Microsoft Graph (by its
/// URI or application id), static (`/.default`) or dynamic.
fn scope_known(shared: &Shared, scope: &str) -> bool {
    const OIDC: [&str; 4] = ["openid", "profile", "email", "offline_access"];
    if OIDC.iter().any(|s| s.eq_ignore_ascii_case(scope)) {
        return true;
    }
    [
        shared.config.cloud.graph_resource(),
        "00000003-0000-0000-c000-000000000000",
    ]
    .iter()
    .any(|resource| {
        scope.len() > resource.len() + 1
            && scope[..resource.len()].eq_ignore_ascii_case(resource)
            && scope.as_bytes()[resource.len()] == b'/'
    })
}

/// Appends `pairs` (form-encoded) to `uri`'s query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in pairs {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form_urlencode(v));
        sep = '&';
    }
    out
}

fn approved(shared: &Shared, endpoint: Endpoint, c: &Consent) -> String {
    let tid = shared.tenant.id.as_str();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    match endpoint {
        // "admin_consent=True&tenant=…&scope=…&state=…"
        Endpoint::V2 => {
            pairs.push(("admin_consent", "True"));
            pairs.push(("tenant", tid));
            if let Some(scope) = &c.scope {
                pairs.push(("scope", scope));
            }
            if let Some(state) = &c.state {
                pairs.push(("state", state));
            }
        }
        // "tenant=…&state=…&admin_consent=True"
        Endpoint::V1 => {
            pairs.push(("tenant", tid));
            if let Some(state) = &c.state {
                pairs.push(("state", state));
            }
            pairs.push(("admin_consent", "True"));
        }
    }
    with_query(&c.redirect_uri, &pairs)
}

fn declined(shared: &Shared, endpoint: Endpoint, c: &Consent) -> String {
    match endpoint {
        Endpoint::V2 => {
            let e = sts(
                400,
                "consent_required",
                65_004,
                "The resource owner or authorization server denied the request.",
            );
            redirect_with_error(shared, endpoint, &c.redirect_uri, &e, c.state.as_deref())
        }
        Endpoint::V1 => {
            let mut pairs = vec![
                ("error", "permission_denied"),
                ("error_description", "The admin canceled the request"),
            ];
            if let Some(state) = &c.state {
                pairs.push(("state", state));
            }
            with_query(&c.redirect_uri, &pairs)
        }
    }
}

/// `…?admin_consent=True&error=…&error_description=AADSTSn: …\r\nTrace ID: …&state=…`
/// (v2-admin-consent.md, "Error response"; the v1 endpoint's errors carry no
/// `admin_consent`).
fn redirect_with_error(
    shared: &Shared,
    endpoint: Endpoint,
    redirect_uri: &str,
    e: &StsError,
    state: Option<&str>,
) -> String {
    let description = describe(shared, e);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if endpoint == Endpoint::V2 {
        pairs.push(("admin_consent", "True"));
    }
    pairs.push(("error", e.error));
    pairs.push(("error_description", &description));
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    with_query(redirect_uri, &pairs)
}

/// `AADSTSn: message\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …`.
fn describe(shared: &Shared, e: &StsError) -> String {
    format!(
        "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
        e.code,
        e.message,
        shared.next_guid(),
        shared.next_guid(),
        sts_timestamp(shared.now())
    )
}

fn error_page(shared: &Shared, e: &StsError) -> String {
    let description = describe(shared, e);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head>\n<body><h1>Sorry, but we\u{2019}re having trouble signing you in.</h1>\n<p id=\"error\">{}</p></body></html>\n",
        html_escape(&description).replace("\r\n", "<br>")
    )
}

fn consent_page(shared: &Shared, c: &Consent, action: &str) -> String {
    let scope = c
        .scope
        .as_deref()
        .unwrap_or("the permissions the app requires");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Permissions requested</title></head>\n<body><h1>Permissions requested</h1>\n\
<p>Accept for your organization: <strong id=\"tenant\">{tenant}</strong></p>\n\
<p>Application <code id=\"client_id\">{client_id}</code> asks for <code id=\"scope\">{scope}</code>.</p>\n\
<form method=\"post\" action=\"{action}\">\n\
<button type=\"submit\" name=\"decision\" value=\"decline\">Cancel</button>\n\
<button type=\"submit\" name=\"decision\" value=\"approve\">Accept</button>\n\
</form></body></html>\n",
        tenant = html_escape(&shared.tenant.name),
        client_id = html_escape(&shared.config.client_id),
        scope = html_escape(scope),
        action = html_escape(action),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimConfig, TenantSpec};

    fn shared(redirects: &[&str]) -> Shared {
        let mut c = SimConfig::new(TenantSpec::new(5, 10));
        c.redirect_uris = redirects.iter().map(|s| s.to_string()).collect();
        Shared::new(
            c,
            "http://127.0.0.1:1".into(),
            "http://127.0.0.1:2".into(),
            "http://127.0.0.2:3".into(),
        )
    }

    #[test]
    fn redirect_uris() {
        let s = shared(&[]);
        for ok in [
            "http://127.0.0.1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/x",
        ] {
            assert!(redirect_allowed(&s, ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1/",
            "http://127.0.0.10/",
            "http://localhost.evil/",
            "http://example.com/",
        ] {
            assert!(!redirect_allowed(&s, bad), "{bad}");
        }
        let s = shared(&["https://app.example/consent"]);
        assert!(redirect_allowed(&s, "https://app.example/consent"));
        assert!(!redirect_allowed(&s, "https://app.example/consent/"));
        assert!(!redirect_allowed(&s, "http://127.0.0.1/"));
    }

    #[test]
    fn scopes() {
        let s = shared(&[]);
        for ok in [
            "https://graph.microsoft.com/.default",
            "https://graph.microsoft.com/User.Read.All",
            "00000003-0000-0000-c000-000000000000/.default",
            "openid",
            "offline_access",
        ] {
            assert!(scope_known(&s, ok), "{ok}");
        }
        for bad in [
            "https://graph.microsoft.com",
            "https://graph.microsoft.us/.default",
            "User.Read",
            "https://graph.microsoft.com.evil/.default",
        ] {
            assert!(!scope_known(&s, bad), "{bad}");
        }
    }

    #[test]
    fn query_building() {
        assert_eq!(
            with_query("http://localhost/cb", &[("a", "x y"), ("b", "1&2")]),
            "http://localhost/cb?a=x+y&b=1%262"
        );
        assert_eq!(
            with_query("http://localhost/cb?k=v", &[("a", "1")]),
            "http://localhost/cb?k=v&a=1"
        );
    }
}
