//! Shared fixtures of the end-to-end tests: a simulated tenant, a tenant run pointing at it,
//! a store of either back end (a SQLite file in a temporary directory, or a PostgreSQL
//! schema of its own on the test server), and helpers that read what a sync left there
//! through the store's own contract (no SQL: the same reads work on both back ends).
//! The tests themselves are in `tests/`; [`on_both_stores!`] runs one on each back end.

use std::collections::HashMap;
use std::sync::Arc;

use m365sync_service::config::{SecretSource, TenantRun, base_url};
use m365sync_service::runtime::{EventSink, RunError, Runtime, TracingSink};
use m365sync_service::store::log_entry::DataSetEntry;
use m365sync_service::store::read::{Cell, ExportKind, Table, export_table};
use m365sync_service::store::{Access, RunRecord, StoreBackend, TenantStore};
use m365sync_service::wit::types::{
    Cloud, CredentialKind, DataSet, DataSetReport, Endpoints, Features, PersonKey, StoredPerson,
    SyncMode, SyncReport, Tenant,
};
use m365sync_service::{StoreLocation, SyncFailure};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

pub use m365sync_service::store::read::ExportKind as Kind;

/// The tenant key the fixtures' runs use.
pub const TENANT: &str = "contoso";

/// Start a simulated tenant of `users` users (seed fixed, so ground truth is stable).
pub async fn simulator(users: usize) -> Simulator {
    simulator_with(users, |_| {}).await
}

/// Start a simulated tenant, adjusting its config first.
pub async fn simulator_with(users: usize, adjust: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(7, users));
    adjust(&mut config);
    Simulator::start(config).await.expect("simulator starts")
}

/// A run of the simulated tenant: endpoints, allowlist and secret from the simulator.
pub fn tenant_run(simulator: &Simulator) -> TenantRun {
    let credentials = simulator.credentials();
    let endpoints = Endpoints {
        login: simulator.login_url(),
        graph: simulator.graph_url(),
    };
    let mut run = TenantRun::new(
        Tenant {
            key: TENANT.to_string(),
            tenant_id: credentials.tenant_id,
            client_id: credentials.client_id,
            cloud: Cloud::Global,
            endpoints,
            credential: CredentialKind::ClientSecret,
        },
        SecretSource::Value(credentials.client_secret),
    );
    run.options.mode = SyncMode::Full;
    run
}

/// Every application permission the engine's features need (all read-only).
pub const ALL_ROLES: &[&str] = &[
    "User.Read.All",
    "GroupMember.Read.All",
    "Organization.Read.All",
    "Domain.Read.All",
    "Reports.Read.All",
    "AuditLog.Read.All",
];

/// A simulated tenant whose app holds every role the features need.
pub async fn full_simulator(users: usize, adjust: impl FnOnce(&mut SimConfig)) -> Simulator {
    simulator_with(users, |config| {
        config.roles = ALL_ROLES.iter().map(|r| r.to_string()).collect();
        adjust(config);
    })
    .await
}

/// A run of the simulated tenant with every feature on, and the simulator's report
/// download host allowlisted for credential-free downloads.
pub fn full_run(simulator: &Simulator) -> TenantRun {
    let mut run = tenant_run(simulator);
    run.options.features = Features::all();
    run.options.usage_periods = vec![30];
    let download = base_url(&simulator.download_url()).expect("download URL");
    run.allowlist.downloads = vec![download.normalized];
    run
}

/// A runtime with the default limits.
pub fn runtime() -> Runtime {
    Runtime::new(Default::default()).expect("the runtime loads the component")
}

pub fn sink() -> Arc<dyn EventSink> {
    Arc::new(TracingSink)
}

/// Which store back end a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store of one back end, and what keeps it alive: a SQLite file in a
/// temporary directory, or a PostgreSQL schema of its own (dropped with it).
pub struct TestStore {
    pub backend: Backend,
    /// Where it is, as `--db` takes it.
    pub location: StoreLocation,
    pub store: Box<dyn StoreBackend>,
    _guard: Guard,
}

enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema(#[allow(dead_code)] m365sync_store_postgres::testing::TestSchema),
}

impl TestStore {
    /// A SQLite store in a fresh temporary directory.
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = StoreLocation::Sqlite(dir.path().join("m365sync.db"));
        let store = m365sync_service::open_store(&location)
            .await
            .expect("open the SQLite store");
        TestStore {
            backend: Backend::Sqlite,
            location,
            store,
            _guard: Guard::Dir(dir),
        }
    }

    /// A PostgreSQL store in a schema of its own on the test server; None (after saying
    /// so) when no server answers and none is required.
    pub async fn postgres() -> Option<TestStore> {
        let schema = m365sync_store_postgres::testing::schema().await?;
        let location = StoreLocation::Postgres(schema.url.clone());
        let store = m365sync_service::open_store(&location)
            .await
            .expect("open the PostgreSQL store");
        Some(TestStore {
            backend: Backend::Postgres,
            location,
            store,
            _guard: Guard::Schema(schema),
        })
    }

    /// A store of `backend` (None: PostgreSQL is not available here).
    pub async fn of(backend: Backend) -> Option<TestStore> {
        match backend {
            Backend::Sqlite => Some(TestStore::sqlite().await),
            Backend::Postgres => TestStore::postgres().await,
        }
    }

    /// The store as `--db` (or `[store] url`) names it: a path or a URL.
    pub fn db_arg(&self) -> String {
        match &self.location {
            StoreLocation::Sqlite(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => url.clone(),
        }
    }

    /// Another handle on the same database, as another process would open it.
    pub async fn reopen(&self) -> Box<dyn StoreBackend> {
        m365sync_service::open_store(&self.location)
            .await
            .expect("reopen the store")
    }

    /// The tenant's rows, for a sync (under its lock) or a decision.
    pub async fn tenant(&self, tenant: &str) -> Box<dyn TenantStore> {
        self.store
            .open_tenant(tenant, Access::Sync)
            .await
            .expect("open the tenant's store")
    }

    /// The tenant's rows, to read.
    pub async fn reader(&self, tenant: &str) -> Box<dyn TenantStore> {
        self.store
            .open_tenant(tenant, Access::ReadOnly)
            .await
            .expect("open the tenant's store to read")
    }
}

/// One test on both back ends: `on_both_stores!(async fn name(db) { ... })` expands to a
/// module `name` with the tests `sqlite` and `postgres`, each giving the body a fresh
/// [`TestStore`] as `db` (the PostgreSQL one skips, saying so, without a server unless
/// `M365SYNC_REQUIRE_POSTGRES=1`).
#[macro_export]
macro_rules! on_both_stores {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                let $db = $crate::TestStore::sqlite().await;
                $body
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let Some($db) = $crate::TestStore::postgres().await else {
                    return;
                };
                $body
            }
        }
    };
}

/// Sync `run` into `db` (under the tenant's lock), unlogged: the engine's own report.
pub async fn sync(
    runtime: &Runtime,
    run: &TenantRun,
    db: &TestStore,
) -> Result<SyncReport, RunError> {
    let store = db.tenant(&run.tenant.key).await;
    runtime.sync(run, store, sink()).await
}

/// Sync `run` into `db` as the CLI does: a failed run is recorded in the sync log (the
/// engine records successful ones).
pub async fn sync_logged(
    runtime: &Runtime,
    run: &TenantRun,
    db: &TestStore,
) -> Result<SyncReport, SyncFailure> {
    m365sync_service::sync_logged(runtime, run, db.store.as_ref(), sink()).await
}

/// The users data set's part of a report.
pub fn users(report: &SyncReport) -> &DataSetReport {
    report
        .data_sets
        .iter()
        .find(|d| d.data_set == DataSet::Users)
        .expect("a users data set in the report")
}

/// One stored person of [`TENANT`], by object id.
pub async fn person(db: &TestStore, object_id: &str) -> Option<StoredPerson> {
    let mut reader = db.reader(TENANT).await;
    let found = reader
        .find_people(&[PersonKey::ObjectId(object_id.to_string())])
        .await
        .expect("find a person");
    found.into_iter().next().flatten()
}

/// Every stored person of `tenant`, by object id.
pub async fn people(db: &TestStore, tenant: &str) -> HashMap<String, StoredPerson> {
    let mut reader = db.reader(tenant).await;
    let mut all = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let ids = reader
            .list_people_ids(after.as_deref(), 1000)
            .await
            .expect("list people");
        let Some(last) = ids.last().cloned() else {
            return all;
        };
        let keys: Vec<PersonKey> = ids.iter().cloned().map(PersonKey::ObjectId).collect();
        let found = reader.find_people(&keys).await.expect("find people");
        for person in found.into_iter().flatten() {
            all.insert(person.person.object_id.clone(), person);
        }
        after = Some(last);
    }
}

/// A checkpoint of [`TENANT`].
pub async fn checkpoint(db: &TestStore, key: &str) -> Option<String> {
    db.reader(TENANT)
        .await
        .get_checkpoint(key)
        .await
        .expect("read a checkpoint")
}

/// An export of one tenant's rows, whole.
pub async fn export(db: &TestStore, kind: ExportKind, tenant: &str) -> Table {
    export_table(db.store.as_ref(), kind, Some(tenant))
        .await
        .expect("export")
}

/// One exported row by column name (the names of [`ExportKind::columns`]).
pub type Record = HashMap<&'static str, Cell>;

/// An export's rows by column name: of one tenant, or of every tenant (None).
pub async fn records(db: &TestStore, kind: ExportKind, tenant: Option<&str>) -> Vec<Record> {
    let table = export_table(db.store.as_ref(), kind, tenant)
        .await
        .expect("export");
    table
        .rows
        .into_iter()
        .map(|row| kind.columns().iter().copied().zip(row).collect())
        .collect()
}

/// A cell's text (None for any other cell).
pub fn text(cell: &Cell) -> Option<&str> {
    match cell {
        Cell::Text(text) => Some(text),
        _ => None,
    }
}

/// How many rows of `kind` the store holds for `tenant`.
pub async fn count(db: &TestStore, kind: ExportKind, tenant: &str) -> usize {
    export(db, kind, tenant).await.rows.len()
}

/// How many people the store holds for `tenant`.
pub async fn people_count(db: &TestStore, tenant: &str) -> i64 {
    db.store
        .tenant_summary(tenant)
        .await
        .expect("summary")
        .people
        .total
}

/// The sync log of a tenant, newest first.
pub async fn runs(db: &TestStore, tenant: &str) -> Vec<RunRecord> {
    db.store
        .list_runs(Some(tenant), 1000)
        .await
        .expect("list runs")
}

/// A data set's counts in a stored run's report (as `m365sync logs` reads them).
pub fn logged_counts(run: &RunRecord, data_set: DataSet) -> Option<&DataSetEntry> {
    run.report
        .as_ref()?
        .data_sets
        .iter()
        .find(|d| d.data_set == data_set)
}

/// Create a platform organization; its id.
pub async fn add_organization(db: &TestStore, name: &str) -> String {
    db.store
        .create_organization(name, None)
        .await
        .expect("create organization")
        .id
}
