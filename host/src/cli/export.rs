//! `m365sync export`: what syncs stored, as CSV or JSON on stdout, for other tools —
//! people, subscriptions, per-person licences, usage (per person, workload and period),
//! mailboxes, groups and their members.
//!
//! People's columns follow the effective field map (the engine's `field-map`, with the
//! config's overrides when `--config` is given): a mapped property's column is named by
//! its platform field (`given_name` is `first-name` by default), a property the map leaves
//! out is not exported, and the others keep their column names.

use std::io::Write;

use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use super::{ExportArgs, ExportFormat, ExportWhat, Failure};
use m365sync::config::ConfigFile;
use m365sync::runtime::bindings::types::FieldMapping;
use m365sync::store::sqlite::open_database;

/// The Graph user property behind each people column that has one.
const PEOPLE_PROPERTIES: &[(&str, &str)] = &[
    ("object_id", "id"),
    ("user_principal_name", "userPrincipalName"),
    ("mail", "mail"),
    ("given_name", "givenName"),
    ("surname", "surname"),
    ("display_name", "displayName"),
    ("department", "department"),
    ("job_title", "jobTitle"),
    ("company_name", "companyName"),
    ("country", "country"),
    ("usage_location", "usageLocation"),
    ("office_location", "officeLocation"),
    ("account_enabled", "accountEnabled"),
    ("user_type", "userType"),
    ("manager_id", "manager"),
    ("hire_date", "employeeHireDate"),
    ("created_at", "createdDateTime"),
    ("last_sign_in", "signInActivity"),
];

fn same_map(a: &[FieldMapping], b: &[FieldMapping]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.graph_property == y.graph_property && x.platform_field == y.platform_field
        })
}

/// Each column's output name, or None to leave it out.
type Columns = Vec<Option<String>>;

/// People columns named by the field map: `effective` is the map in use, `default` the
/// engine's default map (a property it maps that `effective` does not is left out).
fn people_columns(
    columns: &[String],
    effective: &[FieldMapping],
    default: &[FieldMapping],
) -> Result<Columns, String> {
    let mapped = |property: &str, map: &[FieldMapping]| {
        map.iter()
            .find(|m| m.graph_property.eq_ignore_ascii_case(property))
            .map(|m| m.platform_field.clone())
    };
    let named: Columns = columns
        .iter()
        .map(|column| {
            let Some((_, property)) = PEOPLE_PROPERTIES.iter().find(|(c, _)| c == column) else {
                return Some(column.clone());
            };
            match (mapped(property, effective), mapped(property, default)) {
                (Some(field), _) => Some(field),
                // Mapped by default and left out by the config: not exported, except the
                // keys that identify a person.
                (None, Some(_))
                    if !matches!(column.as_str(), "object_id" | "user_principal_name") =>
                {
                    None
                }
                _ => Some(column.clone()),
            }
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for name in named.iter().flatten() {
        if !seen.insert(name.as_str()) {
            return Err(format!(
                "the field map names two people columns {name:?}: rename its platform field"
            ));
        }
    }
    Ok(named)
}

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
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let db = super::database_path(args.db.as_ref(), config.as_ref());
    super::existing_database(&db)?;
    let connection = open_database(&db).map_err(Failure::run)?;
    let names = match args.what {
        ExportWhat::People => Some(people_names(&connection, &args, config.as_ref()).await?),
        _ => None,
    };
    match export(&connection, &args, names) {
        Ok(()) => Ok(()),
        // The reader stopped early (`| head`): not a failure.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        Err(error) => Err(Failure::run(error.context("exporting"))),
    }
}

/// The people columns' names under the exported tenants' field map; tenants whose maps
/// differ cannot share one header, so they are exported one at a time.
async fn people_names(
    connection: &rusqlite::Connection,
    args: &ExportArgs,
    config: Option<&ConfigFile>,
) -> Result<Columns, Failure> {
    let tenants: Vec<String> = match &args.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => connection
            .prepare("SELECT DISTINCT tenant FROM people ORDER BY tenant")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .map_err(|e| Failure::run(anyhow::anyhow!("reading the tenants of the store: {e}")))?,
    };
    let runtime = match config {
        Some(config) => super::sync::load_runtime(config)?,
        None => m365sync::Runtime::new(m365sync::RunLimits::default()).map_err(Failure::run)?,
    };
    let default = runtime.field_map(&[]).await.map_err(Failure::run)?;
    let mut chosen: Option<(String, Vec<FieldMapping>)> = None;
    for tenant in &tenants {
        let configured = config.and_then(|c| c.tenants.iter().find(|t| &t.name == tenant));
        let map = match (config, configured) {
            (Some(config), Some(tenant_config)) => {
                let run = config.resolve(tenant_config);
                let path = args.config.as_deref().unwrap_or(std::path::Path::new(""));
                super::sync::effective_field_map(&runtime, path, tenant_config, &run).await?
            }
            _ => default.clone(),
        };
        match &chosen {
            Some((first, first_map)) if !same_map(first_map, &map) => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "tenants {first} and {tenant} map fields differently, so their people \
                     cannot share one header: export them one at a time with --tenant"
                )));
            }
            Some(_) => {}
            None => chosen = Some((tenant.clone(), map)),
        }
    }
    let effective = chosen
        .map(|(_, map)| map)
        .unwrap_or_else(|| default.clone());
    let columns: Vec<String> = connection
        .prepare(query(ExportWhat::People))
        .map(|s| s.column_names().iter().map(|c| c.to_string()).collect())
        .map_err(|e| Failure::run(anyhow::anyhow!("preparing the export: {e}")))?;
    people_columns(&columns, &effective, &default).map_err(|e| Failure::usage(anyhow::anyhow!(e)))
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

fn export(
    connection: &rusqlite::Connection,
    args: &ExportArgs,
    names: Option<Columns>,
) -> anyhow::Result<()> {
    let mut statement = connection.prepare(query(args.what))?;
    let source: Vec<String> = statement
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    // (index in the row, source column, output name) of the exported columns.
    let columns: Vec<(usize, String, String)> = match names {
        Some(names) => source
            .iter()
            .zip(names)
            .enumerate()
            .filter_map(|(i, (column, name))| name.map(|name| (i, column.clone(), name)))
            .collect(),
        None => source
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.clone(), c.clone()))
            .collect(),
    };
    let mut rows = statement.query([args.tenant.as_deref()])?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            writer.write_record(columns.iter().map(|(_, _, name)| name))?;
            while let Some(row) = rows.next()? {
                let record: Vec<String> = columns
                    .iter()
                    .map(|(i, _, _)| row.get_ref(*i).map(text_value))
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
                for (i, column, name) in &columns {
                    let mut value = json_value(row.get_ref(*i)?);
                    // Stored JSON (usage counts) is exported as JSON, not as a string.
                    if column == "counts"
                        && let Value::String(text) = &value
                    {
                        value = serde_json::from_str(text).unwrap_or(value);
                    }
                    object.insert(name.clone(), value);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(property: &str, field: &str) -> FieldMapping {
        FieldMapping {
            graph_property: property.into(),
            platform_field: field.into(),
        }
    }

    #[test]
    fn people_columns_follow_the_field_map() {
        let columns: Vec<String> = [
            "tenant",
            "object_id",
            "mail",
            "given_name",
            "job_title",
            "office_location",
            "company_name",
            "status",
        ]
        .map(String::from)
        .to_vec();
        let default = vec![
            mapping("givenName", "first-name"),
            mapping("mail", "email"),
            mapping("jobTitle", "job-title"),
            mapping("officeLocation", "office"),
        ];
        let named = people_columns(&columns, &default, &default).unwrap();
        assert_eq!(
            named,
            [
                Some("tenant"),
                Some("object_id"),
                Some("email"),
                Some("first-name"),
                Some("job-title"),
                Some("office"),
                Some("company_name"),
                Some("status")
            ]
            .map(|n| n.map(String::from))
        );
        // Renamed, left out (office), and added (companyName).
        let effective = vec![
            mapping("givenName", "first-name"),
            mapping("mail", "email"),
            mapping("jobTitle", "title"),
            mapping("companyName", "company"),
        ];
        let named = people_columns(&columns, &effective, &default).unwrap();
        assert_eq!(named[4].as_deref(), Some("title"));
        assert_eq!(named[5], None);
        assert_eq!(named[6].as_deref(), Some("company"));
        // A platform field that is another column's name would make two columns of one name.
        let clash = vec![mapping("companyName", "status")];
        let error = people_columns(&columns, &clash, &default).unwrap_err();
        assert!(error.contains("\"status\""), "{error}");
    }
}
