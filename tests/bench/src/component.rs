//! The engine as a platform runs it: the component in the reference host (one sandbox per
//! run), into SQLite, PostgreSQL, or the reference in-memory store (the component / native
//! ratio compares the same work: the native run keeps people in memory too).

use std::sync::Arc;

use m365sync_service::config::{SecretSource, TenantRun};
use m365sync_service::runtime::{EventSink, Runtime};
use m365sync_service::store::{Access, Store};
use m365sync_service::wit::Level;
use m365sync_service::wit::types::{
    Cloud, CredentialKind, DataSet, Endpoints, Features, SyncMode, SyncReport, Tenant,
};
use m365sync_service::{StoreLocation, open_store};

use crate::server::Endpoints as Sim;

/// A run of the simulated tenant: users + licences, every account.
pub fn tenant_run(sim: &Sim, key: &str, mode: SyncMode) -> TenantRun {
    let mut run = TenantRun::new(
        Tenant {
            key: key.into(),
            tenant_id: sim.tenant_id.clone(),
            client_id: sim.client_id.clone(),
            cloud: Cloud::Global,
            endpoints: Endpoints {
                login: sim.login.clone(),
                graph: sim.graph.clone(),
            },
            credential: CredentialKind::ClientSecret,
        },
        SecretSource::Value(sim.client_secret.clone()),
    );
    run.options.mode = mode;
    run.options.features = Features::USERS | Features::LICENCES;
    run.options.filter.include_guests = true;
    run
}

/// Logs nothing: the bench measures the sync, not a terminal.
pub struct Quiet;

impl EventSink for Quiet {
    fn log(&self, _tenant: &str, _level: Level, _message: &str) {}
    fn progress(&self, _tenant: &str, _phase: DataSet, _done: u64, _total: Option<u64>) {}
}

/// One sync of `run` into `store`, under the tenant's lock.
pub async fn sync_into(
    runtime: &Runtime,
    run: &TenantRun,
    store: &dyn Store,
) -> anyhow::Result<SyncReport> {
    let tenant = store.open_tenant(&run.tenant.key, Access::Sync).await?;
    Ok(runtime.sync(run, tenant, Arc::new(Quiet)).await?)
}

/// One sync into the store at `db` (a SQLite path or a PostgreSQL URL), opened first.
pub async fn sync_at(runtime: &Runtime, run: &TenantRun, db: &str) -> anyhow::Result<SyncReport> {
    let store = open_store(&StoreLocation::parse(db)).await?;
    sync_into(runtime, run, store.as_ref()).await
}
