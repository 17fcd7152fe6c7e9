//! Short summary tables of what a tenant's sync left in the store: people by department,
//! by country, and licensed vs not. Read-only queries against the SQLite store.

use rusqlite::{Connection, params};

/// Rows of (label, count), largest first.
fn grouped(
    connection: &Connection,
    tenant: &str,
    column: &str,
    limit: usize,
) -> rusqlite::Result<Vec<(String, i64)>> {
    // `column` is one of a fixed set chosen by this module, never user input.
    let sql = format!(
        "SELECT COALESCE({column}, '(none)'), COUNT(*) FROM people WHERE tenant = ?1
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?2"
    );
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(params![tenant, limit as i64], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    rows.collect()
}

/// The summary as text.
pub fn to_text(connection: &Connection, tenant: &str) -> rusqlite::Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let total: i64 = connection.query_row(
        "SELECT COUNT(*) FROM people WHERE tenant = ?1",
        params![tenant],
        |r| r.get(0),
    )?;
    let licensed: i64 = connection.query_row(
        "SELECT COUNT(*) FROM people WHERE tenant = ?1 AND licences != '[]'",
        params![tenant],
        |r| r.get(0),
    )?;
    let guests: i64 = connection.query_row(
        "SELECT COUNT(*) FROM people WHERE tenant = ?1 AND user_type = 'Guest'",
        params![tenant],
        |r| r.get(0),
    )?;
    let disabled: i64 = connection.query_row(
        "SELECT COUNT(*) FROM people WHERE tenant = ?1 AND account_enabled = 0",
        params![tenant],
        |r| r.get(0),
    )?;
    let _ = writeln!(out, "\nPeople in the store for tenant {tenant}: {total}");
    let _ = writeln!(
        out,
        "  licensed {licensed}, unlicensed {}, guests {guests}, disabled {disabled}",
        total - licensed
    );
    for (title, column, limit) in [
        ("By department", "department", 12),
        ("By country", "country", 10),
    ] {
        let _ = writeln!(out, "\n  {title}:");
        for (label, count) in grouped(connection, tenant, column, limit)? {
            let _ = writeln!(out, "    {label:<28} {count:>7}");
        }
    }
    let _ = writeln!(out, "\n  Licences (consumed of enabled units):");
    let mut statement = connection.prepare(
        "SELECT product_name, consumed_units, enabled_units FROM subscriptions
         WHERE tenant = ?1 ORDER BY consumed_units DESC, product_name",
    )?;
    let skus = statement.query_map(params![tenant], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for sku in skus {
        let (name, consumed, enabled) = sku?;
        let _ = writeln!(out, "    {name:<44} {consumed:>7} of {enabled:>7}");
    }
    let groups: i64 = connection.query_row(
        "SELECT COUNT(*) FROM groups WHERE tenant = ?1",
        params![tenant],
        |r| r.get(0),
    )?;
    let members: i64 = connection.query_row(
        "SELECT COUNT(*) FROM group_members WHERE tenant = ?1",
        params![tenant],
        |r| r.get(0),
    )?;
    let _ = writeln!(out, "\n  Groups: {groups} ({members} memberships)");
    let _ = writeln!(out, "\n  Active in the last 30-day report, per workload:");
    let mut statement = connection.prepare(
        "SELECT workload, SUM(last_activity IS NOT NULL), COUNT(*), MAX(report_refreshed)
         FROM usage WHERE tenant = ?1 AND period_days = 30 GROUP BY workload ORDER BY 2 DESC",
    )?;
    let workloads = statement.query_map(params![tenant], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, Option<String>>(3)?,
        ))
    })?;
    for workload in workloads {
        let (name, active, rows, refreshed) = workload?;
        let as_of = refreshed.unwrap_or_default();
        let _ = writeln!(
            out,
            "    {name:<14} {active:>7} of {rows:>7} people (as of {as_of})"
        );
    }
    Ok(out)
}
