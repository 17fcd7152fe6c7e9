//! The organization and its domains: `GET /v1.0/organization` and `GET /v1.0/domains`.
//!
//! Per api-reference/v1.0/api/organization-get.md (resources/organization.md), the
//! organization's `id` is the tenant id, with `displayName`, `countryLetterCode` and
//! `verifiedDomains` (each `{name, isDefault, isInitial, type, capabilities}`); per
//! domain-list.md (resources/domain.md) a domain's `id` is its name, with `isDefault`,
//! `isInitial` and `isVerified`. Both are collections (`value`), paged like any other.

use serde::Deserialize;

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::unusable;
use crate::types::{Domain, Organization};

pub const ORGANIZATION_NEED: Need = Need {
    permission: "Organization.Read.All",
    feature: "organization",
};

pub const DOMAINS_NEED: Need = Need {
    permission: "Domain.Read.All",
    feature: "organization",
};

pub fn organization_url(graph: &str) -> String {
    format!("{graph}/v1.0/organization")
}

pub fn domains_url(graph: &str) -> String {
    format!("{graph}/v1.0/domains")
}

/// A page of a plain (not delta) collection.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOrganization {
    id: Option<String>,
    display_name: Option<String>,
    country_letter_code: Option<String>,
    #[serde(default)]
    verified_domains: Option<Vec<RawVerifiedDomain>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVerifiedDomain {
    name: Option<String>,
    #[serde(default)]
    is_default: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDomain {
    id: Option<String>,
    is_default: Option<bool>,
    is_initial: Option<bool>,
    is_verified: Option<bool>,
}

#[derive(Deserialize)]
struct RawPage<T> {
    value: Option<Vec<T>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Parses a page of `GET /v1.0/organization`.
pub fn parse_organizations(body: &[u8], url: &str) -> Result<Page<Organization>, BodyError> {
    let raw: RawPage<RawOrganization> = crate::graph::json::from_body(body)?;
    let value = raw
        .value
        .ok_or_else(|| BodyError::Unusable(unusable(url, "it has no \"value\" list".into())))?;
    let mut items = Vec::with_capacity(value.len());
    for (i, o) in value.into_iter().enumerate() {
        let Some(tenant_id) = non_empty(o.id).map(crate::ids::normalize) else {
            return Err(BodyError::Unusable(unusable(
                url,
                format!("organization #{} has no id", i + 1),
            )));
        };
        let domains = o.verified_domains.unwrap_or_default();
        let default_domain = domains
            .iter()
            .find(|d| d.is_default == Some(true))
            .and_then(|d| non_empty(d.name.clone()));
        let mut verified: Vec<String> = domains
            .into_iter()
            .filter_map(|d| non_empty(d.name))
            .collect();
        verified.sort_unstable();
        verified.dedup();
        items.push(Organization {
            display_name: non_empty(o.display_name).unwrap_or_else(|| tenant_id.clone()),
            tenant_id,
            country: non_empty(o.country_letter_code),
            default_domain,
            verified_domains: verified,
        });
    }
    Ok(Page {
        items,
        next_link: raw.next_link,
    })
}

/// Parses a page of `GET /v1.0/domains`.
pub fn parse_domains(body: &[u8], url: &str) -> Result<Page<Domain>, BodyError> {
    let raw: RawPage<RawDomain> = crate::graph::json::from_body(body)?;
    let value = raw
        .value
        .ok_or_else(|| BodyError::Unusable(unusable(url, "it has no \"value\" list".into())))?;
    let mut items = Vec::with_capacity(value.len());
    for (i, d) in value.into_iter().enumerate() {
        let Some(name) = non_empty(d.id) else {
            return Err(BodyError::Unusable(unusable(
                url,
                format!("domain #{} has no id (name)", i + 1),
            )));
        };
        items.push(Domain {
            name,
            is_default: d.is_default.unwrap_or(false),
            is_initial: d.is_initial.unwrap_or(false),
            is_verified: d.is_verified.unwrap_or(false),
        });
    }
    Ok(Page {
        items,
        next_link: raw.next_link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_organization_and_its_default_domain() {
        let body = br#"{"value": [{"id": "tenant-guid", "displayName": "Contoso",
            "countryLetterCode": "US", "verifiedDomains": [
              {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": false,
               "isInitial": true, "name": "contoso.onmicrosoft.com", "type": "Managed"},
              {"capabilities": "Email", "isDefault": true, "isInitial": false,
               "name": "contoso.com", "type": "Managed"}]}]}"#;
        let p = parse_organizations(body, "u").unwrap();
        assert_eq!(
            p.items,
            vec![Organization {
                tenant_id: "tenant-guid".into(),
                display_name: "Contoso".into(),
                country: Some("US".into()),
                default_domain: Some("contoso.com".into()),
                verified_domains: vec!["contoso.com".into(), "contoso.onmicrosoft.com".into()],
            }]
        );
        let p = parse_organizations(br#"{"value": [{"id": "t"}]}"#, "u").unwrap();
        assert_eq!(p.items[0].display_name, "t");
        assert_eq!(p.items[0].default_domain, None);
        assert!(parse_organizations(br#"{"value": [{"displayName": "x"}]}"#, "u").is_err());
    }

    #[test]
    fn parses_domains() {
        let body = br#"{"@odata.nextLink": "https://g/v1.0/domains?$skiptoken=a", "value": [
            {"authenticationType": "Managed", "id": "contoso.com", "isAdminManaged": true,
             "isDefault": true, "isInitial": false, "isRoot": true, "isVerified": true},
            {"id": "pending.example", "isVerified": false}]}"#;
        let p = parse_domains(body, "u").unwrap();
        assert_eq!(
            p.next_link.as_deref(),
            Some("https://g/v1.0/domains?$skiptoken=a")
        );
        assert_eq!(
            p.items,
            vec![
                Domain {
                    name: "contoso.com".into(),
                    is_default: true,
                    is_initial: false,
                    is_verified: true
                },
                Domain {
                    name: "pending.example".into(),
                    is_default: false,
                    is_initial: false,
                    is_verified: false
                }
            ]
        );
        assert!(matches!(
            parse_domains(br#"{"values": []}"#, "u"),
            Err(BodyError::Unusable(_))
        ));
    }
}
