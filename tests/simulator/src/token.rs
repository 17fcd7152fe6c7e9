//! The login host: the identity platform's v2.0 token endpoint for the client
//! credentials grant, its AADSTS errors, the access tokens (JWTs) it issues,
//! and the bearer-token check Graph applies to them. The client authenticates
//! with its secret or with a client assertion (`assertions.rs`); the admin
//! consent endpoint is `consent.rs`.
//!
//! Request, success and error shapes:
//! MicrosoftDocs/entra-docs: docs/identity-platform/v2-oauth2-client-creds-grant-flow.md
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//! Error fields and AADSTS codes:
//! MicrosoftDocs/entra-docs: docs/identity-platform/reference-error-codes.md
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>).
//! The client secret is compared and never logged, echoed or recorded.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::Cloud;
use crate::odata::GraphError;
use crate::rng::{Rng, is_guid};
use crate::server::Shared;
use crate::util::{
    b64url_decode, b64url_encode, keyed_hash, parse_form, percent_decode, sts_timestamp,
};

/// An identity-platform error: HTTP status, OAuth `error`, AADSTS number and
/// message (without the `AADSTSnnnn: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StsError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

pub(crate) fn sts(
    status: u16,
    error: &'static str,
    code: u32,
    message: impl Into<String>,
) -> StsError {
    StsError {
        status,
        error,
        code,
        message: message.into(),
    }
}

/// AADSTS900144: "The request body must contain the following parameter: '{name}'."
pub(crate) fn missing(name: &str) -> StsError {
    sts(
        400,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// Microsoft Graph's application id: `{GRAPH_APP_ID}/.default` names Graph in
/// every cloud.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let correlation_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_guid(v))
        .map(str::to_string);
    let segments: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode(s, false).unwrap_or_else(|| s.to_string()))
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match seg.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] => {
            let tenant = tenant.to_string();
            match token_request(shared, &tenant, req).await {
                Ok(body) => json_response(200, body, None),
                Err(e) => error_response(shared, &e, correlation_id),
            }
        }
        [tenant, "v2.0", "adminconsent"] => {
            let tenant = tenant.to_string();
            crate::consent::handle(shared, &tenant, crate::consent::Endpoint::V2, req).await
        }
        [tenant, "adminconsent"] => {
            let tenant = tenant.to_string();
            crate::consent::handle(shared, &tenant, crate::consent::Endpoint::V1, req).await
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"] if req.method() == Method::GET => {
            match resolve_tenant(shared, tenant) {
                Ok(()) => json_response(200, discovery(shared), None),
                Err(e) => error_response(shared, &e, correlation_id),
            }
        }
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"Not Found")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

fn json_response(status: u16, body: Value, extra: Option<(&str, String)>) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    if let Some((name, value)) = extra
        && let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        )
    {
        h.insert(n, v);
    }
    r
}

/// `{"error","error_description":"AADSTSn: …\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …",
/// "error_codes":[n],"timestamp","trace_id","correlation_id","error_uri"}`
/// (reference-error-codes.md, "Handling error codes in your application").
fn error_response(
    shared: &Shared,
    e: &StsError,
    correlation_id: Option<String>,
) -> Response<Full<Bytes>> {
    let trace_id = shared.next_guid();
    let correlation_id = correlation_id.unwrap_or_else(|| shared.next_guid());
    let timestamp = sts_timestamp(shared.now());
    let body = json!({
        "error": e.error,
        "error_description": format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            e.code, e.message
        ),
        "error_codes": [e.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!(
            "{}/error?code={}",
            shared.config.cloud.login_authority(),
            e.code
        ),
    });
    json_response(e.status, body, Some(("x-ms-request-id", trace_id.clone())))
}

/// `{tenant}` "can be in GUID or friendly name format"
/// (v2-oauth2-client-creds-grant-flow.md): the tenant id or a verified domain.
pub(crate) fn resolve_tenant(shared: &Shared, tenant: &str) -> Result<(), StsError> {
    let t = &shared.tenant;
    let lower = tenant.to_ascii_lowercase();
    if ["common", "consumers", "organizations"].contains(&lower.as_str()) {
        // AADSTS9001023: "The grant type isn't supported over the /common or
        // /consumers endpoints. Please use the /organizations or tenant-specific endpoint."
        return Err(sts(
            400,
            "invalid_request",
            9_001_023,
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        ));
    }
    if is_guid(tenant) {
        if t.id.eq_ignore_ascii_case(tenant) {
            return Ok(());
        }
    } else if tenant.contains('.') {
        if t.domains
            .iter()
            .any(|d| d.is_verified && d.id.eq_ignore_ascii_case(tenant))
        {
            return Ok(());
        }
    } else {
        return Err(sts(
            400,
            "invalid_request",
            900_023,
            format!(
                "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."
            ),
        ));
    }
    // AADSTS90002 InvalidTenantName.
    Err(sts(
        400,
        "invalid_request",
        90_002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    ))
}

/// Whether `tenant` is the directory of one of the partner's customers (by id).
fn is_partner_customer(shared: &Shared, tenant: &str) -> bool {
    shared
        .delegated_admin_relationships()
        .iter()
        .any(|r| r.customer_tenant_id.eq_ignore_ascii_case(tenant))
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Client id and secret from HTTP Basic authentication, which the docs also
/// accept ("The Basic auth pattern of instead providing credentials in the
/// Authorization header, per RFC 6749 is also supported").
fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = b64url_decode(rest.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded first.
    Some((percent_decode(id, true)?, percent_decode(secret, true)?))
}

async fn token_request(
    shared: &Shared,
    tenant: &str,
    req: Request<Incoming>,
) -> Result<Value, StsError> {
    if req.method() != Method::POST {
        // AADSTS900561: "The endpoint only accepts {valid_verbs} requests.
        // Received a {invalid_verb} request."
        return Err(sts(
            400,
            "invalid_request",
            900_561,
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                req.method()
            ),
        ));
    }
    // A partner's customer (a directory a delegated admin relationship names) exists in
    // this cloud, but the simulated app has no service principal there: it was never
    // consented in that directory, so the answer is AADSTS700016 naming it (below), not
    // AADSTS90002 (reference-error-codes.md: UnauthorizedClient_DoesNotMatchRequest,
    // "The application wasn't found in the directory/tenant").
    let unconsented_directory = match resolve_tenant(shared, tenant) {
        Ok(()) => None,
        Err(e) if e.code == 90_002 && is_partner_customer(shared, tenant) => {
            Some(tenant.to_string())
        }
        Err(e) => return Err(e),
    };
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let basic = basic_credentials(&req);
    if shared.config.content_length_bodies_only && !req.headers().contains_key(CONTENT_LENGTH) {
        // As through a server or proxy that reads only Content-Length bodies: a chunked
        // body is never read, so the form is empty and `grant_type` is missing — the
        // AADSTS900144 Microsoft answers (reference-error-codes.md: "InvalidRequest -
        // The request body must contain the following parameter: '{name}'").
        return Err(missing("grant_type"));
    }
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|_| {
            sts(
                400,
                "invalid_request",
                90_004,
                "The request isn't properly formatted.",
            )
        })?
        .to_bytes();
    let form = if is_form {
        let text = std::str::from_utf8(&body).map_err(|_| {
            sts(
                400,
                "invalid_request",
                90_004,
                "The request isn't properly formatted.",
            )
        })?;
        parse_form(text).ok_or_else(|| {
            sts(
                400,
                "invalid_request",
                90_004,
                "The request isn't properly formatted.",
            )
        })?
    } else {
        Vec::new()
    };

    let grant_type = form_value(&form, "grant_type").ok_or_else(|| missing("grant_type"))?;
    if grant_type != "client_credentials" {
        // AADSTS70003 UnsupportedGrantType. The simulator implements only the
        // client credentials grant.
        return Err(sts(
            400,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let (client_id, secret) = match (form_value(&form, "client_id"), &basic) {
        (Some(id), _) => (
            id.to_string(),
            form_value(&form, "client_secret").map(str::to_string),
        ),
        (None, Some((id, secret))) => (id.clone(), Some(secret.clone())),
        (None, None) => return Err(missing("client_id")),
    };
    let secret = secret.or_else(|| basic.as_ref().map(|(_, s)| s.clone()));
    let assertion = form_value(&form, "client_assertion");
    let assertion_type = form_value(&form, "client_assertion_type");
    let scope = form_value(&form, "scope").ok_or_else(|| missing("scope"))?;

    let config = &shared.config;
    // AADSTS700016 UnauthorizedClient_DoesNotMatchRequest: "The application
    // wasn't found in the directory/tenant. This can happen if the application
    // has not been installed by the administrator of the tenant or consented
    // to by any user in the tenant" — an unknown client id, or this app before
    // an administrator consented to it here (`SimConfig::consented`, `consent.rs`):
    // a multi-tenant app has no service principal in a tenant until then.
    if !client_id.eq_ignore_ascii_case(&config.client_id)
        || !shared.is_consented()
        || unconsented_directory.is_some()
    {
        return Err(sts(
            400,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                unconsented_directory
                    .as_deref()
                    .unwrap_or(&shared.tenant.name)
            ),
        ));
    }

    // "The value passed for the scope parameter in this request should be the
    // resource identifier (application ID URI) of the resource you want,
    // affixed with the .default suffix. All scopes included must be for a
    // single resource." (v2-oauth2-client-creds-grant-flow.md)
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let mut resource: Option<&str> = None;
    for s in &scopes {
        let Some(r) = s.strip_suffix("/.default").filter(|r| !r.is_empty()) else {
            // AADSTS1002012.
            return Err(sts(
                400,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {s} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        };
        match resource {
            Some(prev)
                if !prev
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(r.trim_end_matches('/')) =>
            {
                // AADSTS70011 InvalidScope.
                return Err(sts(
                    400,
                    "invalid_scope",
                    70_011,
                    format!(
                        "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                    ),
                ));
            }
            _ => resource = Some(r),
        }
    }
    let Some(resource) = resource else {
        return Err(missing("scope"));
    };
    // Tokens are for the Graph resource of the tenant's cloud: each national
    // cloud has its own Graph service root, and "access tokens acquired for a
    // national cloud deployment are not interchangeable with those acquired
    // for the global service or any other national cloud"
    // (microsoftgraph/microsoft-graph-docs-contrib: concepts/deployments.md).
    // Any other resource gets the documented invalid-scope answer: 400
    // `invalid_scope` AADSTS70011 "The provided value for the input parameter
    // 'scope' is not valid. The scope … is not valid." (the "Error response"
    // example of v2-oauth2-client-creds-grant-flow.md; reference-error-codes.md:
    // "AADSTS70011 InvalidScope - The scope requested by the app is invalid.").
    let cloud_resource = config.cloud.graph_resource();
    let requested = resource.trim_end_matches('/');
    let audience = if requested.eq_ignore_ascii_case(cloud_resource) {
        cloud_resource
    } else if requested.eq_ignore_ascii_case(GRAPH_APP_ID) {
        GRAPH_APP_ID
    } else {
        return Err(sts(
            400,
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        ));
    };

    if assertion.is_some() || assertion_type.is_some() {
        return assertion_request(
            shared,
            &client_id,
            secret.as_deref(),
            assertion,
            assertion_type,
        )
        .map(|()| token_response(shared, audience));
    }
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        // AADSTS7000218.
        return Err(sts(
            401,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    // An app with no secret registered (`SimConfig::secret_registered`) takes
    // none: any secret is invalid.
    if !config.secret_registered || secret != config.client_secret {
        // AADSTS7000215 InvalidClientSecret.
        return Err(sts(
            401,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                config.client_id
            ),
        ));
    }
    if crate::applications::secret_expired(shared) {
        // AADSTS7000222 InvalidClientSecretExpiredKeysProvided.
        return Err(sts(
            401,
            "invalid_client",
            7_000_222,
            format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                config.client_id
            ),
        ));
    }

    Ok(token_response(shared, audience))
}

/// Successful response: token_type, expires_in, access_token
/// (v2-oauth2-client-creds-grant-flow.md, "Successful response").
fn token_response(shared: &Shared, audience: &str) -> Value {
    let lifetime = shared.config.token_lifetime_secs;
    json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": issue(shared, audience),
    })
}

/// Client authentication by assertion ("Second case" and "Third case" of
/// v2-oauth2-client-creds-grant-flow.md: "the `client_secret` parameter is
/// replaced by the `client_assertion_type` and `client_assertion`
/// parameters"; both are Required).
///
/// A secret sent as well is two ways of authenticating in one request, which
/// RFC 6749 §2.3 forbids ("The client MUST NOT use more than one
/// authentication method in each request"; its §5.2 `invalid_request` covers a
/// request that "utilizes more than one mechanism for authenticating the
/// client"). Entra's exact answer to that, and to an unknown
/// `client_assertion_type`, is not documented: both get `invalid_request`
/// with reference-error-codes.md's generic "AADSTS90023 InvalidRequest - The
/// authentication service request isn't valid."
fn assertion_request(
    shared: &Shared,
    client_id: &str,
    secret: Option<&str>,
    assertion: Option<&str>,
    assertion_type: Option<&str>,
) -> Result<(), StsError> {
    let invalid = || {
        sts(
            400,
            "invalid_request",
            90_023,
            "The authentication service request isn't valid.",
        )
    };
    if secret.is_some_and(|s| !s.is_empty()) {
        return Err(invalid());
    }
    let assertion_type = assertion_type.ok_or_else(|| missing("client_assertion_type"))?;
    if assertion_type != crate::assertions::JWT_BEARER {
        return Err(invalid());
    }
    let assertion = assertion.ok_or_else(|| missing("client_assertion"))?;
    crate::assertions::verify(shared, client_id, assertion)
}

fn discovery(shared: &Shared) -> Value {
    let tid = &shared.tenant.id;
    let login = &shared.login_url;
    json!({
        "token_endpoint": format!("{login}/{tid}/oauth2/v2.0/token"),
        // As Entra's v2.0 discovery document lists them.
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "issuer": format!("{login}/{tid}/v2.0"),
        "tenant_region_scope": region(shared),
        "cloud_instance_name": match shared.config.cloud {
            Cloud::Global => "microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "microsoftonline.us",
            Cloud::China => "partner.microsoftonline.cn",
        },
        "msgraph_host": shared.graph_url.trim_start_matches("http://"),
        "grant_types_supported": ["client_credentials"],
    })
}

fn region(shared: &Shared) -> &'static str {
    match shared.tenant.country_letter_code.as_str() {
        "US" | "CA" | "MX" => "NA",
        "IN" | "JP" => "AS",
        "AU" => "OC",
        _ => "EU",
    }
}

fn signature(key: u64, signing_input: &str) -> String {
    let mut sig = Vec::with_capacity(32);
    for i in 0..4u64 {
        sig.extend_from_slice(
            &keyed_hash(key ^ i.wrapping_mul(0x9E37), signing_input.as_bytes()).to_be_bytes(),
        );
    }
    b64url_encode(&sig)
}

/// Issues an app-only access token shaped like Entra ID's v1.0 Graph tokens
/// (claims per https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
/// It is signed with a per-start key instead of an RSA key.
fn issue(shared: &Shared, audience: &str) -> String {
    let now = shared.now();
    let tid = &shared.tenant.id;
    let config = &shared.config;
    let sp_object_id = Rng::derived(config.tenant.seed, 0x5E_7F1C).guid();
    let mut uti = [0u8; 16];
    let id = shared.next_guid().replace('-', "");
    for (i, b) in uti.iter_mut().enumerate() {
        *b = u8::from_str_radix(id.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    let mut payload = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now,
        "nbf": now,
        "exp": now + config.token_lifetime_secs,
        "app_displayname": "m365sync",
        "appid": config.client_id,
        "appidacr": "1",
        "idp": format!("https://sts.windows.net/{tid}/"),
        "idtyp": "app",
        "oid": sp_object_id,
        "sub": sp_object_id,
        "tenant_region_scope": region(shared),
        "tid": tid,
        "uti": b64url_encode(&uti),
        "ver": "1.0",
    });
    let roles = shared.roles();
    if !roles.is_empty() {
        // An app with no application permissions gets no roles claim at all.
        payload["roles"] = json!(roles);
    }
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "m365sync-simulator"});
    let signing_input = format!(
        "{}.{}",
        b64url_encode(&serde_json::to_vec(&header).unwrap_or_default()),
        b64url_encode(&serde_json::to_vec(&payload).unwrap_or_default())
    );
    let sig = signature(shared.token_key(), &signing_input);
    format!("{signing_input}.{sig}")
}

/// What Graph learns from a valid token.
#[derive(Debug, Clone)]
pub struct Claims {
    pub roles: Vec<String>,
}

fn unauthenticated(message: &str) -> GraphError {
    GraphError::new(401, "InvalidAuthenticationToken", message)
}

/// Checks `Authorization: Bearer <token>`: the token must be one this
/// simulator signed, for this tenant, for Graph, and not expired.
pub fn validate_bearer(shared: &Shared, header: Option<&str>) -> Result<Claims, GraphError> {
    let token = header
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("Access token is empty."))?;
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 1 {
        return Err(unauthenticated(
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    }
    if parts.len() != 3 {
        return Err(unauthenticated(
            "Invalid JWT token. The token is malformed.",
        ));
    }
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    match shared.match_token_key(|key| signature(key, signing_input) == parts[2]) {
        Some(true) => {}
        // Signed before `Simulator::expire_tokens`: the same answer Graph
        // gives a token past its `exp`.
        Some(false) => {
            return Err(unauthenticated(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        None => {
            return Err(unauthenticated(
                "Access token validation failure. Invalid signature.",
            ));
        }
    }
    let payload: Value = b64url_decode(parts[1])
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| unauthenticated("Invalid JWT token. The token is malformed."))?;
    let now = shared.now();
    let exp = payload["exp"].as_u64().unwrap_or(0);
    let nbf = payload["nbf"].as_u64().unwrap_or(0);
    if now >= exp {
        return Err(unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if nbf > now + 300 {
        return Err(unauthenticated(
            "Lifetime validation failed, the token is not yet valid.",
        ));
    }
    // Graph takes tokens for its resource in this cloud only (deployments.md).
    let aud = payload["aud"].as_str().unwrap_or("").trim_end_matches('/');
    let graph_audience = aud.eq_ignore_ascii_case(shared.config.cloud.graph_resource())
        || aud.eq_ignore_ascii_case(GRAPH_APP_ID);
    if !graph_audience {
        return Err(unauthenticated(
            "Access token validation failure. Invalid audience.",
        ));
    }
    if payload["tid"].as_str() != Some(shared.tenant.id.as_str()) {
        return Err(unauthenticated(
            "Access token validation failure. Invalid issuer.",
        ));
    }
    let roles = payload["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Claims { roles })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimConfig, TenantSpec};

    fn shared(lifetime: u64) -> Shared {
        let mut c = SimConfig::new(TenantSpec::new(5, 10));
        c.token_lifetime_secs = lifetime;
        Shared::new(
            c,
            "http://127.0.0.1:1".into(),
            "http://127.0.0.1:2".into(),
            "http://127.0.0.2:3".into(),
        )
    }

    #[test]
    fn issued_tokens_validate() {
        let s = shared(3599);
        let t = issue(&s, "https://graph.microsoft.com");
        let claims = validate_bearer(&s, Some(&format!("Bearer {t}"))).expect("valid");
        assert_eq!(claims.roles, vec!["User.Read.All".to_string()]);
        let t2 = issue(&s, GRAPH_APP_ID);
        assert!(validate_bearer(&s, Some(&format!("bearer {t2}"))).is_ok());
        // Not a Graph resource of this cloud: the simulator's own URL, or
        // another cloud's Graph.
        for aud in ["http://127.0.0.1:2", "https://graph.microsoft.us"] {
            let t = issue(&s, aud);
            let e = validate_bearer(&s, Some(&format!("Bearer {t}"))).expect_err(aud);
            assert!(e.message.contains("audience"), "{}", e.message);
        }
        let payload: Value = serde_json::from_slice(
            &b64url_decode(t.split('.').nth(1).unwrap_or("")).unwrap_or_default(),
        )
        .expect("payload");
        assert_eq!(payload["tid"], s.tenant.id.as_str());
        assert_eq!(payload["appid"], s.config.client_id.as_str());
        assert_eq!(payload["aud"], "https://graph.microsoft.com");
        assert!(payload["exp"].as_u64() > payload["iat"].as_u64());
    }

    #[test]
    fn bad_tokens_rejected() {
        let s = shared(3599);
        let e = validate_bearer(&s, None).expect_err("empty");
        assert_eq!((e.status, e.code), (401, "InvalidAuthenticationToken"));
        assert!(validate_bearer(&s, Some("Bearer ")).is_err());
        assert!(validate_bearer(&s, Some("Bearer abc")).is_err());
        assert!(validate_bearer(&s, Some("Bearer a.b.c")).is_err());
        let t = issue(&s, "https://graph.microsoft.com");
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(validate_bearer(&s, Some(&format!("Bearer {forged}"))).is_err());
        // A token from another simulator instance is rejected.
        let other = shared(3599);
        assert!(validate_bearer(&other, Some(&format!("Bearer {t}"))).is_err());
        let wrong_aud = issue(&s, "https://management.azure.com");
        let e = validate_bearer(&s, Some(&format!("Bearer {wrong_aud}"))).expect_err("aud");
        assert!(e.message.contains("audience"));
    }

    #[test]
    fn a_national_cloud_takes_its_own_graph_audience_only() {
        let mut c = SimConfig::new(TenantSpec::new(5, 10));
        c.cloud = Cloud::UsGov;
        let s = Shared::new(
            c,
            "http://127.0.0.1:1".into(),
            "http://127.0.0.1:2".into(),
            "http://127.0.0.2:3".into(),
        );
        let t = issue(&s, "https://graph.microsoft.us");
        assert!(validate_bearer(&s, Some(&format!("Bearer {t}"))).is_ok());
        let global = issue(&s, "https://graph.microsoft.com");
        let e = validate_bearer(&s, Some(&format!("Bearer {global}"))).expect_err("global");
        assert_eq!(e.status, 401);
        assert_eq!(discovery(&s)["cloud_instance_name"], "microsoftonline.us");
    }

    #[test]
    fn rotated_keys_expire_tokens() {
        let s = shared(3599);
        let t = issue(&s, "https://graph.microsoft.com");
        s.rotate_token_key();
        let e = validate_bearer(&s, Some(&format!("Bearer {t}"))).expect_err("expired");
        assert_eq!(e.code, "InvalidAuthenticationToken");
        assert!(e.message.contains("expired"), "{}", e.message);
        s.set_roles(vec!["Directory.Read.All".into()]);
        let t2 = issue(&s, "https://graph.microsoft.com");
        let claims = validate_bearer(&s, Some(&format!("Bearer {t2}"))).expect("valid");
        assert_eq!(claims.roles, vec!["Directory.Read.All".to_string()]);
    }

    #[test]
    fn expired_tokens_rejected() {
        let s = shared(0);
        let t = issue(&s, "https://graph.microsoft.com");
        let e = validate_bearer(&s, Some(&format!("Bearer {t}"))).expect_err("expired");
        assert!(e.message.contains("expired"));
    }

    #[test]
    fn tenants_resolve_by_id_or_verified_domain() {
        let s = shared(3599);
        assert!(resolve_tenant(&s, &s.tenant.id).is_ok());
        assert!(resolve_tenant(&s, &s.tenant.id.to_uppercase()).is_ok());
        for d in &s.tenant.domains {
            assert_eq!(resolve_tenant(&s, &d.id).is_ok(), d.is_verified, "{}", d.id);
        }
        assert_eq!(
            resolve_tenant(&s, "00000000-0000-0000-0000-000000000000").map_err(|e| e.code),
            Err(90_002)
        );
        assert_eq!(
            resolve_tenant(&s, "nowhere.example").map_err(|e| e.code),
            Err(90_002)
        );
        assert_eq!(
            resolve_tenant(&s, "garbage").map_err(|e| e.code),
            Err(900_023)
        );
        assert_eq!(
            resolve_tenant(&s, "common").map_err(|e| e.code),
            Err(9_001_023)
        );
    }
}
