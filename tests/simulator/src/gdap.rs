//! Granular delegated admin privileges (GDAP): the partner tenant's delegated
//! admin relationships with its customers,
//! `GET /v1.0/tenantRelationships/delegatedAdminRelationships` (paged) and
//! `GET …/delegatedAdminRelationships/{id}`, and a builder of realistic
//! relationships for tests.
//!
//! Pages relied on (microsoftgraph/microsoft-graph-docs-contrib):
//! - api-reference/v1.0/api/tenantrelationship-list-delegatedadminrelationships.md:
//!   the request, "This method supports the `$select`, `$filter`, `$top`,
//!   `$orderby`, `$count`, and `$skipToken` OData query parameters",
//!   "`$top` supports up to 300 objects", the example response (the
//!   `@odata.context`, each item's `@odata.type` and `@odata.etag`, the
//!   `customer` and `accessDetails.unifiedRoles` objects, the
//!   `{relationship}-{guid}` ids and the role definition ids used below).
//! - api-reference/v1.0/resources/delegatedadminrelationship.md: the
//!   properties, the statuses, `autoExtendDuration` ("Supported values are:
//!   `P0D`, `PT0S`, `P180D`"), `duration` ("between `P1D` and `P2Y`"),
//!   `endDateTime = activatedDateTime + duration`.
//! - api-reference/v1.0/api/delegatedadminrelationship-get.md: the single get.
//! - The list "can also include one or more resellerDelegatedAdminRelationship
//!   objects" (the list page): `@odata.type`
//!   `#microsoft.graph.resellerDelegatedAdminRelationship` with
//!   `indirectProviderTenantId` and `isPartnerConsentPending`, as in its example.
//! - Permissions: DelegatedAdminRelationship.Read.All or
//!   DelegatedAdminRelationship.ReadWrite.All. Earlier revisions of these
//!   pages said "Application | Not supported"; Graph's permission reference
//!   (concepts/permissions-reference.md) now lists both as application
//!   permissions too (DelegatedAdminRelationship.Read.All: f6e9e124-4586-492f-adc0-c6f96e4823fd).
//!
//! Not documented, so chosen here: the server's page size without `$top`
//! (`SimConfig::delegated_admin_page_size`, small so that clients must page);
//! a `$top` above 300 is served as 300. Of `$filter`, only `status eq '…'` is
//! modelled; `$orderby` is not.

use serde_json::{Map, Value, json};

use crate::graph::{Reply, Set, authorize, resolve_keys, segment_not_found};
use crate::odata::{Allowed, GraphError, Query, parse_query};
use crate::paging;
use crate::rng::{Rng, guid_from};
use crate::server::Shared;
use crate::util::{
    b64_encode, iso8601, keyed_hash, percent_decode, percent_encode, split_query, unix_now,
};

/// "`$top` supports up to 300 objects."
const MAX_TOP: usize = 300;

/// Keeps GDAP skip tokens apart from the users list's.
const SKIP_SALT: u64 = 0x6744_6170_5347;

const DAY: u64 = 86_400;

/// Directory Readers and Global Reader, two of the role definition ids in the
/// list page's example response.
pub const DEFAULT_ROLE_DEFINITION_IDS: [&str; 2] = [
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
];

/// delegatedAdminRelationshipStatus (resources/delegatedadminrelationship.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationshipStatus {
    Created,
    ApprovalPending,
    Approved,
    Activating,
    Active,
    Expiring,
    Expired,
    TerminationRequested,
    Terminating,
    Terminated,
}

impl RelationshipStatus {
    pub const ALL: [RelationshipStatus; 10] = [
        RelationshipStatus::Created,
        RelationshipStatus::ApprovalPending,
        RelationshipStatus::Approved,
        RelationshipStatus::Activating,
        RelationshipStatus::Active,
        RelationshipStatus::Expiring,
        RelationshipStatus::Expired,
        RelationshipStatus::TerminationRequested,
        RelationshipStatus::Terminating,
        RelationshipStatus::Terminated,
    ];

    /// The value Graph sends, e.g. `approvalPending`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationshipStatus::Created => "created",
            RelationshipStatus::ApprovalPending => "approvalPending",
            RelationshipStatus::Approved => "approved",
            RelationshipStatus::Activating => "activating",
            RelationshipStatus::Active => "active",
            RelationshipStatus::Expiring => "expiring",
            RelationshipStatus::Expired => "expired",
            RelationshipStatus::TerminationRequested => "terminationRequested",
            RelationshipStatus::Terminating => "terminating",
            RelationshipStatus::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<RelationshipStatus> {
        RelationshipStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// One delegated admin relationship between the partner (the simulated
/// tenant) and a customer tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedAdminRelationship {
    pub id: String,
    pub display_name: String,
    pub customer_tenant_id: String,
    pub customer_display_name: String,
    pub status: RelationshipStatus,
    /// Unix seconds.
    pub created: u64,
    pub last_modified: u64,
    /// `None` until the relationship was activated.
    pub activated: Option<u64>,
    /// When the relationship ends (or ended): activated + duration, or the
    /// termination time.
    pub end: Option<u64>,
    /// ISO 8601, e.g. `P730D`.
    pub duration: String,
    /// `PT0S` (no extension), `P0D` or `P180D`.
    pub auto_extend_duration: String,
    pub role_definition_ids: Vec<String>,
    /// For a relationship made through an indirect provider (a
    /// resellerDelegatedAdminRelationship): the provider's tenant id.
    pub indirect_provider_tenant_id: Option<String>,
    /// resellerDelegatedAdminRelationship's `isPartnerConsentPending`.
    pub is_partner_consent_pending: bool,
}

impl DelegatedAdminRelationship {
    /// A relationship with `customer` in `status`, with dates relative to now
    /// as that status implies: an active one activated 40 days ago for two
    /// years (auto-extended by 180 days); an expired one whose two years ended
    /// 30 days ago; a terminated one ended 10 days ago; a pending one created
    /// 2 days ago and never activated; and so on. The id is
    /// `{relationship GUID}-{partner_tenant_id}`, as in the list page's example.
    pub fn new(
        partner_tenant_id: &str,
        customer_tenant_id: &str,
        customer_display_name: &str,
        status: RelationshipStatus,
    ) -> DelegatedAdminRelationship {
        let now = unix_now();
        let seed = keyed_hash(0x6764_6170, customer_tenant_id.as_bytes())
            ^ keyed_hash(0x7374_6174, status.as_str().as_bytes());
        let mut r = Rng::new(seed);
        let guid = r.guid();
        let duration_days = 730;
        let (created, activated, end) = match status {
            RelationshipStatus::Created
            | RelationshipStatus::ApprovalPending
            | RelationshipStatus::Approved => (now - 2 * DAY, None, None),
            RelationshipStatus::Activating => (now - DAY, None, None),
            RelationshipStatus::Active | RelationshipStatus::TerminationRequested => {
                let a = now - 40 * DAY;
                (a - 3600, Some(a), Some(a + duration_days * DAY))
            }
            RelationshipStatus::Terminating => {
                let a = now - 100 * DAY;
                (a - 3600, Some(a), Some(now))
            }
            RelationshipStatus::Expiring => {
                let a = now - duration_days * DAY - 3600;
                (a - 3600, Some(a), Some(a + duration_days * DAY))
            }
            RelationshipStatus::Expired => {
                let a = now - (duration_days + 30) * DAY;
                (a - 3600, Some(a), Some(a + duration_days * DAY))
            }
            RelationshipStatus::Terminated => {
                let a = now - 100 * DAY;
                (a - 3600, Some(a), Some(now - 10 * DAY))
            }
        };
        let last_modified = match status {
            RelationshipStatus::Terminated | RelationshipStatus::Expired => end.unwrap_or(created),
            _ => activated.unwrap_or(created),
        };
        DelegatedAdminRelationship {
            id: format!("{guid}-{partner_tenant_id}"),
            display_name: format!("{customer_display_name} admin relationship"),
            customer_tenant_id: customer_tenant_id.to_string(),
            customer_display_name: customer_display_name.to_string(),
            status,
            created,
            last_modified,
            activated,
            end,
            duration: format!("P{duration_days}D"),
            auto_extend_duration: if status == RelationshipStatus::Active {
                "P180D".to_string()
            } else {
                "PT0S".to_string()
            },
            role_definition_ids: DEFAULT_ROLE_DEFINITION_IDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            indirect_provider_tenant_id: None,
            is_partner_consent_pending: false,
        }
    }

    /// Graph's JSON for the relationship (the list page's example).
    pub(crate) fn to_json(&self) -> Value {
        let etag_inner = guid_from(
            keyed_hash(self.last_modified, self.id.as_bytes()),
            keyed_hash(0x65_74_61_67, self.id.as_bytes()),
        );
        let mut v = json!({
            "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
            "@odata.etag": format!("W/\"{}\"", b64_encode(format!("'\"{etag_inner}\"'").as_bytes())),
            "id": self.id,
            "displayName": self.display_name,
            "duration": self.duration,
            "customer": {
                "tenantId": self.customer_tenant_id,
                "displayName": self.customer_display_name,
            },
            "accessDetails": {
                "unifiedRoles": self.role_definition_ids.iter()
                    .map(|r| json!({"roleDefinitionId": r}))
                    .collect::<Vec<_>>(),
            },
            "status": self.status.as_str(),
            "autoExtendDuration": self.auto_extend_duration,
            "createdDateTime": iso8601(self.created),
            "lastModifiedDateTime": iso8601(self.last_modified),
            "activatedDateTime": self.activated.map(iso8601),
            "endDateTime": self.end.map(iso8601),
        });
        if let Some(provider) = &self.indirect_provider_tenant_id {
            v["@odata.type"] = json!("#microsoft.graph.resellerDelegatedAdminRelationship");
            v["isPartnerConsentPending"] = json!(self.is_partner_consent_pending);
            v["indirectProviderTenantId"] = json!(provider);
        }
        v
    }
}

/// Microsoft's fictitious company names, for generated customers.
const CUSTOMERS: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Adventure Works",
    "Tailspin Toys",
    "Woodgrove Bank",
    "Litware",
    "Proseware",
    "Wingtip Toys",
    "Alpine Ski House",
    "Coho Winery",
    "Lucerne Publishing",
];

/// `n` relationships of `partner_tenant_id` with generated customers (ids and
/// names derived from `seed`), their statuses cycling through active, active,
/// expired, approvalPending, terminated, active, expiring.
pub fn sample_delegated_admin_relationships(
    partner_tenant_id: &str,
    seed: u64,
    n: usize,
) -> Vec<DelegatedAdminRelationship> {
    const CYCLE: [RelationshipStatus; 7] = [
        RelationshipStatus::Active,
        RelationshipStatus::Active,
        RelationshipStatus::Expired,
        RelationshipStatus::ApprovalPending,
        RelationshipStatus::Terminated,
        RelationshipStatus::Active,
        RelationshipStatus::Expiring,
    ];
    let mut r = Rng::derived(seed, 0x6764_6170_7331);
    (0..n)
        .map(|i| {
            let base = CUSTOMERS[i % CUSTOMERS.len()];
            let name = match i / CUSTOMERS.len() {
                0 => base.to_string(),
                k => format!("{base} {}", k + 1),
            };
            let customer_id = r.guid();
            DelegatedAdminRelationship::new(
                partner_tenant_id,
                &customer_id,
                &name,
                CYCLE[i % CYCLE.len()],
            )
        })
        .collect()
}

/// The roles the list and get pages accept (see the header).
const ROLES: &[&str] = &[
    "DelegatedAdminRelationship.Read.All",
    "DelegatedAdminRelationship.ReadWrite.All",
];

/// `/v1.0/tenantRelationships/…` (segments percent-decoded, `v1.0` first).
pub(crate) fn serve<B>(
    shared: &Shared,
    req: &hyper::Request<B>,
    segments: &[String],
) -> Result<Reply, GraphError> {
    let Some(collection) = segments.get(2) else {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            "The simulator serves /tenantRelationships/delegatedAdminRelationships only.",
        ));
    };
    if !collection.eq_ignore_ascii_case("delegatedAdminRelationships") {
        return Err(
            if collection.eq_ignore_ascii_case("delegatedAdminCustomers")
                || collection.eq_ignore_ascii_case("multiTenantOrganization")
            {
                GraphError::new(
                    501,
                    "NotImplemented",
                    format!("The simulator does not serve /tenantRelationships/{collection}."),
                )
            } else {
                segment_not_found(collection)
            },
        );
    }
    if let Some(extra) = segments.get(4) {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            format!("The simulator does not serve '{extra}' of a delegated admin relationship."),
        ));
    }
    authorize(shared, req, ROLES)?;
    let raw_query = req.uri().query().unwrap_or("");
    match segments.get(3) {
        None => list(shared, raw_query),
        Some(id) => get(shared, id, raw_query),
    }
}

fn context(shared: &Shared, selected: Option<&[String]>, entity: bool) -> String {
    // As the list page's example has it (the metadata of tenantRelationships).
    let mut s = format!(
        "{}/v1.0/tenantRelationships/$metadata#delegatedAdminRelationships",
        shared.graph_url
    );
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

/// `item` with only `keys` (the `@odata.type` and `@odata.etag`
/// annotations stay).
fn project(item: &Value, keys: Option<&[String]>) -> Value {
    let (Some(keys), Some(obj)) = (keys, item.as_object()) else {
        return item.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if k.starts_with('@') {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in keys {
        out.insert(k.clone(), obj.get(k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

fn template() -> Value {
    DelegatedAdminRelationship::new("p", "c", "c", RelationshipStatus::Active).to_json()
}

/// `$filter=status eq '…'` → the status.
fn parse_filter(filter: &str) -> Result<RelationshipStatus, GraphError> {
    let unsupported = || {
        GraphError::new(
            400,
            "Request_UnsupportedQuery",
            format!(
                "The simulator supports $filter=status eq '{{status}}' only on delegatedAdminRelationships, not '{filter}'."
            ),
        )
    };
    let words: Vec<&str> = filter.split_whitespace().collect();
    let [prop, op, value] = words.as_slice() else {
        return Err(unsupported());
    };
    if !prop.eq_ignore_ascii_case("status") || !op.eq_ignore_ascii_case("eq") {
        return Err(unsupported());
    }
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(unsupported)?;
    RelationshipStatus::parse(value).ok_or_else(|| {
        GraphError::new(
            400,
            "BadRequest",
            format!("The value '{value}' is not a valid delegatedAdminRelationshipStatus."),
        )
    })
}

fn list(shared: &Shared, raw_query: &str) -> Result<Reply, GraphError> {
    // `$filter` is taken out before the generic parser, which refuses it.
    let mut filter: Option<String> = None;
    let mut rest: Vec<String> = Vec::new();
    for (k, v) in split_query(raw_query) {
        let name = percent_decode(k, true).unwrap_or_default();
        if name.eq_ignore_ascii_case("$filter") {
            if filter.is_some() {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    "Query option '$filter' was specified more than once, but it must be specified at most once.",
                ));
            }
            filter = Some(percent_decode(v, true).ok_or_else(|| {
                GraphError::new(
                    400,
                    "BadRequest",
                    "The $filter value is not validly percent-encoded.",
                )
            })?);
        } else {
            rest.push(format!("{k}={v}"));
        }
    }
    let q = parse_query(
        &rest.join("&"),
        Allowed {
            select: true,
            top: true,
            skiptoken: true,
            count: true,
            deltatoken: false,
            ignore_top: false,
        },
    )?;
    let status = filter.as_deref().map(parse_filter).transpose()?;
    let selected = q
        .select
        .as_ref()
        .map(|names| resolve_keys(&template(), names, Set::TenantRelationships))
        .transpose()?;
    let all = shared.delegated_admin_relationships();
    let matching: Vec<&DelegatedAdminRelationship> = all
        .iter()
        .filter(|r| status.is_none_or(|s| r.status == s))
        .collect();
    let key = shared.skip_key ^ SKIP_SALT;
    let offset = match &q.skiptoken {
        Some(t) => paging::decode(key, t)
            .filter(|&o| o <= matching.len())
            .ok_or_else(|| GraphError::bad_request("Invalid Skip Token"))?,
        None => 0,
    };
    let top = q
        .top
        .unwrap_or(shared.config.delegated_admin_page_size.max(1))
        .min(MAX_TOP);
    let end = (offset + top).min(matching.len());
    let value: Vec<Value> = matching[offset..end]
        .iter()
        .map(|r| project(&r.to_json(), selected.as_deref()))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(context(shared, selected.as_deref(), false)),
    );
    // "@odata.count … present only in the first page" (concepts/paging.md).
    if q.count == Some(true) && q.skiptoken.is_none() {
        body.insert("@odata.count".into(), json!(matching.len()));
    }
    if end < matching.len() {
        body.insert(
            "@odata.nextLink".into(),
            Value::String(next_link(
                shared,
                &q,
                filter.as_deref(),
                selected.as_deref(),
                end,
                key,
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    serde_json::to_vec(&Value::Object(body))
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

/// The next page: the request's options with `$skiptoken` ("The URL also
/// contains all the other query parameters present in the original request",
/// concepts/paging.md).
fn next_link(
    shared: &Shared,
    q: &Query,
    filter: Option<&str>,
    selected: Option<&[String]>,
    offset: usize,
    key: u64,
) -> String {
    let mut parts: Vec<String> = q
        .passthrough
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(f) = filter {
        parts.push(format!("$filter={}", percent_encode(f)));
    }
    if let Some(names) = selected {
        parts.push(format!("$select={}", names.join(",")));
    }
    if let Some(top) = q.top {
        parts.push(format!("$top={top}"));
    }
    parts.push(format!(
        "$skiptoken={}",
        paging::encode_for_url(key, offset)
    ));
    format!(
        "{}/v1.0/tenantRelationships/delegatedAdminRelationships?{}",
        shared.graph_url,
        parts.join("&")
    )
}

fn get(shared: &Shared, id: &str, raw_query: &str) -> Result<Reply, GraphError> {
    let q = parse_query(raw_query, crate::graph::SELECT_ONLY)?;
    let selected = q
        .select
        .as_ref()
        .map(|names| resolve_keys(&template(), names, Set::TenantRelationships))
        .transpose()?;
    let all = shared.delegated_admin_relationships();
    // The generic not-found code of concepts/errors.md ("itemNotFound"); the
    // partner API's own answer is not documented.
    let r = all
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| {
            GraphError::new(
                404,
                "itemNotFound",
                format!("The delegated admin relationship '{id}' was not found."),
            )
        })?;
    let item = project(&r.to_json(), selected.as_deref());
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        Value::String(context(shared, selected.as_deref(), true)),
    );
    if let Value::Object(mut o) = item {
        out.append(&mut o);
    }
    serde_json::to_vec(&Value::Object(out))
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_dates_follow_them() {
        for s in RelationshipStatus::ALL {
            assert_eq!(RelationshipStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            RelationshipStatus::parse("ACTIVE"),
            Some(RelationshipStatus::Active)
        );
        assert_eq!(RelationshipStatus::parse("gone"), None);
        let now = unix_now();
        let active = DelegatedAdminRelationship::new("p", "c1", "C", RelationshipStatus::Active);
        assert!(active.end.is_some_and(|e| e > now));
        assert!(active.activated.is_some_and(|a| a < now));
        assert_eq!(active.auto_extend_duration, "P180D");
        let expired = DelegatedAdminRelationship::new("p", "c1", "C", RelationshipStatus::Expired);
        assert!(expired.end.is_some_and(|e| e < now));
        assert_eq!(expired.end, expired.activated.map(|a| a + 730 * DAY));
        let pending =
            DelegatedAdminRelationship::new("p", "c1", "C", RelationshipStatus::ApprovalPending);
        assert_eq!((pending.activated, pending.end), (None, None));
        let v = pending.to_json();
        assert!(v["activatedDateTime"].is_null());
        assert_eq!(v["status"], "approvalPending");
        assert!(active.id.ends_with("-p"));
        assert_ne!(active.id, expired.id);
        let v = active.to_json();
        assert_eq!(v["customer"]["tenantId"], "c1");
        assert_eq!(
            v["accessDetails"]["unifiedRoles"][0]["roleDefinitionId"],
            DEFAULT_ROLE_DEFINITION_IDS[0]
        );
        assert!(
            v["@odata.etag"]
                .as_str()
                .is_some_and(|e| e.starts_with("W/\""))
        );
        assert!(v.get("indirectProviderTenantId").is_none());
        let mut reseller = active.clone();
        reseller.indirect_provider_tenant_id = Some("provider".into());
        let v = reseller.to_json();
        assert_eq!(
            v["@odata.type"],
            "#microsoft.graph.resellerDelegatedAdminRelationship"
        );
        assert_eq!(v["indirectProviderTenantId"], "provider");
        assert_eq!(v["isPartnerConsentPending"], false);
    }

    #[test]
    fn samples_are_deterministic_and_mixed() {
        let a = sample_delegated_admin_relationships("partner", 7, 14);
        let b = sample_delegated_admin_relationships("partner", 7, 14);
        assert_eq!(
            a.iter().map(|r| &r.id).collect::<Vec<_>>(),
            b.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        assert_eq!(a[12].customer_display_name, "Contoso 2");
        for s in [
            RelationshipStatus::Active,
            RelationshipStatus::Expired,
            RelationshipStatus::ApprovalPending,
            RelationshipStatus::Terminated,
        ] {
            assert!(a.iter().any(|r| r.status == s), "{s:?}");
        }
    }

    #[test]
    fn filters() {
        assert_eq!(
            parse_filter("status eq 'active'"),
            Ok(RelationshipStatus::Active)
        );
        assert_eq!(
            parse_filter("  Status  EQ  'approvalPending' "),
            Ok(RelationshipStatus::ApprovalPending)
        );
        assert_eq!(
            parse_filter("status eq 'bogus'").map_err(|e| e.code),
            Err("BadRequest")
        );
        for f in [
            "displayName eq 'x'",
            "status ne 'active'",
            "status eq active",
            "x",
        ] {
            assert_eq!(
                parse_filter(f).map_err(|e| e.code),
                Err("Request_UnsupportedQuery"),
                "{f}"
            );
        }
    }
}
