//! The Graph host: routing of `/v1.0/...`, bearer-token and permission checks,
//! and the read-only resources the simulator serves: users (paged), the
//! organization, subscribedSkus and domains.
//!
//! Pages cited: api-reference/v1.0/api/user-list.md, user-get.md,
//! organization-list.md, subscribedsku-list.md, domain-list.md,
//! concepts/paging.md, concepts/errors.md and concepts/query-parameters.md
//! (all in microsoftgraph/microsoft-graph-docs-contrib).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::odata::{Allowed, GraphError, Query, parse_query};
use crate::paging;
use crate::rng::Rng;
use crate::server::Shared;
use crate::token::{Claims, validate_bearer};
use crate::userprops::{self, Ctx, SingleUser, UserPage, UserView};
use crate::util::{graph_error_date, keyed_hash, percent_decode};

/// Graph's JSON media type, as the service sends it.
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Default page size of the users list.
const DEFAULT_TOP: usize = 100;

/// Per-request ids, echoed in headers and error bodies.
struct Ids {
    request_id: String,
    client_request_id: String,
}

pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(latency) = shared.config.latency
        && latency > Duration::ZERO
    {
        tokio::time::sleep(latency).await;
    }
    let request_id = shared.next_guid();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100)
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let ids = Ids {
        request_id,
        client_request_id,
    };
    match route(shared, &req) {
        Ok(ok) => ok.into_response(&ids),
        Err(e) => error_response(shared, &e, &ids),
    }
}

/// A successful answer before headers are added.
enum Reply {
    Json(Vec<u8>),
    Text(String),
}

impl Reply {
    fn into_response(self, ids: &Ids) -> Response<Full<Bytes>> {
        let (body, content_type) = match self {
            Reply::Json(b) => (b, ODATA_JSON),
            Reply::Text(t) => (t.into_bytes(), "text/plain"),
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert("odata-version", HeaderValue::from_static("4.0"));
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        insert_ids(h, ids);
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

fn error_response(shared: &Shared, e: &GraphError, ids: &Ids) -> Response<Full<Bytes>> {
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
    r
}

/// The entity sets the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Users,
    Organization,
    SubscribedSkus,
    Domains,
}

impl Set {
    fn parse(segment: &str) -> Option<Set> {
        // Graph resolves segment names case-insensitively.
        match segment.to_ascii_lowercase().as_str() {
            "users" => Some(Set::Users),
            "organization" => Some(Set::Organization),
            "subscribedskus" => Some(Set::SubscribedSkus),
            "domains" => Some(Set::Domains),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Set::Users => "users",
            Set::Organization => "organization",
            Set::SubscribedSkus => "subscribedSkus",
            Set::Domains => "domains",
        }
    }

    fn odata_type(self) -> &'static str {
        match self {
            Set::Users => "microsoft.graph.user",
            Set::Organization => "microsoft.graph.organization",
            Set::SubscribedSkus => "microsoft.graph.subscribedSku",
            Set::Domains => "microsoft.graph.domain",
        }
    }

    /// Application permissions that allow reading the set, from each API's
    /// permissions table (user-list.md, organization-list.md,
    /// subscribedsku-list.md, domain-list.md). The newer *.ReadWrite.All and
    /// Organization.Read.All variants are accepted too.
    fn roles(self) -> &'static [&'static str] {
        match self {
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

fn segment_not_found(segment: &str) -> GraphError {
    // Graph answers an unknown path segment at routing time with
    // 400 BadRequest "Resource not found for the segment '…'." (observed
    // service behaviour; concepts/errors.md lists 400 for malformed requests).
    GraphError::new(
        400,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Result<Reply, GraphError> {
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
    let set = Set::parse(set_segment).ok_or_else(|| segment_not_found(set_segment))?;
    let key = segments.get(2).map(String::as_str);
    if let Some(extra) = segments.get(3) {
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
    let consistency_eventual = req
        .headers()
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));

    match (set, key) {
        (Set::Users, None) => {
            let q = parse_query(
                raw_query,
                Allowed {
                    select: true,
                    top: true,
                    skiptoken: true,
                    count: true,
                },
            )?;
            list_users(shared, &q, consistency_eventual)
        }
        (Set::Users, Some(k)) if k.eq_ignore_ascii_case("$count") => {
            parse_query(raw_query, NONE_ALLOWED)?;
            count_users(shared, consistency_eventual)
        }
        (Set::Users, Some(k)) => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            get_user(shared, k, &q)
        }
        (set, key) => {
            let q = parse_query(raw_query, SELECT_ONLY)?;
            small_set(shared, set, key, &q)
        }
    }
}

const SELECT_ONLY: Allowed = Allowed {
    select: true,
    top: false,
    skiptoken: false,
    count: false,
};

const NONE_ALLOWED: Allowed = Allowed {
    select: false,
    top: false,
    skiptoken: false,
    count: false,
};

fn check_roles(shared: &Shared, claims: &Claims, set: Set) -> Result<(), GraphError> {
    if !shared.config.enforce_roles {
        return Ok(());
    }
    let allowed = set.roles();
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

fn ctx(shared: &Shared) -> Ctx<'_> {
    Ctx {
        initial_domain: shared.tenant.initial_domain(),
    }
}

/// `@odata.context` for a set, with the selected properties if any, e.g.
/// `…/v1.0/$metadata#users(displayName,id)` (user-list.md examples).
fn context(shared: &Shared, set: Set, selected: Option<&[&str]>, entity: bool) -> String {
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
    Ok(Reply::Text(shared.tenant.users.len().to_string()))
}

fn list_users(shared: &Shared, q: &Query, eventual: bool) -> Result<Reply, GraphError> {
    let props = match &q.select {
        Some(names) => userprops::resolve(names, true)?,
        None => userprops::default_props(),
    };
    let top = q.top.unwrap_or(DEFAULT_TOP);
    let users = &shared.tenant.users;
    let offset = match &q.skiptoken {
        Some(token) => paging::decode(shared.skip_key, token)
            .filter(|&o| o <= users.len())
            // Graph's own answer to a skip token it cannot use is a 400 with
            // "Invalid Skip Token" (microsoftgraph/microsoft-graph-docs-contrib#5103).
            .ok_or_else(|| GraphError::bad_request("Invalid Skip Token"))?,
        None => 0,
    };
    let count = match q.count {
        Some(true) if !eventual => return Err(count_not_supported()),
        // "the @odata.count property will be present only in the first page"
        // (concepts/paging.md).
        Some(true) if q.skiptoken.is_none() => Some(users.len()),
        _ => None,
    };
    let end = (offset + top).min(users.len());
    let page = &users[offset..end];
    // The names as asked for, canonically spelled ("*" stays "*").
    let selected: Option<Vec<String>> = q
        .select
        .as_ref()
        .map(|names| names.iter().map(|n| userprops::canonical(n)).collect());
    let selected: Option<Vec<&str>> = selected
        .as_ref()
        .map(|names| names.iter().map(String::as_str).collect());
    let next_link = (end < users.len()).then(|| next_link(shared, q, selected.as_deref(), end));
    let context = context(shared, Set::Users, selected.as_deref(), false);
    let body = UserPage {
        context: &context,
        count,
        next_link: next_link.as_deref(),
        users: page,
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

fn get_user(shared: &Shared, key: &str, q: &Query) -> Result<Reply, GraphError> {
    // A user is addressed by id or userPrincipalName (user-get.md).
    let index = shared
        .user_index
        .get(&key.to_ascii_lowercase())
        .copied()
        .ok_or_else(|| {
            GraphError::new(
                404,
                "Request_ResourceNotFound",
                format!(
                    "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
                ),
            )
        })?;
    let user = &shared.tenant.users[index];
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
    let context = context(shared, Set::Users, selected.as_deref(), true);
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

/// Organization, subscribedSkus and domains: small collections rendered as
/// JSON values, with generic `$select`.
fn small_set(shared: &Shared, set: Set, key: Option<&str>, q: &Query) -> Result<Reply, GraphError> {
    let items: Vec<(String, Value)> = match set {
        Set::Organization => vec![(shared.tenant.id.clone(), organization(shared))],
        Set::SubscribedSkus => shared
            .tenant
            .skus
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
        Set::Users => Vec::new(),
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
fn resolve_keys(template: &Value, names: &[String], set: Set) -> Result<Vec<String>, GraphError> {
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
                "capabilities": "Email, OfficeCommunicationsOnline",
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
        "directorySizeQuota": {"used": t.users.len() + t.domains.len(), "total": 300_000},
        "assignedPlans": [],
        "privacyProfile": {"contactEmail": "", "statementUrl": ""},
        "provisionedPlans": [],
        "verifiedDomains": verified,
    })
}

/// A subscribedSku (subscribedsku-list.md example response). Service plans
/// are not modelled and are listed empty.
fn subscribed_sku(shared: &Shared, s: &crate::tenant::Sku) -> Value {
    let t = &shared.tenant;
    let subscription = Rng::derived(
        keyed_hash(shared.config.tenant.seed, s.sku_id.as_bytes()),
        3,
    )
    .guid();
    json!({
        "accountName": t.name,
        "accountId": t.id,
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": s.consumed_units,
        "id": format!("{}_{}", t.id, s.sku_id),
        "prepaidUnits": {
            "enabled": s.prepaid_enabled,
            "lockedOut": 0,
            "suspended": 0,
            "warning": 0,
        },
        "servicePlans": [],
        "skuId": s.sku_id,
        "skuPartNumber": s.sku_part_number,
        "subscriptionIds": [subscription],
    })
}

/// A domain (domain-list.md example response and resources/domain.md).
fn domain(d: &crate::tenant::Domain) -> Value {
    let services: Vec<&str> = if d.is_verified {
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
