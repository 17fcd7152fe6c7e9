//! [`Secrets`], [`Assertions`], [`Store`], [`Log`] and [`Clock`] backed by the component's
//! WIT imports (`m365sync:engine/secrets`, `credentials`, `storage`, `log`) and WASI clocks.

use wasi::clocks::{monotonic_clock, wall_clock};

use crate::bindings::m365sync::engine::credentials::{self, CredentialError};
use crate::bindings::m365sync::engine::log::{self as wit_log, Level};
use crate::bindings::m365sync::engine::secrets::{self, SecretError};
use crate::bindings::m365sync::engine::storage::{self, StorageError};
use crate::platform::{Assertions, Clock, Log, Secrets, Store, rfc3339_utc};
use crate::types::{Batch, DataSet, MatchDecision, PersonKey, PlatformOrganization, StoredPerson};

pub struct WitSecrets;

impl Secrets for WitSecrets {
    fn get(&mut self, name: &str) -> Result<String, SecretError> {
        secrets::get(name)
    }
}

pub struct WitCredentials;

impl Assertions for WitCredentials {
    fn client_assertion(&mut self, audience: &str) -> Result<String, CredentialError> {
        credentials::client_assertion(audience)
    }
}

pub struct WitStore;

impl Store for WitStore {
    fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        storage::get_checkpoint(key)
    }

    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        storage::find_people(keys)
    }

    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        storage::list_people_ids(after, limit)
    }

    fn find_direct_reports(&mut self, manager_id: &str) -> Result<Vec<StoredPerson>, StorageError> {
        storage::find_direct_reports(manager_id)
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StorageError> {
        storage::commit(batch)
    }

    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        storage::list_organizations()
    }

    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError> {
        storage::create_organization(name)
    }

    fn get_decision(&mut self, tenant_key: &str) -> Result<Option<MatchDecision>, StorageError> {
        storage::get_decision(tenant_key)
    }

    fn put_decision(&mut self, decision: &MatchDecision) -> Result<(), StorageError> {
        storage::put_decision(decision)
    }
}

pub struct WitLog;

impl Log for WitLog {
    fn log(&mut self, level: Level, message: &str) {
        wit_log::log(level, message);
    }

    fn progress(&mut self, phase: DataSet, done: u64, total: Option<u64>) {
        wit_log::progress(phase, done, total);
    }
}

pub struct WasiClock;

impl Clock for WasiClock {
    fn now_ms(&self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }

    fn wall_rfc3339(&self) -> String {
        let now = wall_clock::now();
        rfc3339_utc(now.seconds, now.nanoseconds)
    }

    fn sleep_ms(&mut self, ms: u64) {
        monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    }
}
