//! `m365sync export`: what syncs stored, as CSV or JSON on stdout, for other tools —
//! people, subscriptions, per-person licences, usage (per person, workload and period),
//! mailboxes, groups and their members.

use std::io::Write;
use std::path::PathBuf;

use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use super::{ExportArgs, ExportFormat, ExportWhat, Failure};
use m365sync::store::sqlite::open_database;

/// The query behind each export: its columns are the export's columns.
fn query(what: ExportWhat) -> &'static str {
    match what {
        ExportWhat::People => {
            "SELECT tenant, object_id, user_principal_name, mail, given_name, surname, display_name,
                    department, job_title, company_name, country, usage_location, office_location,
                    account_enabled, user_type, manager_id, hire_date, created_at, last_sign_in, status
             FROM people WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, user_principal_name"
        }
        ExportWhat::Subscriptions => {
            "SELECT tenant, sku_id, sku_part_number, product_name, enabled_units, suspended_units,
                    warning_units, consumed_units
             FROM subscriptions WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, sku_part_number"
        }
        ExportWhat::Licences => {
            "SELECT p.tenant, p.object_id, p.user_principal_name, j.value AS sku_id,
                    COALESCE(s.sku_part_number, j.value) AS sku_part_number,
                    COALESCE(s.product_name, s.sku_part_number, j.value) AS product_name
             FROM people p, json_each(p.licences) j
             LEFT JOIN subscriptions s ON s.tenant = p.tenant AND s.sku_id = j.value
             WHERE (?1 IS NULL OR p.tenant = ?1) ORDER BY p.tenant, p.user_principal_name"
        }
        ExportWhat::Usage => {
            "SELECT u.tenant, u.object_id, p.user_principal_name, u.workload, u.period_days,
                    u.last_activity, u.counts, u.report_refreshed
             FROM usage u LEFT JOIN people p ON p.tenant = u.tenant AND p.object_id = u.object_id
             WHERE (?1 IS NULL OR u.tenant = ?1)
             ORDER BY u.tenant, p.user_principal_name, u.workload, u.period_days"
        }
        ExportWhat::Mailboxes => {
            "SELECT m.tenant, m.object_id, p.user_principal_name, m.storage_used_bytes, m.item_count,
                    m.quota_status, m.last_activity, m.report_refreshed
             FROM mailboxes m LEFT JOIN people p ON p.tenant = m.tenant AND p.object_id = m.object_id
             WHERE (?1 IS NULL OR m.tenant = ?1) ORDER BY m.tenant, p.user_principal_name"
        }
        ExportWhat::Groups => {
            "SELECT g.tenant, g.object_id, g.display_name, g.mail, g.kind,
                    (SELECT COUNT(*) FROM group_members gm
                     WHERE gm.tenant = g.tenant AND gm.group_id = g.object_id) AS members
             FROM groups g WHERE (?1 IS NULL OR g.tenant = ?1) ORDER BY g.tenant, g.display_name"
        }
        ExportWhat::GroupMembers => {
            "SELECT gm.tenant, gm.group_id, g.display_name AS group_name, gm.member_id,
                    p.user_principal_name
             FROM group_members gm
             LEFT JOIN groups g ON g.tenant = gm.tenant AND g.object_id = gm.group_id
             LEFT JOIN people p ON p.tenant = gm.tenant AND p.object_id = gm.member_id
             WHERE (?1 IS NULL OR gm.tenant = ?1) ORDER BY gm.tenant, group_name, p.user_principal_name"
        }
    }
}

fn json_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => f.into(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned().into(),
    }
}

fn text_value(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

pub async fn run(args: ExportArgs) -> Result<(), Failure> {
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
    match export(&connection, &args) {
        Ok(()) => Ok(()),
        // The reader stopped early (`| head`): not a failure.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        Err(error) => Err(Failure::run(error.context("exporting"))),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || cause.downcast_ref::<csv::Error>().is_some_and(
                |e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
    })
}

fn export(connection: &rusqlite::Connection, args: &ExportArgs) -> anyhow::Result<()> {
    let mut statement = connection.prepare(query(args.what))?;
    let columns: Vec<String> = statement
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut rows = statement.query([args.tenant.as_deref()])?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(&columns)?;
            while let Some(row) = rows.next()? {
                let record: Vec<String> = (0..columns.len())
                    .map(|i| row.get_ref(i).map(text_value))
                    .collect::<Result<_, _>>()?;
                writer.write_record(&record)?;
            }
            writer.flush()?;
        }
        ExportFormat::Json => {
            // One JSON array, written as it is read (an export can be large).
            write!(out, "[")?;
            let mut first = true;
            while let Some(row) = rows.next()? {
                let mut object = Map::new();
                for (i, column) in columns.iter().enumerate() {
                    let mut value = json_value(row.get_ref(i)?);
                    // Stored JSON (usage counts) is exported as JSON, not as a string.
                    if column == "counts"
                        && let Value::String(text) = &value
                    {
                        value = serde_json::from_str(text).unwrap_or(value);
                    }
                    object.insert(column.clone(), value);
                }
                if !first {
                    write!(out, ",")?;
                }
                first = false;
                serde_json::to_writer(&mut out, &Value::Object(object))?;
            }
            writeln!(out, "]")?;
        }
    }
    out.flush()?;
    Ok(())
}
