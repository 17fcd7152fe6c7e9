//! Read models: what the CLI and the server show from a store (exports, licences,
//! summaries), typed and back-end neutral, so no SQL lives outside the back ends.
//!
//! Every back end must produce the same rows in the same order, so the contracts below
//! spell out orders exactly: text is compared byte-wise (UTF-8, as SQLite's `BINARY` and
//! PostgreSQL's `COLLATE "C"` do), and a missing value (NULL) sorts before any text.
//! Date arithmetic is done here in Rust ([`inactive_cutoff`]), not in SQL, for the same
//! reason.

use std::ops::ControlFlow;

use async_trait::async_trait;
use m365sync_wit::StorageError;

use crate::StoreError;

/// One value of an exported row. Flags (`account_enabled`) are `Integer` 0 or 1; dates and
/// timestamps are `Text` as the engine handed them; a value the row does not have is
/// `Null`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// What [`ReadModels::export`] exports. Each kind's columns are [`ExportKind::columns`]; a
/// kind's rows hold one cell per column, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportKind {
    /// One row per stored person, whatever their status; by tenant, user principal name,
    /// object id.
    People,
    /// One row per subscribed SKU; by tenant, part number, SKU id.
    Subscriptions,
    /// One row per person and SKU assigned to them: `sku_part_number` and `product_name`
    /// are the tenant's subscription's, or the SKU id when the tenant has no such
    /// subscription; by tenant, user principal name, object id, then the person's licences
    /// in their stored order.
    Licences,
    /// One row per person, workload and period of the usage reports; `user_principal_name`
    /// is Null when the person is not stored; `counts` is a JSON object as text; by tenant,
    /// user principal name, object id, workload, period.
    Usage,
    /// One row per mailbox of the mailbox usage report; `user_principal_name` as in
    /// `Usage`; by tenant, user principal name, object id.
    Mailboxes,
    /// One row per group, with its number of stored `members`; by tenant, display name,
    /// object id.
    Groups,
    /// One row per stored membership; `group_name` and `user_principal_name` are Null when
    /// the group or the person is not stored; by tenant, group name, group id, user
    /// principal name, member id.
    GroupMembers,
    /// The tenant's Microsoft organization (one row per tenant): `verified_domains` is a
    /// JSON array as text; by tenant.
    Organization,
    /// One row per domain of the tenant; flags are `Integer` 0 or 1; by tenant, name.
    Domains,
}

impl ExportKind {
    /// Every export, in the order above.
    pub const ALL: [ExportKind; 9] = [
        ExportKind::People,
        ExportKind::Subscriptions,
        ExportKind::Licences,
        ExportKind::Usage,
        ExportKind::Mailboxes,
        ExportKind::Groups,
        ExportKind::GroupMembers,
        ExportKind::Organization,
        ExportKind::Domains,
    ];

    /// The columns of this export, in order: the names the CLI writes (a people column's
    /// name may be replaced by the field map's platform field there).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            ExportKind::People => &[
                "tenant",
                "object_id",
                "user_principal_name",
                "mail",
                "given_name",
                "surname",
                "display_name",
                "department",
                "job_title",
                "company_name",
                "country",
                "usage_location",
                "office_location",
                "account_enabled",
                "user_type",
                "manager_id",
                "hire_date",
                "created_at",
                "last_sign_in",
                "status",
            ],
            ExportKind::Subscriptions => &[
                "tenant",
                "sku_id",
                "sku_part_number",
                "product_name",
                "enabled_units",
                "suspended_units",
                "warning_units",
                "consumed_units",
            ],
            ExportKind::Licences => &[
                "tenant",
                "object_id",
                "user_principal_name",
                "sku_id",
                "sku_part_number",
                "product_name",
            ],
            ExportKind::Usage => &[
                "tenant",
                "object_id",
                "user_principal_name",
                "workload",
                "period_days",
                "last_activity",
                "counts",
                "report_refreshed",
            ],
            ExportKind::Mailboxes => &[
                "tenant",
                "object_id",
                "user_principal_name",
                "storage_used_bytes",
                "item_count",
                "quota_status",
                "last_activity",
                "report_refreshed",
            ],
            ExportKind::Groups => &[
                "tenant",
                "object_id",
                "display_name",
                "mail",
                "kind",
                "members",
            ],
            ExportKind::GroupMembers => &[
                "tenant",
                "group_id",
                "group_name",
                "member_id",
                "user_principal_name",
            ],
            ExportKind::Organization => &[
                "tenant",
                "tenant_id",
                "display_name",
                "country",
                "default_domain",
                "verified_domains",
            ],
            ExportKind::Domains => &["tenant", "name", "is_default", "is_initial", "is_verified"],
        }
    }
}

/// Where an export's rows go, one at a time and in order (an export can be millions of
/// rows: nothing holds them all). Returning `Break` stops the export early, which is not
/// an error (the reader went away).
pub type RowSink<'a> = dyn FnMut(Vec<Cell>) -> ControlFlow<()> + Send + 'a;

/// An export held whole: its columns and rows ([`export_table`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// One subscribed (or assigned) SKU of a tenant in the licence view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuLine {
    pub sku_id: String,
    /// The subscription's part number, or the SKU id without a subscription.
    pub sku_part_number: String,
    /// The subscription's product name, or the SKU id without a subscription.
    pub product_name: String,
    /// The subscription's units (0 without one).
    pub enabled_units: i64,
    pub consumed_units: i64,
    /// Active stored people the SKU is assigned to.
    pub assigned: i64,
    /// Of those, the inactive ones (see [`ReadModels::licence_lines`]): the units that
    /// could be freed. 0 without usage data.
    pub inactive: i64,
}

/// A tenant's licence view: its SKUs and the date its usage data is as of.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LicenceLines {
    /// The newest report refresh date of the tenant's usage rows (YYYY-MM-DD); None when
    /// no usage data is stored, and then nobody is inactive.
    pub usage_as_of: Option<String>,
    pub skus: Vec<SkuLine>,
}

/// An inactive person holding a licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactiveLicence {
    pub user_principal_name: String,
    /// As in [`SkuLine::sku_part_number`].
    pub sku_part_number: String,
    /// The person's latest activity in any workload, if any.
    pub last_activity: Option<String>,
}

/// A count of people sharing a value (a department, a country); `label` None counts the
/// people without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCount {
    pub label: Option<String>,
    pub count: i64,
}

/// Counts of a tenant's stored people (every status).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeopleSummary {
    pub total: i64,
    /// With at least one licence assigned.
    pub licensed: i64,
    /// Of user type "Guest".
    pub guests: i64,
    /// Whose account is disabled.
    pub disabled: i64,
    /// Every department, largest first, then by label (None first).
    pub by_department: Vec<LabelCount>,
    /// Every country, ordered as `by_department`.
    pub by_country: Vec<LabelCount>,
}

/// A subscription's units, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionUnits {
    pub sku_id: String,
    pub product_name: String,
    pub enabled_units: i64,
    pub consumed_units: i64,
}

/// How many people one usage report (a workload over a period) lists, and how many of
/// them were active in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadActivity {
    pub workload: String,
    pub period_days: i64,
    /// Rows with a last activity date.
    pub active: i64,
    /// Rows of the report.
    pub people: i64,
    /// The report's newest refresh date.
    pub report_refreshed: String,
}

/// What a sync left in the store for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantSummary {
    pub people: PeopleSummary,
    /// Most consumed units first, then by product name.
    pub subscriptions: Vec<SubscriptionUnits>,
    pub groups: i64,
    /// Stored group memberships.
    pub memberships: i64,
    /// Every usage report, by period, then most active first, then by workload.
    pub workloads: Vec<WorkloadActivity>,
}

/// The read side of a store, for showing what it holds. Every method only reads; a
/// tenant with nothing stored gives empty results, not an error.
#[async_trait]
pub trait ReadModels: Send + Sync {
    /// The tenants with at least one stored person, by name.
    async fn tenants_with_people(&self) -> Result<Vec<String>, StoreError>;

    /// Every row of `kind` (of `tenant`, or of all tenants), into `sink` in the order
    /// [`ExportKind`] gives, until the rows end or the sink breaks.
    async fn export(
        &self,
        kind: ExportKind,
        tenant: Option<&str>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), StoreError>;

    /// The tenant's licence view: one line per SKU assigned to an active stored person,
    /// most assigned first, then by SKU id. A licence is inactive when its holder's latest
    /// `last_activity` across all their usage rows is missing or before
    /// [`inactive_cutoff`]`(usage_as_of, days)`; without usage data none is.
    async fn licence_lines(&self, tenant: &str, days: u32) -> Result<LicenceLines, StoreError>;

    /// The inactive licences behind [`ReadModels::licence_lines`]'s counts, by part number,
    /// then user principal name; empty without usage data.
    async fn inactive_licences(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<Vec<InactiveLicence>, StoreError>;

    /// Counts of what the tenant's syncs stored (see [`TenantSummary`]).
    async fn tenant_summary(&self, tenant: &str) -> Result<TenantSummary, StoreError>;
}

/// The date `days` before `usage_as_of` (YYYY-MM-DD, or a date-time without an offset),
/// as YYYY-MM-DD: licences with no activity on or after it are inactive.
pub fn inactive_cutoff(usage_as_of: &str, days: u32) -> Result<String, StoreError> {
    let invalid = |why: String| {
        StoreError::Storage(StorageError::Invalid(format!(
            "usage report refresh date {usage_as_of:?}: {why}"
        )))
    };
    let date: jiff::civil::Date = usage_as_of
        .parse()
        .map_err(|e: jiff::Error| invalid(e.to_string()))?;
    let cutoff = date
        .checked_sub(jiff::Span::new().days(i64::from(days)))
        .map_err(|e| invalid(e.to_string()))?;
    // jiff's calendar reaches back to year -9999; a report date is never that old.
    if cutoff.year() < 1 {
        return Err(invalid(format!(
            "{days} days before it is before the year 1"
        )));
    }
    Ok(cutoff.strftime("%Y-%m-%d").to_string())
}

/// An export collected whole, with its columns: for small exports and tests.
pub async fn export_table(
    store: &dyn ReadModels,
    kind: ExportKind,
    tenant: Option<&str>,
) -> Result<Table, StoreError> {
    let mut rows = Vec::new();
    store
        .export(kind, tenant, &mut |row| {
            rows.push(row);
            ControlFlow::Continue(())
        })
        .await?;
    Ok(Table {
        columns: kind.columns().iter().map(|c| c.to_string()).collect(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_days_before_the_refresh_date() {
        assert_eq!(inactive_cutoff("2024-03-01", 30).unwrap(), "2024-01-31");
        assert_eq!(inactive_cutoff("2024-03-01", 1).unwrap(), "2024-02-29");
        assert_eq!(
            inactive_cutoff("2024-03-01T10:00:00", 365).unwrap(),
            "2023-03-02"
        );
        assert!(inactive_cutoff("yesterday", 30).is_err());
        assert!(inactive_cutoff("2024-02-30", 30).is_err());
        assert!(inactive_cutoff("0001-01-01", 3650).is_err());
    }
}
