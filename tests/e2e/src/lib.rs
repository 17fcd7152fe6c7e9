//! Shared fixtures of the end-to-end tests: a simulated tenant, a tenant run pointing at it,
//! a temporary SQLite database, and helpers to read what a sync left there.
//! The tests themselves are in `tests/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use m365sync::config::{SecretSource, TenantRun};
use m365sync::runtime::bindings::types::{Cloud, Endpoints, Features, SyncMode, Tenant};
use m365sync::{EventSink, TracingSink};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

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
            key: "contoso".to_string(),
            tenant_id: credentials.tenant_id,
            client_id: credentials.client_id,
            cloud: Cloud::Global,
            endpoints,
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
    let download = m365sync::config::base_url(&simulator.download_url()).expect("download URL");
    run.allowlist.downloads = vec![download.normalized];
    run
}

/// A database in a fresh temporary directory (kept alive by the returned guard).
pub fn database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m365sync.db");
    (dir, path)
}

pub fn sink() -> Arc<dyn EventSink> {
    Arc::new(TracingSink)
}

/// Sync `run` into the database at `db` with a fresh runtime-independent store.
pub async fn sync(
    runtime: &m365sync::Runtime,
    run: &TenantRun,
    db: &Path,
) -> Result<m365sync::runtime::bindings::types::SyncReport, m365sync::RunError> {
    let store = m365sync::SqliteStore::open(db, &run.tenant.key).expect("open store");
    runtime.sync(run, Box::new(store), sink()).await
}

/// The users data set's part of a report.
pub fn users(
    report: &m365sync::runtime::bindings::types::SyncReport,
) -> &m365sync::runtime::bindings::types::DataSetReport {
    report
        .data_sets
        .iter()
        .find(|d| d.data_set == m365sync::runtime::bindings::types::DataSet::Users)
        .expect("a users data set in the report")
}

/// One person's column, by object id.
pub fn column(db: &Path, object_id: &str, column: &str) -> Option<String> {
    let connection = rusqlite::Connection::open(db).expect("open db");
    connection
        .query_row(
            &format!("SELECT {column} FROM people WHERE tenant = 'contoso' AND object_id = ?1"),
            [object_id],
            |row| row.get(0),
        )
        .ok()
        .flatten()
}

/// A checkpoint's value.
pub fn checkpoint(db: &Path, key: &str) -> Option<String> {
    let connection = rusqlite::Connection::open(db).expect("open db");
    connection
        .query_row(
            "SELECT value FROM checkpoints WHERE tenant = 'contoso' AND key = ?1",
            [key],
            |row| row.get(0),
        )
        .ok()
}

/// `SELECT COUNT(*) FROM <table> WHERE tenant = ?` (0 when the database does not exist yet).
pub fn count(db: &Path, table: &str, tenant: &str) -> i64 {
    if !db.exists() {
        return 0;
    }
    let connection = rusqlite::Connection::open(db).expect("open db");
    connection
        .query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE tenant = ?1"),
            [tenant],
            |row| row.get(0),
        )
        .expect("count")
}

/// Sync `run` into the database at `db` as the CLI does: a failed run is recorded in the
/// sync log (the engine records successful ones).
pub async fn sync_logged(
    runtime: &m365sync::Runtime,
    run: &TenantRun,
    db: &Path,
) -> Result<m365sync::runtime::bindings::types::SyncReport, m365sync::SyncFailure> {
    m365sync::sync_logged(runtime, run, db, sink()).await
}

/// The sync log of a tenant, newest first.
pub fn runs(db: &Path, tenant: &str) -> Vec<m365sync::store::sqlite::RunRecord> {
    let connection = m365sync::store::sqlite::open_database(db).expect("open db");
    m365sync::store::sqlite::list_runs(&connection, Some(tenant), 1000).expect("list runs")
}

/// A data set's counts in a stored run's report (as `m365sync logs` reads them).
pub fn logged_counts(
    run: &m365sync::store::sqlite::RunRecord,
    data_set: &str,
) -> Option<serde_json::Value> {
    run.report
        .as_ref()?
        .get("data_sets")?
        .as_array()?
        .iter()
        .find(|d| d["data_set"] == data_set)
        .cloned()
}

/// A store for the review calls of `run`'s tenant.
pub fn store(db: &Path, run: &TenantRun) -> Box<dyn m365sync::TenantStore> {
    Box::new(m365sync::SqliteStore::open(db, &run.tenant.key).expect("open store"))
}

/// Create a platform organization in the database at `db`.
pub fn add_organization(db: &Path, name: &str) -> String {
    let connection = m365sync::store::sqlite::open_database(db).expect("open db");
    m365sync::store::sqlite::create_organization(&connection, name, None)
        .expect("create organization")
        .id
}

/// `SELECT COUNT(*) FROM <table>` (0 when the database does not exist yet).
pub fn count_all(db: &Path, table: &str) -> i64 {
    if !db.exists() {
        return 0;
    }
    let connection = rusqlite::Connection::open(db).expect("open db");
    connection
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .expect("count")
}
