//! `m365sync serve`'s engine room: a worker process that claims jobs from the store's queue
//! and runs them (a few at a time, each in its own sandbox, each holding a lease it renews),
//! a scheduler that queues each tenant's runs when they are due, and what the API and the
//! `status` command ask of it (sync now, pause, resume, the tenants' states). Several such
//! processes share one PostgreSQL database with no coordinator of their own: the queue's
//! claims, leases and the tenants' locks are all in the store.
//!
//! - [`worker`]: the claim loop, a run and its lease, what a run's end does to the tenant.
//! - [`scheduler`]: due tenants queued once, a missed run caught up once.
//! - [`outcome`]: which failures are retried, which need an admin.
//! - [`metrics`]: the counters `/metrics` shows.
//! - [`view`]: a tenant as the API and `status` show it.
//! - `daily`: each day, `[[partner]] auto_add` customers added as tenants, and every
//!   tenant's notices (credentials ending, partner relationships ended) looked at again.

mod daily;
pub mod metrics;
pub mod outcome;
pub mod scheduler;
pub mod view;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use m365sync_config::{ConfigFile, Schedule, ServeSettings, TenantConfig, TenantRun};
use m365sync_runtime::{CancelToken, Runtime};
use m365sync_store::StoreBackend;
use m365sync_store::queue::{Enqueued, JobKind, NewJob, ServedTenant, TenantState, WorkerInfo};
use m365sync_store::{StoreError, time};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use metrics::Metrics;
pub use view::{TenantView, WebhookView};

/// How a worker process behaves (from `[serve]`, and tests' shorter intervals).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Runs at once in this process.
    pub workers: usize,
    /// Running jobs per app registration, fleet-wide.
    pub per_app: u32,
    /// Running jobs in all, fleet-wide, when set.
    pub max_running: Option<u32>,
    /// Consecutive failures before a tenant shows as failing.
    pub failing_after: u32,
    /// Waits before the retries of a failed run.
    pub retry_backoff: Vec<Duration>,
    /// How long a claim holds before it must be renewed.
    pub lease: Duration,
    /// How long running syncs get to reach a batch boundary when the process stops.
    pub shutdown_grace: Duration,
    /// How often the queue is looked at when nothing wakes the worker.
    pub poll: Duration,
    /// How often the scheduler looks for due tenants.
    pub schedule_tick: Duration,
    /// How long a run refused because another process syncs the tenant waits to retry.
    pub locked_retry: Duration,
    /// The address the API listens on, once bound (consent links send admins back there
    /// unless `[serve] public_url` says otherwise).
    pub listening: Option<std::net::SocketAddr>,
}

impl ServeOptions {
    /// The options `[serve]` asks for (the intervals keep their defaults).
    pub fn from_settings(settings: &ServeSettings) -> ServeOptions {
        ServeOptions {
            workers: usize::try_from(settings.workers).unwrap_or(usize::MAX),
            per_app: settings.per_app,
            max_running: settings.max_running,
            failing_after: settings.failing_after,
            retry_backoff: settings.retry_backoff.clone(),
            lease: settings.lease,
            shutdown_grace: settings.shutdown_grace,
            ..ServeOptions::default()
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 4,
            per_app: 8,
            max_running: None,
            failing_after: 3,
            retry_backoff: vec![
                Duration::from_secs(60),
                Duration::from_secs(5 * 60),
                Duration::from_secs(30 * 60),
            ],
            lease: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            poll: Duration::from_secs(2),
            schedule_tick: Duration::from_secs(10),
            locked_retry: Duration::from_secs(30),
            listening: None,
        }
    }
}

/// Why the service could not start or a request to it failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no tenant named {0:?} is served")]
    UnknownTenant(String),
    #[error("tenant {0} is paused: resume it first")]
    Paused(String),
}

/// One tenant as the worker serves it: how to run it and when.
pub(crate) struct ServedConfig {
    pub run: TenantRun,
    pub schedule: Schedule,
}

/// A running worker process's service.
pub struct Service {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) store: Arc<dyn StoreBackend>,
    /// The config's tenants and those onboarding registered (added as they are).
    tenants: RwLock<HashMap<String, Arc<ServedConfig>>>,
    pub(crate) options: ServeOptions,
    pub(crate) worker: WorkerInfo,
    pub(crate) metrics: Arc<Metrics>,
    /// Wakes the claim loop (a job was queued by this process).
    pub(crate) wake: Notify,
    /// Stops claiming and scheduling; running syncs get their grace period.
    pub(crate) stopping: CancellationToken,
    /// The cancellation of each running job's sync, by job id.
    pub(crate) running: Mutex<HashMap<i64, CancelToken>>,
    pub(crate) tasks: TaskTracker,
    /// The config's webhooks.
    webhooks: Vec<m365sync_config::WebhookTarget>,
    config: ConfigFile,
    config_path: PathBuf,
    /// Registered tenants this worker does not serve (their app is gone from its config,
    /// or a tenant of the config has their name), so that looking for new registrations
    /// does not warn about them again.
    not_served: Mutex<std::collections::HashSet<String>>,
}

impl Service {
    /// Join the fleet as a worker of `store` and serve the tenants of `config` (their runs
    /// resolved now, with `runtime`): the claim loop and the scheduler start at once.
    pub async fn start(
        runtime: Arc<Runtime>,
        store: Arc<dyn StoreBackend>,
        config: &ConfigFile,
        config_path: PathBuf,
        options: ServeOptions,
    ) -> Result<Arc<Service>, ServeError> {
        let worker = this_worker();
        store.join(&worker).await?;
        let mut tenants = served(config);
        let mut not_served = std::collections::HashSet::new();
        admit_registered(
            config,
            &mut tenants,
            &mut not_served,
            store.registered_tenants().await?,
        );
        store.serve_tenants(&served_list(&tenants)).await?;
        warn_of_unusable_credentials(&tenants);
        let service = Arc::new(Service {
            runtime,
            store,
            tenants: RwLock::new(tenants),
            options,
            worker,
            metrics: Arc::new(Metrics::new()),
            wake: Notify::new(),
            stopping: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            webhooks: config.webhooks(),
            config: config.clone(),
            config_path,
            not_served: Mutex::new(not_served),
        });
        service.tasks.spawn(worker::claim_loop(service.clone()));
        service
            .tasks
            .spawn(scheduler::schedule_loop(service.clone()));
        service.tasks.spawn(worker::heartbeat_loop(service.clone()));
        service.tasks.spawn(daily::daily_loop(service.clone()));
        // Deliveries run beside the syncs and never hold them up.
        for target in service.webhooks.clone() {
            let delivery = crate::webhooks::DeliveryOptions {
                poll: service.options.poll,
                lease: service.options.lease,
                ..Default::default()
            };
            service.tasks.spawn(crate::webhooks::run_with(
                service.store.clone(),
                target,
                service.worker.id.clone(),
                service.stopping.clone(),
                delivery,
            ));
        }
        Ok(service)
    }

    /// This worker, as the store knows it.
    pub fn worker(&self) -> &WorkerInfo {
        &self.worker
    }

    pub fn store(&self) -> &Arc<dyn StoreBackend> {
        &self.store
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn options(&self) -> &ServeOptions {
        &self.options
    }

    /// The config file the tenants come from.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// The config the service runs with.
    pub fn config(&self) -> &ConfigFile {
        &self.config
    }

    /// A served tenant's run and schedule.
    pub(crate) fn served(&self, tenant: &str) -> Option<Arc<ServedConfig>> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    fn served_snapshot(&self) -> Vec<(String, Arc<ServedConfig>)> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, served)| (name.clone(), served.clone()))
            .collect()
    }

    /// A consent link for `app` (see [`crate::onboarding::start`]), answered at this
    /// server's callback.
    pub async fn consent_link(
        &self,
        app: &str,
        features: Option<m365sync_wit::types::Features>,
    ) -> Result<crate::onboarding::ConsentLink, crate::onboarding::OnboardingError> {
        let redirect = self.config.consent_redirect_uri(
            self.options
                .listening
                .unwrap_or(self.config.serve_settings().listen),
        );
        crate::onboarding::start(self.store.as_ref(), &self.config, app, features, &redirect).await
    }

    /// The admin-consent answer: the tenant is registered, served from now on, and its
    /// first sync is queued.
    pub async fn complete_consent(
        &self,
        answer: &crate::onboarding::ConsentAnswer,
    ) -> Result<crate::onboarding::Onboarded, crate::onboarding::OnboardingError> {
        let onboarded = crate::onboarding::complete(
            &self.runtime,
            self.store.as_ref(),
            &self.config,
            answer,
            Arc::new(m365sync_runtime::TracingSink),
        )
        .await?;
        self.serve_registered(&onboarded.tenant).await?;
        Ok(onboarded)
    }

    /// Serve the tenants another process registered since this one started (onboarding,
    /// `partner add`); the process that registered one queued its first sync. Returns
    /// whether any was added.
    pub(crate) async fn learn_registered(&self) -> Result<bool, StoreError> {
        let registered = self.store.registered_tenants().await?;
        let list = {
            let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
            let mut not_served = self
                .not_served
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let added = admit_registered(&self.config, &mut tenants, &mut not_served, registered);
            if added.is_empty() {
                return Ok(false);
            }
            for name in added {
                tracing::info!("serving {name}, registered by another process");
            }
            served_list(&tenants)
        };
        self.store.serve_tenants(&list).await?;
        Ok(true)
    }

    /// Serve a tenant onboarding just registered, and queue its first sync.
    pub(crate) async fn serve_registered(
        &self,
        tenant: &m365sync_store::onboarding::RegisteredTenant,
    ) -> Result<(), StoreError> {
        let Some(served) = registered_config(&self.config, tenant) else {
            return Ok(());
        };
        let list = {
            let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
            tenants.insert(tenant.name.clone(), Arc::new(served));
            served_list(&tenants)
        };
        self.store.serve_tenants(&list).await?;
        if let Err(error) = self.sync_now(&tenant.name).await {
            tracing::warn!("queueing the first sync of {}: {error}", tenant.name);
        }
        Ok(())
    }

    /// "Sync now": a manual job, first in the queue (a queued scheduled run of the tenant
    /// becomes it). Refused for a paused tenant.
    pub async fn sync_now(&self, tenant: &str) -> Result<Enqueued, ServeError> {
        let state = self.state(tenant).await?;
        if state.paused {
            return Err(ServeError::Paused(tenant.to_string()));
        }
        let queued = self
            .store
            .enqueue(&NewJob {
                tenant: tenant.to_string(),
                app: state.app,
                kind: JobKind::Manual,
                run_after_ms: now_ms(),
                attempt: 1,
            })
            .await?;
        self.wake.notify_one();
        Ok(queued)
    }

    /// Pause (or resume) a tenant: a paused tenant keeps its data and delta links, is not
    /// scheduled, and its queued job waits.
    pub async fn set_paused(&self, tenant: &str, paused: bool) -> Result<TenantState, ServeError> {
        let state = self
            .store
            .set_paused(tenant, paused, now_ms())
            .await?
            .ok_or_else(|| ServeError::UnknownTenant(tenant.to_string()))?;
        if !paused {
            self.wake.notify_one();
        }
        Ok(state)
    }

    /// A served tenant's state.
    pub async fn state(&self, tenant: &str) -> Result<TenantState, ServeError> {
        self.store
            .tenant_state(tenant, now_ms())
            .await?
            .ok_or_else(|| ServeError::UnknownTenant(tenant.to_string()))
    }

    /// Every served tenant, as the API and `status` show them.
    pub async fn tenant_views(&self) -> Result<Vec<TenantView>, ServeError> {
        let today = crate::expiry::today();
        let notes = self
            .served_snapshot()
            .into_iter()
            .map(|(name, t)| {
                let notes = view::TenantNotes::new(&t.run, &t.schedule, today);
                (name, notes)
            })
            .collect();
        Ok(view::tenant_views(self.store.as_ref(), self.options.failing_after, &notes).await?)
    }

    /// Days until each served tenant's soonest-ending known credential ends, by tenant:
    /// the config's `client_secret_expires`, and the app registration's secrets and
    /// certificates in the tenant's notices (read from Graph daily).
    pub async fn credential_days_left(&self) -> Result<Vec<(String, i64)>, ServeError> {
        let today = crate::expiry::today();
        let now = crate::expiry::now();
        let mut soonest: std::collections::BTreeMap<String, i64> = self
            .served_snapshot()
            .into_iter()
            .filter_map(|(name, t)| {
                crate::expiry::credential_expiry(&t.run, today).map(|e| (name, e.days_left))
            })
            .collect();
        for notice in self.store.notices(None).await? {
            if notice.kind != m365sync_store::notices::NoticeKind::SecretExpiring
                || self.served(&notice.tenant).is_none()
            {
                continue;
            }
            if let Some(days) = crate::notices::days_left(&notice.ends, now) {
                let entry = soonest.entry(notice.tenant).or_insert(days);
                *entry = (*entry).min(days);
            }
        }
        Ok(soonest.into_iter().collect())
    }

    /// The config's webhooks and how their deliveries stand.
    pub async fn webhook_views(&self) -> Result<Vec<WebhookView>, ServeError> {
        let mut views = Vec::with_capacity(self.webhooks.len());
        for target in &self.webhooks {
            let state = self.store.webhook_state(&target.name).await?;
            views.push(view::webhook_view(target, &state));
        }
        Ok(views)
    }

    /// Whether the service is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    /// Stop: no more claims or schedules; running syncs end at their next batch boundary
    /// (within the grace period) and go back to the queue, recorded as interrupted; then the
    /// worker leaves the fleet.
    pub async fn shutdown(&self, reason: &str) {
        self.stopping.cancel();
        let running: Vec<CancelToken> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for cancel in running {
            cancel.cancel(reason.to_string());
        }
        self.tasks.close();
        self.tasks.wait().await;
        if let Err(error) = self.store.leave(&self.worker.id).await {
            tracing::warn!("leaving the fleet: {error}");
        }
    }
}

/// Add the `registered` tenants to the served `tenants`: those whose app the config still
/// has and whose name no tenant of the config takes. Each one left out is warned about
/// once and remembered in `not_served`. The names added.
fn admit_registered(
    config: &ConfigFile,
    tenants: &mut HashMap<String, Arc<ServedConfig>>,
    not_served: &mut std::collections::HashSet<String>,
    registered: Vec<m365sync_store::onboarding::RegisteredTenant>,
) -> Vec<String> {
    let mut added = Vec::new();
    for tenant in registered {
        if not_served.contains(&tenant.name) {
            continue;
        }
        if config.tenants.iter().any(|t| t.name == tenant.name) {
            tracing::warn!(
                "registered tenant {} is also a tenant of the config: the config's is served",
                tenant.name
            );
            not_served.insert(tenant.name);
            continue;
        }
        if tenants.contains_key(&tenant.name) {
            continue;
        }
        match registered_config(config, &tenant) {
            Some(served) => {
                tenants.insert(tenant.name.clone(), Arc::new(served));
                added.push(tenant.name);
            }
            None => {
                tracing::warn!(
                    "registered tenant {} signs in with app {:?}, which the config does not \
                     have: it is not served",
                    tenant.name,
                    tenant.app
                );
                not_served.insert(tenant.name);
            }
        }
    }
    added
}

/// Say at start, once per credential, which certificate or federated token files would
/// fail every sign-in of the tenants using them (a key that is not the certificate's, a
/// certificate out of its validity period, a file that cannot be read); each run says so
/// again when it fails.
fn warn_of_unusable_credentials(tenants: &HashMap<String, Arc<ServedConfig>>) {
    let mut checked = std::collections::HashSet::new();
    let mut runs: Vec<&TenantRun> = tenants.values().map(|t| &t.run).collect();
    runs.sort_by(|a, b| a.tenant.key.cmp(&b.tenant.key));
    for run in runs {
        if !checked.insert(run.credential.describe()) {
            continue;
        }
        if let Err(error) =
            m365sync_runtime::capabilities::credentials::check_credential(&run.credential)
        {
            tracing::warn!("tenant {}: its sign-ins will fail: {error}", run.tenant.key);
        }
    }
}

/// The tenants of `config`, each with its run and schedule.
fn served(config: &ConfigFile) -> HashMap<String, Arc<ServedConfig>> {
    config
        .tenants
        .iter()
        .map(|tenant: &TenantConfig| {
            (
                tenant.name.clone(),
                Arc::new(ServedConfig {
                    run: config.resolve(tenant),
                    schedule: config.schedule(tenant),
                }),
            )
        })
        .collect()
}

/// How a registered tenant is served: as its app, nightly in the host's zone; None when
/// the config no longer has its app.
pub(crate) fn registered_config(
    config: &ConfigFile,
    tenant: &m365sync_store::onboarding::RegisteredTenant,
) -> Option<ServedConfig> {
    let app = config.app(&tenant.app)?;
    Some(ServedConfig {
        run: crate::onboarding::registered_run(
            config,
            app,
            &tenant.name,
            &tenant.tenant_id,
            tenant.features,
        ),
        schedule: Schedule::nightly(config.host_zone()),
    })
}

/// What the store is told this worker serves.
fn served_list(tenants: &HashMap<String, Arc<ServedConfig>>) -> Vec<ServedTenant> {
    tenants
        .values()
        .map(|t| ServedTenant {
            tenant: t.run.tenant.key.clone(),
            app: t.run.tenant.client_id.clone(),
        })
        .collect()
}

/// This process as a worker: `host:pid:start`.
fn this_worker() -> WorkerInfo {
    let host = m365sync_store::model::host_name();
    let pid = std::process::id();
    let started_ms = now_ms();
    WorkerInfo {
        id: format!("{host}:{pid}:{started_ms}"),
        pid,
        host,
        started_ms,
        heartbeat_ms: started_ms,
    }
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A Unix-milliseconds time as RFC 3339 UTC (None for one out of range).
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(time::rfc3339)
}
