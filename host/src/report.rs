//! A run's sync report as JSON (for `--json` and the stored sync log) and as text for people.

use serde_json::{Value, json};

use crate::runtime::bindings::types::{Change, DataSet, DataSetReport, SyncMode, SyncReport};

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
        Change::UpsertPerson(p) => format!("person {}", p.person.object_id),
        Change::DeletePerson(id) => format!("deletion of person {id}"),
        Change::UpsertSubscription(s) => format!("subscription {}", s.sku_id),
        Change::UpsertGroup(g) => format!("group {}", g.object_id),
        Change::DeleteGroup(id) => format!("deletion of group {id}"),
        Change::GroupMembers(m) => format!("members of group {}", m.group_id),
        Change::UpsertOrganization(o) => format!("organization {}", o.tenant_id),
        Change::UpsertDomain(d) => format!("domain {}", d.name),
        Change::UpsertMailbox(m) => format!("mailbox of {}", m.object_id),
        Change::UpsertUsage(u) => format!("{} usage of {}", u.workload, u.object_id),
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
    })
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
        "  {:<14} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>9}",
        "data set",
        "pages",
        "read",
        "written",
        "created",
        "updated",
        "unchanged",
        "removed",
        "conflicts"
    );
    for d in &report.data_sets {
        let _ = writeln!(
            out,
            "  {:<14} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>9}",
            data_set_name(d.data_set),
            d.pages,
            d.read,
            d.written,
            d.created,
            d.updated,
            d.unchanged,
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
    out
}
