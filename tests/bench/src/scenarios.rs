//! The measured scenarios, each run as a child process that prints its [`Figures`] as one
//! JSON line: a sync (component into SQLite or memory, or native into memory), the
//! sandbox costs, and a fleet of tenants synced concurrently.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use m365sync_service::runtime::{CacheOutcome, RunLimits, Runtime};
use m365sync_service::store::StoreBackend;
use m365sync_service::store::memory::MemoryStore;
use m365sync_service::wit::types::SyncMode;
use m365sync_service::{StoreLocation, open_store};

use crate::measure::{Figures, Span, postgres_cpu_s, usage};
use crate::server::Endpoints;
use crate::{component, native};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Component,
    Native,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Full,
    /// Replays the delta link a full sync saved in the same database (`--db`).
    Incremental,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The simulator's endpoints (JSON, as `serve` prints them).
    #[arg(long)]
    pub sim: String,
    #[arg(long, value_enum)]
    pub engine: Engine,
    #[arg(long, value_enum)]
    pub store: StoreKind,
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The database: a SQLite file (store sqlite) or a PostgreSQL URL (store postgres).
    #[arg(long)]
    pub db: Option<String>,
    /// Compiled-component cache directory.
    #[arg(long)]
    pub cache: PathBuf,
    /// Every data set (users, managers, sign-in activity, groups and members, licences,
    /// the organization, mailboxes, usage reports) instead of users + licences.
    #[arg(long)]
    pub every_data_set: bool,
    /// The sandbox's memory limit in MiB (default: the runtime's), to see how much of
    /// the peak RSS the guest's linear memory can be.
    #[arg(long)]
    pub sandbox_memory_mib: Option<usize>,
}

fn endpoints(json: &str) -> anyhow::Result<Endpoints> {
    Ok(serde_json::from_str(json)?)
}

async fn runtime(cache: &std::path::Path) -> anyhow::Result<Runtime> {
    Ok(Runtime::cached(cache, RunLimits::default())?.0)
}

/// One measured sync (the runtime is loaded from the compiled cache first, unmeasured).
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let sim = endpoints(&args.sim)?;
    let figures = match (args.engine, args.store) {
        (Engine::Component, store) => {
            let mut limits = RunLimits::default();
            if let Some(mib) = args.sandbox_memory_mib {
                limits.memory_bytes = mib << 20;
            }
            let runtime = Runtime::cached(&args.cache, limits)?.0;
            let mode = match args.mode {
                Mode::Full => SyncMode::Full,
                Mode::Incremental => SyncMode::Incremental,
            };
            let mut run = component::tenant_run(&sim, "bench", mode);
            if args.every_data_set {
                run.options.features = m365sync_service::wit::types::Features::all();
                let download = m365sync_service::config::base_url(&sim.download)
                    .map_err(|e| anyhow::anyhow!("the simulator's download URL: {e}"))?;
                run.allowlist.downloads = vec![download.normalized];
            }
            // The store is opened (and its schema made) before the measured span.
            let opened: Box<dyn StoreBackend> = match store {
                StoreKind::Memory => Box::new(MemoryStore::new()),
                StoreKind::Sqlite | StoreKind::Postgres => {
                    let db = args
                        .db
                        .as_deref()
                        .ok_or_else(|| anyhow::anyhow!("--db is needed with --store {store:?}"))?;
                    open_store(&StoreLocation::parse(db)).await?
                }
            };
            let server_before = postgres_cpu_s().filter(|_| store == StoreKind::Postgres);
            let span = Span::start();
            let report = component::sync_into(&runtime, &run, opened.as_ref()).await?;
            let (wall_s, cpu_s, peak_rss_kb) = span.stop();
            let mut extra = Vec::new();
            if let (Some(before), Some(after)) = (server_before, postgres_cpu_s()) {
                extra.push(("server_cpu_s".to_string(), after - before));
            }
            Figures {
                users: report.data_sets.first().map_or(0, |d| d.read),
                wall_s,
                cpu_s,
                peak_rss_kb,
                requests: u64::from(report.requests),
                extra,
            }
        }
        (Engine::Native, _) => {
            let mut store = native::MemoryStore::default();
            let span = Span::start();
            let report = native::sync(&sim, &mut store, m365sync_guest::types::SyncMode::Full)?;
            let (wall_s, cpu_s, peak_rss_kb) = span.stop();
            anyhow::ensure!(
                store.len() as u64 == sim.users,
                "native run stored {}",
                store.len()
            );
            Figures {
                users: report.data_sets.first().map_or(0, |d| d.read),
                wall_s,
                cpu_s,
                peak_rss_kb,
                requests: u64::from(report.requests),
                extra: Vec::new(),
            }
        }
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[arg(long)]
    pub cache: PathBuf,
    /// Instances to average over.
    #[arg(long, default_value_t = 2000)]
    pub instances: u32,
}

/// Sandbox costs: a fresh instance (Store, capabilities, limits) from the pre-instantiated
/// component and one cheap call (`info`), averaged; compiling the component; loading it
/// compiled from the on-disk cache.
pub async fn sandbox(args: &SandboxArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(&args.cache)?;
    let t = Instant::now();
    let (_, first) = Runtime::cached(dir.path(), RunLimits::default())?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(first == CacheOutcome::Compiled);
    let t = Instant::now();
    let (runtime, second) = Runtime::cached(dir.path(), RunLimits::default())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(second == CacheOutcome::Loaded);
    for _ in 0..50 {
        runtime.info().await?;
    }
    let t = Instant::now();
    for _ in 0..args.instances {
        runtime.info().await?;
    }
    let instance_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(args.instances);
    for _ in 0..50 {
        runtime.instantiate_check().await?;
    }
    let t = Instant::now();
    for _ in 0..args.instances {
        runtime.instantiate_check().await?;
    }
    let instantiate_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(args.instances);
    let (_, rss) = usage();
    let figures = Figures {
        peak_rss_kb: rss,
        extra: vec![
            ("instance_us".into(), instance_us),
            ("instantiate_us".into(), instantiate_us),
            ("compile_ms".into(), compile_ms),
            ("cache_load_ms".into(), load_ms),
        ],
        ..Figures::default()
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[arg(long)]
    pub sim: String,
    #[arg(long, default_value_t = 200)]
    pub tenants: usize,
    /// Runs at the same time.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[arg(long)]
    pub cache: PathBuf,
    /// Every tenant into one SQLite database, through the host library's `sync_many` (as
    /// `m365sync sync --all` runs them, each logged), instead of a database per tenant.
    #[arg(long)]
    pub one_database: bool,
}

/// `tenants` syncs of the simulated tenant, each under its own tenant key, at most
/// `concurrency` at once, by one shared runtime: each into a database of its own, or all
/// into one ([`FleetArgs::one_database`]).
pub async fn fleet(args: &FleetArgs) -> anyhow::Result<()> {
    let sim = endpoints(&args.sim)?;
    let runtime = Arc::new(runtime(&args.cache).await?);
    let dir = tempfile::tempdir()?;
    if args.one_database {
        return fleet_in_one_database(args, &sim, &runtime, dir.path()).await;
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let span = Span::start();
    let mut tasks = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        let (runtime, limit) = (runtime.clone(), limit.clone());
        let run = component::tenant_run(&sim, &format!("tenant-{i:03}"), SyncMode::Full);
        let db = dir.path().join(format!("tenant-{i:03}.db"));
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await?;
            component::sync_at(&runtime, &run, &db.to_string_lossy()).await
        }));
    }
    let (mut users, mut requests) = (0, 0);
    for t in tasks {
        let report = t.await??;
        users += report.data_sets.first().map_or(0, |d| d.read);
        requests += u64::from(report.requests);
    }
    print_fleet(span, users, requests, args.tenants)
}

async fn fleet_in_one_database(
    args: &FleetArgs,
    sim: &Endpoints,
    runtime: &Arc<Runtime>,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let runs: Vec<_> = (0..args.tenants)
        .map(|i| component::tenant_run(sim, &format!("tenant-{i:03}"), SyncMode::Full))
        .collect();
    let db = dir.join("fleet.db");
    let store: Arc<dyn m365sync_service::store::StoreBackend> =
        Arc::from(open_store(&StoreLocation::parse(&db.to_string_lossy())).await?);
    let span = Span::start();
    let mut outcomes = m365sync_service::sync_many(
        runtime.clone(),
        runs,
        store,
        args.concurrency,
        Arc::new(component::Quiet),
        m365sync_service::runtime::CancelToken::new(),
    );
    let (mut users, mut requests) = (0, 0);
    while let Some(outcome) = outcomes.next().await {
        let report = match outcome.result {
            Some(Ok(report)) => report,
            Some(Err(failure)) => anyhow::bail!("tenant {}: {failure}", outcome.tenant),
            None => anyhow::bail!("tenant {} was not started", outcome.tenant),
        };
        users += report.data_sets.first().map_or(0, |d| d.read);
        requests += u64::from(report.requests);
    }
    print_fleet(span, users, requests, args.tenants)
}

/// A fleet's figures, as one JSON line.
fn print_fleet(span: Span, users: u64, requests: u64, tenants: usize) -> anyhow::Result<()> {
    let (wall_s, cpu_s, peak_rss_kb) = span.stop();
    let figures = Figures {
        users,
        wall_s,
        cpu_s,
        peak_rss_kb,
        requests,
        extra: vec![("tenants".into(), tenants as f64)],
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}
