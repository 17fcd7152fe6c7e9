//! The smallest embedding of the m365sync engine in Rust: load the component, give it
//! capabilities (HTTP to an allowlist, a secret, the reference in-memory store), run one
//! sync of a simulated tenant, read the store back. No CLI, no database: only the runtime,
//! config and store layers of the reference host.
//!
//! Run: `cargo run -p embed-rust`

use std::sync::Arc;

use m365sync_config::{SecretSource, TenantRun};
use m365sync_runtime::{RunLimits, Runtime, TracingSink};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};
use m365sync_store::memory::MemoryStore;
use m365sync_store::read::ReadModels;
use m365sync_store::{Access, Store};
use m365sync_wit::names::WitName;
use m365sync_wit::types::{Cloud, CredentialKind, Endpoints, Tenant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let simulator = Simulator::start(SimConfig::new(TenantSpec::new(1, 500))).await?;
    let credentials = simulator.credentials();
    let endpoints = Endpoints {
        login: simulator.login_url(),
        graph: simulator.graph_url(),
    };
    let run = TenantRun::new(
        Tenant {
            key: "example".into(),
            tenant_id: credentials.tenant_id,
            client_id: credentials.client_id,
            cloud: Cloud::Global,
            endpoints,
            credential: CredentialKind::ClientSecret,
        },
        SecretSource::Value(credentials.client_secret),
    );

    let runtime = Runtime::new(RunLimits::default())?;
    let info = runtime.info().await?;
    println!("engine {} (WIT {})", info.engine_version, info.wit_version);

    // The store a platform would back with its own database; this one is in memory.
    let store = MemoryStore::new();
    let tenant = store.open_tenant(&run.tenant.key, Access::Sync).await?;
    let report = runtime.sync(&run, tenant, Arc::new(TracingSink)).await?;
    println!(
        "{} sync of {}: {} requests in {} ms",
        report.mode.name(),
        report.tenant_key,
        report.requests,
        report.elapsed_ms
    );
    for set in &report.data_sets {
        println!(
            "  {:<14} read {:>5}, created {:>5}, updated {:>5}, unchanged {:>5}, removed {:>5}",
            set.data_set.name(),
            set.read,
            set.created,
            set.updated,
            set.unchanged,
            set.removed
        );
    }
    let summary = store.tenant_summary(&run.tenant.key).await?;
    println!(
        "stored: {} people ({} licensed, {} guests)",
        summary.people.total, summary.people.licensed, summary.people.guests
    );
    simulator.shutdown().await;
    Ok(())
}
