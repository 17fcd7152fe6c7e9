//! The real `m365sync` binary as a child process against a simulated tenant served from the
//! test process: a config file pointing at the simulator, a store of either back end (a
//! SQLite file by default, or a PostgreSQL schema of its own, passed as `--db`), and helpers
//! to run, signal and read back (the store is read through its contract, as another process
//! would). Shared by signals.rs and concurrency.rs (a directory module, so cargo does not
//! build it as a test of its own).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use m365sync_e2e::Backend;
use m365sync_e2e::{TestStore, people, people_count};
use m365sync_service::wit::types::StoredPerson;
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

const SECRET_VAR: &str = "M365SYNC_E2E_SECRET";

/// The `m365sync` binary of this build: built (or found up to date) by cargo once per test
/// process, since this package's tests do not get it from cargo themselves.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's path");
        // target/<profile>/deps/<test> → target/<profile>/m365sync
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test lives in target/<profile>/deps");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "m365sync", "--bin", "m365sync"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(
            status.success(),
            "cargo build -p m365sync --bin m365sync failed"
        );
        let binary = profile_dir.join(format!("m365sync{}", std::env::consts::EXE_SUFFIX));
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// The test process's side of a store the binary writes: a runtime for the simulators and
/// the store's reads, and the store (a SQLite file or a PostgreSQL schema of its own), kept
/// alive as long as a tenant uses it. Shared by every tenant syncing into the store.
struct Shared {
    runtime: tokio::runtime::Runtime,
    store: Option<TestStore>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The store's connections belong to this runtime: let them go inside it.
        let _inside = self.runtime.enter();
        drop(self.store.take());
    }
}

/// A simulated tenant with a config file for the binary, and the store it syncs into.
pub struct Tenant {
    shared: Arc<Shared>,
    simulator: Option<Simulator>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The tenant's name in the config and the store.
    pub key: String,
    secret: String,
}

impl Tenant {
    /// `users` users, every Graph request answered after `latency` (a slow tenant),
    /// synced into a SQLite store.
    pub fn start(users: usize, latency: Duration) -> Tenant {
        Tenant::start_on(Backend::Sqlite, users, latency).expect("SQLite is always there")
    }

    /// As [`Tenant::start`], into a store of `backend`; None (after saying so) when
    /// PostgreSQL is not available here and not required.
    pub fn start_on(backend: Backend, users: usize, latency: Duration) -> Option<Tenant> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(TestStore::of(backend))?;
        let shared = Arc::new(Shared {
            runtime,
            store: Some(store),
        });
        Some(Tenant::new(shared, "contoso", 13, users, latency))
    }

    /// Another simulated tenant (a directory of its own, generated from `seed`), named
    /// `key`, syncing into the same store as this one.
    pub fn another(&self, key: &str, seed: u64, users: usize, latency: Duration) -> Tenant {
        Tenant::new(self.shared.clone(), key, seed, users, latency)
    }

    fn new(shared: Arc<Shared>, key: &str, seed: u64, users: usize, latency: Duration) -> Tenant {
        let simulator = shared.runtime.block_on(async {
            let mut config = SimConfig::new(TenantSpec::new(seed, users));
            config.latency = Some(latency);
            Simulator::start(config).await.unwrap()
        });
        let credentials = simulator.credentials();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tenant.toml");
        std::fs::write(
            &config,
            format!(
                "[[tenant]]\nname = \"{key}\"\ntenant_id = \"{}\"\n\
                 client_id = \"{}\"\nclient_secret_env = \"{SECRET_VAR}\"\n\
                 [tenant.endpoints]\nlogin = \"{}\"\ngraph = \"{}\"\n\
                 [tenant.sync]\nfeatures = [\"users\"]\n",
                credentials.tenant_id,
                credentials.client_id,
                simulator.login_url(),
                simulator.graph_url(),
            ),
        )
        .unwrap();
        Tenant {
            shared,
            simulator: Some(simulator),
            dir,
            config,
            key: key.to_string(),
            secret: credentials.client_secret,
        }
    }

    /// The store, as the test process reads it.
    pub fn store(&self) -> &TestStore {
        self.shared
            .store
            .as_ref()
            .expect("the store lives as long as its tenants")
    }

    /// Run `future` (a read of the store) to its end.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.shared.runtime.block_on(future)
    }

    pub fn simulator(&self) -> &Simulator {
        self.simulator.as_ref().unwrap()
    }

    /// The binary with `args`, the tenant's config (but for `logs`, which takes none) and
    /// the store as `--db` (a SQLite file, or the PostgreSQL schema's URL).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command.args(args);
        if args.first() != Some(&"logs") {
            command.arg("--config").arg(&self.config);
        }
        command
            .arg("--db")
            .arg(self.store().db_arg())
            .env(SECRET_VAR, &self.secret)
            .stdin(Stdio::null());
        command
    }

    /// Run the binary to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Start the binary, its output piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The tenant's sync log, as `m365sync logs --json` prints it.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        let output = self.run(&["logs", "--json", "--tenant", &self.key]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// People stored for the tenant, as another process sees them (through the store's
    /// contract).
    pub fn people(&self) -> i64 {
        self.block_on(people_count(self.store(), &self.key))
    }

    /// The tenant's stored people, by object id.
    pub fn stored_people(&self) -> HashMap<String, StoredPerson> {
        self.block_on(people(self.store(), &self.key))
    }

    /// Whether a run holds the tenant's lock: its sync has started and not ended.
    pub fn locked(&self) -> bool {
        self.block_on(self.store().store.lock_holder(&self.key))
            .expect("read the tenant's lock")
            .is_some()
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        if let Some(simulator) = self.simulator.take() {
            self.shared.runtime.block_on(simulator.shutdown());
        }
    }
}

/// Waits until `condition` holds (polling), or fails after `limit` naming `what`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` ("TERM", "INT") to a child process.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal} {}", child.id());
}

/// A finished process's stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
