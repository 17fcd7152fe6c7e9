//! What pooled sandboxes hold in memory: `sandboxes` syncs of a 1,000-user tenant run at
//! once by one runtime (so each occupies a slot of its own), all held at their end (in
//! the store's `finish`, while the sandbox still lives), then released. The resident set
//! is read before, while they are held, and after they are gone: per running sandbox
//! (its linear memory, instance and store at the end of a sync) and per idle slot (what a
//! freed slot keeps resident, the cost of a large pool).

use std::sync::Arc;

use async_trait::async_trait;
use clap::Args;
use m365sync_service::runtime::{RunLimits, Runtime};
use m365sync_service::store::memory::MemoryStore;
use m365sync_service::store::{Access, Store, TenantStore};
use m365sync_service::wit::StorageError;
use m365sync_service::wit::types::{
    Batch, MatchDecision, PersonKey, PlatformOrganization, StoredPerson, SyncMode,
};
use tokio::sync::{Barrier, Semaphore};

use crate::component::{Quiet, tenant_run};
use crate::measure::{Figures, resident_kb, usage};
use crate::server::Endpoints;

#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The simulator's endpoints (JSON, as `serve` prints them).
    #[arg(long)]
    pub sim: String,
    /// Sandboxes held at once (at most the pool's 64 slots).
    #[arg(long, default_value_t = 32)]
    pub sandboxes: u32,
    #[arg(long)]
    pub cache: std::path::PathBuf,
}

/// A tenant's store that, at `finish`, waits until every run has arrived and the
/// measurement has let it go.
struct Held {
    inner: Box<dyn TenantStore>,
    arrived: Arc<Barrier>,
    release: Arc<Semaphore>,
}

#[async_trait]
impl TenantStore for Held {
    async fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        self.inner.get_checkpoint(key).await
    }
    async fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        self.inner.find_people(keys).await
    }
    async fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        self.inner.list_people_ids(after, limit).await
    }
    async fn find_direct_reports(
        &mut self,
        manager_id: &str,
    ) -> Result<Vec<StoredPerson>, StorageError> {
        self.inner.find_direct_reports(manager_id).await
    }
    async fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        self.inner.commit(batch).await
    }
    async fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        self.inner.list_organizations().await
    }
    async fn create_organization(
        &mut self,
        name: &str,
    ) -> Result<PlatformOrganization, StorageError> {
        self.inner.create_organization(name).await
    }
    async fn get_decision(
        &mut self,
        tenant_key: &str,
    ) -> Result<Option<MatchDecision>, StorageError> {
        self.inner.get_decision(tenant_key).await
    }
    async fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError> {
        self.inner.put_decision(decision).await
    }
    async fn finish(&mut self) -> Result<(), StorageError> {
        self.arrived.wait().await;
        let _go = self.release.acquire().await;
        self.inner.finish().await
    }
}

pub async fn pool(args: &PoolArgs) -> anyhow::Result<()> {
    let sim: Endpoints = serde_json::from_str(&args.sim)?;
    let runtime = Arc::new(Runtime::cached(&args.cache, RunLimits::default())?.0);
    let held = args.sandboxes.max(2);
    // One slot used first, so that code, the runtime and the allocator are warm.
    let warm = MemoryStore::new();
    let warm_run = tenant_run(&sim, "warm", SyncMode::Full);
    let tenant = warm.open_tenant("warm", Access::Sync).await?;
    runtime.sync(&warm_run, tenant, Arc::new(Quiet)).await?;
    drop(warm);
    let before = resident_kb()?;

    let arrived = Arc::new(Barrier::new(held as usize + 1));
    let release = Arc::new(Semaphore::new(0));
    let mut tasks = Vec::new();
    for i in 0..held {
        let (runtime, arrived, release) = (runtime.clone(), arrived.clone(), release.clone());
        let run = tenant_run(&sim, &format!("tenant-{i:02}"), SyncMode::Full);
        tasks.push(tokio::spawn(async move {
            let store = MemoryStore::new();
            let inner = store.open_tenant(&run.tenant.key, Access::Sync).await?;
            let tenant = Box::new(Held {
                inner,
                arrived,
                release,
            });
            let report = runtime.sync(&run, tenant, Arc::new(Quiet)).await?;
            anyhow::Ok(report.data_sets.first().map_or(0, |d| d.read))
        }));
    }
    arrived.wait().await;
    let running = resident_kb()?;
    release.add_permits(held as usize);
    let mut users = 0;
    for task in tasks {
        users += task.await??;
    }
    let after = resident_kb()?;
    let per = |from: u64, to: u64, n: u32| to.saturating_sub(from) as f64 / f64::from(n);
    let (_, peak_rss_kb) = usage();
    let figures = Figures {
        users,
        peak_rss_kb,
        extra: vec![
            ("sandboxes".into(), f64::from(held)),
            ("running_sandbox_kb".into(), per(before, running, held)),
            // The warm-up's slot is among those used again, so `held - 1` slots are new.
            ("idle_sandbox_kb".into(), per(before, after, held - 1)),
        ],
        ..Figures::default()
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}
