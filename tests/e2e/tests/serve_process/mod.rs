//! `m365sync serve` as a child process: a fleet of simulated tenants (one simulator each,
//! served from the test process on a runtime of its own) written into a config file, a
//! store of either back end (a SQLite file, or a PostgreSQL schema of its own), the server
//! started on an ephemeral loopback port (the address read from its first line on
//! stderr), and a small blocking HTTP client to talk to its API. A webhook receiver (axum,
//! on 127.0.0.1) checks each delivery's signature with `m365sync_service::webhooks::verify`.
//!
//! Every wait polls with a deadline and fails naming what did not happen, with the
//! servers' stderr. Shared by the `serve_*.rs` tests (a directory module, so cargo does not
//! build it as a test of its own); it builds the binary through `cli_process::binary`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use m365sync_e2e::Backend;
use m365sync_e2e::{TestStore, people, people_count};
use m365sync_service::wit::types::StoredPerson;
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};
use serde_json::Value;

use crate::cli_process::binary;

/// How long a server may take to print its address (the first start may compile the
/// component into the cache).
const START_LIMIT: Duration = Duration::from_secs(180);

/// How a tenant of the fleet is configured, beyond its simulator.
#[derive(Debug, Clone, Default)]
pub struct TenantOptions {
    /// The config's secret variable holds a wrong secret (the simulator's is another).
    pub wrong_secret: bool,
    /// The body of `[tenant.schedule]` (e.g. `every = "1h"`); none: the nightly default.
    pub schedule: Option<String>,
}

/// One simulated tenant of the fleet.
pub struct FleetTenant {
    pub name: String,
    simulator: Option<Simulator>,
    secret_var: String,
    /// What the secret variable holds (a wrong secret when so configured).
    secret: String,
    options: TenantOptions,
}

impl FleetTenant {
    pub fn simulator(&self) -> &Simulator {
        self.simulator.as_ref().expect("the simulator runs")
    }
}

/// Simulated tenants, a store, and config files naming them, in a temporary directory.
pub struct Fleet {
    runtime: tokio::runtime::Runtime,
    store: Option<TestStore>,
    pub dir: tempfile::TempDir,
    tenants: Vec<FleetTenant>,
}

impl Fleet {
    /// An empty fleet on a fresh store of `backend`; None (after saying so) when
    /// PostgreSQL is not available here and not required.
    pub fn new(backend: Backend) -> Option<Fleet> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(TestStore::of(backend))?;
        Some(Fleet {
            runtime,
            store: Some(store),
            dir: tempfile::tempdir().unwrap(),
            tenants: Vec::new(),
        })
    }

    /// Add a tenant named `name` of `users` users (a directory of its own), its simulator
    /// adjusted by `adjust` before it starts.
    pub fn add(
        &mut self,
        name: &str,
        users: usize,
        adjust: impl FnOnce(&mut SimConfig),
        options: TenantOptions,
    ) -> &Simulator {
        let index = self.tenants.len();
        let seed = 101 + index as u64 * 17;
        let simulator = self.runtime.block_on(async {
            let mut config = SimConfig::new(TenantSpec::new(seed, users));
            adjust(&mut config);
            Simulator::start(config)
                .await
                .expect("the simulator starts")
        });
        let right = simulator.credentials().client_secret;
        let secret = if options.wrong_secret {
            // As long as a real one, and not it.
            format!("xYz8Q~{}", "w".repeat(34))
        } else {
            right
        };
        self.tenants.push(FleetTenant {
            name: name.to_string(),
            simulator: Some(simulator),
            secret_var: format!("M365SYNC_E2E_SECRET_{index}"),
            secret,
            options,
        });
        self.tenants.last().unwrap().simulator()
    }

    /// A tenant of the fleet, by name.
    pub fn tenant(&self, name: &str) -> &FleetTenant {
        self.tenants
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tenant {name} in the fleet"))
    }

    pub fn sim(&self, name: &str) -> &Simulator {
        self.tenant(name).simulator()
    }

    pub fn names(&self) -> Vec<String> {
        self.tenants.iter().map(|t| t.name.clone()).collect()
    }

    /// Write a config of every tenant, with `serve` as its `[serve]` section's body and
    /// `extra` (e.g. `[[webhook]]` entries) after the tenants; its path.
    pub fn config(&self, file: &str, serve: &str, extra: &str) -> PathBuf {
        let mut text = format!("[serve]\n{serve}\n\n");
        for tenant in &self.tenants {
            let simulator = tenant.simulator();
            let credentials = simulator.credentials();
            text.push_str(&format!(
                "[[tenant]]\nname = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\n\
                 client_secret_env = \"{}\"\n[tenant.endpoints]\nlogin = \"{}\"\n\
                 graph = \"{}\"\n[tenant.sync]\nfeatures = [\"users\"]\n",
                tenant.name,
                credentials.tenant_id,
                credentials.client_id,
                tenant.secret_var,
                simulator.login_url(),
                simulator.graph_url(),
            ));
            if let Some(schedule) = &tenant.options.schedule {
                text.push_str(&format!("[tenant.schedule]\n{schedule}\n"));
            }
            text.push('\n');
        }
        text.push_str(extra);
        let path = self.dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The store, as the test process reads it.
    pub fn store(&self) -> &TestStore {
        self.store
            .as_ref()
            .expect("the store lives as long as the fleet")
    }

    /// The store as `--db` takes it.
    pub fn db(&self) -> String {
        self.store().db_arg()
    }

    /// Run `future` on the fleet's runtime (a read of the store, a receiver's start).
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// The binary with `args`, the tenants' secrets in its environment, and its log at
    /// info for the service (what it says shows in failures).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("M365SYNC_LOG", "warn,m365sync_service=info")
            .stdin(Stdio::null());
        for tenant in &self.tenants {
            command.env(&tenant.secret_var, &tenant.secret);
        }
        command
    }

    /// `m365sync serve --config CONFIG --db STORE --listen 127.0.0.1:0` with short poll
    /// and schedule intervals, and `args` after; the server once its API listens.
    pub fn serve(&self, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = self.serve_command(config, args, env);
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        Server::start(command)
    }

    /// The `serve` command line, not started.
    pub fn serve_command(&self, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = self.command(&["serve"]);
        command
            .arg("--config")
            .arg(config)
            .args(["--db", &self.db()])
            .args(["--poll-ms", "50", "--schedule-tick-ms", "100"])
            .args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// People stored for a tenant, read through the store's contract.
    pub fn people(&self, tenant: &str) -> i64 {
        self.block_on(people_count(self.store(), tenant))
    }

    /// A tenant's stored people, by object id.
    pub fn stored_people(&self, tenant: &str) -> HashMap<String, StoredPerson> {
        self.block_on(people(self.store(), tenant))
    }

    /// The tenant's people are its directory's: each once.
    pub fn assert_ground_truth(&self, tenant: &str) {
        let truth = self.sim(tenant).tenant().users;
        assert_eq!(
            self.people(tenant),
            truth.len() as i64,
            "{tenant}: the store's count is the directory's (nobody doubled or missing)"
        );
        let stored = self.stored_people(tenant);
        assert_eq!(stored.len(), truth.len(), "{tenant}");
        for user in &truth {
            assert!(
                stored.contains_key(&user.id),
                "{tenant}: {} missing",
                user.id
            );
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for tenant in &mut self.tenants {
            if let Some(simulator) = tenant.simulator.take() {
                self.runtime.block_on(simulator.shutdown());
            }
        }
        // The store's connections belong to this runtime: let them go inside it.
        let _inside = self.runtime.enter();
        drop(self.store.take());
    }
}

/// A running `m365sync serve`: its API's address, its stderr as it comes, and the token
/// its requests carry (when one is set).
pub struct Server {
    child: Mutex<Child>,
    pid: u32,
    pub address: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    pub token: Option<String>,
    status: Mutex<Option<ExitStatus>>,
}

impl Server {
    /// Start `command` (a `serve`) and wait for its API's address.
    pub fn start(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning m365sync serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel::<SocketAddr>();
        {
            let pipe = child.stderr.take().unwrap();
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    {
                        let mut text = stderr.lock().unwrap();
                        text.push_str(&line);
                        text.push('\n');
                    }
                    if let Some(at) = line.find("API on http://") {
                        let rest = &line[at + "API on http://".len()..];
                        let end = rest.find([' ', ';']).unwrap_or(rest.len());
                        if let Ok(addr) = rest[..end].parse::<SocketAddr>() {
                            let _ = found.send(addr);
                        }
                    }
                }
            });
        }
        {
            let mut pipe = child.stdout.take().unwrap();
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                stdout.lock().unwrap().push_str(&text);
            });
        }
        let started = Instant::now();
        let address = loop {
            match address.recv_timeout(Duration::from_millis(100)) {
                Ok(address) => break address,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    panic!(
                        "m365sync serve ended ({status}) before its API listened: {}",
                        stderr.lock().unwrap()
                    );
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                // Its stderr may still be coming in.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "m365sync serve ended ({status}) before its API listened: {}",
                    stderr.lock().unwrap()
                );
            }
            if started.elapsed() > START_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "m365sync serve did not print its API's address within {START_LIMIT:?}: {}",
                    stderr.lock().unwrap()
                );
            }
        };
        // 0.0.0.0 (every interface) is reached on loopback.
        let address = if address.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], address.port()))
        } else {
            address
        };
        Server {
            pid: child.id(),
            child: Mutex::new(child),
            address,
            stderr,
            stdout,
            token: None,
            status: Mutex::new(None),
        }
    }

    /// Requests carry `Authorization: Bearer <token>` from now on.
    pub fn with_token(mut self, token: &str) -> Server {
        self.token = Some(token.to_string());
        self
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// A request with this server's token (if any).
    pub fn request(&self, method: &str, path: &str) -> Reply {
        http(self.address, method, path, self.token.as_deref())
    }

    /// `http://{address}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str) -> Reply {
        self.request("POST", path)
    }

    /// A GET that must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        reply.json()
    }

    /// `GET /v1/tenants`, by name.
    pub fn tenants(&self) -> HashMap<String, Value> {
        self.get_json("/v1/tenants")
            .as_array()
            .expect("an array of tenants")
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
            .collect()
    }

    /// `GET /v1/tenants/{name}`.
    pub fn tenant(&self, name: &str) -> Value {
        self.get_json(&format!("/v1/tenants/{name}"))
    }

    /// The queue's jobs of `tenant`, oldest first.
    pub fn jobs_of(&self, tenant: &str) -> Vec<Value> {
        let mut jobs: Vec<Value> = self
            .get_json("/v1/jobs?limit=1000")
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["tenant"] == tenant)
            .cloned()
            .collect();
        jobs.sort_by_key(|j| j["id"].as_i64());
        jobs
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<Value> {
        let mut jobs = self
            .get_json("/v1/jobs?limit=1000")
            .as_array()
            .unwrap()
            .clone();
        jobs.sort_by_key(|j| j["id"].as_i64());
        jobs
    }

    /// The sync log of `tenant`, oldest first.
    pub fn runs_of(&self, tenant: &str) -> Vec<Value> {
        let mut runs = self
            .get_json(&format!("/v1/runs?tenant={tenant}&limit=1000"))
            .as_array()
            .unwrap()
            .clone();
        runs.sort_by_key(|r| r["id"].as_i64());
        runs
    }

    /// A sample of `/metrics` (the first line naming it exactly, labels included).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.text().lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
    }

    /// Wait until `probe` gives a value, polling the API; fails after `limit` naming `what`.
    pub fn wait<T>(&self, what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = probe() {
                return value;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{what}: the server ended ({status}) first: {}",
                    self.stderr()
                );
            }
            assert!(
                started.elapsed() < limit,
                "{what}: not within {limit:?}\nserver stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until a tenant's view (`GET /v1/tenants/{name}`) satisfies `holds`.
    pub fn wait_tenant(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        holds: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait(&format!("{name}: {what}"), limit, || {
            let view = self.tenant(name);
            holds(&view).then_some(view)
        })
    }

    /// Whether the process has ended (and how).
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut status = self.status.lock().unwrap();
        if status.is_none() {
            *status = self.child.lock().unwrap().try_wait().unwrap();
        }
        *status
    }

    /// Send `signal` ("TERM", "INT") and wait (at most `limit`) for the process to end.
    pub fn stop(&self, signal: &str, limit: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {}", self.pid);
        self.wait_exit(limit)
    }

    /// Wait (at most `limit`) for the process to end by itself.
    pub fn wait_exit(&self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if started.elapsed() > limit {
                self.kill();
                panic!(
                    "m365sync serve (pid {}) did not end within {limit:?}: {}",
                    self.pid,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap the process (a zombie would still count as alive to the stores'
    /// pid checks).
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        *self.status.lock().unwrap() = Some(child.wait().unwrap());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// Run `command` to its end, at most `limit` (then it is killed and the test fails).
pub fn run_with_deadline(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning m365sync");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the command did not end within {limit:?}: {}",
                crate::cli_process::text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`), with a bearer
/// token when given; the whole answer (a chunked body decoded).
pub fn http(address: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
    parse_reply(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {path}: not an HTTP answer: {}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Every event of the change feed after `after` through the API, paged by `next_after`
/// with `limit` events a page (each page's `next_after` checked).
pub fn feed_pages(server: &Server, after: i64, limit: u32, tenant: Option<&str>) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor = after;
    loop {
        let mut path = format!("/v1/changes?after={cursor}&limit={limit}");
        if let Some(tenant) = tenant {
            path.push_str(&format!("&tenant={tenant}"));
        }
        let page = server.get_json(&path);
        let got = page["events"].as_array().unwrap().clone();
        let next = page["next_after"].as_i64().unwrap();
        assert!(got.len() <= limit as usize, "{path}: {} events", got.len());
        match got.last() {
            None => {
                assert_eq!(next, cursor, "{path}: an empty page keeps the cursor");
                return events;
            }
            Some(last) => {
                assert_eq!(
                    next,
                    last["cursor"].as_i64().unwrap(),
                    "{path}: next_after is the last event's cursor"
                );
                cursor = next;
            }
        }
        events.extend(got);
    }
}

/// A parsed RFC 3339 time, in Unix milliseconds.
pub fn unix_ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 time: {e}"))
        .as_millisecond()
}

/// A run of the sync log as an interval: (start, end) in Unix milliseconds.
pub fn interval(run: &Value) -> (i64, i64) {
    let start = unix_ms(run["started_at"].as_str().expect("started_at"));
    let elapsed = run["elapsed_ms"].as_i64().expect("elapsed_ms");
    (start, start + elapsed)
}

/// No two runs of one tenant overlap in time (each run's start is after the previous
/// one's end).
pub fn assert_no_overlap(tenant: &str, runs: &[Value]) {
    let mut intervals: Vec<(i64, i64, i64)> = runs
        .iter()
        .map(|r| {
            let (start, end) = interval(r);
            (start, end, r["id"].as_i64().unwrap())
        })
        .collect();
    intervals.sort();
    for pair in intervals.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        assert!(
            start >= end,
            "{tenant}: run {b} started at {start} before run {a} ended at {end}: two runs at \
             once\n{runs:#?}"
        );
    }
}

/// A webhook receiver on 127.0.0.1: it checks every POST's signature with `secret`,
/// answers 503 to its first `refuse` POSTs (an outage) and 200 afterwards, and keeps
/// what it got.
pub struct Receiver {
    pub url: String,
    pub state: Arc<Mutex<Received>>,
}

/// What a receiver got.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Every POST, in arrival order.
    pub posts: Vec<Post>,
    refuse: usize,
    secret: Vec<u8>,
}

/// One POST to the receiver.
#[derive(Debug, Clone)]
pub struct Post {
    pub signature: Option<String>,
    pub delivery: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// What `webhooks::verify` said of its signature with the receiver's secret.
    pub verified: Result<(), String>,
    /// The answer it got.
    pub status: u16,
}

impl Post {
    pub fn payload(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON payload")
    }
}

impl Received {
    /// The events of the POSTs answered 200.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.posts
            .iter()
            .filter(|p| p.status == 200)
            .flat_map(|p| p.payload()["events"].as_array().unwrap().clone())
            .collect()
    }
}

impl Receiver {
    /// Start a receiver on `fleet`'s runtime.
    pub fn start(fleet: &Fleet, secret: &str, refuse: usize) -> Receiver {
        use axum::body::Bytes;
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};

        let state = Arc::new(Mutex::new(Received {
            refuse,
            secret: secret.as_bytes().to_vec(),
            ..Received::default()
        }));
        async fn hook(
            State(state): State<Arc<Mutex<Received>>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let signature = header(m365sync_service::webhooks::SIGNATURE_HEADER);
            let mut state = state.lock().unwrap();
            let verified = match &signature {
                Some(signature) => m365sync_service::webhooks::verify(
                    &state.secret,
                    signature,
                    &body,
                    jiff::Timestamp::now(),
                    m365sync_service::webhooks::DEFAULT_TOLERANCE,
                )
                .map_err(|e| e.to_string()),
                None => Err("no signature header".to_string()),
            };
            let status = if verified.is_err() {
                StatusCode::UNAUTHORIZED
            } else if state.posts.len() < state.refuse {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            state.posts.push(Post {
                signature,
                delivery: header(m365sync_service::webhooks::DELIVERY_HEADER),
                content_type: header("content-type"),
                body: body.to_vec(),
                verified,
                status: status.as_u16(),
            });
            status
        }
        let router = axum::Router::new()
            .route("/hooks/m365sync", axum::routing::post(hook))
            .with_state(state.clone());
        let address = fleet.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            address
        });
        Receiver {
            url: format!("http://{address}/hooks/m365sync?key=path-credential"),
            state,
        }
    }

    pub fn received(&self) -> Received {
        self.state.lock().unwrap().clone()
    }
}
