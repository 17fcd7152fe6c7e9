//! `m365sync organizations`: the platform's own organizations, which tenants are matched
//! to by name — list them, add one (an id is generated), or import a CSV file with a
//! `name` column and an optional `id` column (all rows or none; importing twice creates
//! nothing the second time).

use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use super::{Failure, OrganizationsArgs, OrganizationsCommand, Output};
use m365sync_config::ConfigFile;
use m365sync_store::{OrganizationRow, StoreError};
use m365sync_wit::StorageError;

/// A row or name the store refuses is the user's to fix (exit 2); anything else is 1.
fn storage_failure(error: StoreError) -> Failure {
    match error {
        StoreError::Storage(StorageError::Invalid(message)) => Failure::usage(anyhow!(message)),
        other => Failure::run(other),
    }
}

pub async fn run(args: OrganizationsArgs, output: Output) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let db = super::store_location(args.db.as_deref(), config.as_ref());
    match &args.command {
        OrganizationsCommand::List => {
            let store = super::open_existing_store(&db).await?;
            let organizations = store
                .list_organizations()
                .await
                .map_err(|e| Failure::run(anyhow!("listing organizations in {db}: {e}")))?;
            if output.json {
                let list: Vec<_> = organizations
                    .iter()
                    .map(|o| json!({"id": o.id, "name": o.name}))
                    .collect();
                outln!("{}", serde_json::Value::Array(list));
            } else if organizations.is_empty() {
                outln!("No organizations in {db}.");
            } else {
                outln!("{:<38} name", "id");
                for organization in organizations {
                    outln!("{:<38} {}", organization.id, organization.name);
                }
            }
        }
        OrganizationsCommand::Add { name } => {
            let store = super::open_store(&db).await?;
            let created = store
                .create_organization(name, None)
                .await
                .map_err(storage_failure)?;
            if output.json {
                outln!("{}", json!({"id": created.id, "name": created.name}));
            } else {
                outln!(
                    "Added organization {:?} with id {}",
                    created.name,
                    created.id
                );
            }
        }
        OrganizationsCommand::Import { file } => {
            let rows = read_csv(file).map_err(Failure::usage)?;
            let store = super::open_store(&db).await?;
            let summary = store
                .import_organizations(&rows)
                .await
                .map_err(storage_failure)?;
            if output.json {
                outln!(
                    "{}",
                    json!({
                        "created": summary.created.iter().map(|o| json!({"id": o.id, "name": o.name})).collect::<Vec<_>>(),
                        "renamed": summary.renamed.iter().map(|o| json!({"id": o.id, "name": o.name})).collect::<Vec<_>>(),
                        "unchanged": summary.unchanged,
                    })
                );
            } else {
                outln!(
                    "Imported {}: {} created, {} renamed, {} already there.",
                    file.display(),
                    summary.created.len(),
                    summary.renamed.len(),
                    summary.unchanged
                );
                for organization in &summary.created {
                    outln!("  created {:<38} {}", organization.id, organization.name);
                }
                for organization in &summary.renamed {
                    outln!("  renamed {:<38} {}", organization.id, organization.name);
                }
            }
        }
    }
    Ok(())
}

/// The rows of an organizations CSV: a header with a `name` column and optionally an `id`
/// column (other columns are ignored; names are matched case-insensitively). Errors name
/// the file and the line.
fn read_csv(path: &Path) -> anyhow::Result<Vec<OrganizationRow>> {
    let shown = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_path(path)
        .map_err(|e| anyhow!("cannot read {shown}: {}", csv_reason(&e)))?;
    let headers = reader
        .headers()
        .map_err(|e| anyhow!("{shown}: cannot read the header line: {}", csv_reason(&e)))?
        .clone();
    let column = |wanted: &str| {
        headers.iter().position(|h| {
            h.trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(wanted)
        })
    };
    let Some(name_column) = column("name") else {
        return Err(anyhow!(
            "{shown}: the header line has no \"name\" column (it has: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        ));
    };
    let id_column = column("id");
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow!("{shown} line {line}: {}", csv_reason(&e))
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let name = record.get(name_column).unwrap_or_default().to_string();
        let id = id_column
            .and_then(|i| record.get(i))
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        rows.push(OrganizationRow {
            origin: format!("{shown} line {line}"),
            id,
            name,
        });
    }
    if rows.is_empty() {
        return Err(anyhow!(
            "{shown} has no organizations below its header line"
        ));
    }
    Ok(rows)
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        csv::ErrorKind::Utf8 { .. } => "the file is not UTF-8 text".to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => error.to_string(),
    }
}
