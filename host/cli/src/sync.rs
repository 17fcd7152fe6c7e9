//! `m365sync sync`: sync the tenants of a config file (and those onboarding registered in
//! the store) now, each in its own sandbox, a few at a time (`--concurrency`). A tenant
//! whose notices stop it (its partner's relationships ended) is not run. Every run lands
//! in the sync log (`m365sync logs`): the engine records a successful run with its last
//! batch, and a failed, interrupted or refused one is recorded by the service layer. SIGINT/SIGTERM stop the running syncs at
//! their next batch boundary (see signals.rs); the tenants not reached yet are not started.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use futures::StreamExt;

use super::progress::TerminalProgress;
use super::signals::Signals;
use super::{Failure, Output, SyncArgs};
use crate::report;
use m365sync_config::{ConfigFile, TenantConfig, TenantRun};
use m365sync_runtime::{CancelToken, Runtime};
use m365sync_service::{FieldMapError, SyncFailure, sync_many};
use m365sync_wit::types::{FieldMapping, SyncError, SyncMode};

pub async fn run(args: SyncArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let in_config = |name: &str| config.tenants.iter().any(|t| t.name == name);
    let location = super::store_location(args.db.as_deref(), Some(&config));
    let runtime = Arc::new(load_runtime(&config).await?);
    let mut runs = Vec::new();
    if args.tenant.as_deref().is_none_or(in_config) {
        for tenant in super::selected_tenants(&config, args.tenant.as_deref())? {
            let run = config.resolve(tenant);
            effective_field_map(&runtime, &args.config, tenant, &run).await?;
            runs.push(run);
        }
    }
    let store: Arc<dyn m365sync_service::store::StoreBackend> =
        Arc::from(super::open_store(&location).await?);
    // The tenants onboarding registered in the store, as `serve` runs them.
    let registered = m365sync_service::onboarding::tenant_runs(&config, store.as_ref())
        .await
        .map_err(|e| Failure::run(anyhow!("reading the registered tenants of {location}: {e}")))?;
    runs.extend(registered.into_iter().filter(|run| {
        !in_config(&run.tenant.key) && args.tenant.as_deref().is_none_or(|n| n == run.tenant.key)
    }));
    if let Some(name) = args.tenant.as_deref()
        && runs.is_empty()
    {
        return Err(Failure::usage(anyhow!(
            "no tenant is named {name:?} in {} or among the tenants registered in {location}",
            args.config.display()
        )));
    }
    for run in &mut runs {
        if args.full {
            run.options.mode = SyncMode::Full;
        }
        run.options.dry_run = args.dry_run;
        run.allow_mass_removal(args.allow_mass_removal);
    }
    let today = m365sync_service::expiry::today();
    let expiries: std::collections::HashMap<String, m365sync_service::expiry::CredentialExpiry> =
        runs.iter()
            .filter_map(|run| {
                m365sync_service::expiry::credential_expiry(run, today)
                    .filter(|e| e.warn)
                    .map(|e| (run.tenant.key.clone(), e))
            })
            .collect();
    for (tenant, expiry) in &expiries {
        eprintln!("warning: tenant {tenant}: {}", expiry.message);
    }
    // What will break the tenants' syncs, looked at again (as `serve` does daily); a dry
    // run writes nothing, so it shows the notices as they are.
    if !args.dry_run {
        let refreshed = m365sync_service::notices::refresh(
            &runtime,
            &config,
            store.as_ref(),
            m365sync_service::expiry::now(),
            Arc::new(m365sync_runtime::TracingSink),
        )
        .await
        .map_err(|e| Failure::run(anyhow!("keeping the notices in {location}: {e}")))?;
        for error in &refreshed.errors {
            eprintln!("warning: {error}");
        }
    }
    let mut notices = m365sync_service::notices::shown_by_tenant(store.as_ref())
        .await
        .map_err(|e| Failure::run(anyhow!("reading the notices of {location}: {e}")))?;
    for (tenant, notices) in &notices {
        if runs.iter().any(|r| &r.tenant.key == tenant) {
            for notice in notices {
                eprintln!("warning: tenant {tenant}: {}", notice.message);
            }
        }
    }
    let mut reports = Vec::new();
    let mut failures = 0;
    // A tenant a notice stops (its partner's relationships ended) is not run.
    let mut startable = Vec::with_capacity(runs.len());
    for run in runs {
        let stopping = (notices.get(&run.tenant.key))
            .and_then(|n| m365sync_service::notices::stopping(n))
            .map(|n| n.message.clone());
        let Some(why) = stopping else {
            startable.push(run);
            continue;
        };
        failures += 1;
        let run_id = if run.options.dry_run {
            None
        } else {
            m365sync_service::synclog::record_stopped(store.as_ref(), &run, &why).await
        };
        eprintln!("error: tenant {}: not synced: {why}", run.tenant.key);
        reports.push(serde_json::json!({
            "tenant": run.tenant.key,
            "status": "failed",
            "error": why,
            "error_kind": "stopped",
            "log_run_id": run_id,
        }));
    }
    let runs = startable;
    let cancel = CancelToken::new();
    let signals = Signals::watch(cancel.clone())
        .map_err(|e| Failure::run(anyhow!("cannot watch for SIGINT/SIGTERM: {e}")))?;

    let progress = Arc::new(TerminalProgress::new());
    let mut outcomes = sync_many(
        runtime.clone(),
        runs,
        store.clone(),
        usize::from(args.concurrency),
        progress.clone(),
        cancel.clone(),
    );
    while let Some(outcome) = outcomes.next().await {
        progress.finish(&outcome.tenant);
        let Some(result) = outcome.result else {
            continue;
        };
        match result {
            Ok(report) => {
                if !output.json {
                    progress.println(&report::to_text(&report));
                }
                let mut json = report::to_json(&report);
                if let Some(expiry) = expiries.get(&outcome.tenant) {
                    json["credential_expiry"] = serde_json::json!(expiry);
                }
                if let Some(notices) = notices.remove(&outcome.tenant) {
                    json["notices"] = serde_json::json!(notices);
                }
                reports.push(json);
            }
            Err(error) => {
                failures += 1;
                let message = failure_text(&error);
                eprintln!("error: {message}");
                reports.push(serde_json::json!({
                    "tenant": outcome.tenant,
                    "status": error.status().name(),
                    "error": message,
                    "error_kind": error.kind(),
                    "log_run_id": error.run_id(),
                }));
            }
        }
    }
    drop(outcomes);
    if output.json {
        outln!("{}", serde_json::Value::Array(reports));
    }
    if let Some(signal) = signals.received() {
        return Err(Failure {
            code: signal.exit_code(),
            error: anyhow!(
                "interrupted by {}: the runs stopped at a batch boundary; what they committed stands and the next sync carries on from it",
                signal.name()
            ),
        });
    }
    match failures {
        0 => Ok(()),
        n => Err(Failure::run(anyhow!("{n} of the tenants' syncs failed"))),
    }
}

/// A failure in words; a run the removal guard stopped also says how to let it through.
fn failure_text(error: &SyncFailure) -> String {
    let text = format!("{error:#}");
    match error.run_error().and_then(|e| e.engine_error()) {
        Some(SyncError::MassRemoval(m)) if !text.contains("--allow-mass-removal") => format!(
            "{text} ({} of {} stored people would be removed, at most {} allowed; if the removals are intended, run again with --allow-mass-removal)",
            m.would_remove, m.stored, m.allowed
        ),
        _ => text,
    }
}

/// The runtime with the limits a config asks for.
pub async fn load_runtime(config: &ConfigFile) -> Result<Runtime, Failure> {
    m365sync_service::load_runtime(&config.host)
        .await
        .map_err(Failure::run)
}

/// The tenant's effective field map; an override the engine refuses is a config error
/// (exit 2) naming the file, the tenant and the key.
pub async fn effective_field_map(
    runtime: &Runtime,
    path: &Path,
    tenant: &TenantConfig,
    run: &TenantRun,
) -> Result<Vec<FieldMapping>, Failure> {
    m365sync_service::effective_field_map(runtime, path, tenant, run)
        .await
        .map_err(|error| match error {
            FieldMapError::Config(error) => Failure::usage(error),
            FieldMapError::Run(error) => Failure::run(error),
        })
}
