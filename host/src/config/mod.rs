//! Tenant configuration (TOML): which tenants to sync, how to reach them, where their
//! secrets live, and what to import. Validated at load: each value by its rule as it is
//! read (`rules`), the values that depend on each other afterwards; every error names the
//! file, the line and the key (`located`), and what is allowed.

mod located;
mod rules;
mod urls;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::http::Allowlist;
use crate::cloud::Cloud;
use crate::runtime::bindings::types::{
    AccountFilter, Attribute, AttributeFilter, Endpoints, Features, FieldMapping, MatchKey,
    RemovalGuard, RemovalPolicy, SyncMode, SyncOptions, Tenant,
};
use located::{Document, KeyPath, line_of_offset};

pub use rules::{
    MAX_REMOVAL_PERCENT, MAX_REMOVALS, MEMORY_LIMIT_MIB, RUN_TIMEOUT_SECS, Range, SANDBOXES,
};
pub use urls::{Origin, allowlist, base_url, is_loopback};

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
        /// The key inside the tenant (`sync.removal`), or from the top (`host.sandboxes`).
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

/// A whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub host: HostSection,
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
}

/// Operator settings for the reference host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// SQLite database path (relative to the config file); the CLI's `--db` wins.
    pub db: Option<PathBuf>,
    /// When set, the only authorities ("host" or "host:port") any tenant's sandbox may reach,
    /// whatever the tenant's endpoints say.
    #[serde(default, deserialize_with = "rules::allowed_hosts")]
    pub allowed_hosts: Option<Vec<String>>,
    /// Memory limit of one sandbox, in MiB ([`MEMORY_LIMIT_MIB`]).
    #[serde(default, deserialize_with = "rules::memory_limit_mib")]
    pub memory_limit_mib: Option<u64>,
    /// Wall-clock budget of one run, in seconds ([`RUN_TIMEOUT_SECS`]).
    #[serde(default, deserialize_with = "rules::run_timeout_secs")]
    pub run_timeout_secs: Option<u64>,
    /// Keep connections alive within a run (default true); false opens a connection per
    /// request (wasmtime's default sender), to compare.
    pub http_keep_alive: Option<bool>,
    /// Sandboxes that may run at once, from slots of wasmtime's pooling allocator
    /// reserved up front (default 64; more runs wait for a slot); 0 allocates each
    /// sandbox on demand instead ([`SANDBOXES`]).
    #[serde(default, deserialize_with = "rules::sandboxes")]
    pub sandboxes: Option<u32>,
}

impl HostSection {
    /// The HTTP sender `http_keep_alive` asks for.
    pub fn http_sender(&self) -> crate::capabilities::http::HttpSender {
        use crate::capabilities::http::HttpSender;
        match self.http_keep_alive {
            Some(false) => HttpSender::PerRequest,
            _ => HttpSender::Pooled,
        }
    }

    /// How the runtime allocates sandboxes, per `sandboxes`.
    pub fn sandbox_allocation(&self) -> crate::runtime::SandboxAllocation {
        use crate::runtime::SandboxAllocation;
        match self.sandboxes {
            None => SandboxAllocation::default(),
            Some(0) => SandboxAllocation::OnDemand,
            Some(n) => SandboxAllocation::Pooled(n),
        }
    }
}

/// One tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The host's name for the tenant; unique in the file.
    pub name: String,
    /// Directory (tenant) id (a GUID) or a verified domain.
    #[serde(deserialize_with = "rules::tenant_id")]
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    #[serde(default)]
    pub cloud: Cloud,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// File holding the client secret (relative to the config file).
    pub client_secret_file: Option<PathBuf>,
    /// Base URL overrides (tests, simulators).
    pub endpoints: Option<EndpointOverrides>,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub filter: FilterSection,
    /// `[tenant.field_map]`: Graph user property → platform field overrides of the
    /// engine's default map (`jobTitle = "title"`); an empty field leaves the property out.
    #[serde(default)]
    pub field_map: BTreeMap<String, String>,
}

/// `[tenant.endpoints]`: every key takes base URLs (see [`base_url`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointOverrides {
    #[serde(default, deserialize_with = "rules::base_url")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "rules::base_url")]
    pub graph: Option<String>,
    /// Base URLs of the hosts Graph redirects report downloads to.
    #[serde(default, deserialize_with = "rules::base_urls")]
    pub reports: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ModeName {
    #[default]
    Incremental,
    Full,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RemovalName {
    #[default]
    Keep,
    Flag,
    Deactivate,
    Delete,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MatchKeyName {
    #[default]
    Email,
    UserPrincipalName,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureName {
    Users,
    Managers,
    SignInActivity,
    Groups,
    Licences,
    Organization,
    Mailboxes,
    UsageReports,
}

impl FeatureName {
    pub fn flag(self) -> Features {
        match self {
            FeatureName::Users => Features::USERS,
            FeatureName::Managers => Features::MANAGERS,
            FeatureName::SignInActivity => Features::SIGN_IN_ACTIVITY,
            FeatureName::Groups => Features::GROUPS,
            FeatureName::Licences => Features::LICENCES,
            FeatureName::Organization => Features::ORGANIZATION,
            FeatureName::Mailboxes => Features::MAILBOXES,
            FeatureName::UsageReports => Features::USAGE_REPORTS,
        }
    }
}

/// The removal guard's defaults: Microsoft Entra Connect's 500, and 10 % of the stored
/// people.
pub const DEFAULT_MAX_REMOVAL_PERCENT: u8 = 10;
pub const DEFAULT_MAX_REMOVALS: u32 = 500;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    #[serde(default)]
    pub mode: ModeName,
    #[serde(default = "default_features")]
    pub features: Vec<FeatureName>,
    #[serde(default)]
    pub removal: RemovalName,
    #[serde(default)]
    pub match_key: MatchKeyName,
    /// Graph property → platform field overrides; the same as `[tenant.field_map]`, which
    /// is preferred (set one of the two).
    #[serde(default)]
    pub field_map: BTreeMap<String, String>,
    #[serde(default = "default_periods", deserialize_with = "rules::usage_periods")]
    pub usage_periods: Vec<u16>,
    /// A run that would remove more than this percent of the stored people stops before
    /// it commits a removal ([`MAX_REMOVAL_PERCENT`]).
    #[serde(
        default = "default_max_removal_percent",
        deserialize_with = "rules::max_removal_percent"
    )]
    pub max_removal_percent: u8,
    /// ... or more than this many people ([`MAX_REMOVALS`]).
    #[serde(
        default = "default_max_removals",
        deserialize_with = "rules::max_removals"
    )]
    pub max_removals: u32,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            mode: ModeName::default(),
            features: default_features(),
            removal: RemovalName::default(),
            match_key: MatchKeyName::default(),
            field_map: Default::default(),
            usage_periods: default_periods(),
            max_removal_percent: DEFAULT_MAX_REMOVAL_PERCENT,
            max_removals: DEFAULT_MAX_REMOVALS,
        }
    }
}

fn default_features() -> Vec<FeatureName> {
    vec![FeatureName::Users]
}

fn default_periods() -> Vec<u16> {
    vec![30]
}

fn default_max_removal_percent() -> u8 {
    DEFAULT_MAX_REMOVAL_PERCENT
}

fn default_max_removals() -> u32 {
    DEFAULT_MAX_REMOVALS
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    #[serde(default = "all_domains", deserialize_with = "rules::domains")]
    pub domains: Vec<String>,
    #[serde(default)]
    pub licensed_only: bool,
    #[serde(default)]
    pub enabled_only: bool,
    #[serde(default = "yes")]
    pub include_guests: bool,
    #[serde(default)]
    pub attributes: Vec<AttributeSection>,
}

impl Default for FilterSection {
    fn default() -> Self {
        FilterSection {
            domains: all_domains(),
            licensed_only: false,
            enabled_only: false,
            include_guests: true,
            attributes: Vec::new(),
        }
    }
}

fn all_domains() -> Vec<String> {
    vec!["*".to_string()]
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AttributeName {
    ProductName,
    Sku,
    Country,
    UsageLocation,
    Department,
    JobTitle,
    Office,
    Company,
    Group,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSection {
    pub attribute: AttributeName,
    #[serde(default, deserialize_with = "rules::include_values")]
    pub include: Vec<String>,
    #[serde(default, deserialize_with = "rules::exclude_values")]
    pub exclude: Vec<String>,
}

/// Where a tenant's client secret comes from.
#[derive(Clone)]
pub enum SecretSource {
    /// An environment variable, read when the run asks for the secret.
    Env(String),
    /// A file, read when the run asks for the secret (trailing newline trimmed).
    File(PathBuf),
    /// A value held in memory (embedders, the demo). Never printed.
    Value(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "environment variable {var}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::Value(_) => write!(f, "a value held in memory"),
        }
    }
}

/// A tenant ready to run: what the component is told, what the sandbox may reach, and
/// where its secret is.
#[derive(Debug, Clone)]
pub struct TenantRun {
    pub tenant: Tenant,
    pub options: SyncOptions,
    /// What the sandbox may reach.
    pub allowlist: Allowlist,
    pub client_secret: SecretSource,
}

impl TenantRun {
    /// A run of `tenant` with the default options (users, every account, removal policy
    /// keep), allowed to reach exactly its endpoints' hosts and its cloud's report download
    /// hosts.
    pub fn new(tenant: Tenant, client_secret: SecretSource) -> TenantRun {
        let downloads = Cloud::from_wit(tenant.cloud).report_download_urls();
        TenantRun {
            allowlist: allowlist(&tenant.endpoints, &downloads, None),
            tenant,
            options: default_options(),
            client_secret,
        }
    }

    /// A run for calls that reach no tenant (engine info, permission lists): it may reach
    /// no host and read no secret.
    pub fn nothing() -> TenantRun {
        TenantRun {
            tenant: Tenant {
                key: "(none)".to_string(),
                tenant_id: String::new(),
                client_id: String::new(),
                cloud: crate::runtime::bindings::types::Cloud::Global,
                endpoints: Endpoints {
                    login: String::new(),
                    graph: String::new(),
                },
            },
            options: default_options(),
            allowlist: Allowlist::default(),
            client_secret: SecretSource::Value(String::new()),
        }
    }

    /// Let this run commit its removals whatever their number (`--allow-mass-removal`):
    /// the config's guard limits are never lifted by the config itself.
    pub fn allow_mass_removal(&mut self, allow: bool) {
        self.options.removal_guard.allow = allow;
    }
}

impl TenantConfig {
    fn empty() -> TenantConfig {
        TenantConfig {
            name: String::new(),
            tenant_id: String::new(),
            client_id: String::new(),
            cloud: Cloud::Global,
            client_secret_env: None,
            client_secret_file: None,
            endpoints: None,
            sync: SyncSection::default(),
            filter: FilterSection::default(),
            field_map: BTreeMap::new(),
        }
    }

    /// The field map overrides, from `[tenant.field_map]` or `[tenant.sync.field_map]`.
    pub fn field_map(&self) -> &BTreeMap<String, String> {
        if self.field_map.is_empty() {
            &self.sync.field_map
        } else {
            &self.field_map
        }
    }
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
        for tenant in &mut config.tenants {
            if let Some(file) = &tenant.client_secret_file
                && file.is_relative()
            {
                tenant.client_secret_file = Some(base.join(file));
            }
        }
        config.validate(path, &document)?;
        Ok(config)
    }

    /// The rules between values (each value's own rule ran as it was read).
    fn validate(&self, path: &Path, document: &Document<'_>) -> Result<(), ConfigError> {
        if self.tenants.is_empty() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: "no [[tenant]] is configured".to_string(),
            });
        }
        let mut names = HashSet::new();
        for (index, tenant) in self.tenants.iter().enumerate() {
            let at = KeyPath::tenant(index);
            let fail = |key: &str, message: &str| {
                let key = if key.is_empty() {
                    at.clone()
                } else {
                    at.key(key)
                };
                key_error(path, document, &key, None, message)
            };
            if tenant.name.trim().is_empty() {
                return Err(fail("name", "name is empty"));
            }
            if !names.insert(tenant.name.as_str()) {
                return Err(fail("name", "name is used by another tenant in this file"));
            }
            if tenant.client_id.trim().is_empty() {
                return Err(fail("client_id", "client_id is empty"));
            }
            match (&tenant.client_secret_env, &tenant.client_secret_file) {
                (None, None) => {
                    return Err(fail(
                        "",
                        "no client secret source: set client_secret_env or client_secret_file",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(fail(
                        "client_secret_file",
                        "client_secret_env and client_secret_file are both set: choose one",
                    ));
                }
                (Some(var), None) if var.trim().is_empty() || var.contains(['=', '\0']) => {
                    return Err(fail(
                        "client_secret_env",
                        &format!("{var:?} is not an environment variable name"),
                    ));
                }
                _ => {}
            }
            if tenant.sync.features.is_empty() {
                return Err(fail(
                    "sync.features",
                    "the list is empty: enable at least \"users\"",
                ));
            }
            let map_key = if tenant.field_map.is_empty() {
                "sync.field_map"
            } else {
                "field_map"
            };
            validate_field_map(tenant).map_err(|message| fail(map_key, &message))?;
            for (i, rule) in tenant.filter.attributes.iter().enumerate() {
                if rule.include.is_empty() && rule.exclude.is_empty() {
                    let key = at.key("filter").key("attributes").index(i);
                    return Err(key_error(
                        path,
                        document,
                        &key,
                        None,
                        "neither include nor exclude is set: the filter would do nothing",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The tenant of that name, or the only tenant when `name` is None.
    pub fn tenant(&self, name: Option<&str>) -> Result<&TenantConfig, String> {
        match name {
            Some(name) => self.tenants.iter().find(|t| t.name == name).ok_or_else(|| {
                let known: Vec<_> = self.tenants.iter().map(|t| t.name.as_str()).collect();
                format!(
                    "no tenant named {name:?} in the config (tenants: {})",
                    known.join(", ")
                )
            }),
            None => self
                .tenants
                .first()
                .ok_or_else(|| "no tenant configured".to_string()),
        }
    }

    /// Resolve a tenant into what a run needs.
    pub fn resolve(&self, tenant: &TenantConfig) -> TenantRun {
        let mut endpoints = tenant.cloud.endpoints();
        let mut downloads = tenant.cloud.report_download_urls();
        if let Some(overrides) = &tenant.endpoints {
            if let Some(login) = &overrides.login {
                endpoints.login = login.trim_end_matches('/').to_string();
            }
            if let Some(graph) = &overrides.graph {
                endpoints.graph = graph.trim_end_matches('/').to_string();
            }
            if let Some(reports) = &overrides.reports {
                downloads = reports.clone();
            }
        }
        let client_secret = match (&tenant.client_secret_env, &tenant.client_secret_file) {
            (Some(var), _) => SecretSource::Env(var.clone()),
            (None, Some(file)) => SecretSource::File(file.clone()),
            (None, None) => SecretSource::Env(String::new()),
        };
        let allowlist = allowlist(&endpoints, &downloads, self.host.allowed_hosts.as_deref());
        TenantRun {
            tenant: Tenant {
                key: tenant.name.clone(),
                tenant_id: tenant.tenant_id.trim().to_string(),
                client_id: tenant.client_id.trim().to_string(),
                cloud: tenant.cloud.to_wit(),
                endpoints,
            },
            options: sync_options(tenant),
            allowlist,
            client_secret,
        }
    }
}

/// The error for `key` of the file: its line (at byte `at` when toml gave a span, else
/// where `key` is), its tenant by name, and the key inside the tenant.
fn key_error(
    path: &Path,
    document: &Document<'_>,
    key: &KeyPath,
    at: Option<usize>,
    message: &str,
) -> ConfigError {
    let line = match at {
        Some(at) => Some(document.line(at)),
        None => document.line_of(key),
    };
    let (tenant, key) = match key.split_tenant() {
        Some((index, rest)) => (
            Some(
                document
                    .tenant_name(index)
                    .unwrap_or_else(|| format!("#{}", index + 1)),
            ),
            rest.to_string(),
        ),
        None => (None, key.to_string()),
    };
    ConfigError::Key {
        path: path.to_path_buf(),
        line,
        tenant,
        key,
        message: message.to_string(),
    }
}

/// The longest platform field name accepted in a field map.
const MAX_FIELD_NAME: usize = 64;

/// Checks the form of a tenant's field map: each key a Graph property name (letters and
/// digits), each platform field printable and short, no platform field fed by two
/// properties, and only one of `[tenant.field_map]` and `[tenant.sync.field_map]` set.
/// Whether each property is one the engine reads is the engine's to say (see
/// `engine.field-map`); the CLI asks it before a run.
fn validate_field_map(tenant: &TenantConfig) -> Result<(), String> {
    if !tenant.field_map.is_empty() && !tenant.sync.field_map.is_empty() {
        return Err(
            "field_map and sync.field_map are both set: keep the map in [tenant.field_map]"
                .to_string(),
        );
    }
    let section = if tenant.field_map.is_empty() {
        "sync.field_map"
    } else {
        "field_map"
    };
    let mut fed: BTreeMap<String, &str> = BTreeMap::new();
    for (property, field) in tenant.field_map() {
        let name = property.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "{section}: {property:?} is not a Graph user property name (e.g. \"jobTitle\")"
            ));
        }
        let field = field.trim();
        if field.chars().any(char::is_control) || field.chars().count() > MAX_FIELD_NAME {
            return Err(format!(
                "{section}.{name}: {field:?} is not a platform field name (printable, at most \
                 {MAX_FIELD_NAME} characters; empty leaves the property out)"
            ));
        }
        if field.is_empty() {
            continue;
        }
        if let Some(other) = fed.insert(field.to_string(), name) {
            return Err(format!(
                "{section}.{name}: platform field {field:?} is already fed by {other}"
            ));
        }
    }
    Ok(())
}

/// The options of a tenant config that sets none.
pub fn default_options() -> SyncOptions {
    sync_options(&TenantConfig::empty())
}

fn sync_options(tenant: &TenantConfig) -> SyncOptions {
    let sync = &tenant.sync;
    let filter = &tenant.filter;
    let features = sync
        .features
        .iter()
        .fold(Features::empty(), |all, f| all | f.flag());
    SyncOptions {
        mode: match sync.mode {
            ModeName::Full => SyncMode::Full,
            ModeName::Incremental => SyncMode::Incremental,
        },
        features,
        filter: AccountFilter {
            domains: filter.domains.clone(),
            licensed_only: filter.licensed_only,
            enabled_only: filter.enabled_only,
            include_guests: filter.include_guests,
            attributes: filter
                .attributes
                .iter()
                .map(|a| AttributeFilter {
                    attribute: match a.attribute {
                        AttributeName::ProductName => Attribute::ProductName,
                        AttributeName::Sku => Attribute::Sku,
                        AttributeName::Country => Attribute::Country,
                        AttributeName::UsageLocation => Attribute::UsageLocation,
                        AttributeName::Department => Attribute::Department,
                        AttributeName::JobTitle => Attribute::JobTitle,
                        AttributeName::Office => Attribute::Office,
                        AttributeName::Company => Attribute::Company,
                        AttributeName::Group => Attribute::Group,
                    },
                    include: a.include.clone(),
                    exclude: a.exclude.clone(),
                })
                .collect(),
        },
        match_key: match sync.match_key {
            MatchKeyName::Email => MatchKey::Email,
            MatchKeyName::UserPrincipalName => MatchKey::UserPrincipalName,
        },
        removal: match sync.removal {
            RemovalName::Keep => RemovalPolicy::Keep,
            RemovalName::Flag => RemovalPolicy::Flag,
            RemovalName::Deactivate => RemovalPolicy::Deactivate,
            RemovalName::Delete => RemovalPolicy::Delete,
        },
        // The config sets the limits; only the operator's flag for one run lifts them
        // (`TenantRun::allow_mass_removal`).
        removal_guard: RemovalGuard {
            max_percent: sync.max_removal_percent,
            max_count: sync.max_removals,
            allow: false,
        },
        field_map: tenant
            .field_map()
            .iter()
            .map(|(graph, platform)| FieldMapping {
                graph_property: graph.trim().to_string(),
                platform_field: platform.trim().to_string(),
            })
            .collect(),
        usage_periods: sync.usage_periods.clone(),
        dry_run: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[tenant]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "CONTOSO_SECRET"
"#;

    #[test]
    fn minimal_config_resolves_to_global_cloud() {
        let config = ConfigFile::parse(MINIMAL, Path::new("t.toml")).unwrap();
        let run = config.resolve(config.tenant(None).unwrap());
        assert_eq!(run.tenant.endpoints.graph, "https://graph.microsoft.com");
        assert_eq!(
            run.allowlist.api,
            vec![
                "https://login.microsoftonline.com:443",
                "https://graph.microsoft.com:443"
            ]
        );
        assert!(!run.allowlist.downloads.is_empty());
        assert_eq!(run.options.features, Features::USERS);
    }

    #[test]
    fn sandboxes_pick_the_pool_size_or_on_demand() {
        use crate::runtime::SandboxAllocation;
        let with = |line: &str| {
            let text = format!("[host]\n{line}\n{MINIMAL}");
            ConfigFile::parse(&text, Path::new("t.toml"))
                .unwrap()
                .host
                .sandbox_allocation()
        };
        assert_eq!(with(""), SandboxAllocation::Pooled(64));
        assert_eq!(with("sandboxes = 8"), SandboxAllocation::Pooled(8));
        assert_eq!(with("sandboxes = 0"), SandboxAllocation::OnDemand);
        let error = ConfigFile::parse(
            &format!("[host]\nsandboxes = -1\n{MINIMAL}"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("sandboxes"), "{error}");
    }

    #[test]
    fn unknown_field_is_named() {
        let text = format!("{MINIMAL}colour = \"blue\"\n");
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("colour"), "{error}");
        assert!(error.contains("t.toml"), "{error}");
    }

    #[test]
    fn missing_secret_source_is_named() {
        let text = MINIMAL.replace("client_secret_env = \"CONTOSO_SECRET\"", "");
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("contoso") && error.contains("client_secret_env"),
            "{error}"
        );
    }

    #[test]
    fn bad_endpoint_is_named() {
        let text = format!("{MINIMAL}[tenant.endpoints]\ngraph = \"ftp://x\"\n");
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("endpoints.graph"), "{error}");
    }

    #[test]
    fn bad_enum_value_names_the_tenant_and_key() {
        let text = format!("{MINIMAL}[tenant.sync]\nremoval = \"shred\"\n");
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("t.toml")
                && error.contains("\"contoso\"")
                && error.contains("sync.removal")
                && error.contains("shred"),
            "{error}"
        );
        let text = format!("{MINIMAL}[tenant.sync]\nmatch_key = \"phone\"\n");
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sync.match_key") && error.contains("phone"),
            "{error}"
        );
    }

    #[test]
    fn match_key_removal_and_field_map_reach_the_options() {
        let text = format!(
            "{MINIMAL}[tenant.sync]\nmatch_key = \"user-principal-name\"\nremoval = \"flag\"\n\
             [tenant.field_map]\njobTitle = \"title\"\nofficeLocation = \"\"\n"
        );
        let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
        let run = config.resolve(&config.tenants[0]);
        assert_eq!(run.options.match_key, MatchKey::UserPrincipalName);
        assert_eq!(run.options.removal, RemovalPolicy::Flag);
        let map: Vec<(&str, &str)> = run
            .options
            .field_map
            .iter()
            .map(|m| (m.graph_property.as_str(), m.platform_field.as_str()))
            .collect();
        assert_eq!(map, [("jobTitle", "title"), ("officeLocation", "")]);
    }

    #[test]
    fn bad_field_maps_are_named() {
        for (map, expected) in [
            ("\"job title\" = \"title\"", "field_map"),
            (
                "jobTitle = \"title\"\ndepartment = \"title\"",
                "already fed by",
            ),
            ("jobTitle = \"a\\u0007b\"", "field_map.jobTitle"),
        ] {
            let text = format!("{MINIMAL}[tenant.field_map]\n{map}\n");
            let error = ConfigFile::parse(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("t.toml") && error.contains("contoso") && error.contains(expected),
                "{map}: {error}"
            );
        }
        let text = format!(
            "{MINIMAL}[tenant.sync.field_map]\njobTitle = \"t\"\n[tenant.field_map]\nsurname = \"s\"\n"
        );
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("both set"), "{error}");
        let error = ConfigFile::parse(
            &format!("{MINIMAL}[tenant.field_map]\njobTitle = 3\n"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("contoso") && error.contains("field_map.jobTitle"),
            "{error}"
        );
    }

    #[test]
    fn the_example_config_parses_with_and_without_its_commented_options() {
        let example = include_str!("../../../examples/tenant.toml");
        let config = ConfigFile::parse(example, Path::new("examples/tenant.toml")).unwrap();
        assert!(config.tenants[0].field_map().is_empty());
        let uncommented: String = example
            .lines()
            .map(|line| {
                for option in [
                    "# match_key =",
                    "# [tenant.field_map]",
                    "# jobTitle =",
                    "# companyName =",
                    "# officeLocation =",
                    "# max_removal_percent =",
                    "# max_removals =",
                ] {
                    if line.starts_with(option) {
                        return line.trim_start_matches("# ").to_string() + "\n";
                    }
                }
                line.to_string() + "\n"
            })
            .collect();
        let config = ConfigFile::parse(&uncommented, Path::new("examples/tenant.toml")).unwrap();
        let run = config.resolve(&config.tenants[0]);
        assert_eq!(run.options.match_key, MatchKey::Email);
        assert_eq!(run.options.field_map.len(), 3);
        assert_eq!(
            (
                run.options.removal_guard.max_percent,
                run.options.removal_guard.max_count
            ),
            (10, 500)
        );
    }

    #[test]
    fn pinned_hosts_restrict_the_allowlist() {
        let endpoints = Endpoints {
            login: "http://127.0.0.1:4000".into(),
            graph: "http://127.0.0.1:5000".into(),
        };
        let downloads = vec!["http://127.0.0.2:6000".to_string()];
        let pins = vec!["127.0.0.1:4000".to_string()];
        let pinned = allowlist(&endpoints, &downloads, Some(&pins));
        assert_eq!(pinned.api, vec!["http://127.0.0.1:4000"]);
        assert!(pinned.downloads.is_empty());
        let open = allowlist(&endpoints, &downloads, None);
        assert_eq!(open.api.len(), 2);
        assert_eq!(open.downloads, vec!["http://127.0.0.2:6000"]);
    }

    #[test]
    fn cloud_selects_documented_hosts() {
        let text = MINIMAL.replace(
            "client_secret_env",
            "cloud = \"us-gov-dod\"\nclient_secret_env",
        );
        let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
        let run = config.resolve(&config.tenants[0]);
        assert_eq!(run.tenant.endpoints.graph, "https://dod-graph.microsoft.us");
        assert_eq!(
            run.tenant.endpoints.login,
            "https://login.microsoftonline.us"
        );
    }

    /// The error of `text`, as the CLI prints it.
    fn error_of(text: &str) -> String {
        ConfigFile::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string()
    }

    fn assert_names(error: &str, parts: &[&str]) {
        for part in parts {
            assert!(error.contains(part), "{part:?} missing from: {error}");
        }
    }

    #[test]
    fn invalid_domains_are_refused_naming_file_line_tenant_key_and_value() {
        let text =
            format!("{MINIMAL}[tenant.filter]\ndomains = [\"contoso.com\", \"not a domain!\"]\n");
        let error = error_of(&text);
        assert_names(
            &error,
            &[
                "t.toml",
                "line 8",
                "tenant \"contoso\"",
                "filter.domains: item 2",
                "\"not a domain!\"",
            ],
        );
        for bad in ["contoso", "", "con*so.com", "a..b"] {
            let text = format!("{MINIMAL}[tenant.filter]\ndomains = [\"{bad}\"]\n");
            assert_names(&error_of(&text), &["filter.domains: item 1"]);
        }
        let mixed = format!("{MINIMAL}[tenant.filter]\ndomains = [\"*\", \"contoso.com\"]\n");
        assert_names(&error_of(&mixed), &["filter.domains", "alone"]);
        let fine = format!(
            "{MINIMAL}[tenant.filter]\ndomains = [\"contoso.com\", \"*.fabrikam.com\", \"münchen.de\"]\n"
        );
        let config = ConfigFile::parse(&fine, Path::new("t.toml")).unwrap();
        assert_eq!(
            config
                .resolve(&config.tenants[0])
                .options
                .filter
                .domains
                .len(),
            3
        );
    }

    #[test]
    fn attribute_filter_values_are_checked() {
        let with = |rule: &str| {
            format!("{MINIMAL}[[tenant.filter.attributes]]\nattribute = \"department\"\n{rule}\n")
        };
        for (rule, key) in [
            (
                "include = [\"Sales\", \"\"]",
                "filter.attributes[0].include: item 2",
            ),
            (
                "include = [\"a\\u0001b\"]",
                "filter.attributes[0].include: item 1",
            ),
            ("exclude = [\"*\"]", "filter.attributes[0].exclude: item 1"),
            ("", "filter.attributes[0]"),
        ] {
            let error = error_of(&with(rule));
            assert_names(&error, &["t.toml", "line ", "tenant \"contoso\"", key]);
        }
        let config = ConfigFile::parse(
            &with("include = [\"Sales*\"]\nexclude = [\"Sales Ops\"]"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(config.tenants[0].filter.attributes[0].include, ["Sales*"]);
    }

    #[test]
    fn usage_periods_are_graphs_periods() {
        let text = format!("{MINIMAL}[tenant.sync]\nusage_periods = [30, 31]\n");
        assert_names(
            &error_of(&text),
            &["line 8", "sync.usage_periods", "31", "7, 30, 90, 180"],
        );
        let text = format!("{MINIMAL}[tenant.sync]\nusage_periods = [30, 30]\n");
        assert_names(&error_of(&text), &["sync.usage_periods", "twice"]);
    }

    #[test]
    fn removal_guard_keys_reach_the_options_and_are_range_checked() {
        let config = ConfigFile::parse(MINIMAL, Path::new("t.toml")).unwrap();
        let guard = config.resolve(&config.tenants[0]).options.removal_guard;
        assert_eq!(
            (guard.max_percent, guard.max_count, guard.allow),
            (10, 500, false)
        );
        let text = format!("{MINIMAL}[tenant.sync]\nmax_removal_percent = 25\nmax_removals = 0\n");
        let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
        let mut run = config.resolve(&config.tenants[0]);
        let guard = run.options.removal_guard;
        assert_eq!(
            (guard.max_percent, guard.max_count, guard.allow),
            (25, 0, false)
        );
        run.allow_mass_removal(true);
        assert!(run.options.removal_guard.allow);
        for (line, range) in [
            ("max_removal_percent = 101", "0..=100"),
            ("max_removal_percent = -1", "0..=100"),
            ("max_removals = -5", "0..=4294967295"),
            ("max_removals = 4294967296", "0..=4294967295"),
        ] {
            let text = format!("{MINIMAL}[tenant.sync]\n{line}\n");
            let key = line.split(' ').next().unwrap();
            assert_names(&error_of(&text), &["line 8", &format!("sync.{key}"), range]);
        }
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback_for_every_url_key() {
        for (key, value) in [
            ("graph", "\"http://graph.microsoft.com\""),
            ("login", "\"http://login.microsoftonline.com\""),
            ("reports", "[\"http://reports.office.com\"]"),
        ] {
            let text = format!("{MINIMAL}[tenant.endpoints]\n{key} = {value}\n");
            assert_names(
                &error_of(&text),
                &[
                    "t.toml",
                    "line 8",
                    &format!("endpoints.{key}"),
                    "not loopback",
                ],
            );
        }
        let text = format!(
            "{MINIMAL}[tenant.endpoints]\nlogin = \"http://127.0.0.1:4001\"\n\
             graph = \"http://localhost:4002\"\nreports = [\"http://[::1]:4003\"]\n"
        );
        let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
        let run = config.resolve(&config.tenants[0]);
        assert_eq!(run.tenant.endpoints.login, "http://127.0.0.1:4001");
        assert_eq!(run.allowlist.downloads, ["http://[::1]:4003"]);
    }

    #[test]
    fn ports_and_user_info_in_urls_are_refused_at_load() {
        let text = format!("{MINIMAL}[tenant.endpoints]\ngraph = \"http://127.0.0.1:99999\"\n");
        assert_names(
            &error_of(&text),
            &["line 8", "endpoints.graph", "99999", "1..=65535"],
        );
        let text = format!(
            "{MINIMAL}[tenant.endpoints]\nlogin = \"https://admin:hunter2@login.microsoftonline.com\"\n"
        );
        let error = error_of(&text);
        assert_names(&error, &["endpoints.login", "user info"]);
        assert!(!error.contains("hunter2"), "{error}");
        let text = format!("[host]\nallowed_hosts = [\"graph.microsoft.com:99999\"]\n{MINIMAL}");
        assert_names(
            &error_of(&text),
            &["line 2", "host.allowed_hosts: item 1", "1..=65535"],
        );
    }

    #[test]
    fn host_limits_out_of_range_name_line_key_and_range() {
        for (line, key, range) in [
            ("memory_limit_mib = 0", "host.memory_limit_mib", "16..=4096"),
            ("memory_limit_mib = 1", "host.memory_limit_mib", "16..=4096"),
            (
                "memory_limit_mib = 17592186044416",
                "host.memory_limit_mib",
                "16..=4096",
            ),
            (
                "memory_limit_mib = 1000000",
                "host.memory_limit_mib",
                "16..=4096",
            ),
            ("sandboxes = 100000", "host.sandboxes", "0..=1024"),
            ("run_timeout_secs = 0", "host.run_timeout_secs", "1..=86400"),
        ] {
            let text = format!("[host]\n{line}\n{MINIMAL}");
            assert_names(&error_of(&text), &["t.toml", "line 2", key, range]);
        }
        let text = format!("[host]\nmemory_limit_mib = 4096\nrun_timeout_secs = 1\n{MINIMAL}");
        let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(config.host.memory_limit_mib, Some(4096));
    }

    #[test]
    fn tenant_ids_must_be_guids_or_domains() {
        let text = MINIMAL.replace("contoso.onmicrosoft.com", "not a tenant");
        assert_names(
            &error_of(&text),
            &["line 4", "tenant \"contoso\"", "tenant_id", "GUID"],
        );
        let text = MINIMAL.replace(
            "contoso.onmicrosoft.com",
            "11111111-2222-3333-4444-555555555555",
        );
        assert!(ConfigFile::parse(&text, Path::new("t.toml")).is_ok());
    }

    #[test]
    fn a_missing_field_names_its_tenant_not_the_section_above() {
        let text = "[host]\nmemory_limit_mib = 256\n\n[[tenant]]\nname = \"a\"\ntenant_id = \"contoso.com\"\n\
                    client_secret_env = \"X\"\n";
        let error = error_of(text);
        assert_names(&error, &["t.toml", "line 4", "tenant \"a\"", "client_id"]);
        assert!(!error.contains("host"), "{error}");
        // A syntax error names its line too.
        assert_names(
            &error_of("[[tenant]\nname = 1\n"),
            &["t.toml", "line 1", "TOML"],
        );
    }

    #[test]
    fn an_unreadable_config_says_the_os_error_once() {
        let error = ConfigFile::load(Path::new("/nonexistent/x.toml")).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(error));
        assert!(chain.contains("/nonexistent/x.toml"), "{chain}");
        assert_eq!(chain.matches("os error").count(), 1, "{chain}");
    }
}
