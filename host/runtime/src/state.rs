//! The data of one sandbox (one tenant's run): WASI and wasi:http contexts, the allowlist,
//! limits, and the tenant-scoped capabilities. It implements the engine's imports by
//! delegating to the capability modules.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use m365sync_store::TenantStore;
use m365sync_wit::host::{credentials, log, secrets, storage, types};

use super::cancel::CancelToken;
use super::limits::RunLimiter;
use crate::capabilities::credentials::TenantCredentials;
use crate::capabilities::http::AllowlistHooks;
use crate::capabilities::log::EventSink;
use crate::capabilities::secrets::TenantSecrets;

pub struct RunState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) hooks: AllowlistHooks,
    pub(crate) limiter: RunLimiter,
    pub(crate) secrets: TenantSecrets,
    pub(crate) credentials: TenantCredentials,
    pub(crate) store: Box<dyn TenantStore>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) tenant_key: String,
    /// Once cancelled, the next batch is refused (the run's batch boundary).
    pub(crate) cancel: CancelToken,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl types::Host for RunState {}

impl secrets::Host for RunState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        Ok(self.secrets.get(&name))
    }
}

impl credentials::Host for RunState {
    fn client_assertion(
        &mut self,
        audience: String,
    ) -> wasmtime::Result<Result<String, credentials::CredentialError>> {
        Ok(self.credentials.client_assertion(&audience))
    }
}

impl storage::Host for RunState {
    async fn get_checkpoint(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, storage::StorageError>> {
        Ok(self.store.get_checkpoint(&key).await)
    }

    async fn find_people(
        &mut self,
        keys: Vec<types::PersonKey>,
    ) -> wasmtime::Result<Result<Vec<Option<types::StoredPerson>>, storage::StorageError>> {
        Ok(self.store.find_people(&keys).await)
    }

    async fn list_people_ids(
        &mut self,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, storage::StorageError>> {
        Ok(self.store.list_people_ids(after.as_deref(), limit).await)
    }

    async fn find_direct_reports(
        &mut self,
        manager_id: String,
    ) -> wasmtime::Result<Result<Vec<types::StoredPerson>, storage::StorageError>> {
        Ok(self.store.find_direct_reports(&manager_id).await)
    }

    async fn commit(
        &mut self,
        batch: types::Batch,
    ) -> wasmtime::Result<Result<(), storage::StorageError>> {
        // A cancelled run stops here, between two batches: this one is not applied, the
        // ones before stand, and the next run carries on from their checkpoints.
        if let Some(reason) = self.cancel.reason() {
            return Ok(Err(storage::StorageError::Cancelled(reason)));
        }
        Ok(self.store.commit(batch).await)
    }

    async fn list_organizations(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<types::PlatformOrganization>, storage::StorageError>> {
        Ok(self.store.list_organizations().await)
    }

    async fn create_organization(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<types::PlatformOrganization, storage::StorageError>> {
        Ok(self.store.create_organization(&name).await)
    }

    async fn get_decision(
        &mut self,
        tenant_key: String,
    ) -> wasmtime::Result<Result<Option<types::MatchDecision>, storage::StorageError>> {
        Ok(self.store.get_decision(&tenant_key).await)
    }

    async fn put_decision(
        &mut self,
        decision: types::MatchDecision,
    ) -> wasmtime::Result<Result<(), storage::StorageError>> {
        Ok(self.store.put_decision(decision).await)
    }
}

impl log::Host for RunState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.sink.log(&self.tenant_key, level, &message);
        Ok(())
    }

    fn progress(
        &mut self,
        phase: types::DataSet,
        done: u64,
        total: Option<u64>,
    ) -> wasmtime::Result<()> {
        self.sink.progress(&self.tenant_key, phase, done, total);
        Ok(())
    }
}
