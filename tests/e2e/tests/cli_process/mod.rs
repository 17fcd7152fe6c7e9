//! The real `m365sync` binary as a child process against a simulated tenant served from the
//! test process: a config file pointing at the simulator, a database in a temporary
//! directory, and helpers to run, signal and read back. Shared by signals.rs and
//! concurrency.rs (a directory module, so cargo does not build it as a test of its own).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// A simulated tenant with a config file and a database for the binary.
pub struct Tenant {
    runtime: tokio::runtime::Runtime,
    simulator: Option<Simulator>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    secret: String,
}

impl Tenant {
    /// `users` users, every Graph request answered after `latency` (a slow tenant).
    pub fn start(users: usize, latency: Duration) -> Tenant {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let simulator = runtime.block_on(async {
            let mut config = SimConfig::new(TenantSpec::new(13, users));
            config.latency = Some(latency);
            Simulator::start(config).await.unwrap()
        });
        let credentials = simulator.credentials();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tenant.toml");
        std::fs::write(
            &config,
            format!(
                "[host]\ndb = \"m.db\"\n\n[[tenant]]\nname = \"contoso\"\ntenant_id = \"{}\"\n\
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
            runtime,
            simulator: Some(simulator),
            dir,
            config,
            secret: credentials.client_secret,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("m.db")
    }

    pub fn simulator(&self) -> &Simulator {
        self.simulator.as_ref().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
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

    /// The sync log, as `m365sync logs --json` prints it.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        let output = self.run(&["logs", "--json"]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// People stored for the tenant, as another process sees them (0 before the database
    /// and its tables exist).
    pub fn people(&self) -> i64 {
        rusqlite::Connection::open(self.db())
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM people WHERE tenant = 'contoso'",
                    [],
                    |row| row.get(0),
                )
            })
            .unwrap_or(0)
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        if let Some(simulator) = self.simulator.take() {
            self.runtime.block_on(simulator.shutdown());
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
