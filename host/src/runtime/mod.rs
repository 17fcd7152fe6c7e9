//! The embedding runtime: one shared wasmtime `Engine`, the component compiled once and
//! pre-instantiated, and a fresh `Store` per tenant run with its own capabilities, a memory
//! limit and a wall-clock budget (epoch interruption, plus a timeout for time spent in host
//! calls). A run that breaks its limits is stopped with a clear error; the runtime lives on.

pub mod bindings;
mod cache;
mod cancel;
mod limits;
mod pool;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::capabilities::http::AllowlistHooks;
pub use crate::capabilities::http::HttpSender;
use crate::capabilities::log::EventSink;
use crate::capabilities::secrets::TenantSecrets;
use crate::capabilities::storage::TenantStore;
use crate::config::TenantRun;
use crate::error::{EngineError, RunError};
use bindings::types::{
    EngineInfo, Features, FieldMapping, OrganizationMatch, Permission, PermissionCheck,
    ReviewAction, SyncPreview, SyncReport, SyncRequest,
};
use bindings::{SyncEngine, SyncEnginePre};
use limits::RunLimiter;
use state::RunState;

/// The component this host was built with (see build.rs).
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("M365SYNC_COMPONENT"));

pub use cache::CacheOutcome;
pub use cancel::{CancelToken, DEFAULT_CANCEL_GRACE};
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
        tenant: run.tenant.clone(),
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

    /// The component's versions and implemented features.
    pub async fn info(&self) -> Result<EngineInfo, RunError> {
        let mut sandbox = self
            .sandbox(&TenantRun::nothing(), Box::new(NoStore), no_sink())
            .await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let result = instance
            .m365sync_engine_engine()
            .call_info(&mut sandbox.store)
            .await;
        sandbox.finish(result, "info")
    }

    /// The permissions the features need.
    pub async fn required_permissions(
        &self,
        features: Features,
    ) -> Result<Vec<Permission>, RunError> {
        let mut sandbox = self
            .sandbox(&TenantRun::nothing(), Box::new(NoStore), no_sink())
            .await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let result = instance
            .m365sync_engine_engine()
            .call_required_permissions(&mut sandbox.store, features)
            .await;
        sandbox.finish(result, "required-permissions")
    }

    /// Sign in as the tenant's app and compare granted roles with what the features need.
    pub async fn check_permissions(
        &self,
        run: &TenantRun,
        sink: Arc<dyn EventSink>,
    ) -> Result<PermissionCheck, RunError> {
        let mut sandbox = self.sandbox(run, Box::new(NoStore), sink).await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let call = instance.m365sync_engine_engine().call_check_permissions(
            &mut sandbox.store,
            &run.tenant,
            run.options.features,
        );
        let result = sandbox.limits.timeout_call(call).await;
        sandbox.finish_engine(result, "check-permissions")
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
        let mut sandbox = self
            .sandbox_with(run, store, sink, limits, cancel.clone())
            .await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let request = sync_request(run);
        let call = instance
            .m365sync_engine_engine()
            .call_sync(&mut sandbox.store, &request);
        let timed = sandbox.limits.timeout_call(call);
        // A call waiting in the host (an HTTP response) is not interrupted by epochs: past
        // the grace period it is dropped, which stops the sandbox.
        let result = tokio::select! {
            result = timed => result,
            () = cancel.grace_over() => Err(wasmtime::Error::new(Trap::Interrupt)),
        };
        // A failure carries the report of what the run did until then.
        let result = result.map(|r| r.map_err(|f| (f.error, Some(Box::new(f.report)))));
        sandbox.finish_failure(result, "sync")
    }

    /// What a sync of the tenant would do, account by account, committing nothing (the
    /// engine runs the users phase as a full dry run). `store` is only read.
    pub async fn preview(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<SyncPreview, RunError> {
        let mut sandbox = self.sandbox(run, store, sink).await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let request = sync_request(run);
        let call = instance
            .m365sync_engine_engine()
            .call_preview(&mut sandbox.store, &request);
        let result = sandbox.limits.timeout_call(call).await;
        sandbox.finish_engine(result, "preview")
    }

    /// The field map a run uses: the engine's default map with `overrides` applied. Fails
    /// with the engine's `invalid-request` naming an unknown Graph property.
    pub async fn field_map(
        &self,
        overrides: &[FieldMapping],
    ) -> Result<Vec<FieldMapping>, RunError> {
        let mut sandbox = self
            .sandbox(&TenantRun::nothing(), Box::new(NoStore), no_sink())
            .await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let call = instance
            .m365sync_engine_engine()
            .call_field_map(&mut sandbox.store, overrides);
        let result = sandbox.limits.timeout_call(call).await;
        sandbox.finish_engine(result, "field-map")
    }

    /// The tenant's organization match (state, matched organization, ranked suggestions),
    /// from what `store` holds.
    pub async fn review_organization(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<OrganizationMatch, RunError> {
        let mut sandbox = self.sandbox(run, store, sink).await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let call = instance
            .m365sync_engine_engine()
            .call_review_organization(&mut sandbox.store, &run.tenant);
        let result = sandbox.limits.timeout_call(call).await;
        sandbox.finish_engine(result, "review-organization")
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
        let mut sandbox = self.sandbox(run, store, sink).await?;
        let instance = sandbox.instantiate(&self.pre).await?;
        let call = instance.m365sync_engine_engine().call_decide_organization(
            &mut sandbox.store,
            &run.tenant,
            action,
        );
        let result = sandbox.limits.timeout_call(call).await;
        sandbox.finish_engine(result, "decide-organization")
    }

    async fn sandbox(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Sandbox, RunError> {
        self.sandbox_with_limits(run, store, sink, self.limits)
            .await
    }

    async fn sandbox_with_limits(
        &self,
        run: &TenantRun,
        store: Box<dyn TenantStore>,
        sink: Arc<dyn EventSink>,
        limits: RunLimits,
    ) -> Result<Sandbox, RunError> {
        self.sandbox_with(run, store, sink, limits, CancelToken::new())
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
            secrets: TenantSecrets::new(run.client_secret.clone()),
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

    fn finish_engine<T>(
        &mut self,
        result: wasmtime::Result<Result<T, bindings::types::SyncError>>,
        call: &str,
    ) -> Result<T, RunError> {
        self.finish_failure(result.map(|r| r.map_err(|e| (e, None))), call)
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

/// Storage for calls that need none (info, permissions): every call is refused.
struct NoStore;

impl TenantStore for NoStore {
    fn get_checkpoint(
        &mut self,
        _: &str,
    ) -> Result<Option<String>, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn find_people(
        &mut self,
        _: &[bindings::types::PersonKey],
    ) -> Result<Vec<Option<bindings::types::StoredPerson>>, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn list_people_ids(
        &mut self,
        _: Option<&str>,
        _: u32,
    ) -> Result<Vec<String>, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn find_direct_reports(
        &mut self,
        _: &str,
    ) -> Result<Vec<bindings::types::StoredPerson>, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn commit(&mut self, _: bindings::types::Batch) -> Result<(), bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn list_organizations(
        &mut self,
    ) -> Result<Vec<bindings::types::PlatformOrganization>, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn create_organization(
        &mut self,
        _: &str,
    ) -> Result<bindings::types::PlatformOrganization, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn get_decision(
        &mut self,
        _: &str,
    ) -> Result<Option<bindings::types::MatchDecision>, bindings::storage::StorageError> {
        Err(no_storage())
    }
    fn put_decision(
        &mut self,
        _: bindings::types::MatchDecision,
    ) -> Result<(), bindings::storage::StorageError> {
        Err(no_storage())
    }
}

fn no_storage() -> bindings::storage::StorageError {
    bindings::storage::StorageError::Unavailable("this call has no storage".to_string())
}
