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
use m365sync_config::ConfigFile;
use m365sync_store::RunRecord;
use m365sync_wit::names::WitName;

pub async fn run(args: LogsArgs, output: Output) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let location = super::store_location(args.db.as_deref(), config.as_ref());
    let store = super::open_existing_store(&location).await?;
    let db = &location;
    let read = |e| Failure::run(anyhow!("reading the sync log of {db}: {e}"));

    if let Some(id) = args.run {
        let Some(record) = store.get_run(id).await.map_err(read)? else {
            return Err(Failure::usage(anyhow!(
                "the sync log of {db} has no run {id}"
            )));
        };
        if output.json {
            outln!("{}", record_json(&record));
        } else {
            out!("{}", run_text(&record, true));
        }
        return Ok(());
    }

    let records = store
        .list_runs(args.tenant.as_deref(), args.limit)
        .await
        .map_err(read)?;
    if output.json {
        outln!(
            "{}",
            Value::Array(records.iter().map(record_json).collect())
        );
        return Ok(());
    }
    if records.is_empty() {
        match &args.tenant {
            Some(tenant) => outln!("No runs of tenant {tenant} in {db}."),
            None => outln!("No runs in {db}."),
        }
        return Ok(());
    }
    outln!("Sync log of {db} (newest first):");
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
        let _ = writeln!(out, "       retry wait {} ms", report.retry_wait_ms);
    }
    for data_set in &report.data_sets {
        let filtered: Vec<String> = data_set
            .filtered_out
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = write!(
            out,
            "       {:<14} read {}, created {}, updated {}, unchanged {}, linked {}, removed {}, conflicts {}",
            data_set.data_set.name(),
            data_set.read,
            data_set.created,
            data_set.updated,
            data_set.unchanged,
            data_set.linked,
            data_set.removed,
            data_set.conflicts,
        );
        if whole {
            let _ = write!(
                out,
                " ({} pages, {} written)",
                data_set.pages, data_set.written
            );
        }
        if filtered.is_empty() {
            let _ = writeln!(out);
        } else {
            let _ = writeln!(out, "; left out: {}", filtered.join(", "));
        }
    }
    for warning in &report.warnings {
        let _ = writeln!(
            out,
            "       warning [{}]: {}",
            warning.code, warning.message
        );
    }
    if whole {
        for conflict in &report.conflicts {
            let _ = writeln!(
                out,
                "       conflict on {}: accounts {}: {}",
                conflict.key,
                conflict.object_ids.join(", "),
                conflict.message
            );
        }
        if let Some(organization) = &report.organization {
            let matched = organization
                .organization
                .as_ref()
                .map(|o| format!(" to {:?} ({})", o.name, o.id))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "       organization match: {}{matched}",
                organization.state.name()
            );
            for suggestion in &organization.suggestions {
                let _ = writeln!(
                    out,
                    "         suggestion {:?} ({}) score {:.2}",
                    suggestion.name, suggestion.id, suggestion.score
                );
            }
        }
    } else if !report.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "       {} conflicts: see `m365sync logs --run {}`",
            report.conflicts.len(),
            record.id
        );
    }
    out
}
