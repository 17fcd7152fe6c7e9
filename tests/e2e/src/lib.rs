//! Shared fixtures of the end-to-end tests: a simulated tenant, a tenant run pointing at it,
//! a temporary SQLite database, and helpers to read what a sync left there.
//! The tests themselves are in `tests/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use m365sync::config::{SecretSource, TenantRun, allowlist};
use m365sync::runtime::bindings::types::{
    AccountFilter, Cloud, Endpoints, Features, MatchKey, RemovalPolicy, SyncMode, SyncOptions,
    Tenant,
};
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
    TenantRun {
        allowlist: allowlist(&endpoints, None),
        tenant: Tenant {
            key: "contoso".to_string(),
            tenant_id: credentials.tenant_id,
            client_id: credentials.client_id,
            cloud: Cloud::Global,
            endpoints,
        },
        options: SyncOptions {
            mode: SyncMode::Full,
            features: Features::USERS,
            filter: AccountFilter {
                domains: vec!["*".to_string()],
                licensed_only: false,
                enabled_only: false,
                include_guests: true,
                attributes: Vec::new(),
            },
            match_key: MatchKey::Email,
            removal: RemovalPolicy::Keep,
            field_map: Vec::new(),
            usage_periods: vec![30],
            dry_run: false,
        },
        client_secret: SecretSource::Value(credentials.client_secret),
    }
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
