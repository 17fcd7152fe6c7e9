//! The exported `m365sync:engine/engine` interface: builds the environment from the
//! component's imports and hands each call to the plain modules.

use crate::bindings::exports::m365sync::engine::engine::Guest;
use crate::engine;
use crate::imports::{WasiClock, WitCredentials, WitLog, WitSecrets, WitStore};
use crate::platform::Env;
use crate::types::{
    AppCredential, DelegatedRelationship, EngineInfo, Features, FieldMapping, OrganizationMatch,
    Permission, PermissionCheck, ReviewAction, SyncError, SyncFailure, SyncPreview, SyncReport,
    SyncRequest, Tenant,
};
use crate::wasi_http::WasiHttp;

pub struct Component;

fn with_env<R>(f: impl FnOnce(&mut Env<'_>) -> R) -> R {
    let (mut http, mut secrets, mut credentials, mut store, mut log, mut clock) = (
        WasiHttp,
        WitSecrets,
        WitCredentials,
        WitStore,
        WitLog,
        WasiClock,
    );
    let mut env = Env {
        http: &mut http,
        secrets: &mut secrets,
        credentials: &mut credentials,
        store: &mut store,
        log: &mut log,
        clock: &mut clock,
    };
    f(&mut env)
}

impl Guest for Component {
    fn info() -> EngineInfo {
        engine::info()
    }

    fn required_permissions(features: Features) -> Vec<Permission> {
        engine::required_permissions(features)
    }

    fn check_permissions(tenant: Tenant, features: Features) -> Result<PermissionCheck, SyncError> {
        with_env(|env| engine::check_permissions(env, &tenant, features))
    }

    fn sync(request: SyncRequest) -> Result<SyncReport, SyncFailure> {
        with_env(|env| engine::sync(env, &request)).map_err(|failure| *failure)
    }

    fn preview(request: SyncRequest) -> Result<SyncPreview, SyncError> {
        with_env(|env| engine::preview(env, &request))
    }

    fn field_map(overrides: Vec<FieldMapping>) -> Result<Vec<FieldMapping>, SyncError> {
        engine::field_map(&overrides)
    }

    fn review_organization(tenant: Tenant) -> Result<OrganizationMatch, SyncError> {
        with_env(|env| engine::review_organization(env, &tenant))
    }

    fn decide_organization(
        tenant: Tenant,
        action: ReviewAction,
    ) -> Result<OrganizationMatch, SyncError> {
        with_env(|env| engine::decide_organization(env, &tenant, &action))
    }

    fn partner_relationships(partner: Tenant) -> Result<Vec<DelegatedRelationship>, SyncError> {
        with_env(|env| engine::partner_relationships(env, &partner))
    }

    fn app_credentials(tenant: Tenant) -> Result<Vec<AppCredential>, SyncError> {
        with_env(|env| engine::app_credentials(env, &tenant))
    }
}
