//! The smallest embedding of the m365sync engine in Rust: load the component, give it
//! capabilities (HTTP to an allowlist, a secret, an in-memory store), run one sync of a
//! simulated tenant, print the report. No CLI, no SQLite.
//!
//! Run: `cargo run -p embed-rust`

use std::collections::BTreeMap;
use std::sync::Arc;

use m365sync::config::{SecretSource, TenantRun};
use m365sync::runtime::bindings::storage::StorageError;
use m365sync::runtime::bindings::types::{
    Batch, Change, Cloud, Endpoints, MatchDecision, PersonKey, PlatformOrganization, StoredPerson,
    Tenant, UpsertKind,
};
use m365sync::store::sqlite::normalise_key;
use m365sync::{RunLimits, Runtime, TenantStore, TracingSink, report};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

/// A store in memory: people by object id, checkpoints, the platform's organizations and
/// review decisions. `commit` applies a whole batch or, on a change it cannot store,
/// nothing of it.
#[derive(Default)]
struct MemoryStore {
    people: BTreeMap<String, StoredPerson>,
    checkpoints: BTreeMap<String, String>,
    organizations: Vec<PlatformOrganization>,
    decisions: BTreeMap<String, MatchDecision>,
}

impl TenantStore for MemoryStore {
    fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self.checkpoints.get(key).cloned())
    }
    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError> {
        Ok(keys
            .iter()
            .map(|key| match key {
                PersonKey::ObjectId(id) => self.people.get(id).cloned(),
                // Keys come normalised; stored values are normalised the same way.
                PersonKey::Email(mail) => self
                    .people
                    .values()
                    .find(|p| p.person.mail.as_deref().map(normalise_key).as_ref() == Some(mail))
                    .cloned(),
                PersonKey::UserPrincipalName(upn) => self
                    .people
                    .values()
                    .find(|p| normalise_key(&p.person.user_principal_name) == *upn)
                    .cloned(),
            })
            .collect())
    }
    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError> {
        let after = after.unwrap_or("");
        Ok(self
            .people
            .keys()
            .filter(|id| id.as_str() > after)
            .take(limit as usize)
            .cloned()
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
        // Check first, apply after: a batch is applied whole or not at all.
        if let Some(other) = batch
            .changes
            .iter()
            .find(|c| !matches!(c, Change::UpsertPerson(_) | Change::DeletePerson(_)))
        {
            return Err(StorageError::Invalid(format!(
                "this example stores people only, not {}",
                report::change_name(other)
            )));
        }
        for change in batch.changes {
            match change {
                Change::UpsertPerson(upsert) => {
                    // A link re-keys the record stored under the previous id: here the
                    // record is the value, so it moves to its new key.
                    if let (UpsertKind::Link, Some(previous)) =
                        (upsert.kind, &upsert.previous_object_id)
                    {
                        self.people.remove(previous);
                    }
                    let stored = upsert.stored;
                    self.people.insert(stored.person.object_id.clone(), stored);
                }
                Change::DeletePerson(id) => {
                    self.people.remove(&id);
                }
                _ => {}
            }
        }
        for checkpoint in batch.checkpoints {
            match checkpoint.value {
                Some(value) => self.checkpoints.insert(checkpoint.key, value),
                None => self.checkpoints.remove(&checkpoint.key),
            };
        }
        Ok(())
    }
    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError> {
        Ok(self.organizations.clone())
    }
    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StorageError::Invalid("organization name is empty".into()));
        }
        let organization = PlatformOrganization {
            id: format!("org-{}", self.organizations.len() + 1),
            name: name.to_string(),
        };
        self.organizations.push(organization.clone());
        Ok(organization)
    }
    fn get_decision(&mut self, tenant_key: &str) -> Result<Option<MatchDecision>, StorageError> {
        Ok(self.decisions.get(tenant_key).cloned())
    }
    fn put_decision(&mut self, decision: MatchDecision) -> Result<(), StorageError> {
        self.decisions.insert(decision.tenant_key.clone(), decision);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let simulator = Simulator::start(SimConfig::new(TenantSpec::new(1, 500))).await?;
    let credentials = simulator.credentials();
    let endpoints = Endpoints {
        login: simulator.login_url(),
        graph: simulator.graph_url(),
    };
    let run = TenantRun::new(
        Tenant {
            key: "example".into(),
            tenant_id: credentials.tenant_id,
            client_id: credentials.client_id,
            cloud: Cloud::Global,
            endpoints,
        },
        SecretSource::Value(credentials.client_secret),
    );

    let runtime = Runtime::new(RunLimits::default())?;
    let info = runtime.info().await?;
    println!("engine {} (WIT {})", info.engine_version, info.wit_version);
    let report = runtime
        .sync(
            &run,
            Box::new(MemoryStore::default()),
            Arc::new(TracingSink),
        )
        .await?;
    print!("{}", report::to_text(&report));
    simulator.shutdown().await;
    Ok(())
}
