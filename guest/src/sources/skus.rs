//! The tenant's subscribed SKUs: `GET /v1.0/subscribedSkus`.
//!
//! Per api-reference/v1.0/api/subscribedsku-list.md (resources/subscribedsku.md,
//! resources/licenseunitsdetail.md, resources/serviceplaninfo.md): each SKU has `skuId`,
//! `skuPartNumber`, `consumedUnits`, `prepaidUnits` (`enabled`, `suspended`, `warning`,
//! `lockedOut`) and `servicePlans` (`servicePlanId`, `servicePlanName`,
//! `provisioningStatus`, `appliesTo`). Product names come from [`super::products`].

use serde::Deserialize;

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::organization::Page;
use crate::sources::{products, unusable};
use crate::types::Subscription;

pub const NEED: Need = Need {
    permission: "Organization.Read.All",
    feature: "licences",
};

pub fn url(graph: &str) -> String {
    format!("{graph}/v1.0/subscribedSkus")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSku {
    sku_id: Option<String>,
    sku_part_number: Option<String>,
    consumed_units: Option<i64>,
    prepaid_units: Option<RawUnits>,
    service_plans: Option<Vec<RawPlan>>,
}

#[derive(Deserialize)]
struct RawUnits {
    enabled: Option<i64>,
    suspended: Option<i64>,
    warning: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPlan {
    service_plan_name: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<RawSku>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A SKU as read, and whether the product table knew its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Sku {
    pub subscription: Subscription,
    pub known: bool,
}

fn units(n: Option<i64>) -> u32 {
    n.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32
}

/// Parses a page of `GET /v1.0/subscribedSkus`.
pub fn parse_page(body: &[u8], url: &str) -> Result<Page<Sku>, BodyError> {
    let raw: RawPage = crate::graph::json::from_body(body)?;
    let value = raw.value.ok_or_else(|| {
        BodyError::Unusable(unusable(url, "it has no \"value\" list of SKUs".into()))
    })?;
    let mut items = Vec::with_capacity(value.len());
    for (i, s) in value.into_iter().enumerate() {
        let sku_id = s.sku_id.map(crate::ids::normalize).unwrap_or_default();
        if sku_id.is_empty() {
            return Err(BodyError::Unusable(unusable(
                url,
                format!("SKU #{} has no skuId", i + 1),
            )));
        }
        let part = s
            .sku_part_number
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        let name = products::product_name(&sku_id, &part);
        let prepaid = s.prepaid_units;
        let mut plans: Vec<String> = s
            .service_plans
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.service_plan_name)
            .filter(|n| !n.trim().is_empty())
            .collect();
        plans.sort_unstable();
        plans.dedup();
        items.push(Sku {
            known: name.is_some(),
            subscription: Subscription {
                product_name: name.map(str::to_owned).unwrap_or_else(|| {
                    if part.is_empty() {
                        sku_id.clone()
                    } else {
                        part.clone()
                    }
                }),
                sku_id,
                sku_part_number: part,
                enabled_units: units(prepaid.as_ref().and_then(|p| p.enabled)),
                suspended_units: units(prepaid.as_ref().and_then(|p| p.suspended)),
                warning_units: units(prepaid.as_ref().and_then(|p| p.warning)),
                consumed_units: units(s.consumed_units),
                service_plans: plans,
            },
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
    fn parses_skus_with_product_names_and_falls_back_to_the_part_number() {
        let body = br#"{"value": [
          {"capabilityStatus": "Enabled", "consumedUnits": 14,
           "id": "48a80680-7326-48cd-9935-b556b81d3a4e_c7df2760-2c81-4ef7-b578-5b5392b571df",
           "prepaidUnits": {"enabled": 25, "suspended": 1, "warning": 2, "lockedOut": 0},
           "servicePlans": [
             {"servicePlanId": "8c098270", "servicePlanName": "SHAREPOINTWAC", "provisioningStatus": "Success", "appliesTo": "User"},
             {"servicePlanId": "9aaf7827", "servicePlanName": "EXCHANGE_S_STANDARD", "provisioningStatus": "Success", "appliesTo": "User"}],
           "skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "skuPartNumber": "ENTERPRISEPREMIUM",
           "appliesTo": "User"},
          {"skuId": "11111111-2222-3333-4444-555555555555", "skuPartNumber": "CONTOSO_PLAN",
           "consumedUnits": -1, "prepaidUnits": {"enabled": 99999999999}}
        ]}"#;
        let p = parse_page(body, "u").unwrap();
        let e5 = &p.items[0];
        assert!(e5.known);
        assert_eq!(
            e5.subscription,
            Subscription {
                sku_id: "c7df2760-2c81-4ef7-b578-5b5392b571df".into(),
                sku_part_number: "ENTERPRISEPREMIUM".into(),
                product_name: "Office 365 E5".into(),
                enabled_units: 25,
                suspended_units: 1,
                warning_units: 2,
                consumed_units: 14,
                service_plans: vec!["EXCHANGE_S_STANDARD".into(), "SHAREPOINTWAC".into()],
            }
        );
        let other = &p.items[1];
        assert!(!other.known);
        assert_eq!(other.subscription.product_name, "CONTOSO_PLAN");
        assert_eq!(other.subscription.consumed_units, 0);
        assert_eq!(other.subscription.enabled_units, u32::MAX);
        assert!(parse_page(br#"{"value": [{"skuPartNumber": "X"}]}"#, "u").is_err());
    }
}
