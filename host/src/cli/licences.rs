//! `m365sync licences`: subscriptions with their units, and the inactive-licence view —
//! licensed people with no recorded activity in any workload for N days, per SKU, with the
//! units that could be freed. Read-only queries over what syncs stored.

use std::path::PathBuf;

use anyhow::Context;
use rusqlite::{Connection, params};
use serde_json::json;

use super::{Failure, LicencesArgs, Output};
use m365sync::store::sqlite::open_database;

/// One SKU's line of the view.
struct SkuLine {
    sku_id: String,
    part_number: String,
    product_name: String,
    enabled: i64,
    consumed: i64,
    assigned: i64,
    inactive: i64,
}

pub async fn run(args: LicencesArgs, output: Output) -> Result<(), Failure> {
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from("m365sync.db"));
    if !db.exists() {
        return Err(Failure::usage(anyhow::anyhow!(
            "database {} does not exist: run `m365sync sync` first",
            db.display()
        )));
    }
    let connection = open_database(&db).map_err(Failure::run)?;
    let tenants = tenants(&connection, args.tenant.as_deref()).map_err(Failure::run)?;
    let mut all = Vec::new();
    for tenant in tenants {
        let as_of = as_of(&connection, &tenant).map_err(Failure::run)?;
        let mut lines = sku_lines(&connection, &tenant, as_of.as_deref(), args.days)
            .with_context(|| format!("reading licences of tenant {tenant}"))
            .map_err(Failure::run)?;
        if as_of.is_none() {
            // Without usage data nobody can be called inactive.
            lines.iter_mut().for_each(|l| l.inactive = 0);
        }
        let inactive_people = if args.list && as_of.is_some() {
            inactive_people(&connection, &tenant, as_of.as_deref(), args.days)
                .map_err(Failure::run)?
        } else {
            Vec::new()
        };
        if output.json {
            all.push(json!({
                "tenant": tenant,
                "usage_as_of": as_of,
                "inactive_days": args.days,
                "skus": lines.iter().map(|l| json!({
                    "sku_id": l.sku_id,
                    "sku_part_number": l.part_number,
                    "product_name": l.product_name,
                    "enabled_units": l.enabled,
                    "consumed_units": l.consumed,
                    "assigned_to_synced_people": l.assigned,
                    "inactive": l.inactive,
                    "units_that_could_be_freed": l.inactive,
                })).collect::<Vec<_>>(),
                "inactive_people": inactive_people.iter().map(|(upn, sku, last)| json!({
                    "user_principal_name": upn, "sku_part_number": sku, "last_activity": last,
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        outln!("Tenant {tenant}: licences");
        match &as_of {
            Some(date) => outln!(
                "  usage data as of {date} (Microsoft's reports lag by days); inactive = no activity in any workload for {} days",
                args.days
            ),
            None => outln!(
                "  no usage data stored: enable the usage-reports feature to find inactive licences"
            ),
        }
        outln!(
            "  {:<40} {:<28} {:>8} {:>8} {:>8} {:>9}",
            "product",
            "sku",
            "enabled",
            "consumed",
            "synced",
            "inactive"
        );
        for l in &lines {
            outln!(
                "  {:<40} {:<28} {:>8} {:>8} {:>8} {:>9}",
                truncate(&l.product_name, 40),
                truncate(&l.part_number, 28),
                l.enabled,
                l.consumed,
                l.assigned,
                if as_of.is_some() {
                    l.inactive.to_string()
                } else {
                    "-".into()
                }
            );
        }
        if as_of.is_some() {
            let freeable: i64 = lines.iter().map(|l| l.inactive).sum();
            outln!("  units that could be freed: {freeable}");
        }
        for (upn, sku, last) in &inactive_people {
            outln!(
                "    inactive: {upn} ({sku}), last activity {}",
                last.as_deref().unwrap_or("never")
            );
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(all));
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// The tenants in the store (or the one asked for, checked to exist).
pub fn tenants(connection: &Connection, only: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut statement = connection.prepare("SELECT DISTINCT tenant FROM people ORDER BY tenant")?;
    let all: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    match only {
        None => Ok(all),
        Some(name) if all.iter().any(|t| t == name) => Ok(vec![name.to_string()]),
        Some(name) => anyhow::bail!(
            "no tenant named {name:?} in the store (tenants: {})",
            all.join(", ")
        ),
    }
}

/// The date usage data is as of: the newest report refresh date stored.
fn as_of(connection: &Connection, tenant: &str) -> anyhow::Result<Option<String>> {
    Ok(connection.query_row(
        "SELECT MAX(report_refreshed) FROM usage WHERE tenant = ?1",
        params![tenant],
        |row| row.get(0),
    )?)
}

/// Licensed, active people with their SKUs and last activity across workloads, as SQL.
const LICENSED: &str = "
    WITH licensed AS (
        SELECT p.object_id, p.user_principal_name, j.value AS sku_id
        FROM people p, json_each(p.licences) j
        WHERE p.tenant = ?1 AND p.status = 'active'
    ),
    activity AS (
        SELECT object_id, MAX(last_activity) AS last_activity
        FROM usage WHERE tenant = ?1 GROUP BY object_id
    )";

fn sku_lines(
    connection: &Connection,
    tenant: &str,
    as_of: Option<&str>,
    days: u32,
) -> anyhow::Result<Vec<SkuLine>> {
    let cutoff = cutoff(connection, as_of, days)?;
    let sql = format!(
        "{LICENSED}
        SELECT l.sku_id, COALESCE(s.sku_part_number, l.sku_id), COALESCE(s.product_name, s.sku_part_number, l.sku_id),
               COALESCE(s.enabled_units, 0), COALESCE(s.consumed_units, 0), COUNT(*),
               SUM(CASE WHEN a.last_activity IS NULL OR a.last_activity < ?2 THEN 1 ELSE 0 END)
        FROM licensed l
        LEFT JOIN subscriptions s ON s.tenant = ?1 AND s.sku_id = l.sku_id
        LEFT JOIN activity a ON a.object_id = l.object_id
        GROUP BY l.sku_id ORDER BY 6 DESC"
    );
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(params![tenant, cutoff], |row| {
        Ok(SkuLine {
            sku_id: row.get(0)?,
            part_number: row.get(1)?,
            product_name: row.get(2)?,
            enabled: row.get(3)?,
            consumed: row.get(4)?,
            assigned: row.get(5)?,
            inactive: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn inactive_people(
    connection: &Connection,
    tenant: &str,
    as_of: Option<&str>,
    days: u32,
) -> anyhow::Result<Vec<(String, String, Option<String>)>> {
    let cutoff = cutoff(connection, as_of, days)?;
    let sql = format!(
        "{LICENSED}
        SELECT l.user_principal_name, COALESCE(s.sku_part_number, l.sku_id), a.last_activity
        FROM licensed l
        LEFT JOIN subscriptions s ON s.tenant = ?1 AND s.sku_id = l.sku_id
        LEFT JOIN activity a ON a.object_id = l.object_id
        WHERE a.last_activity IS NULL OR a.last_activity < ?2
        ORDER BY 2, 1"
    );
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(params![tenant, cutoff], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `as_of` minus `days`, as YYYY-MM-DD (SQLite's date arithmetic).
fn cutoff(connection: &Connection, as_of: Option<&str>, days: u32) -> anyhow::Result<String> {
    match as_of {
        None => Ok("0000-00-00".to_string()),
        Some(date) => Ok(connection
            .query_row(
                "SELECT date(?1, ?2)",
                params![date, format!("-{days} days")],
                |row| row.get::<_, Option<String>>(0),
            )?
            .with_context(|| format!("usage refresh date {date:?} is not a date"))?),
    }
}
