//! `m365sync export`: what syncs stored, as CSV or JSON on stdout, for other tools —
//! people, subscriptions, per-person licences, usage (per person, workload and period),
//! mailboxes, groups and their members, the tenant's organization and its domains.
//!
//! People's columns follow the effective field map (the engine's `field-map`, with the
//! config's overrides when `--config` is given): a mapped property's column is named by
//! its platform field (`given_name` is `first-name` by default), a property the map leaves
//! out is not exported, and the others keep their column names.

use std::io::{BufWriter, Stdout, Write};
use std::ops::ControlFlow;

use serde_json::{Map, Value};

use super::{ExportArgs, ExportFormat, ExportWhat, Failure};
use m365sync_config::ConfigFile;
use m365sync_store::read::{Cell, ExportKind, ReadModels};
use m365sync_wit::types::FieldMapping;

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

/// The store's export behind each `export` argument.
fn kind(what: ExportWhat) -> ExportKind {
    match what {
        ExportWhat::People => ExportKind::People,
        ExportWhat::Subscriptions => ExportKind::Subscriptions,
        ExportWhat::Licences => ExportKind::Licences,
        ExportWhat::Usage => ExportKind::Usage,
        ExportWhat::Mailboxes => ExportKind::Mailboxes,
        ExportWhat::Groups => ExportKind::Groups,
        ExportWhat::GroupMembers => ExportKind::GroupMembers,
        ExportWhat::Organization => ExportKind::Organization,
        ExportWhat::Domains => ExportKind::Domains,
    }
}

fn json_value(cell: Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Integer(i) => i.into(),
        Cell::Real(f) => f.into(),
        Cell::Text(t) => t.into(),
    }
}

fn text_value(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Integer(i) => i.to_string(),
        Cell::Real(f) => f.to_string(),
        Cell::Text(t) => t.clone(),
    }
}

pub async fn run(args: ExportArgs) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let location = super::store_location(args.db.as_deref(), config.as_ref());
    let store = super::open_existing_store(&location).await?;
    let kind = kind(args.what);
    let source: Vec<String> = kind.columns().iter().map(|c| c.to_string()).collect();
    let names = match args.what {
        ExportWhat::People => people_names(store.as_ref(), &source, &args, config.as_ref()).await?,
        _ => source.iter().cloned().map(Some).collect(),
    };
    // (index in the row, source column, output name) of the exported columns.
    let columns: Vec<(usize, String, String)> = source
        .iter()
        .zip(names)
        .enumerate()
        .filter_map(|(i, (column, name))| name.map(|name| (i, column.clone(), name)))
        .collect();
    let mut writer = RowWriter::new(args.format, columns);
    let result = store
        .export(kind, args.tenant.as_deref(), &mut |row| writer.row(row))
        .await;
    let written = writer.finish();
    result.map_err(|e| Failure::run(anyhow::anyhow!("exporting: {e}")))?;
    match written {
        Ok(()) => Ok(()),
        // The reader stopped early (`| head`): not a failure.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        Err(error) => Err(Failure::run(error.context("exporting"))),
    }
}

/// The people columns' names under the exported tenants' field map; tenants whose maps
/// differ cannot share one header, so they are exported one at a time.
async fn people_names(
    store: &dyn ReadModels,
    columns: &[String],
    args: &ExportArgs,
    config: Option<&ConfigFile>,
) -> Result<Columns, Failure> {
    let tenants: Vec<String> = match &args.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => store
            .tenants_with_people()
            .await
            .map_err(|e| Failure::run(anyhow::anyhow!("reading the tenants of the store: {e}")))?,
    };
    let runtime = match config {
        Some(config) => super::sync::load_runtime(config).await?,
        None => m365sync_service::load_runtime(&Default::default())
            .await
            .map_err(Failure::run)?,
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
    people_columns(columns, &effective, &default).map_err(|e| Failure::usage(anyhow::anyhow!(e)))
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

/// Writes exported rows to stdout as they come, as CSV or as one JSON array (an export
/// can be millions of rows: nothing holds them all). The first write error stops the
/// export and is kept for [`RowWriter::finish`].
struct RowWriter {
    format: ExportFormat,
    /// (index in the row, source column, output name) of the exported columns.
    columns: Vec<(usize, String, String)>,
    csv: Option<csv::Writer<BufWriter<Stdout>>>,
    json: Option<BufWriter<Stdout>>,
    rows: usize,
    error: Option<anyhow::Error>,
}

impl RowWriter {
    fn new(format: ExportFormat, columns: Vec<(usize, String, String)>) -> RowWriter {
        let out = BufWriter::new(std::io::stdout());
        let mut writer = RowWriter {
            format,
            columns,
            csv: None,
            json: None,
            rows: 0,
            error: None,
        };
        let started = match format {
            ExportFormat::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                let header = csv.write_record(writer.columns.iter().map(|(_, _, name)| name));
                writer.csv = Some(csv);
                header.map_err(anyhow::Error::from)
            }
            ExportFormat::Json => {
                let mut out = out;
                let opened = write!(out, "[");
                writer.json = Some(out);
                opened.map_err(anyhow::Error::from)
            }
        };
        if let Err(error) = started {
            writer.error = Some(error);
        }
        writer
    }

    fn row(&mut self, row: Vec<Cell>) -> ControlFlow<()> {
        if self.error.is_some() {
            return ControlFlow::Break(());
        }
        let written = match self.format {
            ExportFormat::Csv => self.csv_row(&row),
            ExportFormat::Json => self.json_row(row),
        };
        self.rows += 1;
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => {
                self.error = Some(error);
                ControlFlow::Break(())
            }
        }
    }

    fn csv_row(&mut self, row: &[Cell]) -> anyhow::Result<()> {
        let Some(csv) = self.csv.as_mut() else {
            return Ok(());
        };
        let record = self
            .columns
            .iter()
            .map(|(i, _, _)| row.get(*i).map(text_value).unwrap_or_default());
        Ok(csv.write_record(record)?)
    }

    fn json_row(&mut self, row: Vec<Cell>) -> anyhow::Result<()> {
        let Some(out) = self.json.as_mut() else {
            return Ok(());
        };
        let mut cells: Vec<Option<Cell>> = row.into_iter().map(Some).collect();
        let mut object = Map::new();
        for (i, column, name) in &self.columns {
            let cell = cells
                .get_mut(*i)
                .and_then(Option::take)
                .unwrap_or(Cell::Null);
            let mut value = json_value(cell);
            // Stored JSON (usage counts, verified domains) is exported as JSON, not as a
            // string.
            if matches!(column.as_str(), "counts" | "verified_domains")
                && let Value::String(text) = &value
            {
                value = serde_json::from_str(text).unwrap_or(value);
            }
            object.insert(name.clone(), value);
        }
        if self.rows > 0 {
            write!(out, ",")?;
        }
        serde_json::to_writer(&mut *out, &Value::Object(object))?;
        Ok(())
    }

    /// Ends the output (the CSV flushed, the JSON array closed), or the first error.
    fn finish(mut self) -> anyhow::Result<()> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if let Some(mut csv) = self.csv.take() {
            csv.flush()?;
        }
        if let Some(mut out) = self.json.take() {
            writeln!(out, "]")?;
            out.flush()?;
        }
        Ok(())
    }
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
