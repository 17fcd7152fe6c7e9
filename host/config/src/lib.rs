//! Tenant configuration (TOML): which tenants to sync, how to reach them, where their
//! secrets live, and what to import. Three steps, one module each: the file's `schema`
//! (serde, each value checked by its rule in `rules` as it is read), `validate` (the rules
//! between values), and `resolve` (what a run needs: the engine's tenant and options, the
//! sandbox's allowlist, the secret's source). Every error names the file, the line and
//! the key (`located`: toml's own spans), and what is allowed.
//!
//! `[[app]]` and each tenant's credential (a client secret, a certificate or a federated
//! token) are in `app`; `[[partner]]` (partner tenants and their customers) in `partner`.
//!
//! What `m365sync serve` adds has a module per section, each with its schema, rules and
//! resolved form: `schedule` (`[tenant.schedule]`: cron in an IANA zone, or an interval),
//! `serve` (`[serve]`: listen address, API token, limits, retries, leases), and `webhook`
//! (`[[webhook]]`: signed deliveries of the change feed).

pub mod app;
pub mod cloud;
mod located;
pub mod partner;
mod resolve;
mod rules;
pub mod schedule;
mod schema;
mod serve;
mod urls;
mod validate;
mod webhook;

use std::path::{Path, PathBuf};

use located::{Document, line_of_offset};
use validate::key_error;

pub use app::{AppChoice, AppSection, Credential};
pub use partner::{PARTNER_PERMISSION, PartnerSection};
pub use resolve::{SecretSource, TenantRun, default_options, endpoints_in};
pub use schema::{
    AttributeSection, ConfigFile, DEFAULT_MAX_REMOVAL_PERCENT, DEFAULT_MAX_REMOVALS,
    EndpointOverrides, FilterSection, HostSection, StoreSection, SyncSection, TenantConfig,
};

pub use rules::{
    MAX_REMOVAL_PERCENT, MAX_REMOVALS, MEMORY_LIMIT_MIB, RUN_TIMEOUT_SECS, Range, SANDBOXES,
};
pub use schedule::{CronExpr, Every, Schedule, ScheduleSection, Zone};
pub use serve::{
    DEFAULT_FAILING_AFTER, DEFAULT_LEASE, DEFAULT_LISTEN, DEFAULT_PER_APP, DEFAULT_RETRY_BACKOFF,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_WORKERS, FAILING_AFTER, LEASE_SECS, MAX_RETRIES, MAX_RUNNING,
    PER_APP, SHUTDOWN_GRACE_SECS, ServeSection, ServeSettings, WORKERS,
};
pub use urls::{Allowlist, Origin, allowlist, base_url, endpoint_url, is_loopback};
pub use webhook::{MAX_WEBHOOK_NAME, ReceiverUrl, WebhookSection, WebhookTarget};

/// A config file's problems. Every variant names where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}, line {line}: not valid TOML: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A value (or a missing one) at a key of the file.
    #[error("config {path}{}: {message}", place(*.line, .tenant.as_deref(), .key))]
    Key {
        path: PathBuf,
        /// The line of the key, or of its table when the file leaves the key out.
        line: Option<usize>,
        /// The `[[tenant]]` the key is in, by name (or `#N` when it has none).
        tenant: Option<String>,
        /// The key inside the tenant (`sync.removal`), or from the top (`host.sandboxes`);
        /// a `[[webhook]]`'s keys start with the webhook by name (`webhook "crm".url`).
        key: String,
        message: String,
    },
    #[error("config {path}, tenant {tenant:?}: {message}")]
    Tenant {
        path: PathBuf,
        tenant: String,
        message: String,
    },
    #[error("config {path}: {message}")]
    File { path: PathBuf, message: String },
}

/// ", line 7, tenant \"contoso\", sync.removal" for [`ConfigError::Key`].
fn place(line: Option<usize>, tenant: Option<&str>, key: &str) -> String {
    let mut place = String::new();
    if let Some(line) = line {
        place += &format!(", line {line}");
    }
    if let Some(tenant) = tenant {
        place += &format!(", tenant {tenant:?}");
    }
    if !key.is_empty() {
        place += &format!(", {key}");
    }
    place
}

impl ConfigFile {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfigFile::parse(&text, path)
    }

    /// Parse and validate config text; `path` is used in errors and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let document = Document::parse(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            line: line_of_offset(text, error.span().map_or(0, |span| span.start)),
            message: error.message().trim_end().to_string(),
        })?;
        let mut config: ConfigFile = toml::from_str(text).map_err(|error| {
            let at = error.span().map(|span| span.start);
            let key = at.map(|at| document.path_at(at)).unwrap_or_default();
            key_error(path, &document, &key, at, error.message().trim_end())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(db) = &config.host.db
            && db.is_relative()
        {
            config.host.db = Some(base.join(db));
        }
        if let Some(url) = &config.store.url
            && !url.contains("://")
            && Path::new(url).is_relative()
        {
            config.store.url = Some(base.join(url).to_string_lossy().into_owned());
        }
        for tenant in &mut config.tenants {
            tenant.make_relative_to(base);
        }
        for app in &mut config.apps {
            app.make_relative_to(base);
        }
        app::relative_to(base, &mut config.serve.api_token_file);
        for webhook in &mut config.webhooks {
            app::relative_to(base, &mut webhook.secret_file);
        }
        config.validate(path, &document)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
