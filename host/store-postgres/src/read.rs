//! Read models in PostgreSQL (see `m365sync_store::read`): the same rows in the same order
//! as every back end. Text sorts byte-wise (`COLLATE "C"`), a missing value before any text
//! (`NULLS FIRST`), flags are 0 or 1, and the inactivity cutoff is computed in Rust
//! ([`inactive_cutoff`]). Exports stream: rows go to the sink as the server sends them.

use std::ops::ControlFlow;

use async_trait::async_trait;
use deadpool_postgres::Object;
use futures::StreamExt;
use m365sync_store::StoreError;
use m365sync_store::model::{json_list, parse_list};
use m365sync_store::read::{
    Cell, ExportKind, InactiveLicence, LabelCount, LicenceLines, PeopleSummary, ReadModels,
    RowSink, SkuLine, SubscriptionUnits, TenantSummary, WorkloadActivity, inactive_cutoff,
};
use m365sync_wit::names::WitName;
use m365sync_wit::types::PersonStatus;
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::PostgresStore;
use crate::error::store_unavailable;

/// The query of each export: its columns are [`ExportKind::columns`], `$1` the tenant (or
/// NULL for all).
fn export_sql(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::People => {
            r#"SELECT tenant, object_id, user_principal_name, mail, given_name, surname,
                      display_name, department, job_title, company_name, country,
                      usage_location, office_location, account_enabled, user_type, manager_id,
                      hire_date, created_at, last_sign_in, status
               FROM people WHERE ($1::text IS NULL OR tenant = $1)
               ORDER BY tenant COLLATE "C", user_principal_name COLLATE "C",
                        object_id COLLATE "C""#
        }
        ExportKind::Subscriptions => {
            r#"SELECT tenant, sku_id, sku_part_number, product_name, enabled_units,
                      suspended_units, warning_units, consumed_units
               FROM subscriptions WHERE ($1::text IS NULL OR tenant = $1)
               ORDER BY tenant COLLATE "C", sku_part_number COLLATE "C", sku_id COLLATE "C""#
        }
        ExportKind::Licences => {
            r#"SELECT p.tenant, p.object_id, p.user_principal_name, l.sku_id,
                      COALESCE(s.sku_part_number, l.sku_id), COALESCE(s.product_name, l.sku_id)
               FROM people p
               CROSS JOIN LATERAL jsonb_array_elements_text(p.licences) WITH ORDINALITY
                     AS l(sku_id, n)
               LEFT JOIN subscriptions s ON s.tenant = p.tenant AND s.sku_id = l.sku_id
               WHERE ($1::text IS NULL OR p.tenant = $1)
               ORDER BY p.tenant COLLATE "C", p.user_principal_name COLLATE "C",
                        p.object_id COLLATE "C", l.n"#
        }
        ExportKind::Usage => {
            r#"SELECT u.tenant, u.object_id, p.user_principal_name, u.workload, u.period_days,
                      u.last_activity, u.counts, u.report_refreshed
               FROM usage u
               LEFT JOIN people p ON p.tenant = u.tenant AND p.object_id = u.object_id
               WHERE ($1::text IS NULL OR u.tenant = $1)
               ORDER BY u.tenant COLLATE "C", p.user_principal_name COLLATE "C" NULLS FIRST,
                        u.object_id COLLATE "C", u.workload COLLATE "C", u.period_days"#
        }
        ExportKind::Mailboxes => {
            r#"SELECT m.tenant, m.object_id, p.user_principal_name, m.storage_used_bytes,
                      m.item_count, m.quota_status, m.last_activity, m.report_refreshed
               FROM mailboxes m
               LEFT JOIN people p ON p.tenant = m.tenant AND p.object_id = m.object_id
               WHERE ($1::text IS NULL OR m.tenant = $1)
               ORDER BY m.tenant COLLATE "C", p.user_principal_name COLLATE "C" NULLS FIRST,
                        m.object_id COLLATE "C""#
        }
        ExportKind::Groups => {
            r#"SELECT g.tenant, g.object_id, g.display_name, g.mail, g.kind,
                      (SELECT COUNT(*) FROM group_members gm
                       WHERE gm.tenant = g.tenant AND gm.group_id = g.object_id)
               FROM groups g WHERE ($1::text IS NULL OR g.tenant = $1)
               ORDER BY g.tenant COLLATE "C", g.display_name COLLATE "C",
                        g.object_id COLLATE "C""#
        }
        ExportKind::GroupMembers => {
            r#"SELECT gm.tenant, gm.group_id, g.display_name, gm.member_id, p.user_principal_name
               FROM group_members gm
               LEFT JOIN groups g ON g.tenant = gm.tenant AND g.object_id = gm.group_id
               LEFT JOIN people p ON p.tenant = gm.tenant AND p.object_id = gm.member_id
               WHERE ($1::text IS NULL OR gm.tenant = $1)
               ORDER BY gm.tenant COLLATE "C", g.display_name COLLATE "C" NULLS FIRST,
                        gm.group_id COLLATE "C", p.user_principal_name COLLATE "C" NULLS FIRST,
                        gm.member_id COLLATE "C""#
        }
        ExportKind::Organization => {
            r#"SELECT tenant, tenant_id, display_name, country, default_domain,
                      verified_domains::text
               FROM organizations WHERE ($1::text IS NULL OR tenant = $1)
               ORDER BY tenant COLLATE "C""#
        }
        ExportKind::Domains => {
            r#"SELECT tenant, name, is_default, is_initial, is_verified
               FROM domains WHERE ($1::text IS NULL OR tenant = $1)
               ORDER BY tenant COLLATE "C", name COLLATE "C""#
        }
    }
}

/// A row's cells as every back end exports them: a list stored as `jsonb` (whose text has
/// PostgreSQL's spacing) is written as the model's JSON text.
fn as_exported(kind: ExportKind, mut cells: Vec<Cell>) -> Vec<Cell> {
    if kind == ExportKind::Organization
        && let Some(Cell::Text(domains)) = cells.get_mut(5)
    {
        *domains = json_list(&parse_list(domains));
    }
    cells
}

/// Column `i` of `row` as a cell: flags as 0 or 1, integers, reals, and text.
fn cell(row: &Row, i: usize) -> Result<Cell, tokio_postgres::Error> {
    let ty = row.columns().get(i).map(|c| c.type_().clone());
    Ok(match ty {
        Some(Type::BOOL) => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Cell::Null, |b| Cell::Integer(i64::from(b))),
        Some(Type::INT8) => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Cell::Null, Cell::Integer),
        Some(Type::INT4) => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Cell::Null, |v| Cell::Integer(i64::from(v))),
        Some(Type::FLOAT8) => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(Cell::Null, Cell::Real),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Cell::Null, Cell::Text),
    })
}

/// Query `sql` for `what` (a round trip, the rows held whole: for small answers).
async fn rows(
    client: &Object,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    client
        .query(sql, params)
        .await
        .map_err(|e| store_unavailable(what, &e))
}

/// Read every row with `read`, for `what`.
fn each<T>(
    rows: &[Row],
    what: &str,
    read: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|row| read(row).map_err(|e| store_unavailable(what, &e)))
        .collect()
}

/// The single row a query for `what` answers.
fn one<T>(
    rows: &[Row],
    what: &str,
    read: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<T, StoreError> {
    each(rows, what, read)?.into_iter().next().ok_or_else(|| {
        StoreError::Storage(m365sync_wit::StorageError::Unavailable(format!(
            "{what}: the server answered no row"
        )))
    })
}

/// The licences of a tenant's active people (each SKU once per person), and each person's
/// latest activity in any workload: `$1` the tenant, `$2` the cutoff (NULL without usage
/// data), `$3` the active status's name.
const LICENSED: &str = r#"
WITH licensed AS (
    SELECT DISTINCT p.object_id, p.user_principal_name, l.sku_id
    FROM people p CROSS JOIN LATERAL jsonb_array_elements_text(p.licences) AS l(sku_id)
    WHERE p.tenant = $1 AND p.status = $3
),
activity AS (
    SELECT object_id, MAX(last_activity COLLATE "C") AS last_activity
    FROM usage WHERE tenant = $1 GROUP BY object_id
),
lines AS (
    SELECT l.object_id, l.user_principal_name, l.sku_id,
           COALESCE(s.sku_part_number, l.sku_id) AS sku_part_number,
           COALESCE(s.product_name, l.sku_id) AS product_name,
           COALESCE(s.enabled_units, 0) AS enabled_units,
           COALESCE(s.consumed_units, 0) AS consumed_units,
           a.last_activity,
           ($2::text IS NOT NULL AND (a.last_activity IS NULL OR a.last_activity < $2))
               AS inactive
    FROM licensed l
    LEFT JOIN subscriptions s ON s.tenant = $1 AND s.sku_id = l.sku_id
    LEFT JOIN activity a ON a.object_id = l.object_id
)
"#;

impl PostgresStore {
    /// The newest report refresh date of the tenant's usage rows, and the cutoff `days`
    /// before it.
    async fn usage_as_of(
        &self,
        client: &Object,
        tenant: &str,
        days: u32,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        let what = "reading the usage reports' date";
        let found = rows(
            client,
            what,
            r#"SELECT MAX(report_refreshed COLLATE "C") FROM usage WHERE tenant = $1"#,
            &[&tenant],
        )
        .await?;
        let as_of: Option<String> = one(&found, what, |row| row.try_get(0))?;
        let cutoff = as_of
            .as_deref()
            .map(|as_of| inactive_cutoff(as_of, days))
            .transpose()?;
        Ok((as_of, cutoff))
    }
}

#[async_trait]
impl ReadModels for PostgresStore {
    async fn tenants_with_people(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client("listing tenants").await?;
        let what = "listing the tenants with people";
        let found = rows(
            &client,
            what,
            r#"SELECT tenant FROM people GROUP BY tenant ORDER BY tenant COLLATE "C""#,
            &[],
        )
        .await?;
        each(&found, what, |row| row.try_get(0))
    }

    async fn export(
        &self,
        kind: ExportKind,
        tenant: Option<&str>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), StoreError> {
        let what = format!("exporting {kind:?}");
        let client = self.client(&what).await?;
        let failed = |e: tokio_postgres::Error| store_unavailable(&what, &e);
        let statement = client
            .prepare_cached(export_sql(kind))
            .await
            .map_err(failed)?;
        let params: [&(dyn ToSql + Sync); 1] = [&tenant];
        let stream = client.query_raw(&statement, params).await.map_err(failed)?;
        let mut stream = std::pin::pin!(stream);
        let width = kind.columns().len();
        while let Some(row) = stream.next().await {
            let row = row.map_err(failed)?;
            let cells = (0..width)
                .map(|i| cell(&row, i))
                .collect::<Result<Vec<Cell>, _>>()
                .map_err(failed)?;
            if let ControlFlow::Break(()) = sink(as_exported(kind, cells)) {
                // The reader went away: not an error. The rest of the answer is dropped
                // with the stream.
                break;
            }
        }
        Ok(())
    }

    async fn licence_lines(&self, tenant: &str, days: u32) -> Result<LicenceLines, StoreError> {
        let client = self.client("reading licences").await?;
        let (usage_as_of, cutoff) = self.usage_as_of(&client, tenant, days).await?;
        let what = "reading licences";
        let found = rows(
            &client,
            what,
            &format!(
                r#"{LICENSED}
                SELECT sku_id, MIN(sku_part_number), MIN(product_name), MIN(enabled_units),
                       MIN(consumed_units), COUNT(*), COUNT(*) FILTER (WHERE inactive)
                FROM lines GROUP BY sku_id
                ORDER BY COUNT(*) DESC, sku_id COLLATE "C""#
            ),
            &[&tenant, &cutoff, &PersonStatus::Active.name()],
        )
        .await?;
        let skus = each(&found, what, |row| {
            Ok(SkuLine {
                sku_id: row.try_get(0)?,
                sku_part_number: row.try_get(1)?,
                product_name: row.try_get(2)?,
                enabled_units: row.try_get(3)?,
                consumed_units: row.try_get(4)?,
                assigned: row.try_get(5)?,
                inactive: row.try_get(6)?,
            })
        })?;
        Ok(LicenceLines { usage_as_of, skus })
    }

    async fn inactive_licences(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<Vec<InactiveLicence>, StoreError> {
        let client = self.client("reading licences").await?;
        let (_, cutoff) = self.usage_as_of(&client, tenant, days).await?;
        if cutoff.is_none() {
            return Ok(Vec::new());
        }
        let what = "reading inactive licences";
        let found = rows(
            &client,
            what,
            &format!(
                r#"{LICENSED}
                SELECT user_principal_name, sku_part_number, last_activity
                FROM lines WHERE inactive
                ORDER BY sku_part_number COLLATE "C", user_principal_name COLLATE "C",
                         object_id COLLATE "C", sku_id COLLATE "C""#
            ),
            &[&tenant, &cutoff, &PersonStatus::Active.name()],
        )
        .await?;
        each(&found, what, |row| {
            Ok(InactiveLicence {
                user_principal_name: row.try_get(0)?,
                sku_part_number: row.try_get(1)?,
                last_activity: row.try_get(2)?,
            })
        })
    }

    async fn tenant_summary(&self, tenant: &str) -> Result<TenantSummary, StoreError> {
        let client = self.client("summarising the tenant").await?;
        let what = "summarising the tenant's people";
        let found = rows(
            &client,
            what,
            "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE jsonb_array_length(licences) > 0),
                    COUNT(*) FILTER (WHERE user_type = 'Guest'),
                    COUNT(*) FILTER (WHERE NOT account_enabled)
             FROM people WHERE tenant = $1",
            &[&tenant],
        )
        .await?;
        let (total, licensed, guests, disabled) = one(&found, what, |row| {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })?;
        let mut people = PeopleSummary {
            total,
            licensed,
            guests,
            disabled,
            ..PeopleSummary::default()
        };
        for (column, counts) in [
            ("department", &mut people.by_department),
            ("country", &mut people.by_country),
        ] {
            // `column` is one of the two above, never input.
            let found = rows(
                &client,
                what,
                &format!(
                    r#"SELECT {column}, COUNT(*) FROM people WHERE tenant = $1 GROUP BY {column}
                       ORDER BY COUNT(*) DESC, {column} COLLATE "C" NULLS FIRST"#
                ),
                &[&tenant],
            )
            .await?;
            *counts = each(&found, what, |row| {
                Ok(LabelCount {
                    label: row.try_get(0)?,
                    count: row.try_get(1)?,
                })
            })?;
        }
        let what = "summarising the tenant's subscriptions";
        let found = rows(
            &client,
            what,
            r#"SELECT sku_id, product_name, enabled_units, consumed_units
               FROM subscriptions WHERE tenant = $1
               ORDER BY consumed_units DESC, product_name COLLATE "C", sku_id COLLATE "C""#,
            &[&tenant],
        )
        .await?;
        let subscriptions = each(&found, what, |row| {
            Ok(SubscriptionUnits {
                sku_id: row.try_get(0)?,
                product_name: row.try_get(1)?,
                enabled_units: row.try_get(2)?,
                consumed_units: row.try_get(3)?,
            })
        })?;
        let what = "summarising the tenant's groups";
        let found = rows(
            &client,
            what,
            "SELECT (SELECT COUNT(*) FROM groups WHERE tenant = $1),
                    (SELECT COUNT(*) FROM group_members WHERE tenant = $1)",
            &[&tenant],
        )
        .await?;
        let (groups, memberships) =
            one(&found, what, |row| Ok((row.try_get(0)?, row.try_get(1)?)))?;
        let what = "summarising the tenant's usage reports";
        let found = rows(
            &client,
            what,
            r#"SELECT workload, period_days, COUNT(last_activity), COUNT(*),
                      MAX(report_refreshed COLLATE "C")
               FROM usage WHERE tenant = $1 GROUP BY workload, period_days
               ORDER BY period_days, COUNT(last_activity) DESC, workload COLLATE "C""#,
            &[&tenant],
        )
        .await?;
        let workloads = each(&found, what, |row| {
            Ok(WorkloadActivity {
                workload: row.try_get(0)?,
                period_days: i64::from(row.try_get::<_, i32>(1)?),
                active: row.try_get(2)?,
                people: row.try_get(3)?,
                report_refreshed: row.try_get(4)?,
            })
        })?;
        Ok(TenantSummary {
            people,
            subscriptions,
            groups,
            memberships,
            workloads,
        })
    }
}
