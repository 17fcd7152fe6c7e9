//! `m365sync logs`: the sync log, newest first — when each run started, its tenant, mode,
//! status, duration, requests and retries, per data set what it read, created, updated,
//! left unchanged, linked, removed, found in conflict and left out (by filter), its
//! warnings, and a failed run's error. Runs stopped by a signal are INTERRUPTED, runs refused
//! because another process was syncing the tenant REFUSED, and a `m365sync reset` of the
//! tenant is listed as reset. `--run ID` shows one run whole.

use std::fmt::Write;

use anyhow::anyhow;
use serde_json::{Value, json};

use super::{Failure, LogsArgs, Output};
use m365sync::config::ConfigFile;
use m365sync::store::sqlite::{RunRecord, get_run, list_runs, open_database};

pub async fn run(args: LogsArgs, output: Output) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let db = super::database_path(args.db.as_ref(), config.as_ref());
    super::existing_database(&db)?;
    // Refused runs still waiting in the spool join the log first.
    m365sync::synclog::record_spooled_runs(&db);
    let connection = open_database(&db).map_err(Failure::run)?;
    let read =
        |e: rusqlite::Error| Failure::run(anyhow!("reading the sync log of {}: {e}", db.display()));

    if let Some(id) = args.run {
        let Some(record) = get_run(&connection, id).map_err(read)? else {
            return Err(Failure::usage(anyhow!(
                "the sync log of {} has no run {id}",
                db.display()
            )));
        };
        if output.json {
            outln!("{}", record_json(&record));
        } else {
            out!("{}", run_text(&record, true));
        }
        return Ok(());
    }

    let records = list_runs(&connection, args.tenant.as_deref(), args.limit).map_err(read)?;
    if output.json {
        outln!(
            "{}",
            Value::Array(records.iter().map(record_json).collect())
        );
        return Ok(());
    }
    if records.is_empty() {
        match &args.tenant {
            Some(tenant) => outln!("No runs of tenant {tenant} in {}.", db.display()),
            None => outln!("No runs in {}.", db.display()),
        }
        return Ok(());
    }
    outln!("Sync log of {} (newest first):", db.display());
    for record in &records {
        out!("{}", run_text(record, false));
    }
    Ok(())
}

/// A run as JSON: the log's columns, and the stored report whole.
pub(super) fn record_json(record: &RunRecord) -> Value {
    json!({
        "id": record.id,
        "tenant": record.tenant,
        "started_at": record.started_at,
        "mode": record.mode,
        "status": record.status,
        "elapsed_ms": record.elapsed_ms,
        "requests": record.requests,
        "retries": record.retries,
        "dry_run": record.dry_run,
        "error_kind": record.error_kind,
        "error": record.error,
        "report": record.report,
    })
}

/// A run's status as the list shows it: what did not succeed stands out.
fn status_text(status: &str) -> String {
    match status {
        "ok" | "reset" => status.to_string(),
        other => other.to_uppercase(),
    }
}

fn count(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A run as text: a heading line, a line per data set, and its warnings and error. `whole`
/// adds pages and writes, retry waits, conflicts and the organization match.
pub(super) fn run_text(record: &RunRecord, whole: bool) -> String {
    let mut out = String::new();
    let duration = record
        .elapsed_ms
        .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "?".to_string());
    let unknown = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    let _ = writeln!(
        out,
        "\n#{:<5} {}  {}  {}{}  {}  {duration}, {} requests, {} retries",
        record.id,
        record.started_at,
        record.tenant,
        record.mode,
        if record.dry_run { " (dry run)" } else { "" },
        status_text(&record.status),
        unknown(record.requests),
        unknown(record.retries),
    );
    match (&record.error, record.status.as_str()) {
        (Some(note), "reset") => {
            let _ = writeln!(out, "       reset: {note}");
            return out;
        }
        (Some(error), _) => {
            let kind = record.error_kind.as_deref().unwrap_or("error");
            let _ = writeln!(out, "       error ({kind}): {error}");
        }
        (None, _) => {}
    }
    let Some(report) = &record.report else {
        if record.status == "failed" || record.status == "interrupted" {
            let _ = writeln!(
                out,
                "       no counts: batches committed before the failure stand, and the next run carries on from them"
            );
        }
        return out;
    };
    if whole {
        let _ = writeln!(
            out,
            "       retry wait {} ms",
            count(report, "retry_wait_ms")
        );
    }
    for data_set in report
        .get("data_sets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let filtered: Vec<String> = data_set
            .get("filtered_out")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(reason, n)| format!("{reason} {}", n.as_u64().unwrap_or(0)))
            .collect();
        let _ = write!(
            out,
            "       {:<14} read {}, created {}, updated {}, unchanged {}, linked {}, removed {}, conflicts {}",
            text(data_set, "data_set"),
            count(data_set, "read"),
            count(data_set, "created"),
            count(data_set, "updated"),
            count(data_set, "unchanged"),
            count(data_set, "linked"),
            count(data_set, "removed"),
            count(data_set, "conflicts"),
        );
        if whole {
            let _ = write!(
                out,
                " ({} pages, {} written)",
                count(data_set, "pages"),
                count(data_set, "written")
            );
        }
        if filtered.is_empty() {
            let _ = writeln!(out);
        } else {
            let _ = writeln!(out, "; left out: {}", filtered.join(", "));
        }
    }
    for warning in report
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "       warning [{}]: {}",
            text(warning, "code"),
            text(warning, "message")
        );
    }
    let conflicts = report
        .get("conflicts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if whole {
        for conflict in &conflicts {
            let ids: Vec<String> = conflict
                .get("object_ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let _ = writeln!(
                out,
                "       conflict on {}: accounts {}: {}",
                text(conflict, "key"),
                ids.join(", "),
                text(conflict, "message")
            );
        }
        if let Some(organization) = report.get("organization").filter(|o| !o.is_null()) {
            let matched = organization
                .get("organization")
                .filter(|o| !o.is_null())
                .map(|o| format!(" to {:?} ({})", text(o, "name"), text(o, "id")))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "       organization match: {}{matched}",
                text(organization, "state")
            );
            for suggestion in organization
                .get("suggestions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let _ = writeln!(
                    out,
                    "         suggestion {:?} ({}) score {:.2}",
                    text(suggestion, "name"),
                    text(suggestion, "id"),
                    suggestion
                        .get("score")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                );
            }
        }
    } else if !conflicts.is_empty() {
        let _ = writeln!(
            out,
            "       {} conflicts: see `m365sync logs --run {}`",
            conflicts.len(),
            record.id
        );
    }
    out
}
