//! `m365sync changes`: the change feed after a cursor — every committed change a platform
//! acts on (people created, updated with the fields that changed, linked, removed; group
//! memberships; licences assigned and taken away), in commit order. A consumer keeps the
//! last cursor it saw and asks after it next time (`--after`); `--json` gives the same page
//! as the API's `GET /v1/changes`.

use anyhow::anyhow;
use serde::Serialize;

use super::{ChangesArgs, Failure, Output};
use m365sync_config::ConfigFile;
use m365sync_store::feed::ChangeEvent;

/// A page of the feed, as `--json` writes it (and the API answers).
#[derive(Serialize)]
struct Page<'a> {
    events: &'a [ChangeEvent],
    next_after: i64,
}

pub async fn run(args: ChangesArgs, output: Output) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let location = super::store_location(args.db.as_deref(), config.as_ref());
    let store = super::open_existing_store(&location).await?;
    let events = store
        .changes(args.after, args.limit, args.tenant.as_deref())
        .await
        .map_err(|e| Failure::run(anyhow!("reading the change feed of {location}: {e}")))?;
    let next_after = events.last().map_or(args.after, |e| e.cursor);
    if output.json {
        let page = Page {
            events: &events,
            next_after,
        };
        outln!("{}", serde_json::to_string(&page).map_err(Failure::run)?);
        return Ok(());
    }
    if events.is_empty() {
        outln!("No changes after cursor {} in {location}.", args.after);
        return Ok(());
    }
    for event in &events {
        outln!("{}", event_text(event));
    }
    outln!("(next: --after {next_after})");
    Ok(())
}

/// One event on one line: cursor, time, tenant, kind, object, and what it says beyond.
fn event_text(event: &ChangeEvent) -> String {
    let detail = &event.detail;
    let mut extra = Vec::new();
    if !detail.fields.is_empty() {
        extra.push(format!("fields {}", detail.fields.join(", ")));
    }
    if let Some(previous) = &detail.previous_object_id {
        extra.push(format!("was {previous}"));
    }
    if let Some(status) = &detail.status {
        extra.push(format!("status {status}"));
    }
    if let Some(group) = &detail.group_id {
        extra.push(format!("group {group}"));
    }
    if let Some(sku) = &detail.sku_id {
        extra.push(format!("sku {sku}"));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join("; "))
    };
    format!(
        "#{:<6} {}  {}  {:<22} {}{extra}",
        event.cursor,
        event.at,
        event.tenant,
        event.kind.name(),
        event.object_id
    )
}
