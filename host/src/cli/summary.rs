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
    Ok(out)
}
