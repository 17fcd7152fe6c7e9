//! What a platform asks of a tenant besides syncing it: a preview of what a sync would do,
//! the tenant's organization match, and a reviewer's decision on it. Each opens the
//! tenant's rows as the call needs them (read-only, or under the tenant's lock for a
//! decision, which is a write) and runs the engine's call in a sandbox.

use std::sync::Arc;

use m365sync_config::TenantRun;
use m365sync_runtime::{EventSink, RunError, Runtime};
use m365sync_store::memory::MemoryStore;
use m365sync_store::{Access, Store, StoreError};
use m365sync_wit::types::{OrganizationMatch, ReviewAction, SyncPreview};

/// Why a preview or a review failed.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The tenant's rows could not be opened (a decision is refused while a sync runs).
    #[error("tenant {tenant}: {error}")]
    Store { tenant: String, error: StoreError },
    /// The engine refused the call or failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl ReviewError {
    /// The engine's error, when the engine reported one.
    pub fn run_error(&self) -> Option<&RunError> {
        match self {
            ReviewError::Run(error) => Some(error),
            ReviewError::Store { .. } => None,
        }
    }
}

async fn open(
    store: &dyn Store,
    run: &TenantRun,
    access: Access,
) -> Result<Box<dyn m365sync_store::TenantStore>, ReviewError> {
    store
        .open_tenant(&run.tenant.key, access)
        .await
        .map_err(|error| ReviewError::Store {
            tenant: run.tenant.key.clone(),
            error,
        })
}

/// What a sync of the tenant would do, account by account, writing nothing; compared with
/// `store`, or with an empty store when there is none yet.
pub async fn preview(
    runtime: &Runtime,
    run: &TenantRun,
    store: Option<&dyn Store>,
    sink: Arc<dyn EventSink>,
) -> Result<SyncPreview, ReviewError> {
    let empty = MemoryStore::default();
    let store = store.unwrap_or(&empty);
    let tenant_store = open(store, run, Access::ReadOnly).await?;
    Ok(runtime.preview(run, tenant_store, sink).await?)
}

/// The tenant's organization match (state, matched organization, ranked suggestions).
pub async fn review(
    runtime: &Runtime,
    run: &TenantRun,
    store: &dyn Store,
    sink: Arc<dyn EventSink>,
) -> Result<OrganizationMatch, ReviewError> {
    let tenant_store = open(store, run, Access::ReadOnly).await?;
    Ok(runtime.review_organization(run, tenant_store, sink).await?)
}

/// Apply a reviewer's decision and return the resulting match; refused while a sync of the
/// tenant holds its lock.
pub async fn decide(
    runtime: &Runtime,
    run: &TenantRun,
    action: &ReviewAction,
    store: &dyn Store,
    sink: Arc<dyn EventSink>,
) -> Result<OrganizationMatch, ReviewError> {
    let tenant_store = open(store, run, Access::Sync).await?;
    Ok(runtime
        .decide_organization(run, action, tenant_store, sink)
        .await?)
}
