//! A partner's customers: the partner tenant's delegated admin relationships (GDAP), by
//! customer tenant, each with whether the partner's app can sign in to the customer
//! app-only and with which roles — `consented`, `roles-missing` (naming them),
//! `not-consented` (with the admin-consent link to send the customer's admin) or `error` —
//! and warnings for relationships that end within 30 days without extending themselves.
//!
//! Relationship shape: microsoftgraph/microsoft-graph-docs-contrib,
//! api-reference/v1.0/resources/delegatedadminrelationship.md (`status`, `endDateTime`,
//! `autoExtendDuration`: "PT0S" when it does not extend). Admin-consent URL:
//! MicrosoftDocs/entra-docs, docs/identity-platform/v2-admin-consent.md
//! (`{login}/{tenant}/v2.0/adminconsent?client_id=…&scope={resource}/.default&redirect_uri=…`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use m365sync_config::{ConfigFile, PartnerSection, TenantRun, cloud};
use m365sync_runtime::{EventSink, RunError, Runtime};
use m365sync_store::notices::{Notice, NoticeKind, NoticeStage};
use m365sync_wit::types::{AuthFailure, DelegatedRelationship, SyncError};

/// How many days before a relationship's end it is warned about.
pub const RELATIONSHIP_WARN_DAYS: i64 = 30;

/// One customer of a partner.
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub tenant_id: String,
    pub display_name: String,
    /// `consented`, `roles-missing`, `not-consented`, `error`, or `inactive` (no active
    /// relationship: not signed in to).
    pub state: String,
    /// App roles in the app's token for the customer, when it signed in.
    pub granted_roles: Vec<String>,
    /// Permissions the app's features need and the token lacks.
    pub missing: Vec<String>,
    /// Where the customer's admin grants consent, when it is missing.
    pub consent_url: Option<String>,
    /// Why it is not consented or failed, in words.
    pub message: Option<String>,
    /// Relationships ending soon, or ended.
    pub warnings: Vec<String>,
    pub relationships: Vec<Relationship>,
}

/// One delegated admin relationship with the customer.
#[derive(Debug, Clone, Serialize)]
pub struct Relationship {
    pub id: String,
    pub display_name: String,
    pub status: String,
    pub end_date_time: Option<String>,
    pub auto_extend_duration: Option<String>,
    pub role_template_ids: Vec<String>,
}

/// The customers of `partner`, sorted by name: its relationships read as the partner's
/// app, and each customer with an active one signed in to as that app.
pub async fn customers(
    runtime: &Runtime,
    config: &ConfigFile,
    partner: &PartnerSection,
    redirect_uri: Option<&str>,
    sink: Arc<dyn EventSink>,
) -> Result<Vec<Customer>, RunError> {
    let by_customer = relationships(runtime, config, partner, sink.clone()).await?;
    let now = jiff::Timestamp::now();
    let mut customers = Vec::with_capacity(by_customer.len());
    for (tenant_id, relationships) in by_customer {
        let display_name = relationships
            .iter()
            .map(|r| r.customer_display_name.clone())
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| tenant_id.clone());
        let warnings = relationship_notices("", &tenant_id, &relationships, now)
            .into_iter()
            .map(|n| n.message)
            .collect();
        let active = relationships.iter().any(|r| r.status == "active");
        let mut customer = Customer {
            tenant_id: tenant_id.clone(),
            display_name,
            state: "inactive".to_string(),
            granted_roles: Vec::new(),
            missing: Vec::new(),
            consent_url: None,
            message: None,
            warnings,
            relationships: relationships.iter().map(relationship).collect(),
        };
        if active {
            let key = format!("{}/{tenant_id}", partner.name);
            let customer_run = config.partner_run(partner, &key, &tenant_id);
            let checked = runtime.check_permissions(&customer_run, sink.clone()).await;
            classify(&mut customer, &customer_run, checked, redirect_uri);
        } else {
            customer.message = Some(format!(
                "no active relationship ({})",
                relationships
                    .iter()
                    .map(|r| r.status.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        customers.push(customer);
    }
    customers.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    Ok(customers)
}

fn relationship(r: &DelegatedRelationship) -> Relationship {
    Relationship {
        id: r.id.clone(),
        display_name: r.display_name.clone(),
        status: r.status.clone(),
        end_date_time: r.end_date_time.clone(),
        auto_extend_duration: r.auto_extend_duration.clone(),
        role_template_ids: r.role_template_ids.clone(),
    }
}

/// Whether the relationship extends itself when it ends ("PT0S" or none: it does not).
fn auto_extends(r: &DelegatedRelationship) -> bool {
    r.auto_extend_duration
        .as_deref()
        .and_then(|d| d.parse::<jiff::Span>().ok())
        .is_some_and(|span| !span.is_zero())
}

/// Register `customer` of `partner` as a tenant in `store`, signing in as the partner's
/// app for the app's features and remembering the partner (a directory registered before
/// keeps its name).
pub async fn add_customer(
    store: &dyn m365sync_store::StoreBackend,
    config: &ConfigFile,
    partner: &PartnerSection,
    customer: &Customer,
) -> Result<m365sync_store::onboarding::RegisteredTenant, m365sync_store::StoreError> {
    let app = config.app(&partner.app).ok_or_else(|| {
        m365sync_store::StoreError::Storage(m365sync_wit::StorageError::Invalid(format!(
            "partner {}: no [[app]] is named {:?}",
            partner.name, partner.app
        )))
    })?;
    crate::onboarding::register(
        store,
        config,
        app,
        app.features,
        (&customer.tenant_id, &customer.display_name),
        Some(&partner.name),
    )
    .await
}

/// The partner's delegated admin relationships, by customer tenant id, read as the
/// partner's app in the partner's tenant.
pub async fn relationships(
    runtime: &Runtime,
    config: &ConfigFile,
    partner: &PartnerSection,
    sink: Arc<dyn EventSink>,
) -> Result<BTreeMap<String, Vec<DelegatedRelationship>>, RunError> {
    let run = config.partner_run(partner, &partner.name, &partner.tenant_id);
    let mut by_customer: BTreeMap<String, Vec<DelegatedRelationship>> = BTreeMap::new();
    for relationship in runtime.partner_relationships(&run, sink).await? {
        by_customer
            .entry(relationship.customer_tenant_id.clone())
            .or_default()
            .push(relationship);
    }
    Ok(by_customer)
}

/// What a customer's relationships call for, as of `now`, as notices of `tenant` (the
/// host's name for the customer): when none is active and one has expired or been
/// terminated, one `ended` notice for the customer (the partner no longer administers it:
/// its syncs stop); otherwise one `ending` notice per active relationship that ends within
/// [`RELATIONSHIP_WARN_DAYS`] without extending itself, unless another active one outlasts
/// the window. A customer's old, expired relationships beside an active one call for
/// nothing: a renewal is a new relationship.
pub fn relationship_notices(
    tenant: &str,
    customer_tenant_id: &str,
    relationships: &[DelegatedRelationship],
    now: jiff::Timestamp,
) -> Vec<Notice> {
    let notice = |key: String, stage, ends: String, message: String| Notice {
        tenant: tenant.to_string(),
        kind: NoticeKind::RelationshipEnding,
        key,
        stage,
        ends,
        message,
        raised_ms: 0,
    };
    let active: Vec<&DelegatedRelationship> = relationships
        .iter()
        .filter(|r| r.status == "active")
        .collect();
    if active.is_empty() {
        let ended: Vec<&DelegatedRelationship> = relationships
            .iter()
            .filter(|r| r.status == "expired" || r.status == "terminated")
            .collect();
        let Some(last) = ended.iter().max_by_key(|r| r.end_date_time.clone()) else {
            return Vec::new();
        };
        let names: Vec<String> = ended
            .iter()
            .map(|r| format!("{:?} ({})", r.display_name, r.status))
            .collect();
        return vec![notice(
            format!("relationship:{customer_tenant_id}"),
            NoticeStage::Ended,
            last.end_date_time.clone().unwrap_or_default(),
            format!(
                "the partner's delegated admin relationships with this customer have ended \
                 ({}) and none is active: its syncs are stopped until the customer approves \
                 a new relationship",
                names.join(", ")
            ),
        )];
    }
    let days_left = |r: &DelegatedRelationship| {
        let end: jiff::Timestamp = r.end_date_time.as_deref()?.parse().ok()?;
        Some((end, crate::expiry::days_until(end, now)))
    };
    let ending_soon = |r: &DelegatedRelationship| {
        !auto_extends(r) && days_left(r).is_some_and(|(_, d)| d <= RELATIONSHIP_WARN_DAYS)
    };
    if active.iter().any(|r| !ending_soon(r)) {
        return Vec::new();
    }
    active
        .iter()
        .filter_map(|r| {
            let (end, days) = days_left(r)?;
            Some(notice(
                format!("relationship:{}", r.id),
                NoticeStage::Ending,
                m365sync_store::time::rfc3339(end),
                format!(
                    "relationship {:?} ends on {} (in {days} day{}) and does not extend \
                     itself: extend it, or set autoExtendDuration; once it ends the \
                     tenant's syncs stop",
                    r.display_name,
                    end.strftime("%Y-%m-%d"),
                    if days == 1 { "" } else { "s" }
                ),
            ))
        })
        .collect()
}

/// The customer's consent state from a permission check as the partner's app.
fn classify(
    customer: &mut Customer,
    run: &TenantRun,
    checked: Result<m365sync_wit::types::PermissionCheck, RunError>,
    redirect_uri: Option<&str>,
) {
    match checked {
        Ok(check) if check.missing.is_empty() => {
            customer.state = "consented".to_string();
            customer.granted_roles = check.granted;
        }
        Ok(check) => {
            customer.state = "roles-missing".to_string();
            customer.missing = check.missing.iter().map(|m| m.permission.clone()).collect();
            customer.message = Some(format!(
                "the app is consented but lacks {}: grant them and consent again",
                customer.missing.join(", ")
            ));
            customer.granted_roles = check.granted;
            customer.consent_url = Some(consent_url(run, redirect_uri));
        }
        Err(error) => {
            let not_consented = matches!(
                error.engine_error(),
                Some(SyncError::Auth(auth))
                    if matches!(auth.failure, AuthFailure::AppNotFound | AuthFailure::ConsentMissing)
            );
            customer.message = Some(error.to_string());
            if not_consented {
                customer.state = "not-consented".to_string();
                customer.consent_url = Some(consent_url(run, redirect_uri));
            } else {
                customer.state = "error".to_string();
            }
        }
    }
}

/// The admin-consent URL for the customer's admin: the partner's app, every permission it
/// was granted (`/.default` of the cloud's Graph resource).
pub fn consent_url(run: &TenantRun, redirect_uri: Option<&str>) -> String {
    let resource = cloud::endpoints(run.tenant.cloud).graph;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", &run.tenant.client_id)
        .append_pair("scope", &format!("{resource}/.default"));
    if let Some(redirect) = redirect_uri {
        query.append_pair("redirect_uri", redirect);
    }
    let tenant: String = form_urlencoded::byte_serialize(run.tenant.tenant_id.as_bytes()).collect();
    format!(
        "{}/{tenant}/v2.0/adminconsent?{}",
        run.tenant.endpoints.login,
        query.finish()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relationship(status: &str, end: &str, extend: Option<&str>) -> DelegatedRelationship {
        DelegatedRelationship {
            id: "r1".into(),
            display_name: "Contoso admin".into(),
            customer_tenant_id: "c1".into(),
            customer_display_name: "Contoso".into(),
            status: status.into(),
            start_date_time: None,
            end_date_time: Some(end.into()),
            auto_extend_duration: extend.map(str::to_string),
            role_template_ids: vec![],
        }
    }

    fn messages(relationships: &[DelegatedRelationship], now: jiff::Timestamp) -> Vec<String> {
        relationship_notices("t", "c1", relationships, now)
            .into_iter()
            .map(|n| format!("{} {}: {}", n.stage.name(), n.key, n.message))
            .collect()
    }

    #[test]
    fn relationships_ending_soon_without_extending_are_warned_about() {
        let now: jiff::Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let soon = relationship("active", "2027-01-20T00:00:00Z", Some("PT0S"));
        let said = messages(std::slice::from_ref(&soon), now);
        assert_eq!(said.len(), 1);
        assert!(
            said[0].starts_with("ending relationship:r1: ")
                && said[0].contains("ends on 2027-01-20 (in 19 days)"),
            "{said:?}"
        );
        let extends = relationship("active", "2027-01-20T00:00:00Z", Some("P180D"));
        assert!(messages(&[extends], now).is_empty());
        let later = relationship("active", "2027-06-20T00:00:00Z", None);
        assert!(messages(std::slice::from_ref(&later), now).is_empty());
        // Another active relationship outlasts the window: nothing ends for the customer.
        assert!(messages(&[soon, later], now).is_empty());
    }

    #[test]
    fn a_customer_without_an_active_relationship_has_ended() {
        let now: jiff::Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let expired = relationship("expired", "2026-12-20T00:00:00Z", None);
        let said = messages(std::slice::from_ref(&expired), now);
        assert_eq!(said.len(), 1);
        assert!(
            said[0].starts_with("ended relationship:c1: ") && said[0].contains("stopped"),
            "{said:?}"
        );
        // A renewal is a new relationship: the old expired one is forgotten.
        let renewed = relationship("active", "2028-01-01T00:00:00Z", None);
        assert!(messages(&[expired, renewed], now).is_empty());
        // Not yet approved: nothing has ended.
        let pending = relationship("approvalPending", "2028-01-01T00:00:00Z", None);
        assert!(messages(&[pending], now).is_empty());
    }
}
