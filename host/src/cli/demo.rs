//! `m365sync demo`: the whole job against a built-in simulated tenant, so a new user sees a
//! real sync with no Microsoft account. The simulator (tests/simulator) runs in-process on
//! 127.0.0.1 and behaves as Graph and the identity platform are documented to; the engine
//! runs in its sandbox exactly as it would against Microsoft.

use anyhow::Context;

use super::{DemoArgs, Failure, Output};
use m365sync::config::{SecretSource, TenantRun, base_url};
use m365sync::runtime::bindings::types::{Cloud, Endpoints, SyncMode, Tenant};
use m365sync::{RunLimits, Runtime, SqliteStore, report};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

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
        println!(
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
    remove_database(&args.db).map_err(Failure::usage)?;
    let first = super::sync::sync_tenant(&runtime, &run, &args.db)
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
    let second = super::sync::sync_tenant(&runtime, &run, &args.db)
        .await
        .map_err(Failure::run)?;
    simulator.shutdown().await;

    if output.json {
        println!(
            "{}",
            serde_json::json!({"first": report::to_json(&first), "incremental": report::to_json(&second)})
        );
        return Ok(());
    }
    print!("{}", report::to_text(&first));
    println!("\nThe tenant changed (5 users created, 3 updated, 2 deleted); an incremental sync:");
    print!("{}", report::to_text(&second));
    let store = SqliteStore::open(&args.db, &run.tenant.key).map_err(Failure::run)?;
    let summary = super::summary::to_text(store.connection(), &run.tenant.key)
        .context("summarising the store")
        .map_err(Failure::run)?;
    print!("{summary}");
    println!(
        "\nWritten to {db}. Try: `m365sync licences --db {db} --list`, \
         `m365sync export people --db {db}`, `m365sync export usage --db {db} --json`.",
        db = args.db.display()
    );
    Ok(())
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
