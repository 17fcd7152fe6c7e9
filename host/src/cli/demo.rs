//! `m365sync demo`: the whole job against a built-in simulated tenant, so a new user sees a
//! real sync with no Microsoft account. The simulator (tests/simulator) runs in-process on
//! 127.0.0.1 and behaves as Graph and the identity platform are documented to; the engine
//! runs in its sandbox exactly as it would against Microsoft.

use anyhow::Context;

use super::{DemoArgs, Failure, Output};
use m365sync::config::{SecretSource, TenantRun};
use m365sync::runtime::bindings::types::{Cloud, Endpoints, Tenant};
use m365sync::{RunLimits, Runtime, SqliteStore, report};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

pub async fn run(args: DemoArgs, output: Output) -> Result<(), Failure> {
    let spec = TenantSpec::new(args.seed, args.users as usize);
    let simulator = Simulator::start(SimConfig::new(spec))
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
    let run = TenantRun::new(
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
    let report = super::sync::sync_tenant(&runtime, &run, &args.db)
        .await
        .map_err(Failure::run)?;
    simulator.shutdown().await;

    if output.json {
        println!("{}", report::to_json(&report));
        return Ok(());
    }
    print!("{}", report::to_text(&report));
    let store = SqliteStore::open(&args.db, &run.tenant.key).map_err(Failure::run)?;
    let summary = super::summary::to_text(store.connection(), &run.tenant.key)
        .context("summarising the store")
        .map_err(Failure::run)?;
    print!("{summary}");
    println!(
        "\nWritten to {}. Run `m365sync demo` again: the second sync finds nothing to change.",
        args.db.display()
    );
    Ok(())
}
