//! The Graph host: routing of `/v1.0/...`, bearer-token and permission checks,
//! and the read-only resources the simulator serves: users (paged, with
//! signInActivity, `/users/{id}/manager` and users/delta with `manager@delta`),
//! groups (`groups.rs`), the organization, subscribedSkus, domains,
//! `admin/reportSettings` and the usage report functions (`reports.rs`,
//! redirecting to `download.rs`); the app registration (`applications.rs`)
//! and the partner's delegated admin relationships (`gdap.rs`).
//!
//! Pages cited: api-reference/v1.0/api/user-list.md, user-get.md,
//! user-delta.md, user-list-manager.md, organization-list.md,
//! subscribedsku-list.md, domain-list.md, adminreportsettings-get.md, the
//! reportroot-get*.md pages, resources/user.md, resources/signinactivity.md,
//! concepts/paging.md, concepts/errors.md,
//! concepts/query-parameters.md, concepts/delta-query-overview.md,
//! concepts/delta-query-users.md and concepts/throttling.md (all in
//! microsoftgraph/microsoft-graph-docs-contrib).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::delta::{self, Collection, Kind as TokenKind, State};
use crate::directory::{Directory, Presence, Record, field};
use crate::groups;
use crate::odata::{Allowed, GraphError, Query, parse_query};
use crate::paging;
use crate::reports;
use crate::rng::Rng;
use crate::server::Shared;
use crate::tenant::User;
use crate::token::{Claims, validate_bearer};
use crate::userprops::{self, Ctx, DeltaItem, DeltaPage, Prop, SingleUser, UserPage, UserView};
use crate::util::{graph_error_date, keyed_hash, percent_decode};

/// Graph's JSON media type, as the service sends it.
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Default page size of the users list.
const DEFAULT_TOP: usize = 100;

/// Default page size of users/delta. Not in the reference docs; a Microsoft
/// Q&A answer (learn.microsoft.com/en-us/answers/a/2052165) gives 200 for
/// objects such as users, and a docs maintainer mentions 200-object users/delta
/// pages (microsoftgraph/microsoft-graph-docs#5566).
pub(crate) const DELTA_DEFAULT_PAGE: usize = 200;

/// Largest page users/delta hands out when a client asks for more with
/// `Prefer: odata.maxpagesize`: the directory's maximum page size, 999
/// (user-list.md; "the page size was increased to 999",
/// microsoftgraph/microsoft-graph-docs#21132).
pub(crate) const DELTA_MAX_PAGE: usize = 999;

/// Per-request ids, echoed in headers and error bodies.
pub(crate) struct Ids {
    request_id: String,
    client_request_id: String,
}

pub(crate) fn ids<B>(shared: &Shared, req: &Request<B>) -> Ids {
    let request_id = shared.next_guid();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    Ids {
        request_id,
        client_request_id,
    }
}

pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(latency) = shared.config.latency
        && latency > Duration::ZERO
    {
        tokio::time::sleep(latency).await;
    }
    if crate::batch::is_batch(&req) {
        return crate::batch::handle(shared, req).await;
    }
    serve(shared, &req)
}

/// Answers one Graph request (a request of its own, or one inside a `$batch`
/// call, which carries no body: the simulator serves GETs only).
pub(crate) fn serve<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let ids = ids(shared, req);
    match route(shared, req) {
        Ok(ok) => ok.into_response(&ids),
        Err(e) => error_response(shared, &e, &ids),
    }
}

/// A throttled request (not served). For 429 the body is the one
/// concepts/throttling.md shows ("Sample response": code `TooManyRequests`,
/// message "Please retry again later.", innerError with code and status
/// "429" and message "Please retry after"), with `Retry-After` in seconds
/// ("A suggested wait time is returned in the response header of the failed
/// request"). 503 and 504 get the standard error body with
/// `serviceNotAvailable` ("The service is not available. Try the request again
/// after a delay. There may be a Retry-After header.", concepts/errors.md).
pub fn throttled<B>(
    shared: &Shared,
    req: &Request<B>,
    status: u16,
    retry_after_secs: Option<u32>,
) -> Response<Full<Bytes>> {
    let ids = ids(shared, req);
    let date = graph_error_date(shared.now());
    let mut r = if status == 429 {
        let body = json!({
            "error": {
                "code": "TooManyRequests",
                "message": "Please retry again later.",
                "innerError": {
                    "code": "429",
                    "date": date,
                    "message": "Please retry after",
                    "request-id": ids.request_id,
                    "client-request-id": ids.client_request_id,
                    "status": "429",
                },
            }
        });
        let mut r = Response::new(Full::new(Bytes::from(
            serde_json::to_vec(&body).unwrap_or_default(),
        )));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        insert_ids(h, &ids);
        r
    } else {
        let e = GraphError::new(
            status,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Try the request again after a delay.",
        );
        error_response(shared, &e, &ids)
    };
    if let Some(secs) = retry_after_secs {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    r
}

/// Fault injection: 500 with `generalException` ("An unspecified error has
/// occurred.", concepts/errors.md).
pub fn server_error(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let ids = ids(shared, req);
    let e = GraphError::new(
        500,
        "generalException",
        "An unspecified error has occurred.",
    );
    error_response(shared, &e, &ids)
}

/// Fault injection: a 200 whose JSON body is syntactically broken.
pub fn invalid_json(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let ids = ids(shared, req);
    let body = format!(
        "{{\"@odata.context\":\"{}/v1.0/$metadata#users\",\"value\":[{{\"id\":\"{}\",,\"displayName\":}}]",
        shared.graph_url, ids.request_id
    );
    Reply::Json(body.into_bytes()).into_response(&ids)
}

/// A successful answer before headers are added.
pub(crate) enum Reply {
    Json(Vec<u8>),
    /// JSON with extra response headers.
    JsonWith(Vec<u8>, Vec<(&'static str, String)>),
    Text(String),
    /// `302 Found` to the URL, as the report functions answer ("returns a
    /// `302 Found` response that redirects to a preauthenticated download
    /// URL … in the `Location` header"; the pages' example response has
    /// `Content-Type: text/plain` and no body).
    Redirect(String),
}

impl Reply {
    pub(crate) fn into_response(self, ids: &Ids) -> Response<Full<Bytes>> {
        let mut status = StatusCode::OK;
        let (body, content_type, extra) = match self {
            Reply::Json(b) => (b, ODATA_JSON, Vec::new()),
            Reply::JsonWith(b, extra) => (b, ODATA_JSON, extra),
            Reply::Text(t) => (t.into_bytes(), "text/plain", Vec::new()),
            Reply::Redirect(location) => {
                status = StatusCode::FOUND;
                (Vec::new(), "text/plain", vec![("location", location)])
            }
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert("odata-version", HeaderValue::from_static("4.0"));
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        insert_ids(h, ids);
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        r
    }
}

fn insert_ids(h: &mut hyper::HeaderMap, ids: &Ids) {
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        h.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.client_request_id) {
        h.insert("client-request-id", v);
    }
}

pub(crate) fn error_response(shared: &Shared, e: &GraphError, ids: &Ids) -> Response<Full<Bytes>> {
    let date = graph_error_date(shared.now());
    let body = e.body(&date, &ids.request_id, &ids.client_request_id);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    insert_ids(h, ids);
    if e.status == 401 {
        h.insert(
            "www-authenticate",
            HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            ),
        );
    }
    if e.status == 405 {
        h.insert("allow", HeaderValue::from_static("GET"));
    }
    if let Some(location) = &e.location
        && let Ok(v) = HeaderValue::from_str(location)
    {
        h.insert(hyper::header::LOCATION, v);
    }
    r
}

/// The entity sets the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Set {
    Users,
    Groups,
    Organization,
    SubscribedSkus,
    Domains,
    Reports,
    Admin,
    /// `applications.rs`.
    Applications,
    /// `gdap.rs`.
    TenantRelationships,
}

impl Set {
    fn parse(segment: &str) -> Option<Set> {
        // Graph resolves segment names case-insensitively.
        match segment.to_ascii_lowercase().as_str() {
            "users" => Some(Set::Users),
            "groups" => Some(Set::Groups),
            "reports" => Some(Set::Reports),
            "admin" => Some(Set::Admin),
            "organization" => Some(Set::Organization),
            "subscribedskus" => Some(Set::SubscribedSkus),
            "domains" => Some(Set::Domains),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Set::Users => "users",
            Set::Groups => "groups",
            Set::Reports => "reports",
            Set::Admin => "admin",
            Set::Organization => "organization",
            Set::SubscribedSkus => "subscribedSkus",
            Set::Domains => "domains",
            Set::Applications => "applications",
            Set::TenantRelationships => "tenantRelationships",
        }
    }

    fn odata_type(self) -> &'static str {
        match self {
            Set::Users => "microsoft.graph.user",
            Set::Groups => "microsoft.graph.group",
            Set::Reports => "microsoft.graph.reportRoot",
            Set::Admin => "microsoft.graph.admin",
            Set::Organization => "microsoft.graph.organization",
            Set::SubscribedSkus => "microsoft.graph.subscribedSku",
            Set::Domains => "microsoft.graph.domain",
            Set::Applications => "microsoft.graph.application",
            Set::TenantRelationships => "microsoft.graph.delegatedAdminRelationship",
        }
    }

    /// Application permissions that allow reading the set, from each API's
    /// permissions table (user-list.md, organization-list.md,
    /// subscribedsku-list.md, domain-list.md, group-list.md and
    /// group-delta.md, the reportroot-get*.md pages: "Application |
    /// Reports.Read.All", adminreportsettings-get.md). The newer
    /// *.ReadWrite.All and Organization.Read.All variants are accepted too.
    fn roles(self) -> &'static [&'static str] {
        match self {
            Set::Groups => &[
                "GroupMember.Read.All",
                "Group.Read.All",
                "Group.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Set::Reports => &["Reports.Read.All"],
            Set::Admin => &["ReportSettings.Read.All", "ReportSettings.ReadWrite.All"],
            Set::Users => &[
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Set::Organization | Set::SubscribedSkus => &[
                "Organization.Read.All",
                "Organization.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Set::Domains => &[
                "Domain.Read.All",
                "Domain.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            // Checked by their own modules (`authorize`), which cite their pages.
            Set::Applications | Set::TenantRelationships => &[],
        }
    }
}

/// User navigation properties Graph has but the simulator does not serve.
const USER_NAVIGATIONS: &[&str] = &[
    "manager",
    "directreports",
    "memberof",
    "transitivememberof",
    "licensedetails",
    "ownedobjects",
    "owneddevices",
    "registereddevices",
    "createdobjects",
    "approleassignments",
    "photo",
    "photos",
    "drive",
    "drives",
    "messages",
    "mailfolders",
    "events",
    "calendar",
    "calendars",
    "contacts",
    "extensions",
    "onenote",
    "planner",
    "insights",
    "authentication",
    "todo",
    "outlook",
    "mailboxsettings",
];

pub(crate) fn segment_not_found(segment: &str) -> GraphError {
    // Graph answers an unknown path segment at routing time with
    // 400 BadRequest "Resource not found for the segment '…'." (observed
    // service behaviour; concepts/errors.md lists 400 for malformed requests).
    GraphError::new(
        400,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}

fn route<B>(shared: &Shared, req: &Request<B>) -> Result<Reply, GraphError> {
    let path = req.uri().path();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false).unwrap_or_else(|| s.to_string()))
        .collect();
    let version = segments.first().map(String::as_str).unwrap_or("");
    match version {
        "v1.0" => {}
        "beta" => {
            return Err(GraphError::new(
                501,
                "NotImplemented",
                "The simulator serves Microsoft Graph v1.0 only.",
            ));
        }
        other => {
            return Err(GraphError::new(
                400,
                "BadRequest",
                format!("Invalid version: {other}"),
            ));
        }
    }
    let Some(set_segment) = segments.get(1) else {
        return Err(GraphError::new(
            404,
            "Request_ResourceNotFound",
            "No resource was specified after the version segment.",
        ));
    };
    if set_segment.eq_ignore_ascii_case("me") {
        // App-only tokens have no signed-in user.
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        validate_bearer(shared, auth)?;
        return Err(GraphError::new(
            400,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        ));
    }
    let lower = set_segment.to_ascii_lowercase();
    if lower == "applications" || lower.starts_with("applications(") {
        return crate::applications::serve(shared, req, &segments);
    }
    if lower == "tenantrelationships" {
        return crate::gdap::serve(shared, req, &segments);
    }
    let set = Set::parse(set_segment).ok_or_else(|| segment_not_found(set_segment))?;
    let key = segments.get(2).map(String::as_str);
    let navigation = segments.get(3).map(|n| n.to_ascii_lowercase());
    // Navigations the simulator serves: a user's manager and a group's
    // members.
    let served_navigation = segments.len() == 4
        && matches!(
            (set, navigation.as_deref()),
            (Set::Users, Some("manager")) | (Set::Groups, Some("members"))
        );
    if let Some(extra) = segments.get(3).filter(|_| !served_navigation) {
        if set == Set::Users && USER_NAVIGATIONS.contains(&extra.to_ascii_lowercase().as_str()) {
            return Err(GraphError::new(
                501,
                "NotImplemented",
                format!("The simulator does not serve '{extra}' of a user."),
            ));
        }
        return Err(segment_not_found(extra));
    }
    if req.method() != Method::GET {
        // The simulator is read-only; Graph answers a method a resource does
        // not support with 405 (concepts/errors.md).
        return Err(GraphError::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        ));
    }
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = validate_bearer(shared, auth)?;
    check_roles(shared, &claims, set)?;
    let raw_query = req.uri().query().unwrap_or("");
    let prefer = || {
        delta::parse_prefer(
            req.headers()
                .get_all("prefer")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    };
    let consistency_eventual = req
        .headers()
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));

    match (set, key) {
        (Set::Users, Some(k)) if is_delta_segment(k) => {
            let q = parse_query(raw_query, DELTA_OPTIONS)?;
            users_delta(shared, &q, prefer())
        }
        (Set::Users, Some(k)) if served_navigation => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            get_manager(shared, k, &q)
        }
        (Set::Users, None) => {
            let q = parse_query(
                raw_query,
                Allowed {
                    select: true,
                    top: true,
                    skiptoken: true,
                    count: true,
                    deltatoken: false,
                    ignore_top: false,
                },
            )?;
            list_users(shared, &claims, &q, consistency_eventual)
        }
        (Set::Users, Some(k)) if k.eq_ignore_ascii_case("$count") => {
            parse_query(raw_query, NONE_ALLOWED)?;
            count_users(shared, consistency_eventual)
        }
        (Set::Users, Some(k)) => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            get_user(shared, &claims, k, &q)
        }
        (Set::Groups, Some(k)) if is_delta_segment(k) => {
            let q = parse_query(raw_query, DELTA_OPTIONS)?;
            groups::delta(shared, &q, prefer())
        }
        (Set::Groups, None) => {
            let q = parse_query(raw_query, PAGED_LIST)?;
            groups::list(shared, &q)
        }
        (Set::Groups, Some(k)) if served_navigation => {
            let q = parse_query(raw_query, PAGED_LIST)?;
            groups::members(shared, k, &q)
        }
        (Set::Groups, Some(k)) => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            groups::get(shared, k, &q)
        }
        (Set::Reports, Some(function)) => reports_function(shared, function, raw_query),
        (Set::Reports, None) => Err(GraphError::new(
            501,
            "NotImplemented",
            "The simulator serves the per-user usage report functions of /reports only.",
        )),
        (Set::Admin, Some(k)) if k.eq_ignore_ascii_case("reportSettings") => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            report_settings(shared, &q)
        }
        (Set::Admin, _) => Err(segment_not_found(key.unwrap_or("admin"))),
        (set, key) => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            small_set(shared, set, key, &q)
        }
    }
}

const DELTA_OPTIONS: Allowed = Allowed {
    select: true,
    top: false,
    skiptoken: true,
    count: false,
    deltatoken: true,
    ignore_top: true,
};

/// A paged list without `$count`: `$select`, `$top`, `$skiptoken`.
const PAGED_LIST: Allowed = Allowed {
    select: true,
    top: true,
    skiptoken: true,
    count: false,
    deltatoken: false,
    ignore_top: false,
};

pub(crate) const SELECT_ONLY: Allowed = Allowed {
    select: true,
    top: false,
    skiptoken: false,
    count: false,
    deltatoken: false,
    ignore_top: false,
};

const NONE_ALLOWED: Allowed = Allowed {
    select: false,
    top: false,
    skiptoken: false,
    count: false,
    deltatoken: false,
    ignore_top: false,
};

/// `delta` or its fully qualified name: "`/delta` is a shortcut for the fully
/// qualified name `/microsoft.graph.delta`. Requests generated by Microsoft
/// Graph SDKs use the fully qualified name" (concepts/delta-query-users.md);
/// the SDKs' URL templates add `()`.
pub(crate) fn is_delta_segment(segment: &str) -> bool {
    let s = segment.strip_suffix("()").unwrap_or(segment);
    s.eq_ignore_ascii_case("delta") || s.eq_ignore_ascii_case("microsoft.graph.delta")
}

fn check_roles(shared: &Shared, claims: &Claims, set: Set) -> Result<(), GraphError> {
    // users/delta needs the same application permissions as listing users:
    // User.Read.All, User.ReadWrite.All, Directory.Read.All or
    // Directory.ReadWrite.All (user-delta.md, "Permissions").
    require_roles(shared, claims, set.roles())
}

/// For the resources served by their own modules: GET only (405 otherwise,
/// as `route` answers), a valid bearer token, and one of `roles` when roles
/// are enforced.
pub(crate) fn authorize<B>(
    shared: &Shared,
    req: &Request<B>,
    roles: &[&str],
) -> Result<Claims, GraphError> {
    if req.method() != Method::GET {
        return Err(GraphError::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        ));
    }
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = validate_bearer(shared, auth)?;
    require_roles(shared, &claims, roles)?;
    Ok(claims)
}

/// 403 `Authorization_RequestDenied` unless the token holds one of `allowed`
/// (or roles are not enforced).
fn require_roles(shared: &Shared, claims: &Claims, allowed: &[&str]) -> Result<(), GraphError> {
    if !shared.config.enforce_roles {
        return Ok(());
    }
    if claims
        .roles
        .iter()
        .any(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r)))
    {
        Ok(())
    } else {
        Err(GraphError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }
}

pub(crate) fn ctx(shared: &Shared) -> Ctx<'_> {
    Ctx {
        initial_domain: shared.tenant.initial_domain(),
    }
}

/// `@odata.context` for a set, with the selected properties if any, e.g.
/// `…/v1.0/$metadata#users(displayName,id)` (user-list.md examples).
pub(crate) fn context(
    shared: &Shared,
    set: Set,
    selected: Option<&[&str]>,
    entity: bool,
) -> String {
    let mut s = format!("{}/v1.0/$metadata#{}", shared.graph_url, set.name());
    if let Some(names) = selected {
        s.push('(');
        s.push_str(&names.join(","));
        s.push(')');
    }
    if entity {
        s.push_str("/$entity");
    }
    s
}

fn count_not_supported() -> GraphError {
    // $count on directory objects needs ConsistencyLevel: eventual
    // (concepts/query-parameters.md, "count parameter", note 1).
    GraphError::bad_request("$count is not currently supported.")
}

fn count_users(shared: &Shared, eventual: bool) -> Result<Reply, GraphError> {
    if !eventual {
        return Err(count_not_supported());
    }
    Ok(Reply::Text(shared.dir().live.to_string()))
}

/// Largest page of a user list that selects signInActivity: "When you
/// specify $select=signInActivity or $filter=signInActivity while listing
/// users, the maximum page size is 120 users. Requests with $top set higher
/// than 120 will return pages with up to 120 users" (resources/user.md,
/// signInActivity).
const SIGN_IN_ACTIVITY_MAX_PAGE: usize = 120;

/// The checks for reading user properties beyond the directory's own: the
/// manager relationship is not a `$select` property of a user read (it is
/// `/users/{id}/manager`, user-list-manager.md, or `manager@delta` on
/// users/delta), and signInActivity "require[s] a Microsoft Entra ID P1 or P2
/// license and the AuditLog.Read.All permission" (resources/user.md; the
/// reporting docs add User.Read.All or Directory.Read.All, which the route
/// already checked). Without AuditLog.Read.All Graph answers 403
/// `Authorization_RequestDenied`; a tenant without a premium licence gets 403
/// `Authentication_RequestFromNonPremiumTenantOrB2CTenant` "Neither tenant is
/// B2C or tenant doesn't have premium license" (the answer quoted in
/// microsoftgraph/microsoft-graph-docs#12772 and #14120, and in Microsoft
/// Entra's "Common errors" for the reporting API).
fn check_user_props(shared: &Shared, claims: &Claims, props: &[Prop]) -> Result<(), GraphError> {
    if props.iter().any(Prop::is_manager) {
        return Err(GraphError::bad_request(
            "'manager' is a navigation property: read it with /users/{id}/manager or $select=manager on users/delta.",
        ));
    }
    if props.iter().any(Prop::is_sign_in_activity) {
        let audit = claims
            .roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case("AuditLog.Read.All"));
        if shared.config.enforce_roles && !audit {
            return Err(GraphError::new(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ));
        }
        if !shared.config.premium {
            return Err(GraphError::new(
                403,
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                "Neither tenant is B2C or tenant doesn't have premium license",
            ));
        }
    }
    Ok(())
}

fn list_users(
    shared: &Shared,
    claims: &Claims,
    q: &Query,
    eventual: bool,
) -> Result<Reply, GraphError> {
    let props = match &q.select {
        Some(names) => userprops::resolve(names, true)?,
        None => userprops::default_props(),
    };
    check_user_props(shared, claims, &props)?;
    let mut top = q.top.unwrap_or(DEFAULT_TOP);
    if props.iter().any(Prop::is_sign_in_activity) {
        top = top.min(SIGN_IN_ACTIVITY_MAX_PAGE);
    }
    let dir = shared.dir();
    let records = &dir.records;
    let offset = match &q.skiptoken {
        // The offset is an index into every user ever created, deleted ones
        // included, so that pages stay stable while users come and go.
        Some(token) => paging::decode(shared.skip_key, token)
            .filter(|&o| o <= records.len())
            // Graph's own answer to a skip token it cannot use is a 400 with
            // "Invalid Skip Token" (microsoftgraph/microsoft-graph-docs-contrib#5103).
            .ok_or_else(|| GraphError::bad_request("Invalid Skip Token"))?,
        None => 0,
    };
    let count = match q.count {
        Some(true) if !eventual => return Err(count_not_supported()),
        // "the @odata.count property will be present only in the first page"
        // (concepts/paging.md).
        Some(true) if q.skiptoken.is_none() => Some(dir.live),
        _ => None,
    };
    let mut page: Vec<&User> = Vec::with_capacity(top.min(records.len()));
    let mut end = offset;
    while end < records.len() && page.len() < top {
        if records[end].is_live() {
            page.push(&records[end].user);
        }
        end += 1;
    }
    // No nextLink to a page that would be empty.
    while end < records.len() && !records[end].is_live() {
        end += 1;
    }
    // The names as asked for, canonically spelled ("*" stays "*").
    let selected: Option<Vec<String>> = q
        .select
        .as_ref()
        .map(|names| names.iter().map(|n| userprops::canonical(n)).collect());
    let selected: Option<Vec<&str>> = selected
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    let next_link = (end < records.len()).then(|| next_link(shared, q, selected.as_deref(), end));
    let context = context(shared, Set::Users, selected.as_deref(), false);
    let body = UserPage {
        context: &context,
        count,
        next_link: next_link.as_deref(),
        users: &page,
        props: &props,
        ctx: ctx(shared),
    };
    let mut buf = Vec::with_capacity(256 + page.len() * (64 + props.len() * 40));
    serde_json::to_writer(&mut buf, &body)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))?;
    Ok(Reply::Json(buf))
}

/// The next page's URL: the original query options plus `$skiptoken`
/// ("The URL also contains all the other query parameters present in the
/// original request", concepts/paging.md).
fn next_link(shared: &Shared, q: &Query, selected: Option<&[&str]>, offset: usize) -> String {
    let mut url = format!("{}/v1.0/users?", shared.graph_url);
    let mut first = true;
    let mut push = |url: &mut String, part: &str| {
        if !first {
            url.push('&');
        }
        first = false;
        url.push_str(part);
    };
    for (k, v) in &q.passthrough {
        push(&mut url, &format!("{k}={v}"));
    }
    if let Some(names) = selected {
        push(&mut url, &format!("$select={}", names.join(",")));
    }
    if let Some(top) = q.top {
        push(&mut url, &format!("$top={top}"));
    }
    push(
        &mut url,
        &format!(
            "$skiptoken={}",
            paging::encode_for_url(shared.skip_key, offset)
        ),
    );
    url
}

/// The error for a state token that is well formed but no longer valid
/// (issued before `Simulator::expire_delta_tokens` or by another run).
/// concepts/delta-query-overview.md: "Delta query can return a response code
/// of `410 (gone)` and a **Location** header containing a request URL with an
/// empty `$deltaToken` (same as the initial query). This is an indication that
/// the application must restart with a full synchronization", and for expired
/// tokens "the service should respond with a 40X-series error with error codes
/// such as `syncStateNotFound`"; the message is that code's description in
/// concepts/errors.md.
pub(crate) fn resync_required(
    shared: &Shared,
    collection: Collection,
    select: Option<&[String]>,
) -> GraphError {
    let set = match collection {
        Collection::Users => "users",
        Collection::Groups => "groups",
    };
    let mut location = format!("{}/v1.0/{set}/delta?", shared.graph_url);
    if let Some(names) = select {
        location.push_str("$select=");
        location.push_str(&names.join(","));
        location.push('&');
    }
    location.push_str("$deltatoken=");
    GraphError::new(
        410,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
    .with_location(location)
}

/// Decodes a state token, telling a forged one (400) from a stale one (410).
pub(crate) fn decode_state(
    shared: &Shared,
    collection: Collection,
    token: &str,
    delta_token: bool,
) -> Result<(State, Option<Vec<String>>), GraphError> {
    let bad = || {
        GraphError::bad_request(if delta_token {
            "Invalid Delta Token"
        } else {
            "Invalid Skip Token"
        })
    };
    let state = State::decode(shared.skip_key, token).ok_or_else(bad)?;
    let kind_fits = match state.kind {
        TokenKind::Delta => delta_token,
        TokenKind::InitialSkip | TokenKind::ReplaySkip => !delta_token,
    };
    if !kind_fits || state.collection != collection {
        return Err(bad());
    }
    let select = match &state.select {
        Some(codes) => Some(delta::select_names(collection, codes).ok_or_else(bad)?),
        None => None,
    };
    if state.run != shared.run_id || state.epoch != shared.delta_epoch() {
        return Err(resync_required(shared, collection, select.as_deref()));
    }
    Ok((state, select))
}

/// What a replay shows of a record the client last saw at version `base`:
/// created or restored since → in full; updated → what changed, if a tracked
/// property changed ("If a change occurs to a property that is not selected,
/// the resource for which that property changed does not appear in the delta
/// response", delta-query-overview.md); deleted → `@removed` with "changed"
/// (restorable) or "deleted" (permanent).
fn replay_item(r: &Record, base: u64, tracked: u32) -> Option<DeltaItem<'_>> {
    match r.presence {
        Presence::Live if r.appeared > base => Some(DeltaItem::Full(&r.user)),
        Presence::Live => {
            let changed = r.changed_since(base) & tracked;
            (changed != 0).then_some(DeltaItem::Changed(
                &r.user,
                changed,
                r.prev_manager.as_deref(),
            ))
        }
        Presence::SoftDeleted => Some(DeltaItem::Removed(&r.user.id, "changed")),
        Presence::HardDeleted => Some(DeltaItem::Removed(&r.user.id, "deleted")),
    }
}

/// `GET /users/delta` (api-reference/v1.0/api/user-delta.md,
/// concepts/delta-query-overview.md, concepts/delta-query-users.md).
///
/// * No token (or an empty `$deltatoken`, as in the 410 `Location`): an
///   initial round of every current user, in full, no tombstones ("The initial
///   request … will return the resources that currently exist").
/// * `$deltatoken=latest`: "the response will contain a `@odata.deltaLink` and
///   no resource data".
/// * `$deltatoken=…`: a replay round of what changed since that token.
/// * Pages end in `@odata.nextLink` (`$skiptoken`) until the last, which
///   carries `@odata.deltaLink` (`$deltatoken`), "even if the value is an empty
///   array".
/// * `$select` is encoded in the tokens ("Microsoft Graph automatically encodes
///   any specified parameters into the token portion"); it may be changed with
///   a `$deltatoken` ("`$select` and `$deltaLink` query parameters will be
///   supported … so that customers can change the properties they want to
///   track") but not with a `$skiptoken` ("Delta queries with both `$select`
///   and `$skipToken` will not be supported").
/// * Page size: `$top` "is not supported" for users (ignored); the client may
///   ask with `Prefer: odata.maxpagesize=N`, the header Graph documents for
///   delta functions (e.g. api-reference/v1.0/api/message-delta.md, "Request
///   headers"); the value applied is echoed in `Preference-Applied` (OData
///   4.0 Part 1, §8.2.8.3 and §9.1.1 "Preference-Applied").
/// * `Prefer: return=minimal` on a replay: updated users carry only `id` and
///   their changed properties (user-delta.md, "Alternative: return only the
///   changed properties").
fn users_delta(shared: &Shared, q: &Query, prefer: delta::Prefer) -> Result<Reply, GraphError> {
    let page_size = prefer
        .max_page_size
        .map_or(DELTA_DEFAULT_PAGE, |n| n.min(DELTA_MAX_PAGE));
    let dir = shared.dir();
    let epoch = shared.delta_epoch();
    let deltatoken = q.deltatoken.as_deref().map(str::trim);
    let (state, select) = match (deltatoken, q.skiptoken.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(GraphError::bad_request(
                "Only one of $skiptoken and $deltatoken can be specified.",
            ));
        }
        (Some(t), None) if t.eq_ignore_ascii_case("latest") => {
            // "Sync from now": a deltaLink and no data.
            let select = resolved_select(q)?;
            let state = State {
                collection: Collection::Users,
                kind: TokenKind::Delta,
                run: shared.run_id,
                epoch,
                base: dir.version,
                upper: dir.version,
                pos: 0,
                stop: 0,
                sub: 0,
                select: select
                    .as_deref()
                    .map(|n| delta::select_codes(Collection::Users, n)),
            };
            (state, select)
        }
        (Some(t), None) if !t.is_empty() => {
            let (token, token_select) = decode_state(shared, Collection::Users, t, true)?;
            let select = match &q.select {
                Some(_) => resolved_select(q)?,
                None => token_select,
            };
            let state = State {
                collection: Collection::Users,
                kind: TokenKind::ReplaySkip,
                run: shared.run_id,
                epoch,
                base: token.base,
                upper: dir.version,
                pos: token.base,
                stop: 0,
                sub: 0,
                select: select
                    .as_deref()
                    .map(|n| delta::select_codes(Collection::Users, n)),
            };
            (state, select)
        }
        (_, Some(t)) => {
            if q.select.is_some() {
                return Err(delta::select_with_skiptoken());
            }
            decode_state(shared, Collection::Users, t, false)?
        }
        (_, None) => {
            let select = resolved_select(q)?;
            let state = State {
                collection: Collection::Users,
                kind: TokenKind::InitialSkip,
                run: shared.run_id,
                epoch,
                base: 0,
                upper: dir.version,
                pos: 0,
                stop: dir.records.len() as u64,
                sub: 0,
                select: select
                    .as_deref()
                    .map(|n| delta::select_codes(Collection::Users, n)),
            };
            (state, select)
        }
    };
    let mut props: Vec<Prop> = match &select {
        Some(names) => userprops::resolve(names, true)?,
        None => userprops::default_props(),
    };
    // Graph refuses signInActivity on users/delta: 400 BadRequest "Invalid
    // request for delta query: for this entity set, $expand/$select is not
    // supported for the following properties: signInActivity"
    // (microsoftgraph/microsoft-graph-explorer-v4#3189); like skills, it is
    // stored outside the directory (delta-query-overview.md, "Properties
    // stored outside of the main data store").
    if props.iter().any(Prop::is_sign_in_activity) {
        return Err(GraphError::new(
            400,
            "BadRequest",
            "Invalid request for delta query: for this entity set, $expand/$select is not supported for the following properties: signInActivity",
        ));
    }
    // "The *id* property is always returned" (user-delta.md).
    if !props.iter().any(|p| p.name == "id") {
        props.extend(userprops::resolve(&["id".to_string()], true)?);
    }
    // "If `$select` isn't specified, all properties of the object are tracked
    // for changes" (delta-query-users.md).
    // The manager only when selected ("`$select` also supports **manager**
    // and **members** navigation properties for users and groups
    // respectively. Selecting those properties allows tracking of changes to
    // user's manager and group memberships", delta-query-overview.md).
    let tracked = match &select {
        Some(_) => props.iter().fold(0, |m, p| m | p.fields()),
        None => field::TRACKED_BY_DEFAULT,
    };
    let latest_only = deltatoken.is_some_and(|t| t.eq_ignore_ascii_case("latest"));
    let replay = state.kind == TokenKind::ReplaySkip;
    let (items, next) = if latest_only {
        (Vec::new(), None)
    } else if replay {
        replay_page(&dir, &state, tracked, page_size)
    } else {
        initial_page(&dir, &state, page_size)
    };
    let link = |s: &State, param: &str| {
        format!(
            "{}/v1.0/users/delta?{param}={}",
            shared.graph_url,
            s.encode(shared.skip_key)
        )
    };
    let (next_link, delta_link) = match next {
        Some(pos) => {
            let next_state = State {
                pos,
                ..state.clone()
            };
            (Some(link(&next_state, "$skiptoken")), None)
        }
        None => {
            let done = State {
                kind: TokenKind::Delta,
                base: state.upper,
                pos: 0,
                stop: 0,
                ..state.clone()
            };
            (None, Some(link(&done, "$deltatoken")))
        }
    };
    // `SimConfig::minimal_updates`: Graph may send only what changed without
    // being asked ("*at least* the properties that have been updated",
    // delta-query-overview.md); only a preference the client sent is echoed.
    let minimal = (prefer.minimal || shared.config.minimal_updates) && replay;
    let selected: Option<Vec<&str>> = select
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    let context = context(shared, Set::Users, selected.as_deref(), false);
    let body = DeltaPage {
        context: &context,
        next_link: next_link.as_deref(),
        delta_link: delta_link.as_deref(),
        items: &items,
        props: &props,
        minimal,
        ctx: ctx(shared),
    };
    let mut buf = Vec::with_capacity(256 + items.len() * (64 + props.len() * 40));
    serde_json::to_writer(&mut buf, &body)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))?;
    let mut applied = Vec::new();
    if prefer.max_page_size.is_some() {
        applied.push(format!("odata.maxpagesize={page_size}"));
    }
    if prefer.minimal && replay {
        applied.push("return=minimal".to_string());
    }
    let headers = if applied.is_empty() {
        Vec::new()
    } else {
        vec![("preference-applied", applied.join(", "))]
    };
    Ok(Reply::JsonWith(buf, headers))
}

/// `$select` of a request, canonically spelled and checked against the
/// catalogue (as on /users).
fn resolved_select(q: &Query) -> Result<Option<Vec<String>>, GraphError> {
    match &q.select {
        Some(names) => {
            userprops::resolve(names, true)?;
            Ok(Some(
                names.iter().map(|n| userprops::canonical(n)).collect(),
            ))
        }
        None => Ok(None),
    }
}

/// One page of an initial round: live users by record index from `pos`, up
/// to the number of records when the round began (users created since are in
/// the next replay). Returns the page and the next position, if any.
fn initial_page<'a>(
    dir: &'a Directory,
    state: &State,
    page_size: usize,
) -> (Vec<DeltaItem<'a>>, Option<u64>) {
    let records = &dir.records;
    let stop = (state.stop as usize).min(records.len());
    let mut i = (state.pos as usize).min(stop);
    let mut items = Vec::with_capacity(page_size.min(stop - i));
    while i < stop && items.len() < page_size {
        if records[i].is_live() {
            items.push(DeltaItem::Full(&records[i].user));
        }
        i += 1;
    }
    while i < stop && !records[i].is_live() {
        i += 1;
    }
    (items, (i < stop).then_some(i as u64))
}

/// One page of a replay round: records whose current version is in
/// `(pos, upper]`, read through the version index (a record changed again
/// during the round moves past `upper` and is in the next round). Returns the
/// page and, if more items follow, the last version the page covers.
fn replay_page<'a>(
    dir: &'a Directory,
    state: &State,
    tracked: u32,
    page_size: usize,
) -> (Vec<DeltaItem<'a>>, Option<u64>) {
    let mut items = Vec::new();
    if state.pos >= state.upper {
        return (items, None);
    }
    let mut last = state.pos;
    for (&version, &i) in dir.by_version.range(state.pos + 1..=state.upper) {
        match replay_item(&dir.records[i], state.base, tracked) {
            Some(_) if items.len() == page_size => return (items, Some(last)),
            Some(item) => {
                items.push(item);
                last = version;
            }
            None if items.len() < page_size => last = version,
            None => {}
        }
    }
    (items, None)
}

fn not_found(key: &str) -> GraphError {
    GraphError::new(
        404,
        "Request_ResourceNotFound",
        format!(
            "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn render_single_user(
    shared: &Shared,
    user: &User,
    q: &Query,
    entity_context: Option<String>,
) -> Result<Reply, GraphError> {
    let props = match &q.select {
        Some(names) => userprops::resolve(names, false)?,
        None => userprops::default_props(),
    };
    let selected: Option<Vec<String>> = q
        .select
        .as_ref()
        .map(|names| names.iter().map(|n| userprops::canonical(n)).collect());
    let selected: Option<Vec<&str>> = selected
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    let context =
        entity_context.unwrap_or_else(|| context(shared, Set::Users, selected.as_deref(), true));
    let body = SingleUser {
        context: &context,
        view: UserView {
            user,
            props: &props,
            ctx: ctx(shared),
        },
    };
    serde_json::to_vec(&body)
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

fn get_user(shared: &Shared, claims: &Claims, key: &str, q: &Query) -> Result<Reply, GraphError> {
    // A user is addressed by id or userPrincipalName (user-get.md); deleted
    // users are not found.
    if let Some(names) = &q.select {
        check_user_props(shared, claims, &userprops::resolve(names, false)?)?;
    }
    let dir = shared.dir();
    let user = dir.live_user(key).ok_or_else(|| not_found(key))?;
    render_single_user(shared, user, q, None)
}

/// `GET /users/{id | userPrincipalName}/manager` (user-list-manager.md): the
/// manager as a directoryObject (a user, with `@odata.type`), or 404 when
/// the user has none.
fn get_manager(shared: &Shared, key: &str, q: &Query) -> Result<Reply, GraphError> {
    let dir = shared.dir();
    let user = dir.live_user(key).ok_or_else(|| not_found(key))?;
    let manager = user
        .manager_id
        .as_deref()
        .and_then(|m| dir.live_user(m))
        .ok_or_else(|| not_found("manager"))?;
    let Reply::Json(body) = render_single_user(
        shared,
        manager,
        q,
        Some(format!(
            "{}/v1.0/$metadata#directoryObjects/$entity",
            shared.graph_url
        )),
    )?
    else {
        return Err(GraphError::new(500, "generalException", "unexpected reply"));
    };
    let mut v: Value = serde_json::from_slice(&body)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.type".to_string(),
            Value::String("#microsoft.graph.user".to_string()),
        );
    }
    serde_json::to_vec(&v)
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

/// `GET /reports/{function}(period='Dn')`: a `302 Found` to a
/// pre-authenticated download URL on the download host (see `download.rs`).
/// Periods other than D7, D30, D90 and D180 ("The supported values for
/// {period_value} are: D7, D30, D90, and D180", every reportroot-get*.md page)
/// get a 400; the code and message follow the reports API's answer to a date
/// outside its range (400 `InvalidArgument` "Invalid date value specified:
/// … Only support data for the past 28 days.",
/// microsoftgraph/microsoft-graph-docs#8946) — the exact text for a bad
/// period is not documented. `$format=text/csv` is accepted
/// (getM365AppUserDetail: "The default output type is `text/csv`");
/// `application/json`, which some reports offer, is not modelled (501), nor
/// is the `date` parameter.
fn reports_function(shared: &Shared, function: &str, raw_query: &str) -> Result<Reply, GraphError> {
    let (name, args) = match function.split_once('(') {
        Some((name, rest)) => (
            name,
            rest.strip_suffix(')').ok_or_else(|| {
                GraphError::bad_request(format!("Syntax error in function call '{function}'."))
            })?,
        ),
        None => (function, ""),
    };
    let name = name.strip_prefix("microsoft.graph.").unwrap_or(name);
    let kind =
        reports::ReportKind::from_function(name).ok_or_else(|| segment_not_found(function))?;
    for (k, v) in crate::util::split_query(raw_query) {
        let k = percent_decode(k, true).unwrap_or_default();
        let v = percent_decode(v, true).unwrap_or_default();
        if k.eq_ignore_ascii_case("$format") {
            if v.to_ascii_lowercase().starts_with("application/json")
                || v.eq_ignore_ascii_case("json")
            {
                return Err(GraphError::new(
                    501,
                    "NotImplemented",
                    "The simulator serves usage reports as CSV only.",
                ));
            }
            if !v.eq_ignore_ascii_case("text/csv") {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!("The format '{v}' is not supported."),
                ));
            }
        } else {
            return Err(GraphError::new(
                400,
                "BadRequest",
                format!("The query parameter '{k}' is not supported."),
            ));
        }
    }
    let (param, value) = args.split_once('=').ok_or_else(|| {
        GraphError::bad_request(format!(
            "The function '{name}' requires the parameter 'period'."
        ))
    })?;
    let param = param.trim();
    if param.eq_ignore_ascii_case("date") {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            "The simulator serves usage reports by period only.",
        ));
    }
    if !param.eq_ignore_ascii_case("period") {
        return Err(GraphError::bad_request(format!(
            "The parameter '{param}' is not valid for function '{name}'."
        )));
    }
    let value = value.trim();
    let quoted = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(|| {
            GraphError::bad_request(format!(
                "The period value {value} must be a string literal, e.g. period='D7'."
            ))
        })?;
    let period = reports::parse_period(quoted).ok_or_else(|| {
        GraphError::new(
            400,
            "InvalidArgument",
            format!(
                "Invalid period value specified: {quoted}. Supported values are D7, D30, D90 and D180."
            ),
        )
    })?;
    Ok(Reply::Redirect(crate::download::issue_url(
        shared, kind, period,
    )))
}

/// `GET /admin/reportSettings` (adminreportsettings-get.md):
/// `displayConcealedNames`, which `SimConfig::concealed_reports` sets.
fn report_settings(shared: &Shared, q: &Query) -> Result<Reply, GraphError> {
    let value = json!({
        "@odata.context": format!("{}/v1.0/$metadata#admin/reportSettings/$entity", shared.graph_url),
        "displayConcealedNames": shared.config.concealed_reports,
    });
    let value = match &q.select {
        Some(names) => {
            let keys = resolve_keys(&value, names, Set::Admin)?;
            let mut out = Map::new();
            out.insert("@odata.context".into(), value["@odata.context"].clone());
            for k in keys {
                out.insert(k.clone(), value[&k].clone());
            }
            Value::Object(out)
        }
        None => value,
    };
    serde_json::to_vec(&value)
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

/// Organization, subscribedSkus and domains: small collections rendered as
/// JSON values, with generic `$select`.
fn small_set(shared: &Shared, set: Set, key: Option<&str>, q: &Query) -> Result<Reply, GraphError> {
    let items: Vec<(String, Value)> = match set {
        Set::Organization => vec![(shared.tenant.id.clone(), organization(shared))],
        Set::SubscribedSkus => shared
            .dir()
            .skus(&shared.tenant.skus)
            .iter()
            .map(|s| {
                let v = subscribed_sku(shared, s);
                (v["id"].as_str().unwrap_or_default().to_string(), v)
            })
            .collect(),
        Set::Domains => shared
            .tenant
            .domains
            .iter()
            .map(|d| (d.id.clone(), domain(d)))
            .collect(),
        Set::Users
        | Set::Groups
        | Set::Reports
        | Set::Admin
        | Set::Applications
        | Set::TenantRelationships => Vec::new(),
    };
    let select = q.select.as_deref();
    let template = items.first().map(|(_, v)| v.clone()).unwrap_or(json!({}));
    let selected = select
        .map(|names| resolve_keys(&template, names, set))
        .transpose()?;
    let project = |v: &Value| -> Value {
        match (&selected, v.as_object()) {
            (Some(keys), Some(obj)) => {
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), obj.get(k).cloned().unwrap_or(Value::Null));
                }
                Value::Object(out)
            }
            _ => v.clone(),
        }
    };
    let names: Option<Vec<&str>> = selected
        .as_ref()
        .map(|keys| keys.iter().map(String::as_str).collect());
    let body = match key {
        None => json!({
            "@odata.context": context(shared, set, names.as_deref(), false),
            "value": items.iter().map(|(_, v)| project(v)).collect::<Vec<_>>(),
        }),
        Some(k) => {
            let (_, item) = items
                .iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(k))
                .ok_or_else(|| {
                    GraphError::new(
                        404,
                        "Request_ResourceNotFound",
                        format!(
                            "Resource '{k}' does not exist or one of its queried reference-property objects are not present."
                        ),
                    )
                })?;
            let mut v = project(item);
            if let Some(obj) = v.as_object_mut() {
                let mut out = Map::new();
                out.insert(
                    "@odata.context".into(),
                    Value::String(context(shared, set, names.as_deref(), true)),
                );
                out.append(obj);
                v = Value::Object(out);
            }
            v
        }
    };
    serde_json::to_vec(&body)
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

/// Maps `$select` names case-insensitively onto the object's keys.
pub(crate) fn resolve_keys(
    template: &Value,
    names: &[String],
    set: Set,
) -> Result<Vec<String>, GraphError> {
    let keys: Vec<&String> = template
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if name == "*" {
            for k in &keys {
                if !out.contains(k) {
                    out.push((*k).clone());
                }
            }
            continue;
        }
        let key = keys
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type '{}'.",
                    set.odata_type()
                ))
            })?;
        if !out.contains(key) {
            out.push((*key).clone());
        }
    }
    Ok(out)
}

/// The organization resource (organization-list.md example response).
fn organization(shared: &Shared) -> Value {
    let t = &shared.tenant;
    let verified: Vec<Value> = t
        .domains
        .iter()
        .filter(|d| d.is_verified)
        .map(|d| {
            json!({
                // The mail routing domain carries mail only.
                "capabilities": if d.id.ends_with(".mail.onmicrosoft.com") {
                    "Email"
                } else {
                    "Email, OfficeCommunicationsOnline"
                },
                "isDefault": d.is_default,
                "isInitial": d.is_initial,
                "name": d.id,
                "type": "Managed",
            })
        })
        .collect();
    let admin = format!("admin@{}", t.initial_domain());
    json!({
        "id": t.id,
        "deletedDateTime": null,
        "businessPhones": [],
        "city": t.city,
        "country": null,
        "countryLetterCode": t.country_letter_code,
        "createdDateTime": t.created_date_time,
        "defaultUsageLocation": t.country_letter_code,
        "displayName": t.name,
        "isMultipleDataLocationsForServicesEnabled": null,
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": null,
        "onPremisesSyncEnabled": null,
        "postalCode": null,
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": null,
        "street": null,
        "technicalNotificationMails": [admin],
        "tenantType": "AAD",
        "directorySizeQuota": {"used": shared.dir().records.len() + t.domains.len(), "total": 300_000},
        "assignedPlans": [],
        "privacyProfile": {"contactEmail": "", "statementUrl": ""},
        "provisionedPlans": [],
        "verifiedDomains": verified,
    })
}

/// A subscribedSku (subscribedsku-list.md example response): `servicePlans`
/// entries carry servicePlanId, servicePlanName, provisioningStatus and
/// appliesTo; `capabilityStatus` is `Enabled` while units are enabled, else
/// `Warning` or `Suspended` as the units are (resources/subscribedsku.md).
/// Plans that are not Microsoft's (the custom add-on) get an id derived from
/// the tenant.
fn subscribed_sku(shared: &Shared, s: &crate::tenant::Sku) -> Value {
    let t = &shared.tenant;
    let subscription = Rng::derived(
        keyed_hash(shared.config.tenant.seed, s.sku_id.as_bytes()),
        3,
    )
    .guid();
    let plans: Vec<Value> = s
        .service_plans
        .iter()
        .map(|name| {
            let (id, applies) = crate::names::service_plan(name)
                .map(|(id, a)| (id.to_string(), a))
                .unwrap_or_else(|| {
                    let id =
                        Rng::derived(keyed_hash(shared.config.tenant.seed, name.as_bytes()), 5)
                            .guid();
                    (id, "User")
                });
            json!({
                "servicePlanId": id,
                "servicePlanName": name,
                "provisioningStatus": "Success",
                "appliesTo": applies,
            })
        })
        .collect();
    let status = if s.prepaid_enabled > 0 {
        "Enabled"
    } else if s.warning > 0 {
        "Warning"
    } else {
        "Suspended"
    };
    json!({
        "accountName": t.name,
        "accountId": t.id,
        "appliesTo": "User",
        "capabilityStatus": status,
        "consumedUnits": s.consumed_units,
        "id": format!("{}_{}", t.id, s.sku_id),
        "prepaidUnits": {
            "enabled": s.prepaid_enabled,
            "lockedOut": 0,
            "suspended": s.suspended,
            "warning": s.warning,
        },
        "servicePlans": plans,
        "skuId": s.sku_id,
        "skuPartNumber": s.sku_part_number,
        "subscriptionIds": [subscription],
    })
}

/// A domain (domain-list.md example response and resources/domain.md).
fn domain(d: &crate::tenant::Domain) -> Value {
    let services: Vec<&str> = if d.id.ends_with(".mail.onmicrosoft.com") {
        vec!["Email"]
    } else if d.is_verified {
        vec!["Email", "OfficeCommunicationsOnline"]
    } else {
        Vec::new()
    };
    json!({
        "authenticationType": "Managed",
        "availabilityStatus": null,
        "id": d.id,
        "isAdminManaged": true,
        "isDefault": d.is_default,
        "isInitial": d.is_initial,
        "isRoot": true,
        "isVerified": d.is_verified,
        "passwordNotificationWindowInDays": 14,
        "passwordValidityPeriodInDays": 2_147_483_647,
        "supportedServices": services,
        "state": null,
    })
}
