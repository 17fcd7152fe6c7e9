//! `[serve]`: how `m365sync serve` runs — where its HTTP API listens and the token that
//! guards it, how many runs a process and the fleet take at once, when a tenant shows as
//! failing, how failed runs are retried, the leases workers hold, and the zone of the
//! default schedules. The section as the file has it (each value checked as it is read),
//! the rules between its values, and the settings a server resolves from it, with their
//! defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::located::{Document, KeyPath};
use crate::resolve::SecretSource;
use crate::rules::{self, Range};
use crate::schedule::Zone;
use crate::validate::{env_var_name, key_error};
use crate::{ConfigError, ConfigFile, is_loopback};

/// `listen` when the file sets none: this machine only.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
pub const DEFAULT_WORKERS: u32 = 4;
pub const DEFAULT_PER_APP: u32 = 8;
pub const DEFAULT_FAILING_AFTER: u32 = 3;
/// 1 min, 5 min, 30 min: a transient fault (throttling, a network blip) is over by then;
/// what is not is left to the next scheduled run.
pub const DEFAULT_RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(1800),
];
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `[serve] workers`: each run is a sandbox with its own memory; 64 fit the pool's default.
pub const WORKERS: Range = Range {
    min: 1,
    max: 64,
    unit: "runs at once in this process",
};
/// `[serve] per_app`: Graph throttles per app registration, across its tenants.
pub const PER_APP: Range = Range {
    min: 1,
    max: 1000,
    unit: "running jobs per app registration, fleet-wide",
};
/// `[serve] max_running`.
pub const MAX_RUNNING: Range = Range {
    min: 1,
    max: 100_000,
    unit: "running jobs in all, fleet-wide",
};
/// `[serve] failing_after`.
pub const FAILING_AFTER: Range = Range {
    min: 1,
    max: 100,
    unit: "consecutive failed runs",
};
/// `[serve] lease_secs`: renewed at a third of it, so at least 10 s leaves a renewal time
/// to spare; at most an hour, the longest a dead worker's job waits for another.
pub const LEASE_SECS: Range = Range {
    min: 10,
    max: 3600,
    unit: "seconds",
};
/// `[serve] shutdown_grace_secs`: systemd's default stop timeout is 90 s.
pub const SHUTDOWN_GRACE_SECS: Range = Range {
    min: 1,
    max: 600,
    unit: "seconds",
};
/// `[serve] retry_backoff`: at most this many retries, each delay within 1 s..=1 d.
pub const MAX_RETRIES: usize = 10;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(86_400);

/// `[serve]` as the file has it; [`ConfigFile::serve_settings`] fills in the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// The HTTP API's socket address, `ip:port` (default [`DEFAULT_LISTEN`]).
    #[serde(default, deserialize_with = "listen")]
    pub listen: Option<SocketAddr>,
    /// Environment variable holding the API token.
    pub api_token_env: Option<String>,
    /// File holding the API token (relative to the config file).
    pub api_token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "workers")]
    pub workers: Option<u32>,
    #[serde(default, deserialize_with = "per_app")]
    pub per_app: Option<u32>,
    #[serde(default, deserialize_with = "max_running")]
    pub max_running: Option<u32>,
    #[serde(default, deserialize_with = "failing_after")]
    pub failing_after: Option<u32>,
    /// Delays before each retry of a failed run (`["1m", "5m", "30m"]`).
    #[serde(default, deserialize_with = "retry_backoff")]
    pub retry_backoff: Option<Vec<Duration>>,
    #[serde(default, deserialize_with = "lease_secs")]
    pub lease_secs: Option<u64>,
    #[serde(default, deserialize_with = "shutdown_grace_secs")]
    pub shutdown_grace_secs: Option<u64>,
    /// IANA zone of the default schedules and of cron expressions that name none.
    pub timezone: Option<Zone>,
    /// Where people's browsers reach this server (`https://sync.example.com`): admin
    /// consent sends the customer's admin back to `{public_url}/connect/callback`.
    /// Default: `http://{listen}`.
    #[serde(default, deserialize_with = "crate::rules::base_url")]
    pub public_url: Option<String>,
}

/// What `m365sync serve` runs with: the `[serve]` section with its defaults filled in.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Where the HTTP API listens (default 127.0.0.1:8080). Anything but a loopback address
    /// needs an API token (checked at load).
    pub listen: SocketAddr,
    /// Where the API token is read from, once, when the server starts (read it with the
    /// runtime's `capabilities::secrets::read`); None: no token, and `listen` is loopback.
    /// Its Debug names the source, never the token.
    pub api_token: Option<SecretSource>,
    /// Runs at once in this process (default 4, 1..=64).
    pub workers: u32,
    /// Running jobs per app registration across the fleet (default 8, 1..=1000): Graph
    /// throttles per app.
    pub per_app: u32,
    /// Running jobs in all across the fleet, when set (1..=100000).
    pub max_running: Option<u32>,
    /// Consecutive failed runs before a tenant shows as failing (default 3, 1..=100).
    pub failing_after: u32,
    /// The delay before each retry of a failed run, in order; a run that fails once more
    /// than there are delays waits for its next scheduled run (default 1m, 5m, 30m; at
    /// most 10, each 1s..=1d; empty: no retries).
    pub retry_backoff: Vec<Duration>,
    /// How long a claim (job or webhook delivery) holds before it must be renewed (default
    /// 60 s, 10..=3600 s).
    pub lease: Duration,
    /// How long running jobs get to stop at shutdown before they are released (default
    /// 30 s, 1..=600 s).
    pub shutdown_grace: Duration,
    /// The zone of the default schedules: `[serve] timezone`, else the system's, else UTC.
    pub timezone: Zone,
}

impl Default for ServeSettings {
    /// The settings of a file without `[serve]`.
    fn default() -> Self {
        ServeSection::default().settings()
    }
}

impl ServeSection {
    fn settings(&self) -> ServeSettings {
        let api_token = match (&self.api_token_env, &self.api_token_file) {
            (Some(var), _) => Some(SecretSource::Env(var.clone())),
            (None, Some(file)) => Some(SecretSource::File(file.clone())),
            (None, None) => None,
        };
        ServeSettings {
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            api_token,
            workers: self.workers.unwrap_or(DEFAULT_WORKERS),
            per_app: self.per_app.unwrap_or(DEFAULT_PER_APP),
            max_running: self.max_running,
            failing_after: self.failing_after.unwrap_or(DEFAULT_FAILING_AFTER),
            retry_backoff: self
                .retry_backoff
                .clone()
                .unwrap_or_else(|| DEFAULT_RETRY_BACKOFF.to_vec()),
            lease: self.lease_secs.map_or(DEFAULT_LEASE, Duration::from_secs),
            shutdown_grace: self
                .shutdown_grace_secs
                .map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_secs),
            timezone: self.timezone.clone().unwrap_or_else(Zone::system),
        }
    }

    /// The rules between `[serve]`'s values.
    pub(crate) fn validate(&self, path: &Path, document: &Document<'_>) -> Result<(), ConfigError> {
        let at = KeyPath::default().key("serve");
        let fail =
            |key: &str, message: &str| key_error(path, document, &at.key(key), None, message);
        if self.api_token_env.is_some() && self.api_token_file.is_some() {
            return Err(fail(
                "api_token_file",
                "api_token_env and api_token_file are both set: choose one",
            ));
        }
        if let Some(var) = &self.api_token_env {
            env_var_name(var).map_err(|message| fail("api_token_env", &message))?;
        }
        let listen = self.listen.unwrap_or(DEFAULT_LISTEN);
        let no_token = self.api_token_env.is_none() && self.api_token_file.is_none();
        if no_token && !is_loopback(&listen.ip().to_string()) {
            return Err(fail(
                "listen",
                &format!(
                    "{listen} is reachable from other machines, and no API token configured: \
                     serve binds only to loopback; set api_token_env or api_token_file"
                ),
            ));
        }
        Ok(())
    }
}

impl ConfigFile {
    /// What `m365sync serve` runs with: `[serve]` and its defaults.
    pub fn serve_settings(&self) -> ServeSettings {
        self.serve.settings()
    }

    /// Where admin consent sends the customer's admin back to: serve's callback at
    /// `[serve] public_url`, else at `listening`, the address serve listens on.
    pub fn consent_redirect_uri(&self, listening: std::net::SocketAddr) -> String {
        let base = match &self.serve.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{listening}"),
        };
        format!("{base}/connect/callback")
    }

    /// The zone of default schedules: `[serve] timezone`, else the system's, else UTC.
    pub fn host_zone(&self) -> Zone {
        self.serve.timezone.clone().unwrap_or_else(Zone::system)
    }
}

fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map(Some).map_err(|_| {
        D::Error::custom(format!(
            "{text:?} is not a socket address: write ip:port, e.g. \"127.0.0.1:8080\" (this \
             machine only), \"0.0.0.0:8080\" (every IPv4 interface) or \"[::]:8080\""
        ))
    })
}

fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    rules::integer(d, WORKERS).map(|v| Some(v as u32))
}

fn per_app<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    rules::integer(d, PER_APP).map(|v| Some(v as u32))
}

fn max_running<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    rules::integer(d, MAX_RUNNING).map(|v| Some(v as u32))
}

fn failing_after<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    rules::integer(d, FAILING_AFTER).map(|v| Some(v as u32))
}

fn lease_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    rules::integer(d, LEASE_SECS).map(|v| Some(v as u64))
}

fn shutdown_grace_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    rules::integer(d, SHUTDOWN_GRACE_SECS).map(|v| Some(v as u64))
}

/// Each item a duration within 1s..=1d, at most [`MAX_RETRIES`] items. toml spans a list's
/// error as the whole list, so the message says which item (1-based) is wrong.
fn retry_backoff<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    if texts.len() > MAX_RETRIES {
        return Err(D::Error::custom(format!(
            "{} delays: at most {MAX_RETRIES} retries are allowed",
            texts.len()
        )));
    }
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            rules::duration(text, BACKOFF_MIN, BACKOFF_MAX, "1s..=1d")
                .map_err(|why| D::Error::custom(format!("item {}: {why}", index + 1)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests;
