//! The embedding runtime: one shared wasmtime `Engine`, the component compiled once and
//! pre-instantiated, and a fresh `Store` per tenant run with its own capabilities, a memory
//! limit and a wall-clock budget (epoch interruption, plus a timeout for time spent in host
//! calls). A run that breaks its limits is stopped with a clear error; the runtime lives on.

mod cache;
mod cancel;
pub mod capabilities;
mod limits;
mod pool;
mod state;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::capabilities::credentials::TenantCredentials;
use crate::capabilities::http::AllowlistHooks;
pub use crate::capabilities::http::HttpSender;
use crate::capabilities::secrets::TenantSecrets;
pub mod error;

use bindings::{SyncEngine, SyncEnginePre};
use limits::RunLimiter;
use m365sync_config::TenantRun;
use m365sync_store::TenantStore;
use m365sync_wit::StorageError;
use m365sync_wit::host as bindings;
use m365sync_wit::types::{
    AppCredential, Batch, DelegatedRelationship, EngineInfo, Features, FieldMapping, MatchDecision,
    OrganizationMatch, Permission, PermissionCheck, PersonKey, PlatformOrganization, ReviewAction,
    StoredPerson, SyncError, SyncFailure, SyncPreview, SyncReport, SyncRequest,
};
use state::RunState;

/// The component this host was built with (see build.rs).
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("M365SYNC_COMPONENT"));

pub use cache::CacheOutcome;
pub use cancel::{CancelToken, DEFAULT_CANCEL_GRACE};
pub use capabilities::log::{EventSink, TracingSink};
pub use error::{EngineError, RunError};
pub use pool::SandboxAllocation;

/// The wasmtime engine every runtime uses: the component model, epoch interruption for
/// run deadlines, and the sandbox allocation `limits` ask for.
fn new_engine(limits: &RunLimits) -> Result<Engine, SetupError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    pool::configure(&mut config, limits.sandboxes, limits.memory_bytes);
    Engine::new(&config).map_err(|e| SetupError::Engine(e.to_string()))
}

/// The engine's request for a run of this tenant.
fn sync_request(run: &TenantRun) -> SyncRequest {
    SyncRequest {
        tenant: run.engine_tenant(),
        options: run.options.clone(),
    }
}

/// How often the epoch advances; the granularity of run deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How many epoch ticks running guest code goes between checks of its deadline and of its
/// cancellation (100 ms: a cancelled run past its grace period stops within that).
const DEADLINE_CHECK_TICKS: u64 = 10;

/// Limits of a runtime's sandboxes.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Linear memory a sandbox may use. With pooled sandboxes this is also the size of a
    /// pool slot: a run given a larger limit (`sync_with_limits`) still gets at most this.
    pub memory_bytes: usize,
    /// Wall-clock budget of one run.
    pub timeout: Duration,
    /// How sandboxes are allocated; fixed when the runtime is built (`sync_with_limits`
    /// ignores it).
    pub sandboxes: SandboxAllocation,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(30 * 60),
            sandboxes: SandboxAllocation::default(),
        }
    }
}

/// Errors setting the runtime up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot configure wasmtime: {0}")]
    Engine(String),
    #[error("cannot load the engine component: {0}")]
    Component(String),
    /// The component was built from a WIT version this host does not support.
    #[error(
        "the engine component implements m365sync:engine@{found}, but this host supports \
         {supported} (same minor version): use a component and host of one release"
    )]
    UnsupportedVersion {
        found: String,
        supported: &'static str,
    },
    /// The component could not say which version it is.
    #[error("the engine component could not report its version: {0}")]
    Info(String),
}

/// Compiled engine component, ready to run tenants.
pub struct Runtime {
    engine: Engine,
    pre: SyncEnginePre<RunState>,
    limits: RunLimits,
    slots: pool::Slots,
    http_sender: HttpSender,
    ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// A runtime for the component embedded in this binary.
    pub fn new(limits: RunLimits) -> Result<Runtime, SetupError> {
        Runtime::with_component(EMBEDDED_COMPONENT, limits)
    }

    /// A runtime for the given component bytes (a `.wasm` component).
    pub fn with_component(component: &[u8], limits: RunLimits) -> Result<Runtime, SetupError> {
        let engine = new_engine(&limits)?;
        let component = Component::new(&engine, component)
            .map_err(|e| SetupError::Component(format!("{e:#}")))?;
        Runtime::build(engine, component, limits)
    }

    /// A runtime for the embedded component, loaded compiled from `cache_dir` when it was
    /// compiled before by this host version (milliseconds instead of a Cranelift compile),
    /// else compiled and stored there.
    pub fn cached(
        cache_dir: &std::path::Path,
        limits: RunLimits,
    ) -> Result<(Runtime, CacheOutcome), SetupError> {
        let engine = new_engine(&limits)?;
        let (component, outcome) = cache::load(&engine, EMBEDDED_COMPONENT, cache_dir)?;
        Ok((Runtime::build(engine, component, limits)?, outcome))
    }

    fn build(
        engine: Engine,
        component: Component,
        limits: RunLimits,
    ) -> Result<Runtime, SetupError> {
        let mut linker: Linker<RunState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        // The engine's own imports; WASI and wasi:http were added above.
        let engine_imports = [
            bindings::secrets::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |state| state),
            bindings::credentials::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |state| {
                state
            }),
            bindings::storage::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |state| state),
            bindings::log::add_to_linker::<_, HasSelf<RunState>>(&mut linker, |state| state),
        ];
        for added in engine_imports {
            added.map_err(|e| SetupError::Engine(format!("{e:#}")))?;
        }
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| SetupError::Component(format!("{e:#}")))?;
        let pre = SyncEnginePre::new(pre).map_err(|e| SetupError::Component(format!("{e:#}")))?;
        let ticker = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker.clone());
        Ok(Runtime {
            engine,
            pre,
            limits,
            slots: pool::Slots::new(limits.sandboxes),
            http_sender: HttpSender::default(),
            ticker,
        })
    }

    pub fn limits(&self) -> RunLimits {
        self.limits
    }

    /// How runs send the requests their allowlist lets through: [`HttpSender::Pooled`]
    /// (the default: kept-alive connections, one pool per run) or
    /// [`HttpSender::PerRequest`] (wasmtime's default sender, a connection per request).
    /// Applies to runs started afterwards.
    pub fn set_http_sender(&mut self, sender: HttpSender) {
        self.http_sender = sender;
    }

    /// This runtime with `sender` for its runs (see [`Runtime::set_http_sender`]).
    pub fn with_http_sender(mut self, sender: HttpSender) -> Runtime {
        self.http_sender = sender;
        self
    }

    pub fn http_sender(&self) -> HttpSender {
        self.http_sender
    }

    /// Makes a sandbox and instantiates the component in it, calling nothing: a service's
    /// health check (the pool has a slot, the component instantiates), and what every
    /// run costs before its first call.
    pub async fn instantiate_check(&self) -> Result<(), RunError> {
        let mut sandbox = self
            .sandbox(&TenantRun::nothing(), Box::new(NoStore), no_sink())
            .await?;
        sandbox.instantiate(&self.pre).await.map(drop)
    }

    /// The component's versions and features, once it is known that this host supports
    /// the WIT version the component was built from; a host calls it before any run.
    pub async fn checked_info(&self) -> Result<EngineInfo, SetupError> {
        let info = self
            .info()
            .await
            .map_err(|e| SetupError::Info(e.to_string()))?;
        if !m365sync_wit::version::supports(&info.wit_version) {
            return Err(SetupError::UnsupportedVersion {
                found: info.wit_version,
                supported: m365sync_wit::version::WIT_VERSION,
            });
        }
        Ok(info)
    }

    /// The component's versions and implemented features.
    pub async fn info(&self) -> Result<EngineInfo, RunError> {
        self.call(Call::stateless("info", self.limits), |engine, store| {
            Box::pin(engine.call_info(store))
        })
        .await
    }

    /// The permissions the features need.
    pub async fn required_permissions(
        &self,
        features: Features,
    ) -> Result<Vec<Permission>, RunError> {
        self.call(
            Call::stateless("required-permissions", self.limits),
            |engine, store| Box::pin(engine.call_required_permissions(store, features)),
        )
        .await
    }

    /// Sign in as the tenant's app and compare granted roles with what the features need.
    pub async fn check_permissions(
        &self,
        run: &TenantRun,
        sink: Arc<dyn EventSink>,
    ) -> Result<PermissionCheck, RunError> {
        let call = Call::new(
            "check-permissions",
            run,
            Box::new(NoStore),
            sink,
            self.limits,
        );
        let (tenant, features) = (run.engine_tenant(), run.options.features);
        self.call(call, move |engine, store| {
            Box::pin(async move {
                engine
                    .call_check_permissions(store, &tenant, features)
                    .await
            })
        })
        .await
    }

    /// Sign in to the partner tenant `run` names and list its delegated admin relationships
    /// with customers (every page).
    pub async fn partner_relationships(
        &self,
        run: &TenantRun,
        sink: Arc<dyn EventSink>,
    ) -> Result<Vec<DelegatedRelationship>, RunError> {
        let call = Call::new(
            "partner-relationships",
            run,
            Box::new(NoStore),
            sink,
            self.limits,
        );
        let tenant = run.engine_tenant();
        self.call(call, move |engine, store| {
            Box::pin(async move { engine.call_partner_relationships(store, &tenant).await })
        })
        .await
    }

    /// Sign in to the app's home tenant `run` names and read the app registration's own
    /// credentials (secrets and certificates) with their end dates.
    pub async fn app_credentials(
        &self,
        run: &TenantRun,
        sink: Arc<dyn EventSink>,
    ) -> Result<Vec<AppCredential>, RunError> {
        let call = Call::new("app-credentials", run, Box::new(NoStore), sink, self.limits);
        let tenant = run.engine_tenant();
        self.call(call, move |engine, store| {
            Box::pin(async move { engine.call_app_credentials(store, &tenant).await })
        })
        .await
    }

    /// Run one sync of one tenant into `store`, within the runtime's limits.
    pub async fn sync(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<SyncReport, RunError> {
        self.sync_with_limits(run, store, sink, self.limits).await
    }

    /// Run one sync with limits of its own (a large tenant may need more memory or time).
    pub async fn sync_with_limits(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
        limits: RunLimits,
    ) -> Result<SyncReport, RunError> {
        self.sync_cancellable(run, store, sink, limits, &CancelToken::new())
            .await
    }

    /// Run one sync that `cancel` can stop (see [`CancelToken`]): once it is cancelled the
    /// next `commit` is refused with `storage-error.cancelled`, the engine stops and fails
    /// with `sync-error.cancelled` (and the report of what it did); a run that reaches no
    /// batch boundary within the token's grace period is stopped and fails with
    /// `cancelled` too, without a report.
    pub async fn sync_cancellable(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
        limits: RunLimits,
        cancel: &CancelToken,
    ) -> Result<SyncReport, RunError> {
        let request = sync_request(run);
        let call = Call::new("sync", run, store, sink, limits).cancelled_by(cancel);
        self.call(call, move |engine, store| {
            Box::pin(async move { engine.call_sync(store, &request).await })
        })
        .await
    }

    /// What a sync of the tenant would do, account by account, committing nothing (the
    /// engine runs the users phase as a full dry run). `store` is only read.
    pub async fn preview(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<SyncPreview, RunError> {
        let request = sync_request(run);
        let call = Call::new("preview", run, store, sink, self.limits);
        self.call(call, move |engine, store| {
            Box::pin(async move { engine.call_preview(store, &request).await })
        })
        .await
    }

    /// The field map a run uses: the engine's default map with `overrides` applied. Fails
    /// with the engine's `invalid-request` naming an unknown Graph property.
    pub async fn field_map(
        &self,
        overrides: &[FieldMapping],
    ) -> Result<Vec<FieldMapping>, RunError> {
        let overrides = overrides.to_vec();
        self.call(
            Call::stateless("field-map", self.limits),
            move |engine, store| {
                Box::pin(async move { engine.call_field_map(store, &overrides).await })
            },
        )
        .await
    }

    /// The tenant's organization match (state, matched organization, ranked suggestions),
    /// from what `store` holds.
    pub async fn review_organization(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<OrganizationMatch, RunError> {
        let call = Call::new("review-organization", run, store, sink, self.limits);
        let tenant = run.engine_tenant();
        self.call(call, move |engine, store| {
            Box::pin(async move { engine.call_review_organization(store, &tenant).await })
        })
        .await
    }

    /// Apply a reviewer's decision on the tenant's organization match and return the
    /// resulting match. The engine stores the decision (and creates an organization for
    /// `create`) through `store`.
    pub async fn decide_organization(
        &self,
        run: &TenantRun,
        action: &ReviewAction,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<OrganizationMatch, RunError> {
        let call = Call::new("decide-organization", run, store, sink, self.limits);
        let (tenant, action) = (run.engine_tenant(), action.clone());
        self.call(call, move |engine, store| {
            Box::pin(async move {
                engine
                    .call_decide_organization(store, &tenant, &action)
                    .await
            })
        })
        .await
    }

    /// Every engine call goes this one way: a fresh sandbox with the call's capabilities,
    /// the component instantiated, the export called within the run's budget (and its
    /// cancellation's grace period), the outcome explained, and the tenant's store finished
    /// (what it defers committed, its lock released). A store that cannot finish makes a
    /// successful call a failed one.
    async fn call<R: EngineReturn>(
        &self,
        call: Call<'_>,
        invoke: impl for<'s> FnOnce(
            &'s bindings::EngineExports,
            &'s mut Store<RunState>,
        ) -> BoxedCall<'s, R>,
    ) -> Result<R::Value, RunError> {
        let Call {
            name,
            run,
            store,
            sink,
            limits,
            cancel,
        } = call;
        let mut sandbox = self
            .sandbox_with(run, store, sink, limits, cancel.clone())
            .await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let limits = sandbox.limits;
        let result = {
            let timed = limits.timeout_call(invoke(
                instance.m365sync_engine_engine(),
                &mut sandbox.store,
            ));
            // A call waiting in the host (an HTTP response) is not interrupted by epochs:
            // past the grace period it is dropped, which stops the sandbox.
            tokio::select! {
                result = timed => result,
                () = cancel.grace_over() => Err(wasmtime::Error::new(Trap::Interrupt)),
            }
        };
        let outcome = sandbox.finish_failure(result.map(R::split), name);
        let finished = sandbox.store.data_mut().store.finish().await;
        match (outcome, finished) {
            (Ok(value), Err(error)) => Err(RunError::Engine {
                tenant: run.tenant.key.clone(),
                error: EngineError(SyncError::Storage(
                    m365sync_wit::storage_message(&error).to_string(),
                )),
                report: R::report_of(&value).map(Box::new),
            }),
            (outcome, _) => outcome,
        }
    }

    async fn sandbox(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Sandbox, RunError> {
        self.sandbox_with(run, store, sink, self.limits, CancelToken::new())
            .await
    }

    async fn sandbox_with(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
        mut limits: RunLimits,
        cancel: CancelToken,
    ) -> Result<Sandbox, RunError> {
        if let SandboxAllocation::Pooled(_) = self.limits.sandboxes {
            // A pool slot holds no larger memory.
            limits.memory_bytes = limits.memory_bytes.min(self.limits.memory_bytes);
        }
        let slot = self.slots.acquire().await;
        // The budget runs from here: waiting for a pool slot is not the run's time.
        let deadline = Instant::now() + limits.timeout;
        // The guest's stderr is kept (bounded) to explain a crash; it never sees a secret it
        // could print, because it logs through the log interface.
        let stderr = MemoryOutputPipe::new(16 * 1024);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .build();
        let state = RunState {
            wasi,
            http: WasiHttpCtx::new(),
            table: Default::default(),
            hooks: AllowlistHooks::with_sender(run.allowlist.clone(), self.http_sender)
                .with_deadline(deadline),
            limiter: RunLimiter::new(limits.memory_bytes),
            secrets: TenantSecrets::new(run.credential.client_secret().cloned()),
            credentials: TenantCredentials::new(
                &run.tenant.client_id,
                run.credential.clone(),
                format!(
                    "{}/{}/oauth2/v2.0/token",
                    run.tenant.endpoints.login, run.tenant.tenant_id
                ),
            ),
            store,
            sink,
            tenant_key: run.tenant.key.clone(),
            cancel: cancel.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Running guest code is checked every few ticks: past its budget, or past the grace
        // period of a cancellation, it traps.
        let checked = cancel.clone();
        store.set_epoch_deadline(ticks_until(deadline).clamp(1, DEADLINE_CHECK_TICKS));
        store.epoch_deadline_callback(move |_| {
            let left = ticks_until(deadline);
            if left == 0 || checked.grace_expired() {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(left.min(DEADLINE_CHECK_TICKS)))
        });
        Ok(Sandbox {
            store,
            stderr,
            limits,
            tenant: run.tenant.key.clone(),
            cancel,
            _slot: slot,
        })
    }
}

/// One run's store and what is needed to explain how it ended.
struct Sandbox {
    store: Store<RunState>,
    stderr: MemoryOutputPipe,
    limits: RunLimits,
    tenant: String,
    cancel: CancelToken,
    /// The pool slot the store's instance occupies; released after the store is dropped
    /// (fields drop in order).
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl RunLimits {
    /// Bound a call by the run's budget even while the guest waits in a host call, where
    /// epochs cannot interrupt it.
    async fn timeout_call<T>(
        &self,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
        }
    }
}

impl Sandbox {
    async fn instantiate(&mut self, pre: &SyncEnginePre<RunState>) -> Result<SyncEngine, RunError> {
        let result = pre.instantiate_async(&mut self.store).await;
        self.finish(result, "instantiate")
    }

    fn finish<T>(&mut self, result: wasmtime::Result<T>, call: &str) -> Result<T, RunError> {
        result.map_err(|error| self.explain(error, call))
    }

    /// An engine call's outcome: its value, the engine's error (with the report of what
    /// the run did, for `sync`), or how the host stopped it.
    fn finish_failure<T>(
        &mut self,
        result: wasmtime::Result<Result<T, EngineFailure>>,
        call: &str,
    ) -> Result<T, RunError> {
        match self.finish(result, call)? {
            Ok(value) => Ok(value),
            Err((error, report)) => Err(RunError::Engine {
                tenant: self.tenant.clone(),
                error: EngineError(error),
                report,
            }),
        }
    }

    fn explain(&mut self, error: wasmtime::Error, call: &str) -> RunError {
        let tenant = self.tenant.clone();
        if self.store.data().limiter.exceeded() {
            return RunError::MemoryLimit {
                tenant,
                limit_mib: self.limits.memory_bytes >> 20,
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) && self.cancel.grace_expired() {
            let reason = self.cancel.reason().unwrap_or_default();
            return RunError::Engine {
                tenant,
                error: EngineError(bindings::types::SyncError::Cancelled(format!(
                    "{reason}; the run reached no batch boundary within {} s and was stopped",
                    self.cancel.grace().as_secs_f64()
                ))),
                report: None,
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return RunError::Deadline {
                tenant,
                seconds: self.limits.timeout.as_secs_f64(),
            };
        }
        let stderr = String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string();
        let detail = if stderr.is_empty() {
            format!("{error:#}")
        } else {
            format!("{error:#}; component said: {stderr}")
        };
        RunError::Crashed {
            tenant,
            call: call.to_string(),
            detail,
        }
    }
}

/// Epoch ticks from now until `deadline` (0 once it has passed).
fn ticks_until(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    (left.as_millis() / EPOCH_TICK.as_millis()) as u64
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("m365sync-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .ok();
}

fn no_sink() -> Arc<dyn EventSink> {
    Arc::new(crate::capabilities::log::TracingSink)
}

/// The engine's error, with the report of what the run did when the call was a sync.
type EngineFailure = (bindings::types::SyncError, Option<Box<SyncReport>>);

/// An export's call in flight, borrowing the sandbox's store.
type BoxedCall<'s, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 's>>;

/// What an engine call needs besides the export: its name (for errors), the tenant's run
/// and capabilities, limits, and what can stop it.
struct Call<'a> {
    name: &'static str,
    run: &'a TenantRun,
    store: Box<dyn TenantStore>,
    sink: Arc<dyn EventSink>,
    limits: RunLimits,
    cancel: CancelToken,
}

/// The run of calls that need no tenant (info, permissions, the field map).
static NO_TENANT: std::sync::LazyLock<TenantRun> = std::sync::LazyLock::new(TenantRun::nothing);

impl<'a> Call<'a> {
    fn new(
        name: &'static str,
        run: &'a TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
        limits: RunLimits,
    ) -> Call<'a> {
        Call {
            name,
            run,
            store,
            sink,
            limits,
            cancel: CancelToken::new(),
        }
    }

    /// A call that needs no tenant, storage or events.
    fn stateless(name: &'static str, limits: RunLimits) -> Call<'static> {
        Call::new(name, &NO_TENANT, Box::new(NoStore), no_sink(), limits)
    }

    fn cancelled_by(mut self, cancel: &CancelToken) -> Call<'a> {
        self.cancel = cancel.clone();
        self
    }
}

/// What an export returns, split into its value or the engine's failure.
trait EngineReturn: Send {
    type Value;
    fn split(self) -> Result<Self::Value, EngineFailure>;
    /// The report a value carries (a sync's), for a failure after it.
    fn report_of(_value: &Self::Value) -> Option<SyncReport> {
        None
    }
}

impl EngineReturn for EngineInfo {
    type Value = EngineInfo;
    fn split(self) -> Result<EngineInfo, EngineFailure> {
        Ok(self)
    }
}

impl EngineReturn for Vec<Permission> {
    type Value = Vec<Permission>;
    fn split(self) -> Result<Vec<Permission>, EngineFailure> {
        Ok(self)
    }
}

impl<T: Send> EngineReturn for Result<T, SyncError> {
    type Value = T;
    fn split(self) -> Result<T, EngineFailure> {
        self.map_err(|error| (error, None))
    }
}

impl EngineReturn for Result<SyncReport, SyncFailure> {
    type Value = SyncReport;
    fn split(self) -> Result<SyncReport, EngineFailure> {
        self.map_err(|failure| (failure.error, Some(Box::new(failure.report))))
    }
    fn report_of(report: &SyncReport) -> Option<SyncReport> {
        Some(report.clone())
    }
}

/// Storage for calls that need none (info, permissions): every call is refused.
struct NoStore;

#[async_trait::async_trait]
impl TenantStore for NoStore {
    async fn get_checkpoint(&mut self, _: &str) -> Result<Option<String>, StorageError> {
        Err(no_storage())
    }
    async fn find_people(
        &mut self,
        _: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        Err(no_storage())
    }
    async fn list_people_ids(
        &mut self,
        _: Option<&str>,
        _: u32,
    ) -> Result<Vec<String>, StorageError> {
        Err(no_storage())
    }
    async fn find_direct_reports(&mut self, _: &str) -> Result<Vec<StoredPerson>, StorageError> {
        Err(no_storage())
    }
    async fn commit(&mut self, _: Batch) -> Result<(), StorageError> {
        Err(no_storage())
    }
    async fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        Err(no_storage())
    }
    async fn create_organization(&mut self, _: &str) -> Result<PlatformOrganization, StorageError> {
        Err(no_storage())
    }
    async fn get_decision(&mut self, _: &str) -> Result<Option<MatchDecision>, StorageError> {
        Err(no_storage())
    }
    async fn put_decision(&mut self, _: MatchDecision) -> Result<(), StorageError> {
        Err(no_storage())
    }
    async fn finish(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

fn no_storage() -> StorageError {
    StorageError::Unavailable("this call has no storage".to_string())
}
