//! How the CLI renders the engine's answers: sync reports, organization matches and
//! previews, as text for people and as JSON for `--json`.

use serde_json::{Value, json};

use m365sync_store::log_entry::{OrganizationEntry, RunReport};
use m365sync_wit::names::WitName;
use m365sync_wit::types::{
    OrganizationMatch, PersonOutcome, PreviewEntry, ReviewAction, SyncPreview, SyncReport,
};

/// The report as JSON: the sync log's own entry type (`m365sync_store::log_entry`), so
/// `sync --json`, `logs --json` and the API show one shape.
pub fn to_json(report: &SyncReport) -> Value {
    serde_json::to_value(RunReport::from(report)).unwrap_or(Value::Null)
}

/// A review action in words, e.g. "accept org-1".
pub fn action_text(action: &ReviewAction) -> String {
    match action {
        ReviewAction::Accept(id) => format!("accept {id}"),
        ReviewAction::Change(id) => format!("change {id}"),
        ReviewAction::Ignore => "ignore".to_string(),
        ReviewAction::Create => "create".to_string(),
    }
}

/// A tenant's organization match as JSON (the sync log's shape of it).
pub fn organization_json(m: &OrganizationMatch) -> Value {
    serde_json::to_value(OrganizationEntry::from(m)).unwrap_or(Value::Null)
}

/// A tenant's organization match as a few lines of text (each indented by `indent`).
pub fn organization_text(m: &OrganizationMatch, indent: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let name = if m.tenant_name.is_empty() {
        "(no organization name synced yet)".to_string()
    } else {
        format!("{:?}", m.tenant_name)
    };
    let _ = write!(
        out,
        "{indent}tenant {} {name}: {}",
        m.tenant_key,
        m.state.name()
    );
    match &m.organization {
        Some(o) => {
            let _ = writeln!(out, " to {:?} ({})", o.name, o.id);
        }
        None => {
            let _ = writeln!(out);
        }
    }
    for (rank, s) in m.suggestions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{indent}  {}. {:<40} {:<38} score {:.2}",
            rank + 1,
            format!("{:?}", s.organization.name),
            s.organization.id,
            s.score
        );
    }
    out
}

/// The outcome's name, as the preview groups by it.
pub fn outcome_name(outcome: &PersonOutcome) -> &'static str {
    match outcome {
        PersonOutcome::Create => "create",
        PersonOutcome::Update(_) => "update",
        PersonOutcome::Unchanged => "unchanged",
        PersonOutcome::Link(_) => "link",
        PersonOutcome::Conflict(_) => "conflict",
        PersonOutcome::FilteredOut(_) => "filtered-out",
        PersonOutcome::Remove(_) => "remove",
        PersonOutcome::Delete => "delete",
    }
}

/// Why, for a preview line: the changed fields, the record taken over, the conflict, the
/// filter, or the status a removal gives.
pub fn outcome_reason(outcome: &PersonOutcome) -> String {
    match outcome {
        PersonOutcome::Create | PersonOutcome::Unchanged | PersonOutcome::Delete => String::new(),
        PersonOutcome::Update(fields) => fields.join(", "),
        PersonOutcome::Link(previous) => format!("takes over the record stored as {previous}"),
        PersonOutcome::Conflict(message) => message.clone(),
        PersonOutcome::FilteredOut(reason) => reason.clone(),
        PersonOutcome::Remove(status) => format!("marked {}", status.name()),
    }
}

fn preview_entry_json(entry: &PreviewEntry) -> Value {
    let mut value = json!({
        "object_id": entry.object_id,
        "user_principal_name": entry.user_principal_name,
        "mail": entry.mail,
        "display_name": entry.display_name,
        "outcome": outcome_name(&entry.outcome),
    });
    let detail = match &entry.outcome {
        PersonOutcome::Update(fields) => Some(("changed_fields", json!(fields))),
        PersonOutcome::Link(previous) => Some(("previous_object_id", json!(previous))),
        PersonOutcome::Conflict(message) => Some(("message", json!(message))),
        PersonOutcome::FilteredOut(reason) => Some(("reason", json!(reason))),
        PersonOutcome::Remove(status) => Some(("status", json!(status.name()))),
        _ => None,
    };
    if let (Some((key, detail)), Some(object)) = (detail, value.as_object_mut()) {
        object.insert(key.to_string(), detail);
    }
    value
}

/// The order outcomes are listed in.
const OUTCOME_ORDER: [&str; 8] = [
    "create",
    "update",
    "link",
    "unchanged",
    "remove",
    "delete",
    "conflict",
    "filtered-out",
];

/// A preview as JSON: counts per outcome, the dry run's report, and every entry.
pub fn preview_json(preview: &SyncPreview) -> Value {
    let mut counts = serde_json::Map::new();
    for name in OUTCOME_ORDER {
        let n = preview
            .people
            .iter()
            .filter(|e| outcome_name(&e.outcome) == name)
            .count();
        counts.insert(name.to_string(), n.into());
    }
    json!({
        "tenant": preview.report.tenant_key,
        "counts": counts,
        "report": to_json(&preview.report),
        "people": preview.people.iter().map(preview_entry_json).collect::<Vec<_>>(),
    })
}

/// A preview as text: one group per outcome with its count, each account's UPN and why.
pub fn preview_text(preview: &SyncPreview) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Preview of tenant {}: what a sync would do (nothing was written)",
        preview.report.tenant_key
    );
    for name in OUTCOME_ORDER {
        let entries: Vec<&PreviewEntry> = preview
            .people
            .iter()
            .filter(|e| outcome_name(&e.outcome) == name)
            .collect();
        let heading = match name {
            "create" => "would be created",
            "update" => "would be updated",
            "link" => "would be linked to an existing record",
            "unchanged" => "unchanged",
            "remove" => "would be marked removed",
            "delete" => "would be deleted",
            "conflict" => "left out: conflict",
            _ => "left out by a filter",
        };
        let _ = writeln!(out, "\n  {heading}: {}", entries.len());
        for entry in entries {
            let reason = outcome_reason(&entry.outcome);
            if reason.is_empty() {
                let _ = writeln!(out, "    {}", entry.user_principal_name);
            } else {
                let _ = writeln!(out, "    {:<44} {reason}", entry.user_principal_name);
            }
        }
    }
    out
}

/// The report as a few aligned lines of text.
pub fn to_text(report: &SyncReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Sync of tenant {} ({} run{}) started {}",
        report.tenant_key,
        report.mode.name(),
        if report.dry_run {
            ", dry run: nothing written"
        } else {
            ""
        },
        report.started_at
    );
    let _ = writeln!(
        out,
        "  {} ms, {} HTTP requests, {} retries ({} ms waited)",
        report.elapsed_ms, report.requests, report.retries, report.retry_wait_ms
    );
    let _ = writeln!(
        out,
        "  {:<14} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7} {:>8} {:>9}",
        "data set",
        "pages",
        "read",
        "written",
        "created",
        "updated",
        "unchanged",
        "linked",
        "removed",
        "conflicts"
    );
    for d in &report.data_sets {
        let _ = writeln!(
            out,
            "  {:<14} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7} {:>8} {:>9}",
            d.data_set.name(),
            d.pages,
            d.read,
            d.written,
            d.created,
            d.updated,
            d.unchanged,
            d.linked,
            d.removed,
            d.conflicts
        );
        for filtered in &d.filtered_out {
            let _ = writeln!(
                out,
                "    left out by {}: {}",
                filtered.reason, filtered.count
            );
        }
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "  warning [{}]: {}", warning.code, warning.message);
    }
    for conflict in &report.conflicts {
        let _ = writeln!(
            out,
            "  conflict on {}: accounts {}: {}",
            conflict.key,
            conflict.object_ids.join(", "),
            conflict.message
        );
    }
    if let Some(organization) = &report.organization {
        let _ = write!(
            out,
            "  organization match:\n{}",
            organization_text(organization, "    ")
        );
    }
    out
}
