//! A partner tenant's delegated admin relationships (GDAP) with its customers:
//! `GET /v1.0/tenantRelationships/delegatedAdminRelationships`, a collection paged by
//! `@odata.nextLink`.
//!
//! Per microsoftgraph/microsoft-graph-docs-contrib:
//! api-reference/v1.0/resources/delegatedadminrelationship.md and
//! api-reference/v1.0/api/tenantrelationship-list-delegatedadminrelationships.md, a
//! relationship has `id`, `displayName`, `customer` (`{tenantId, displayName}`, a
//! delegatedAdminRelationshipCustomerParticipant, set once the customer is known), `status`
//! (`created`, `approvalPending`, `approved`, `activating`, `active`, `expiring`, `expired`,
//! `terminationRequested`, `terminating`, `terminated`, `unknownFutureValue`),
//! `activatedDateTime` ("when the relationship became active", null before: the record's
//! `start-date-time`; Graph has no `startDateTime`), `endDateTime` (activated + duration,
//! null before), `autoExtendDuration` (ISO 8601, `PT0S`: it does not extend) and
//! `accessDetails.unifiedRoles[].roleDefinitionId` (the Microsoft Entra role template ids it
//! grants). The list may also hold `resellerDelegatedAdminRelationship` objects, which carry
//! the same properties. Global service only; least privileged application permission
//! DelegatedAdminRelationship.Read.All.

use serde::Deserialize;

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::organization::Page;
use crate::sources::unusable;
use crate::types::DelegatedRelationship;

pub const NEED: Need = Need {
    permission: "DelegatedAdminRelationship.Read.All",
    feature: "partner",
};

pub fn url(graph: &str) -> String {
    format!("{graph}/v1.0/tenantRelationships/delegatedAdminRelationships")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRelationship {
    id: Option<String>,
    display_name: Option<String>,
    customer: Option<RawCustomer>,
    status: Option<String>,
    activated_date_time: Option<String>,
    end_date_time: Option<String>,
    auto_extend_duration: Option<String>,
    access_details: Option<RawAccessDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCustomer {
    tenant_id: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAccessDetails {
    #[serde(default)]
    unified_roles: Option<Vec<RawUnifiedRole>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUnifiedRole {
    role_definition_id: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<RawRelationship>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Parses a page of the list.
pub fn parse_page(body: &[u8], url: &str) -> Result<Page<DelegatedRelationship>, BodyError> {
    let raw: RawPage = crate::graph::json::from_body(body)?;
    let value = raw
        .value
        .ok_or_else(|| BodyError::Unusable(unusable(url, "it has no \"value\" list".into())))?;
    let mut items = Vec::with_capacity(value.len());
    for (i, r) in value.into_iter().enumerate() {
        let Some(id) = non_empty(r.id) else {
            return Err(BodyError::Unusable(unusable(
                url,
                format!("delegated admin relationship #{} has no id", i + 1),
            )));
        };
        let (customer_tenant_id, customer_display_name) = r
            .customer
            .map(|c| {
                (
                    non_empty(c.tenant_id).unwrap_or_default(),
                    non_empty(c.display_name).unwrap_or_default(),
                )
            })
            .unwrap_or_default();
        let mut role_template_ids: Vec<String> = Vec::new();
        for role in r
            .access_details
            .and_then(|a| a.unified_roles)
            .unwrap_or_default()
        {
            if let Some(id) = non_empty(role.role_definition_id)
                && !role_template_ids.contains(&id)
            {
                role_template_ids.push(id);
            }
        }
        items.push(DelegatedRelationship {
            id,
            display_name: non_empty(r.display_name).unwrap_or_default(),
            customer_tenant_id,
            customer_display_name,
            status: non_empty(r.status).unwrap_or_default(),
            start_date_time: non_empty(r.activated_date_time),
            end_date_time: non_empty(r.end_date_time),
            auto_extend_duration: non_empty(r.auto_extend_duration),
            role_template_ids,
        });
    }
    Ok(Page {
        items,
        next_link: raw.next_link,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The response example of tenantrelationship-list-delegatedadminrelationships.md.
    pub(crate) const DOC_EXAMPLE: &str = r##"{
      "@odata.context": "https://graph.microsoft.com/v1.0/tenantRelationships/$metadata#delegatedAdminRelationships",
      "value": [
        {
          "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
          "@odata.etag": "W/\"JyIwMzAwZTM0ZS0wMDAwLTAyMDAtMDAwMC02MTRjZjI1YzAwMDAiJw==\"",
          "id": "5d027261-d21f-4aa9-b7db-7fa1f56fb163-8777b240-c6f0-4469-9e98-a3205431b836",
          "displayName": "Contoso admin relationship",
          "duration": "P730D",
          "customer": {"tenantId": "52eaad04-13a2-4a2f-9ce8-93a294fadf36", "displayName": "Contoso Inc"},
          "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "dd4db9a0-cc4a-4213-9f9f-70242232d97e"}]},
          "status": "active",
          "autoExtendDuration": "P180D",
          "createdDateTime": "2022-02-10T11:24:42.3148266Z",
          "lastModifiedDateTime": "2022-02-10T11:26:44.9941884Z",
          "activatedDateTime": "2022-02-10T11:26:44.9941884Z",
          "endDateTime": "2024-02-10T11:24:42.3148266Z"
        },
        {
          "@odata.type": "#microsoft.graph.resellerDelegatedAdminRelationship",
          "id": "4b227261-d21f-4aa9-b7db-7fa1f56fb163-8777b240-c6f0-4469-9e98-a3205431b836",
          "displayName": "Fabrikam admin relationship",
          "duration": "P180D",
          "customer": {"tenantId": "52eaad04-13a2-4a2f-9ce8-93a294fadf36", "displayName": "Fabrikam Inc."},
          "accessDetails": {"unifiedRoles": [
            {"roleDefinitionId": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"},
            {"roleDefinitionId": "e8611ab8-c189-46e8-94e1-60213ab1f814"}
          ]},
          "status": "approvalPending",
          "autoExtendDuration": "PT0S",
          "activatedDateTime": null,
          "endDateTime": null,
          "isPartnerConsentPending": true,
          "indirectProviderTenantId": "60ea59db-a506-485e-94c5-d115f369e239"
        }
      ]
    }"##;

    #[test]
    fn parses_the_documented_example() {
        let p = parse_page(DOC_EXAMPLE.as_bytes(), "u").unwrap();
        assert!(p.next_link.is_none());
        assert_eq!(
            p.items[0],
            DelegatedRelationship {
                id: "5d027261-d21f-4aa9-b7db-7fa1f56fb163-8777b240-c6f0-4469-9e98-a3205431b836"
                    .into(),
                display_name: "Contoso admin relationship".into(),
                customer_tenant_id: "52eaad04-13a2-4a2f-9ce8-93a294fadf36".into(),
                customer_display_name: "Contoso Inc".into(),
                status: "active".into(),
                start_date_time: Some("2022-02-10T11:26:44.9941884Z".into()),
                end_date_time: Some("2024-02-10T11:24:42.3148266Z".into()),
                auto_extend_duration: Some("P180D".into()),
                role_template_ids: vec!["dd4db9a0-cc4a-4213-9f9f-70242232d97e".into()],
            }
        );
        let reseller = &p.items[1];
        assert_eq!(reseller.status, "approvalPending");
        assert_eq!(reseller.start_date_time, None);
        assert_eq!(reseller.end_date_time, None);
        assert_eq!(reseller.auto_extend_duration.as_deref(), Some("PT0S"));
        assert_eq!(reseller.role_template_ids.len(), 2);
    }

    #[test]
    fn a_relationship_without_customer_or_roles_reads_empty_and_one_without_id_is_refused() {
        let p = parse_page(
            br#"{"@odata.nextLink": "https://g/v1.0/tenantRelationships/delegatedAdminRelationships?$skiptoken=x",
                 "value": [{"id": "r1", "displayName": "New", "status": "created", "customer": null,
                            "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "a"}, {"roleDefinitionId": "a"}, {}]}}]}"#,
            "u",
        )
        .unwrap();
        assert!(p.next_link.is_some());
        let r = &p.items[0];
        assert_eq!(
            (
                r.customer_tenant_id.as_str(),
                r.customer_display_name.as_str()
            ),
            ("", "")
        );
        assert_eq!(r.role_template_ids, vec!["a"]);
        assert!(matches!(
            parse_page(br#"{"value": [{"displayName": "x"}]}"#, "u"),
            Err(BodyError::Unusable(_))
        ));
        assert!(matches!(
            parse_page(br#"{"values": []}"#, "u"),
            Err(BodyError::Unusable(_))
        ));
    }
}
