//! A run's sync report as JSON (for `--json` and the stored sync log) and as text for people.

use serde_json::{Value, json};

use crate::runtime::bindings::types::{
    Change, DataSet, DataSetReport, MatchConflict, MatchState, OrganizationMatch, PersonOutcome,
    PersonStatus, PreviewEntry, ReportScope, ReviewAction, SyncMode, SyncPreview, SyncReport,
    UpsertKind,
};

pub fn mode_name(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Full => "full",
        SyncMode::Incremental => "incremental",
    }
}

pub fn data_set_name(data_set: DataSet) -> &'static str {
    match data_set {
        DataSet::Users => "users",
        DataSet::Groups => "groups",
        DataSet::GroupMembers => "group-members",
        DataSet::Subscriptions => "subscriptions",
        DataSet::Organization => "organization",
        DataSet::Domains => "domains",
        DataSet::Mailboxes => "mailboxes",
        DataSet::Usage => "usage",
    }
}

/// What kind of change this is, for error messages (never its contents).
pub fn change_name(change: &Change) -> String {
    match change {
        Change::UpsertPerson(p) => match (&p.kind, &p.previous_object_id) {
            (UpsertKind::Link, Some(previous)) => format!(
                "link of person {} (stored as {previous})",
                p.stored.person.object_id
            ),
            _ => format!("person {}", p.stored.person.object_id),
        },
        Change::DeletePerson(id) => format!("deletion of person {id}"),
        Change::UpsertSubscription(s) => format!("subscription {}", s.sku_id),
        Change::UpsertGroup(g) => format!("group {}", g.object_id),
        Change::DeleteGroup(id) => format!("deletion of group {id}"),
        Change::GroupMembers(m) => format!("members of group {}", m.group_id),
        Change::UpsertOrganization(o) => format!("organization {}", o.tenant_id),
        Change::UpsertDomain(d) => format!("domain {}", d.name),
        Change::UpsertMailbox(m) => format!("mailbox of {}", m.object_id),
        Change::UpsertUsage(u) => format!("{} usage of {}", u.workload, u.object_id),
        Change::ReplaceReport(ReportScope::Mailboxes) => "replacement of the mailbox report".into(),
        Change::ReplaceReport(ReportScope::Usage(u)) => format!(
            "replacement of the {} usage report ({} days)",
            u.workload, u.period_days
        ),
    }
}

fn data_set_json(report: &DataSetReport) -> Value {
    let filtered: serde_json::Map<String, Value> = report
        .filtered_out
        .iter()
        .map(|r| (r.reason.clone(), r.count.into()))
        .collect();
    json!({
        "data_set": data_set_name(report.data_set),
        "pages": report.pages,
        "read": report.read,
        "written": report.written,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "linked": report.linked,
        "removed": report.removed,
        "conflicts": report.conflicts,
        "filtered_out": filtered,
    })
}

/// The report as a JSON object with stable snake_case keys.
pub fn to_json(report: &SyncReport) -> Value {
    json!({
        "tenant": report.tenant_key,
        "mode": mode_name(report.mode),
        "started_at": report.started_at,
        "elapsed_ms": report.elapsed_ms,
        "requests": report.requests,
        "retries": report.retries,
        "retry_wait_ms": report.retry_wait_ms,
        "dry_run": report.dry_run,
        "data_sets": report.data_sets.iter().map(data_set_json).collect::<Vec<_>>(),
        "warnings": report.warnings.iter().map(|w| json!({"code": w.code, "message": w.message})).collect::<Vec<_>>(),
        "conflicts": report.conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
        "organization": report.organization.as_ref().map(organization_json),
    })
}

fn conflict_json(conflict: &MatchConflict) -> Value {
    json!({
        "key": conflict.key,
        "object_ids": conflict.object_ids,
        "message": conflict.message,
    })
}

pub fn match_state_name(state: MatchState) -> &'static str {
    match state {
        MatchState::Matched => "matched",
        MatchState::Suggested => "suggested",
        MatchState::Unmatched => "unmatched",
        MatchState::Ignored => "ignored",
    }
}

pub fn status_name(status: PersonStatus) -> &'static str {
    match status {
        PersonStatus::Active => "active",
        PersonStatus::Removed => "removed",
        PersonStatus::Flagged => "flagged",
        PersonStatus::Inactive => "inactive",
    }
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

/// A tenant's organization match as JSON.
pub fn organization_json(m: &OrganizationMatch) -> Value {
    json!({
        "tenant": m.tenant_key,
        "tenant_name": m.tenant_name,
        "state": match_state_name(m.state),
        "organization": m.organization.as_ref().map(|o| json!({"id": o.id, "name": o.name})),
        "suggestions": m.suggestions.iter().map(|s| json!({
            "id": s.organization.id,
            "name": s.organization.name,
            "score": (f64::from(s.score) * 1000.0).round() / 1000.0,
        })).collect::<Vec<_>>(),
    })
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
        match_state_name(m.state)
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
        PersonOutcome::Remove(status) => format!("marked {}", status_name(*status)),
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
        PersonOutcome::Remove(status) => Some(("status", json!(status_name(*status)))),
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
        mode_name(report.mode),
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
            data_set_name(d.data_set),
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
