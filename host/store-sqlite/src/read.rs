//! Read models in SQLite (see `m365sync_store::read` for what each gives, in which order):
//! the queries behind exports, the licence views and summaries, over the read-only
//! connection. Text columns use SQLite's default `BINARY` collation, byte-wise, and
//! `ORDER BY` puts NULL first: the contract's order. Dates are computed in Rust
//! ([`inactive_cutoff`]), not with SQLite's date functions.

use std::ops::ControlFlow;

use async_trait::async_trait;
use m365sync_store::StoreError;
use m365sync_store::model::counts_json;
use m365sync_store::read::{
    Cell, ExportKind, InactiveLicence, LabelCount, LicenceLines, PeopleSummary, ReadModels,
    RowSink, SkuLine, SubscriptionUnits, TenantSummary, WorkloadActivity, inactive_cutoff,
};
use m365sync_wit::StorageError;
use m365sync_wit::names::WitName;
use m365sync_wit::types::PersonStatus;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};

use crate::{SqliteStore, read_error};

/// The query of an export: its columns are [`ExportKind::columns`], `?1` the tenant or
/// NULL for all. Every order ends in a key, so no two back ends can differ on ties.
fn export_query(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::People => {
            "SELECT tenant, object_id, user_principal_name, mail, given_name, surname, display_name,
                    department, job_title, company_name, country, usage_location, office_location,
                    account_enabled, user_type, manager_id, hire_date, created_at, last_sign_in, status
             FROM people WHERE (?1 IS NULL OR tenant = ?1)
             ORDER BY tenant, user_principal_name, object_id"
        }
        ExportKind::Subscriptions => {
            "SELECT tenant, sku_id, sku_part_number, product_name, enabled_units, suspended_units,
                    warning_units, consumed_units
             FROM subscriptions WHERE (?1 IS NULL OR tenant = ?1)
             ORDER BY tenant, sku_part_number, sku_id"
        }
        // json_each's `key` is a licence's index in the person's list: their stored order.
        ExportKind::Licences => {
            "SELECT p.tenant, p.object_id, p.user_principal_name, j.value,
                    COALESCE(s.sku_part_number, j.value), COALESCE(s.product_name, j.value)
             FROM people p, json_each(p.licences) j
             LEFT JOIN subscriptions s ON s.tenant = p.tenant AND s.sku_id = j.value
             WHERE (?1 IS NULL OR p.tenant = ?1)
             ORDER BY p.tenant, p.user_principal_name, p.object_id, j.key"
        }
        ExportKind::Usage => {
            "SELECT u.tenant, u.object_id, p.user_principal_name, u.workload, u.period_days,
                    u.last_activity, u.counts, u.report_refreshed
             FROM usage u LEFT JOIN people p ON p.tenant = u.tenant AND p.object_id = u.object_id
             WHERE (?1 IS NULL OR u.tenant = ?1)
             ORDER BY u.tenant, p.user_principal_name, u.object_id, u.workload, u.period_days"
        }
        ExportKind::Mailboxes => {
            "SELECT m.tenant, m.object_id, p.user_principal_name, m.storage_used_bytes,
                    m.item_count, m.quota_status, m.last_activity, m.report_refreshed
             FROM mailboxes m
             LEFT JOIN people p ON p.tenant = m.tenant AND p.object_id = m.object_id
             WHERE (?1 IS NULL OR m.tenant = ?1)
             ORDER BY m.tenant, p.user_principal_name, m.object_id"
        }
        ExportKind::Groups => {
            "SELECT g.tenant, g.object_id, g.display_name, g.mail, g.kind,
                    (SELECT COUNT(*) FROM group_members gm
                     WHERE gm.tenant = g.tenant AND gm.group_id = g.object_id)
             FROM groups g WHERE (?1 IS NULL OR g.tenant = ?1)
             ORDER BY g.tenant, g.display_name, g.object_id"
        }
        ExportKind::GroupMembers => {
            "SELECT gm.tenant, gm.group_id, g.display_name, gm.member_id, p.user_principal_name
             FROM group_members gm
             LEFT JOIN groups g ON g.tenant = gm.tenant AND g.object_id = gm.group_id
             LEFT JOIN people p ON p.tenant = gm.tenant AND p.object_id = gm.member_id
             WHERE (?1 IS NULL OR gm.tenant = ?1)
             ORDER BY gm.tenant, g.display_name, gm.group_id, p.user_principal_name, gm.member_id"
        }
        ExportKind::Organization => {
            "SELECT tenant, tenant_id, display_name, country, default_domain, verified_domains
             FROM organizations WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant"
        }
        ExportKind::Domains => {
            "SELECT tenant, name, is_default, is_initial, is_verified
             FROM domains WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, name"
        }
    }
}

/// A stored value as an export's cell. SQLite does not enforce a column's type: a value
/// no m365sync writes (a blob, text that is not UTF-8) is an error naming where it is.
fn cell(kind: ExportKind, column: usize, value: ValueRef<'_>) -> Result<Cell, StoreError> {
    let name = kind.columns().get(column).copied().unwrap_or("?");
    let invalid = |what: &str| {
        StoreError::Storage(StorageError::Invalid(format!(
            "exporting {kind:?}: column {name} holds {what}"
        )))
    };
    Ok(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Integer(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(bytes) => Cell::Text(
            std::str::from_utf8(bytes)
                .map_err(|_| invalid("text that is not UTF-8"))?
                .to_string(),
        ),
        ValueRef::Blob(_) => return Err(invalid("a blob")),
    })
}

/// A usage row's stored counts as their JSON object, or an error naming the row.
fn usage_counts(
    row: &rusqlite::Row<'_>,
    blob: &[u8],
    names: &std::collections::HashMap<i64, String>,
) -> Result<Cell, StoreError> {
    let counts = crate::counts::decode(blob, names).map_err(|e| {
        let text = |i| row.get::<_, String>(i).unwrap_or_default();
        StoreError::Storage(StorageError::Invalid(format!(
            "exporting Usage: the counts of tenant {}, person {}, {} over {} days cannot be \
             read: {e}",
            text(0),
            text(1),
            text(3),
            row.get::<_, i64>(4).unwrap_or_default()
        )))
    })?;
    Ok(Cell::Text(counts_json(&counts)))
}

fn export(
    connection: &Connection,
    kind: ExportKind,
    tenant: Option<&str>,
    sink: &mut RowSink<'_>,
) -> Result<(), StoreError> {
    let what = format!("exporting {kind:?}");
    let failed = read_error(&what);
    let mut statement = connection.prepare(export_query(kind)).map_err(&failed)?;
    let columns = statement.column_count();
    // Usage counts are stored as name ids and numbers ([`crate::counts`]); they are
    // exported as the JSON object every back end exports.
    let counts = match kind {
        ExportKind::Usage => {
            let names = crate::counts::names_by_id(connection).map_err(&failed)?;
            let column = kind.columns().iter().position(|c| *c == "counts");
            column.map(|column| (column, names))
        }
        _ => None,
    };
    let mut rows = statement.query(params![tenant]).map_err(&failed)?;
    while let Some(row) = rows.next().map_err(&failed)? {
        let cells = (0..columns)
            .map(|i| {
                let value = row.get_ref(i).map_err(&failed)?;
                match (&counts, value) {
                    (Some((column, names)), ValueRef::Blob(blob)) if *column == i => {
                        usage_counts(row, blob, names)
                    }
                    _ => cell(kind, i, value),
                }
            })
            .collect::<Result<Vec<Cell>, StoreError>>()?;
        if let ControlFlow::Break(()) = sink(cells) {
            break;
        }
    }
    Ok(())
}

/// The active stored people of tenant `?1` with each SKU assigned to them (once), and
/// everyone's latest activity across the tenant's usage rows.
const LICENSED: &str = "
    WITH licensed AS (
        SELECT DISTINCT p.object_id, p.user_principal_name, j.value AS sku_id
        FROM people p, json_each(p.licences) j
        WHERE p.tenant = ?1 AND p.status = ?3
    ),
    activity AS (
        SELECT object_id, MAX(last_activity) AS last_activity
        FROM usage WHERE tenant = ?1 GROUP BY object_id
    )";

/// The date the tenant's usage data is as of, and the cutoff of `days` before it.
fn as_of(
    connection: &Connection,
    tenant: &str,
    days: u32,
) -> Result<(Option<String>, Option<String>), StoreError> {
    let as_of: Option<String> = connection
        .query_row(
            "SELECT MAX(report_refreshed) FROM usage WHERE tenant = ?1",
            params![tenant],
            |row| row.get(0),
        )
        .map_err(read_error("reading the usage date"))?;
    let cutoff = as_of
        .as_deref()
        .map(|d| inactive_cutoff(d, days))
        .transpose()?;
    Ok((as_of, cutoff))
}

fn licence_lines(
    connection: &Connection,
    tenant: &str,
    days: u32,
) -> Result<LicenceLines, StoreError> {
    let (usage_as_of, cutoff) = as_of(connection, tenant, days)?;
    // Without usage data (?2 NULL) nobody is inactive.
    let sql = format!(
        "{LICENSED}
        SELECT l.sku_id, COALESCE(s.sku_part_number, l.sku_id), COALESCE(s.product_name, l.sku_id),
               COALESCE(s.enabled_units, 0), COALESCE(s.consumed_units, 0), COUNT(*),
               COALESCE(SUM(?2 IS NOT NULL AND (a.last_activity IS NULL OR a.last_activity < ?2)), 0)
        FROM licensed l
        LEFT JOIN subscriptions s ON s.tenant = ?1 AND s.sku_id = l.sku_id
        LEFT JOIN activity a ON a.object_id = l.object_id
        GROUP BY l.sku_id ORDER BY 6 DESC, l.sku_id"
    );
    let failed = read_error("reading licences");
    let skus = connection
        .prepare(&sql)
        .and_then(|mut s| {
            s.query_map(
                params![tenant, cutoff, PersonStatus::Active.name()],
                |row| {
                    Ok(SkuLine {
                        sku_id: row.get(0)?,
                        sku_part_number: row.get(1)?,
                        product_name: row.get(2)?,
                        enabled_units: row.get(3)?,
                        consumed_units: row.get(4)?,
                        assigned: row.get(5)?,
                        inactive: row.get(6)?,
                    })
                },
            )?
            .collect()
        })
        .map_err(failed)?;
    Ok(LicenceLines { usage_as_of, skus })
}

fn inactive_licences(
    connection: &Connection,
    tenant: &str,
    days: u32,
) -> Result<Vec<InactiveLicence>, StoreError> {
    let (_, Some(cutoff)) = as_of(connection, tenant, days)? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "{LICENSED}
        SELECT l.user_principal_name, COALESCE(s.sku_part_number, l.sku_id), a.last_activity
        FROM licensed l
        LEFT JOIN subscriptions s ON s.tenant = ?1 AND s.sku_id = l.sku_id
        LEFT JOIN activity a ON a.object_id = l.object_id
        WHERE a.last_activity IS NULL OR a.last_activity < ?2
        ORDER BY 2, l.user_principal_name, l.object_id, l.sku_id"
    );
    connection
        .prepare(&sql)
        .and_then(|mut s| {
            s.query_map(
                params![tenant, cutoff, PersonStatus::Active.name()],
                |row| {
                    Ok(InactiveLicence {
                        user_principal_name: row.get(0)?,
                        sku_part_number: row.get(1)?,
                        last_activity: row.get(2)?,
                    })
                },
            )?
            .collect()
        })
        .map_err(read_error("reading inactive licences"))
}

/// The tenant's people per value of `column` (one of a fixed set, never user input),
/// largest first, then by value (NULL first).
fn label_counts(
    connection: &Connection,
    tenant: &str,
    column: &str,
) -> rusqlite::Result<Vec<LabelCount>> {
    connection
        .prepare(&format!(
            "SELECT {column}, COUNT(*) FROM people WHERE tenant = ?1
             GROUP BY {column} ORDER BY 2 DESC, 1"
        ))?
        .query_map(params![tenant], |row| {
            Ok(LabelCount {
                label: row.get(0)?,
                count: row.get(1)?,
            })
        })?
        .collect()
}

fn count(connection: &Connection, sql: &str, tenant: &str) -> rusqlite::Result<i64> {
    connection.query_row(sql, params![tenant], |row| row.get(0))
}

fn tenant_summary(connection: &Connection, tenant: &str) -> rusqlite::Result<TenantSummary> {
    let (total, licensed, guests, disabled) = connection.query_row(
        "SELECT COUNT(*), COALESCE(SUM(json_array_length(licences) > 0), 0),
                COALESCE(SUM(user_type = 'Guest'), 0), COALESCE(SUM(account_enabled = 0), 0)
         FROM people WHERE tenant = ?1",
        params![tenant],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    let people = PeopleSummary {
        total,
        licensed,
        guests,
        disabled,
        by_department: label_counts(connection, tenant, "department")?,
        by_country: label_counts(connection, tenant, "country")?,
    };
    let subscriptions = connection
        .prepare(
            "SELECT sku_id, product_name, enabled_units, consumed_units FROM subscriptions
             WHERE tenant = ?1 ORDER BY consumed_units DESC, product_name, sku_id",
        )?
        .query_map(params![tenant], |row| {
            Ok(SubscriptionUnits {
                sku_id: row.get(0)?,
                product_name: row.get(1)?,
                enabled_units: row.get(2)?,
                consumed_units: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let workloads = connection
        .prepare(
            "SELECT workload, period_days, COUNT(last_activity), COUNT(*), MAX(report_refreshed)
             FROM usage WHERE tenant = ?1 GROUP BY workload, period_days
             ORDER BY period_days, 3 DESC, workload",
        )?
        .query_map(params![tenant], |row| {
            Ok(WorkloadActivity {
                workload: row.get(0)?,
                period_days: row.get(1)?,
                active: row.get(2)?,
                people: row.get(3)?,
                report_refreshed: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(TenantSummary {
        people,
        subscriptions,
        groups: count(
            connection,
            "SELECT COUNT(*) FROM groups WHERE tenant = ?1",
            tenant,
        )?,
        memberships: count(
            connection,
            "SELECT COUNT(*) FROM group_members WHERE tenant = ?1",
            tenant,
        )?,
        workloads,
    })
}

// SQLite is called in place, as the rest of this back end does: its reads are local and
// short, and an export hands each row to the sink as it is read.
#[async_trait]
impl ReadModels for SqliteStore {
    async fn tenants_with_people(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.read_connection()?;
        connection
            .prepare("SELECT DISTINCT tenant FROM people ORDER BY tenant")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .map_err(read_error("listing the tenants"))
    }

    async fn export(
        &self,
        kind: ExportKind,
        tenant: Option<&str>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), StoreError> {
        export(&self.read_connection()?, kind, tenant, sink)
    }

    async fn licence_lines(&self, tenant: &str, days: u32) -> Result<LicenceLines, StoreError> {
        licence_lines(&self.read_connection()?, tenant, days)
    }

    async fn inactive_licences(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<Vec<InactiveLicence>, StoreError> {
        inactive_licences(&self.read_connection()?, tenant, days)
    }

    async fn tenant_summary(&self, tenant: &str) -> Result<TenantSummary, StoreError> {
        let connection = self.read_connection()?;
        tenant_summary(&connection, tenant).map_err(read_error("summarising the tenant"))
    }
}
