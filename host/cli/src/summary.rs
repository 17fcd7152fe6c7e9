//! Short summary tables of what a tenant's sync left in the store: people by department,
//! by country, licensed vs not, subscriptions, groups, and activity per workload. Rendering
//! only: the counts come from the store's read model (`ReadModels::tenant_summary`).

use std::fmt::Write;

use m365sync_store::StoreError;
use m365sync_store::read::{LabelCount, ReadModels};

/// Rows of each grouping shown (the store gives them all, largest first).
const DEPARTMENTS_SHOWN: usize = 12;
const COUNTRIES_SHOWN: usize = 10;
/// The usage period the summary shows activity for.
const ACTIVITY_PERIOD_DAYS: i64 = 30;

/// The summary of `tenant` as text.
pub async fn to_text(store: &dyn ReadModels, tenant: &str) -> Result<String, StoreError> {
    let summary = store.tenant_summary(tenant).await?;
    let people = &summary.people;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nPeople in the store for tenant {tenant}: {}",
        people.total
    );
    let _ = writeln!(
        out,
        "  licensed {}, unlicensed {}, guests {}, disabled {}",
        people.licensed,
        people.total - people.licensed,
        people.guests,
        people.disabled
    );
    for (title, counts, shown) in [
        ("By department", &people.by_department, DEPARTMENTS_SHOWN),
        ("By country", &people.by_country, COUNTRIES_SHOWN),
    ] {
        let _ = writeln!(out, "\n  {title}:");
        for LabelCount { label, count } in counts.iter().take(shown) {
            let label = label.as_deref().unwrap_or("(none)");
            let _ = writeln!(out, "    {label:<28} {count:>7}");
        }
    }
    let _ = writeln!(out, "\n  Licences (consumed of enabled units):");
    for sku in &summary.subscriptions {
        let _ = writeln!(
            out,
            "    {:<44} {:>7} of {:>7}",
            sku.product_name, sku.consumed_units, sku.enabled_units
        );
    }
    let _ = writeln!(
        out,
        "\n  Groups: {} ({} memberships)",
        summary.groups, summary.memberships
    );
    let _ = writeln!(
        out,
        "\n  Active in the last {ACTIVITY_PERIOD_DAYS}-day report, per workload:"
    );
    for workload in summary
        .workloads
        .iter()
        .filter(|w| w.period_days == ACTIVITY_PERIOD_DAYS)
    {
        let _ = writeln!(
            out,
            "    {:<14} {:>7} of {:>7} people (as of {})",
            workload.workload, workload.active, workload.people, workload.report_refreshed
        );
    }
    Ok(out)
}
