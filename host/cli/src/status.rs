//! `m365sync status`: the served tenants as `m365sync serve` left them in the store — each
//! one's status (healthy, running, failing, needs-attention, paused), its last and next
//! run, its people, and what needs an admin — the API's `GET /v1/tenants`, from the command
//! line, with no server needed.

use anyhow::anyhow;

use super::{Failure, Output, StatusArgs};
use m365sync_config::ConfigFile;
use m365sync_service::serve::view::{TenantView, tenant_notes, tenant_views};

pub async fn run(args: StatusArgs, output: Output) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let location = super::store_location(args.db.as_deref(), config.as_ref());
    let store = super::open_existing_store(&location).await?;
    let notes = match &config {
        Some(config) => tenant_notes(config, store.as_ref())
            .await
            .map_err(|e| Failure::run(anyhow!("reading the tenants of {location}: {e}")))?,
        None => Default::default(),
    };
    let failing_after = config.as_ref().map_or(
        m365sync_service::serve::ServeOptions::default().failing_after,
        |c| c.serve_settings().failing_after,
    );
    let views = tenant_views(store.as_ref(), failing_after, &notes)
        .await
        .map_err(|e| Failure::run(anyhow!("reading the tenants of {location}: {e}")))?;
    if output.json {
        outln!("{}", serde_json::to_string(&views).map_err(Failure::run)?);
        return Ok(());
    }
    if views.is_empty() {
        outln!("No served tenants in {location}: `m365sync serve` registers the config's tenants.");
        return Ok(());
    }
    for view in &views {
        out!("{}", view_text(view));
    }
    Ok(())
}

fn view_text(view: &TenantView) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<16} {} people",
        view.name,
        view.status.name(),
        view.people
    );
    let last = match &view.last_run {
        Some(run) => format!(
            "{} at {}{}",
            if run.ok { "ok" } else { "failed" },
            run.at.as_deref().unwrap_or("?"),
            run.id.map(|id| format!(" (run #{id})")).unwrap_or_default()
        ),
        None => "none yet".to_string(),
    };
    let _ = writeln!(out, "  last run: {last}");
    let _ = writeln!(
        out,
        "  next run: {}{}",
        view.next_run.as_deref().unwrap_or("not scheduled"),
        view.schedule
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    );
    if view.consecutive_failures > 0 {
        let _ = writeln!(out, "  failed {} times in a row", view.consecutive_failures);
    }
    if let Some(fix) = &view.attention {
        let _ = writeln!(out, "  needs attention: {fix}");
    }
    if let Some(expiry) = view.credential_expiry.as_ref().filter(|e| e.warn) {
        let _ = writeln!(out, "  warning: {}", expiry.message);
    }
    for notice in &view.notices {
        let _ = writeln!(out, "  warning: {}", notice.message);
    }
    out
}
