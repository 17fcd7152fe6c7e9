//! `m365sync demo`: the whole job against a built-in simulated tenant, so a new user sees a
//! real sync with no Microsoft account. The simulator (tests/simulator) runs in-process on
//! 127.0.0.1 and behaves as Graph and the identity platform are documented to; the engine
//! runs in its sandbox exactly as it would against Microsoft. The platform's store is
//! seeded with a few organizations, one of them a near miss of the tenant's name, so the
//! demo ends with the tenant's organization match (a suggestion to review) and the sync log.

use std::sync::Arc;

use anyhow::Context;
use m365sync_service::{StoreLocation, SyncFailure, sync_logged_cancellable};
use m365sync_store::Store;

use super::progress::TerminalProgress;
use super::{DemoArgs, Failure, Output};
use crate::report;
use m365sync_config::{SecretSource, TenantRun, base_url};
use m365sync_runtime::{CancelToken, RunLimits, Runtime, TracingSink};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};
use m365sync_wit::types::{
    Cloud, CredentialKind, Endpoints, OrganizationMatch, SyncMode, SyncReport, Tenant,
};

/// Application permissions the demo's simulated app is granted.
const DEMO_ROLES: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Organization.Read.All",
    "Domain.Read.All",
    "Reports.Read.All",
    "AuditLog.Read.All",
];

pub async fn run(args: DemoArgs, output: Output) -> Result<(), Failure> {
    let spec = TenantSpec::new(args.seed, args.users as usize);
    // The demo app holds every role the engine's features need.
    let mut config = SimConfig::new(spec);
    config.roles = DEMO_ROLES.iter().map(|r| r.to_string()).collect();
    let simulator = Simulator::start(config)
        .await
        .context("starting the simulated tenant")
        .map_err(Failure::run)?;
    let credentials = simulator.credentials();
    let endpoints = Endpoints {
        login: simulator.login_url(),
        graph: simulator.graph_url(),
    };
    if !output.json {
        outln!(
            "Simulated tenant {:?} ({} users): sign-in at {}, Graph at {}",
            simulator.tenant().name,
            simulator.tenant().users.len(),
            endpoints.login,
            endpoints.graph
        );
    }
    let mut run = TenantRun::new(
        Tenant {
            key: "demo".to_string(),
            tenant_id: credentials.tenant_id.clone(),
            client_id: credentials.client_id.clone(),
            cloud: Cloud::Global,
            endpoints,
            credential: CredentialKind::ClientSecret,
        },
        SecretSource::Value(credentials.client_secret),
    );

    let runtime = Runtime::new(RunLimits::default()).map_err(Failure::run)?;
    // Every data set this engine implements; reports download from the simulator's
    // second host, allowlisted for credential-free GETs only.
    run.options.features = runtime.info().await.map_err(Failure::run)?.features;
    run.options.usage_periods = vec![30];
    let download =
        base_url(&simulator.download_url()).map_err(|e| Failure::run(anyhow::anyhow!(e)))?;
    run.allowlist.downloads = vec![download.normalized];
    // The demo database starts fresh: the simulated tenant is new on every run (new
    // ports, so saved delta links would point at a simulator that is gone).
    let location = StoreLocation::parse(&args.db);
    if let Some(path) = location.sqlite_path() {
        remove_database(path).map_err(Failure::usage)?;
    }
    let store = super::open_store(&location).await?;
    // The sync log shown at the end is this demo's: a server database keeps the log of
    // earlier demos (and of the reset below).
    let mut earlier_runs = 0;
    if location.sqlite_path().is_none() {
        // A server database is shared: the demo's tenant starts afresh in it instead.
        let reset = store
            .reset_tenant(&run.tenant.key)
            .await
            .map_err(Failure::run)?;
        earlier_runs = reset.run_id;
    }
    seed_organizations(store.as_ref(), &simulator.tenant().name)
        .await
        .map_err(Failure::run)?;
    let first = sync_tenant(&runtime, &run, store.as_ref(), &CancelToken::new())
        .await
        .map_err(Failure::run)?;

    // Then the tenant changes, as it would by the next night, and an incremental sync reads
    // only the changes through the saved delta links.
    let ids: Vec<String> = simulator
        .tenant()
        .users
        .iter()
        .map(|u| u.id.clone())
        .collect();
    simulator.create_users(5);
    simulator.update_users(&ids[..3.min(ids.len())], |user| {
        user.job_title = Some("Team Lead".to_string());
    });
    simulator.delete_users(&ids[ids.len().saturating_sub(2)..], true);
    run.options.mode = SyncMode::Incremental;
    let second = sync_tenant(&runtime, &run, store.as_ref(), &CancelToken::new())
        .await
        .map_err(Failure::run)?;
    simulator.shutdown().await;

    let organization =
        organization_match(&runtime, &run, store.as_ref(), second.organization.clone()).await;
    let mut log = store
        .list_runs(Some(&run.tenant.key), 10)
        .await
        .context("reading the sync log")
        .map_err(Failure::run)?;
    log.retain(|record| record.id > earlier_runs);

    if output.json {
        outln!(
            "{}",
            serde_json::json!({
                "first": report::to_json(&first),
                "incremental": report::to_json(&second),
                "organization": organization.as_ref().ok().map(report::organization_json),
                "log": log.iter().map(super::logs::record_json).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    out!("{}", report::to_text(&first));
    outln!("\nThe tenant changed (5 users created, 3 updated, 2 deleted); an incremental sync:");
    out!("{}", report::to_text(&second));
    let summary = super::summary::to_text(store.as_ref(), &run.tenant.key)
        .await
        .context("summarising the store")
        .map_err(Failure::run)?;
    out!("{summary}");
    outln!("\n  Organization match (the platform's organizations were seeded for the demo):");
    match &organization {
        Ok(m) => out!("{}", report::organization_text(m, "    ")),
        Err(why) => outln!("    not available: {why}"),
    }
    outln!("\n  Sync log (newest first):");
    for record in &log {
        out!("{}", super::logs::run_text(record, false));
    }
    outln!(
        "\nWritten to {db}. Try: `m365sync logs --db {db}`, `m365sync licences --db {db} --list`, \
         `m365sync export people --db {db}`, `m365sync export usage --db {db} --json`.",
        db = location
    );
    Ok(())
}

/// The platform organizations the demo starts with: a near miss of the tenant's name (a
/// typo in its first word) for the engine to suggest, the company with another word, and
/// an unrelated one it should not suggest.
fn demo_organizations(tenant_name: &str) -> Vec<String> {
    let words: Vec<&str> = tenant_name.split_whitespace().collect();
    let Some((first, rest)) = words.split_first() else {
        return vec!["Woodgrove Bank".to_string()];
    };
    let chars: Vec<char> = first.chars().collect();
    let doubled = chars.len().saturating_sub(2);
    let typo: String = chars
        .iter()
        .enumerate()
        .flat_map(|(i, c)| if i == doubled { vec![*c, *c] } else { vec![*c] })
        .collect();
    let near_miss = std::iter::once(typo.as_str())
        .chain(rest.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let company = if words.len() > 1 {
        words[..words.len() - 1].join(" ")
    } else {
        first.to_string()
    };
    let unrelated = if company.contains("Woodgrove") {
        "Fourth Coffee"
    } else {
        "Woodgrove Bank"
    };
    vec![
        near_miss,
        format!("{company} Holdings"),
        unrelated.to_string(),
    ]
}

/// Seed the demo's organizations, those not there yet (a server database keeps them).
async fn seed_organizations(store: &dyn Store, tenant_name: &str) -> anyhow::Result<()> {
    let existing = store.list_organizations().await?;
    for name in demo_organizations(tenant_name) {
        if existing.iter().any(|o| o.name == name) {
            continue;
        }
        store
            .create_organization(&name, None)
            .await
            .map_err(|e| anyhow::anyhow!("seeding organization {name:?}: {e}"))?;
    }
    Ok(())
}

/// The tenant's organization match: as the engine reviews it now, else as the last run
/// reported it.
async fn organization_match(
    runtime: &Runtime,
    run: &TenantRun,
    store: &dyn Store,
    reported: Option<OrganizationMatch>,
) -> Result<OrganizationMatch, String> {
    match m365sync_service::review(runtime, run, store, Arc::new(TracingSink)).await {
        Ok(m) => Ok(m),
        Err(error) => reported.ok_or_else(|| error.to_string()),
    }
}

/// Remove a database and its WAL files, if present.
fn remove_database(db: &std::path::Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(anyhow::anyhow!(
                    "cannot replace the demo database {}: {error}",
                    std::path::Path::new(&path).display()
                ));
            }
        }
    }
    Ok(())
}

/// Sync one tenant into `store`, with progress on the terminal, until `cancel` stops it; a
/// run that does not succeed is recorded in the sync log.
async fn sync_tenant(
    runtime: &Runtime,
    run: &TenantRun,
    store: &dyn Store,
    cancel: &CancelToken,
) -> Result<SyncReport, SyncFailure> {
    let progress = Arc::new(TerminalProgress::new());
    let result = sync_logged_cancellable(runtime, run, store, progress.clone(), cancel).await;
    progress.finish(&run.tenant.key);
    result
}
