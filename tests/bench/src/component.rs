//! The engine as a platform runs it: the component in the reference host (one sandbox per
//! run), into SQLite or into an in-memory store shaped like the native run's, so that the
//! component / native ratio compares the same work.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use m365sync::config::{SecretSource, TenantRun};
use m365sync::runtime::bindings::storage::StorageError;
use m365sync::runtime::bindings::types::{
    Batch, Change, Cloud, Endpoints, Features, MatchDecision, PersonKey, PlatformOrganization,
    StoredPerson, SyncMode, SyncReport, Tenant,
};
use m365sync::store::sqlite::normalise_key;
use m365sync::{EventSink, Runtime, SqliteStore, TenantStore};

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
    fn log(&self, _tenant: &str, _level: m365sync::runtime::bindings::log::Level, _message: &str) {}
    fn progress(
        &self,
        _tenant: &str,
        _phase: m365sync::runtime::bindings::types::DataSet,
        _done: u64,
        _total: Option<u64>,
    ) {
    }
}

pub async fn sync_sqlite(
    runtime: &Runtime,
    run: &TenantRun,
    db: &Path,
) -> anyhow::Result<SyncReport> {
    let store = SqliteStore::open(db, &run.tenant.key)?;
    Ok(runtime.sync(run, Box::new(store), Arc::new(Quiet)).await?)
}

pub async fn sync_memory(runtime: &Runtime, run: &TenantRun) -> anyhow::Result<SyncReport> {
    Ok(runtime
        .sync(run, Box::new(MemoryStore::default()), Arc::new(Quiet))
        .await?)
}

/// People by object id with email and UPN indexes (the native run's store, for the
/// host's types).
#[derive(Default)]
struct MemoryStore {
    /// Ordered: the engine pages through ids in order to find who is gone.
    people: BTreeMap<String, StoredPerson>,
    by_mail: HashMap<String, String>,
    by_upn: HashMap<String, String>,
    checkpoints: HashMap<String, String>,
}

impl TenantStore for MemoryStore {
    fn get_checkpoint(&mut self, k: &str) -> Result<Option<String>, StorageError> {
        Ok(self.checkpoints.get(k).cloned())
    }
    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        Ok(keys
            .iter()
            .map(|k| {
                let id = match k {
                    PersonKey::ObjectId(id) => Some(id),
                    PersonKey::Email(m) => self.by_mail.get(m),
                    PersonKey::UserPrincipalName(u) => self.by_upn.get(u),
                };
                id.and_then(|id| self.people.get(id)).cloned()
            })
            .collect())
    }
    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let range = match after {
            Some(a) => self.people.range::<str, _>((Excluded(a), Unbounded)),
            None => self.people.range::<str, _>(..),
        };
        Ok(range
            .take(limit as usize)
            .map(|(id, _)| id.clone())
            .collect())
    }
    fn find_direct_reports(&mut self, manager_id: &str) -> Result<Vec<StoredPerson>, StorageError> {
        Ok(self
            .people
            .values()
            .filter(|p| p.person.manager_id.as_deref() == Some(manager_id))
            .cloned()
            .collect())
    }
    fn commit(&mut self, batch: Batch) -> Result<(), StorageError> {
        for c in batch.changes {
            match c {
                Change::UpsertPerson(u) => {
                    if let Some(previous) = &u.previous_object_id {
                        self.people.remove(previous);
                    }
                    let p = u.stored;
                    if let Some(m) = &p.person.mail {
                        self.by_mail
                            .insert(normalise_key(m), p.person.object_id.clone());
                    }
                    self.by_upn.insert(
                        normalise_key(&p.person.user_principal_name),
                        p.person.object_id.clone(),
                    );
                    self.people.insert(p.person.object_id.clone(), p);
                }
                Change::DeletePerson(id) => {
                    self.people.remove(&id);
                }
                _ => {}
            }
        }
        for cp in batch.checkpoints {
            match cp.value {
                Some(v) => self.checkpoints.insert(cp.key, v),
                None => self.checkpoints.remove(&cp.key),
            };
        }
        Ok(())
    }
    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        Ok(Vec::new())
    }
    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError> {
        Err(StorageError::Invalid(format!(
            "the bench store keeps no organizations ({name})"
        )))
    }
    fn get_decision(&mut self, _: &str) -> Result<Option<MatchDecision>, StorageError> {
        Ok(None)
    }
    fn put_decision(&mut self, _: MatchDecision) -> Result<(), StorageError> {
        Ok(())
    }
}
