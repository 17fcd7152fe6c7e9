//! `m365sync licences`: subscriptions with their units, and the inactive-licence view —
//! licensed people with no recorded activity in any workload for N days, per SKU, with the
//! units that could be freed. Rendering only: the store's read models do the counting.

use anyhow::anyhow;
use serde::Serialize;

use super::{Failure, LicencesArgs, Output};
use m365sync_store::read::{InactiveLicence, LicenceLines, ReadModels, SkuLine};

/// One tenant's licence view, as `--json` writes it.
#[derive(Serialize)]
struct TenantLicences<'a> {
    tenant: &'a str,
    usage_as_of: Option<&'a str>,
    inactive_days: u32,
    skus: Vec<SkuJson<'a>>,
    inactive_people: Vec<InactiveJson<'a>>,
}

#[derive(Serialize)]
struct SkuJson<'a> {
    sku_id: &'a str,
    sku_part_number: &'a str,
    product_name: &'a str,
    enabled_units: i64,
    consumed_units: i64,
    assigned_to_synced_people: i64,
    inactive: i64,
    units_that_could_be_freed: i64,
}

#[derive(Serialize)]
struct InactiveJson<'a> {
    user_principal_name: &'a str,
    sku_part_number: &'a str,
    last_activity: Option<&'a str>,
}

impl<'a> From<&'a SkuLine> for SkuJson<'a> {
    fn from(line: &'a SkuLine) -> Self {
        SkuJson {
            sku_id: &line.sku_id,
            sku_part_number: &line.sku_part_number,
            product_name: &line.product_name,
            enabled_units: line.enabled_units,
            consumed_units: line.consumed_units,
            assigned_to_synced_people: line.assigned,
            inactive: line.inactive,
            units_that_could_be_freed: line.inactive,
        }
    }
}

impl<'a> From<&'a InactiveLicence> for InactiveJson<'a> {
    fn from(licence: &'a InactiveLicence) -> Self {
        InactiveJson {
            user_principal_name: &licence.user_principal_name,
            sku_part_number: &licence.sku_part_number,
            last_activity: licence.last_activity.as_deref(),
        }
    }
}

pub async fn run(args: LicencesArgs, output: Output) -> Result<(), Failure> {
    let location = super::store_location(args.db.as_deref(), None);
    let store = super::open_existing_store(&location).await?;
    let tenants = tenants(store.as_ref(), args.tenant.as_deref()).await?;
    let mut all = Vec::new();
    for tenant in &tenants {
        let lines = store
            .licence_lines(tenant, args.days)
            .await
            .map_err(|e| Failure::run(anyhow!("reading the licences of tenant {tenant}: {e}")))?;
        let inactive = if args.list {
            store
                .inactive_licences(tenant, args.days)
                .await
                .map_err(Failure::run)?
        } else {
            Vec::new()
        };
        if output.json {
            let view = TenantLicences {
                tenant,
                usage_as_of: lines.usage_as_of.as_deref(),
                inactive_days: args.days,
                skus: lines.skus.iter().map(SkuJson::from).collect(),
                inactive_people: inactive.iter().map(InactiveJson::from).collect(),
            };
            all.push(serde_json::to_value(view).map_err(Failure::run)?);
        } else {
            out!("{}", to_text(tenant, &lines, &inactive, args.days));
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(all));
    }
    Ok(())
}

/// The tenants in the store (or the one asked for, checked to be there).
pub async fn tenants(store: &dyn ReadModels, only: Option<&str>) -> Result<Vec<String>, Failure> {
    let all = store.tenants_with_people().await.map_err(Failure::run)?;
    match only {
        None => Ok(all),
        Some(name) if all.iter().any(|t| t == name) => Ok(vec![name.to_string()]),
        Some(name) => Err(Failure::usage(anyhow!(
            "no tenant named {name:?} in the store (tenants: {})",
            all.join(", ")
        ))),
    }
}

fn to_text(tenant: &str, lines: &LicenceLines, inactive: &[InactiveLicence], days: u32) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Tenant {tenant}: licences");
    match &lines.usage_as_of {
        Some(date) => {
            let _ = writeln!(
                out,
                "  usage data as of {date} (Microsoft's reports lag by days); inactive = no \
                 activity in any workload for {days} days"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  no usage data stored: enable the usage-reports feature to find inactive licences"
            );
        }
    }
    let _ = writeln!(
        out,
        "  {:<40} {:<28} {:>8} {:>8} {:>8} {:>9}",
        "product", "sku", "enabled", "consumed", "synced", "inactive"
    );
    for line in &lines.skus {
        let _ = writeln!(
            out,
            "  {:<40} {:<28} {:>8} {:>8} {:>8} {:>9}",
            truncate(&line.product_name, 40),
            truncate(&line.sku_part_number, 28),
            line.enabled_units,
            line.consumed_units,
            line.assigned,
            if lines.usage_as_of.is_some() {
                line.inactive.to_string()
            } else {
                "-".into()
            }
        );
    }
    if lines.usage_as_of.is_some() {
        let freeable: i64 = lines.skus.iter().map(|l| l.inactive).sum();
        let _ = writeln!(out, "  units that could be freed: {freeable}");
    }
    for licence in inactive {
        let _ = writeln!(
            out,
            "    inactive: {} ({}), last activity {}",
            licence.user_principal_name,
            licence.sku_part_number,
            licence.last_activity.as_deref().unwrap_or("never")
        );
    }
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}
