//! The engine's logic compiled natively, for the component / native ratio: the guest
//! crate's plain-Rust sync called directly, with native HTTP (ureq, kept-alive) and an
//! in-memory store; the same work the component does through the host, minus WebAssembly
//! and the host's copies of every value across the component boundary.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use m365sync_guest::bindings::m365sync::engine::credentials::CredentialError;
use m365sync_guest::bindings::m365sync::engine::log::Level;
use m365sync_guest::bindings::m365sync::engine::secrets::SecretError;
use m365sync_guest::bindings::m365sync::engine::storage::StorageError;
use m365sync_guest::normalize::{email_key, upn_key};
use m365sync_guest::platform::{HttpRequest, HttpResponse, Method, TransportError};
use m365sync_guest::types::{
    AccountFilter, Batch, Change, Cloud, CredentialKind, DataSet, Endpoints, Features,
    MatchDecision, MatchKey, PersonKey, PlatformOrganization, RemovalGuard, RemovalPolicy,
    StoredPerson, SyncMode, SyncOptions, SyncReport, SyncRequest, Tenant,
};
use m365sync_guest::{Assertions, Clock, Env, Http, Log, Secrets, Store};

use crate::server::Endpoints as Sim;

struct UreqHttp(ureq::Agent);

impl Http for UreqHttp {
    fn send(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let result = match req.method {
            Method::Get => {
                let mut r = self.0.get(&req.url);
                for (k, v) in &req.headers {
                    r = r.header(k, v);
                }
                r.call()
            }
            Method::Post => {
                let mut r = self.0.post(&req.url);
                for (k, v) in &req.headers {
                    r = r.header(k, v);
                }
                r.send(req.body.as_deref().unwrap_or_default())
            }
        };
        let mut response = result.map_err(|e| TransportError::Connect(e.to_string()))?;
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        Ok(HttpResponse {
            status: response.status().as_u16(),
            headers,
            body,
        })
    }
}

struct Secret(String);

impl Secrets for Secret {
    fn get(&mut self, _name: &str) -> Result<String, SecretError> {
        Ok(self.0.clone())
    }
}

/// The bench signs in with a client secret: no assertions.
struct NoAssertions;

impl Assertions for NoAssertions {
    fn client_assertion(&mut self, _audience: &str) -> Result<String, CredentialError> {
        Err(CredentialError::NotConfigured(
            "the bench signs in with a client secret".into(),
        ))
    }
}

struct Quiet;

impl Log for Quiet {
    fn log(&mut self, _level: Level, _message: &str) {}
    fn progress(&mut self, _phase: DataSet, _done: u64, _total: Option<u64>) {}
}

struct SystemClock(Instant);

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
    fn wall_rfc3339(&self) -> String {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        m365sync_guest::platform::rfc3339_utc(d.as_secs(), d.subsec_nanos())
    }
    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// People by object id, with the email and UPN keys indexed like a database would.
#[derive(Default)]
pub struct MemoryStore {
    /// Ordered: the engine pages through ids in order to find who is gone.
    people: BTreeMap<String, StoredPerson>,
    by_mail: HashMap<String, String>,
    by_upn: HashMap<String, String>,
    checkpoints: HashMap<String, String>,
}

impl MemoryStore {
    pub fn len(&self) -> usize {
        self.people.len()
    }

    fn put(&mut self, p: StoredPerson) {
        // Indexed by the engine's own keys, as `find-people` is asked for them.
        if let Some(m) = p.person.mail.as_deref().and_then(email_key) {
            self.by_mail.insert(m, p.person.object_id.clone());
        }
        if let Some(u) = upn_key(&p.person.user_principal_name) {
            self.by_upn.insert(u, p.person.object_id.clone());
        }
        self.people.insert(p.person.object_id.clone(), p);
    }
}

impl Store for MemoryStore {
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
    fn commit(&mut self, batch: &Batch) -> Result<(), StorageError> {
        for c in &batch.changes {
            match c {
                Change::UpsertPerson(u) => {
                    if let Some(previous) = &u.previous_object_id {
                        self.people.remove(previous);
                    }
                    self.put(u.stored.clone());
                }
                Change::DeletePerson(id) => {
                    self.people.remove(id);
                }
                _ => {}
            }
        }
        for cp in &batch.checkpoints {
            match &cp.value {
                Some(v) => self.checkpoints.insert(cp.key.clone(), v.clone()),
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
    fn put_decision(&mut self, _: &MatchDecision) -> Result<(), StorageError> {
        Ok(())
    }
}

/// One native sync of the simulated tenant (users + licences) into `store`.
pub fn sync(sim: &Sim, store: &mut MemoryStore, mode: SyncMode) -> anyhow::Result<SyncReport> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let (mut http, mut secrets, mut log, mut clock) = (
        UreqHttp(agent),
        Secret(sim.client_secret.clone()),
        Quiet,
        SystemClock(Instant::now()),
    );
    let mut env = Env {
        http: &mut http,
        secrets: &mut secrets,
        credentials: &mut NoAssertions,
        store,
        log: &mut log,
        clock: &mut clock,
    };
    let request = SyncRequest {
        tenant: Tenant {
            key: "bench".into(),
            tenant_id: sim.tenant_id.clone(),
            client_id: sim.client_id.clone(),
            cloud: Cloud::Global,
            endpoints: Endpoints {
                login: sim.login.clone(),
                graph: sim.graph.clone(),
            },
            credential: CredentialKind::ClientSecret,
        },
        options: SyncOptions {
            mode,
            features: Features::USERS | Features::LICENCES,
            filter: AccountFilter {
                domains: vec![],
                licensed_only: false,
                enabled_only: false,
                include_guests: true,
                attributes: vec![],
            },
            match_key: MatchKey::Email,
            removal: RemovalPolicy::Keep,
            // A benchmark's first sync removes nobody; its guard is the config default.
            removal_guard: RemovalGuard {
                max_percent: 10,
                max_count: 500,
                allow: false,
            },
            field_map: vec![],
            usage_periods: vec![],
            dry_run: false,
        },
    };
    m365sync_guest::engine::sync(&mut env, &request).map_err(|e| anyhow::anyhow!("{e:?}"))
}
