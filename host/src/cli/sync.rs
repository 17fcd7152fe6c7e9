//! `m365sync sync`: sync the tenants of a config file now, one sandbox per tenant.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};

use super::progress::TerminalProgress;
use super::{Failure, Output, SyncArgs};
use m365sync::config::ConfigFile;
use m365sync::runtime::bindings::types::{SyncMode, SyncReport};
use m365sync::{RunLimits, Runtime, SqliteStore, TenantRun, report};

pub async fn run(args: SyncArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let tenants = match &args.tenant {
        Some(name) => vec![
            config
                .tenant(Some(name))
                .map_err(|e| Failure::usage(anyhow!(e)))?,
        ],
        None => config.tenants.iter().collect(),
    };
    let db = args
        .db
        .clone()
        .or_else(|| config.host.db.clone())
        .unwrap_or_else(|| PathBuf::from("m365sync.db"));
    let runtime = load_runtime(&config)?;

    let mut reports = Vec::new();
    let mut failures = 0;
    for tenant in tenants {
        let mut run = config.resolve(tenant);
        if args.full {
            run.options.mode = SyncMode::Full;
        }
        run.options.dry_run = args.dry_run;
        match sync_tenant(&runtime, &run, &db).await {
            Ok(report) => {
                if !output.json {
                    print!("{}", report::to_text(&report));
                }
                reports.push(report::to_json(&report));
            }
            Err(error) => {
                failures += 1;
                eprintln!("error: {error:#}");
                reports.push(
                    serde_json::json!({"tenant": run.tenant.key, "error": format!("{error:#}")}),
                );
            }
        }
    }
    if output.json {
        println!("{}", serde_json::Value::Array(reports));
    }
    match failures {
        0 => Ok(()),
        n => Err(Failure::run(anyhow!("{n} of the tenants' syncs failed"))),
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
    Runtime::new(limits).map_err(Failure::run)
}

/// Sync one tenant into the database at `db`, with progress on the terminal.
pub async fn sync_tenant(
    runtime: &Runtime,
    run: &TenantRun,
    db: &std::path::Path,
) -> anyhow::Result<SyncReport> {
    let store = SqliteStore::open(db, &run.tenant.key)
        .with_context(|| format!("tenant {}", run.tenant.key))?;
    let progress = Arc::new(TerminalProgress::new());
    let result = runtime.sync(run, Box::new(store), progress.clone()).await;
    progress.finish();
    Ok(result?)
}
