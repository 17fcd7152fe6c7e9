//! `m365sync sync`: sync the tenants of a config file now, one sandbox per tenant. Every
//! run lands in the sync log (`m365sync logs`): the engine records a successful run with
//! its last batch, and a failed, interrupted or refused one is recorded by the host
//! library (`sync_logged_cancellable`). SIGINT/SIGTERM stop the run at its next batch
//! boundary (see signals.rs); the tenants not reached yet are not started.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use super::progress::TerminalProgress;
use super::signals::Signals;
use super::{Failure, Output, SyncArgs};
use m365sync::config::{ConfigError, ConfigFile, TenantConfig};
use m365sync::runtime::bindings::types::{FieldMapping, SyncError, SyncMode, SyncReport};
use m365sync::{
    CancelToken, RunLimits, Runtime, SyncFailure, TenantRun, report, sync_logged_cancellable,
};

pub async fn run(args: SyncArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let tenants = super::selected_tenants(&config, args.tenant.as_deref())?;
    let db = super::database_path(args.db.as_ref(), Some(&config));
    let runtime = load_runtime(&config)?;
    let cancel = CancelToken::new();
    let signals = Signals::watch(cancel.clone())
        .map_err(|e| Failure::run(anyhow!("cannot watch for SIGINT/SIGTERM: {e}")))?;

    let mut reports = Vec::new();
    let mut failures = 0;
    for tenant in tenants {
        if cancel.is_cancelled() {
            break;
        }
        let mut run = config.resolve(tenant);
        effective_field_map(&runtime, &args.config, tenant, &run).await?;
        if args.full {
            run.options.mode = SyncMode::Full;
        }
        run.options.dry_run = args.dry_run;
        run.allow_mass_removal(args.allow_mass_removal);
        match sync_tenant(&runtime, &run, &db, &cancel).await {
            Ok(report) => {
                if !output.json {
                    out!("{}", report::to_text(&report));
                }
                reports.push(report::to_json(&report));
            }
            Err(error) => {
                failures += 1;
                let message = failure_text(&error);
                eprintln!("error: {message}");
                reports.push(serde_json::json!({
                    "tenant": run.tenant.key,
                    "status": error.status().name(),
                    "error": message,
                    "error_kind": error.kind(),
                    "log_run_id": error.run_id(),
                }));
            }
        }
    }
    if output.json {
        outln!("{}", serde_json::Value::Array(reports));
    }
    if let Some(signal) = signals.received() {
        return Err(Failure {
            code: signal.exit_code(),
            error: anyhow!(
                "interrupted by {}: the run stopped at a batch boundary; what it committed stands and the next sync carries on from it",
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
pub fn load_runtime(config: &ConfigFile) -> Result<Runtime, Failure> {
    let mut limits = RunLimits::default();
    if let Some(mib) = config.host.memory_limit_mib {
        limits.memory_bytes = (mib as usize) << 20;
    }
    if let Some(secs) = config.host.run_timeout_secs {
        limits.timeout = Duration::from_secs(secs);
    }
    limits.sandboxes = config.host.sandbox_allocation();
    let runtime = Runtime::new(limits).map_err(Failure::run)?;
    Ok(runtime.with_http_sender(config.host.http_sender()))
}

/// Sync one tenant into the database at `db`, with progress on the terminal, until
/// `cancel` stops it; a run that does not succeed is recorded in the sync log.
pub async fn sync_tenant(
    runtime: &Runtime,
    run: &TenantRun,
    db: &Path,
    cancel: &CancelToken,
) -> Result<SyncReport, SyncFailure> {
    let progress = Arc::new(TerminalProgress::new());
    let result = sync_logged_cancellable(runtime, run, db, progress.clone(), cancel).await;
    progress.finish();
    result
}

/// The tenant's effective field map, as the engine resolves the config's overrides. An
/// override the engine refuses (an unknown Graph property, one platform field fed twice)
/// is a config error naming the file, the tenant and the key (exit 2).
pub async fn effective_field_map(
    runtime: &Runtime,
    path: &Path,
    tenant: &TenantConfig,
    run: &TenantRun,
) -> Result<Vec<FieldMapping>, Failure> {
    let overrides = &run.options.field_map;
    let refused = |message: String| {
        Failure::usage(ConfigError::Tenant {
            path: path.to_path_buf(),
            tenant: tenant.name.clone(),
            message,
        })
    };
    match runtime.field_map(overrides).await {
        Ok(map) => Ok(map),
        Err(error) => {
            let Some(SyncError::InvalidRequest(message)) = error.engine_error() else {
                return Err(Failure::run(error));
            };
            // Name the override the engine refused: the first that fails on its own.
            let section = if tenant.field_map.is_empty() {
                "sync.field_map"
            } else {
                "field_map"
            };
            for mapping in overrides {
                if let Err(single) = runtime.field_map(std::slice::from_ref(mapping)).await
                    && let Some(SyncError::InvalidRequest(why)) = single.engine_error()
                {
                    return Err(refused(format!(
                        "{section}.{}: {}",
                        mapping.graph_property,
                        why.split_once(": ").map(|(_, w)| w).unwrap_or(why)
                    )));
                }
            }
            Err(refused(format!("{section}: {message}")))
        }
    }
}
