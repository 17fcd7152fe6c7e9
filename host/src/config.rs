//! Tenant configuration (TOML): which tenants to sync, how to reach them, where their
//! secrets live, and what to import. Validated up front with errors that name the file,
//! the tenant and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::http::Allowlist;
use crate::cloud::Cloud;
use crate::runtime::bindings::types::{
    AccountFilter, Attribute, AttributeFilter, Endpoints, Features, FieldMapping, MatchKey,
    RemovalPolicy, SyncMode, SyncOptions, Tenant,
};

/// A config file's problems. Every variant names where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}, tenant {tenant:?}: {message}")]
    Tenant {
        path: PathBuf,
        tenant: String,
        message: String,
    },
    #[error("config {path}: {message}")]
    File { path: PathBuf, message: String },
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
    pub allowed_hosts: Option<Vec<String>>,
    /// Memory limit of one sandbox, in MiB.
    pub memory_limit_mib: Option<u64>,
    /// Wall-clock budget of one run, in seconds.
    pub run_timeout_secs: Option<u64>,
    /// Keep connections alive within a run (default true); false opens a connection per
    /// request (wasmtime's default sender), to compare.
    pub http_keep_alive: Option<bool>,
    /// Sandboxes that may run at once, from slots of wasmtime's pooling allocator
    /// reserved up front (default 64; more runs wait for a slot); 0 allocates each
    /// sandbox on demand instead.
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
    /// Directory (tenant) id or a verified domain.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointOverrides {
    pub login: Option<String>,
    pub graph: Option<String>,
    /// Base URLs of the hosts Graph redirects report downloads to.
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
    #[serde(default = "default_periods")]
    pub usage_periods: Vec<u16>,
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
        }
    }
}

fn default_features() -> Vec<FeatureName> {
    vec![FeatureName::Users]
}

fn default_periods() -> Vec<u16> {
    vec![30]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    #[serde(default = "all_domains")]
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
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
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
        let config = ConfigFile::parse(&text, path)?;
        Ok(config)
    }

    /// Parse and validate config text; `path` is used in errors and to resolve relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let mut config: ConfigFile = toml::from_str(text).map_err(|error| {
            let parse = || ConfigError::Parse {
                path: path.to_path_buf(),
                message: describe_toml_error(text, &error),
            };
            // A value the file's syntax allows but its meaning does not: name the tenant.
            let Ok(table) = toml::from_str::<toml::Table>(text) else {
                return parse();
            };
            let Some(toml::Value::Array(tenants)) = table.get("tenant") else {
                return parse();
            };
            for (index, tenant) in tenants.iter().enumerate() {
                if TenantConfig::deserialize(tenant.clone()).is_err() {
                    let name = tenant
                        .get("name")
                        .and_then(toml::Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("#{}", index + 1));
                    return ConfigError::Tenant {
                        path: path.to_path_buf(),
                        tenant: name,
                        message: describe_toml_error(text, &error),
                    };
                }
            }
            parse()
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
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if self.tenants.is_empty() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: "no [[tenant]] is configured".to_string(),
            });
        }
        if let Some(hosts) = &self.host.allowed_hosts {
            for host in hosts {
                if host.is_empty() || host.contains('/') {
                    return Err(ConfigError::File {
                        path: path.to_path_buf(),
                        message: format!(
                            "host.allowed_hosts: {host:?} is not an authority (\"host\" or \"host:port\")"
                        ),
                    });
                }
            }
        }
        let mut names = HashSet::new();
        for tenant in &self.tenants {
            let fail = |message: String| ConfigError::Tenant {
                path: path.to_path_buf(),
                tenant: tenant.name.clone(),
                message,
            };
            if tenant.name.trim().is_empty() {
                return Err(fail("name is empty".into()));
            }
            if !names.insert(tenant.name.as_str()) {
                return Err(fail("name is used by another tenant in this file".into()));
            }
            if tenant.tenant_id.trim().is_empty() {
                return Err(fail("tenant_id is empty".into()));
            }
            if tenant.client_id.trim().is_empty() {
                return Err(fail("client_id is empty".into()));
            }
            match (&tenant.client_secret_env, &tenant.client_secret_file) {
                (None, None) => {
                    return Err(fail(
                        "no client secret source: set client_secret_env or client_secret_file"
                            .into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(fail(
                        "client_secret_env and client_secret_file are both set: choose one".into(),
                    ));
                }
                (Some(var), None) if var.trim().is_empty() => {
                    return Err(fail("client_secret_env is empty".into()));
                }
                _ => {}
            }
            if let Some(overrides) = &tenant.endpoints {
                for (field, value) in [
                    ("endpoints.login", &overrides.login),
                    ("endpoints.graph", &overrides.graph),
                ] {
                    if let Some(url) = value {
                        base_url(url).map_err(|message| fail(format!("{field}: {message}")))?;
                    }
                }
                for url in overrides.reports.iter().flatten() {
                    base_url(url)
                        .map_err(|message| fail(format!("endpoints.reports: {message}")))?;
                }
            }
            if tenant.sync.features.is_empty() {
                return Err(fail(
                    "sync.features is empty: enable at least \"users\"".into(),
                ));
            }
            validate_field_map(tenant).map_err(fail)?;
            for period in &tenant.sync.usage_periods {
                if ![7, 30, 90, 180].contains(period) {
                    return Err(fail(format!(
                        "sync.usage_periods: {period} is not one of 7, 30, 90, 180"
                    )));
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

/// What a tenant's sandbox may reach: the origins of its endpoints, and its report
/// download hosts for credential-free GETs, each restricted to the operator's pinned
/// `allowed_hosts` when set.
pub fn allowlist(
    endpoints: &Endpoints,
    downloads: &[String],
    pinned: Option<&[String]>,
) -> Allowlist {
    let permitted = |url: &String| {
        let origin = base_url(url).ok()?;
        match pinned {
            Some(pins) if !pins.iter().any(|pin| origin.matches_pin(pin)) => None,
            _ => Some(origin.normalized),
        }
    };
    let mut allowlist = Allowlist::default();
    for origin in [&endpoints.login, &endpoints.graph]
        .into_iter()
        .filter_map(permitted)
    {
        if !allowlist.api.contains(&origin) {
            allowlist.api.push(origin);
        }
    }
    for origin in downloads.iter().filter_map(permitted) {
        if !allowlist.downloads.contains(&origin) && !allowlist.api.contains(&origin) {
            allowlist.downloads.push(origin);
        }
    }
    allowlist
}

/// A parsed base URL's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    pub port: u16,
    /// `scheme://host:port`, lower case.
    pub normalized: String,
}

impl Origin {
    pub fn new(scheme: &str, host: &str, port: Option<u16>) -> Origin {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port = port.unwrap_or(if scheme == "http" { 80 } else { 443 });
        let normalized = format!("{scheme}://{host}:{port}");
        Origin {
            host,
            port,
            normalized,
        }
    }

    fn matches_pin(&self, pin: &str) -> bool {
        let pin = pin.to_ascii_lowercase();
        match pin.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => {
                host == self.host && port.parse::<u16>().ok() == Some(self.port)
            }
            _ => pin.trim_end_matches('.') == self.host,
        }
    }
}

/// Check that `url` is an absolute http(s) base URL with no path beyond "/".
pub fn base_url(url: &str) -> Result<Origin, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|error| format!("{url:?} is not a URL ({error})"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| format!("{url:?} has no scheme"))?;
    if scheme != "https" && scheme != "http" {
        return Err(format!(
            "{url:?} must use https (or http for a local simulator)"
        ));
    }
    let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
    let path = uri.path();
    if !(path.is_empty() || path == "/") || uri.query().is_some() {
        return Err(format!(
            "{url:?} must be a base URL without a path or query"
        ));
    }
    Ok(Origin::new(scheme, host, uri.port_u16()))
}

/// A TOML error as "key: what is wrong (line N)", the key as its table path inside the
/// tenant (e.g. `sync.removal`), so the error names the file (by its caller), the tenant and
/// the key.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_number = text[..start].matches('\n').count() + 1;
    let line_end = text[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let key = line
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_string())
        .filter(|key| !key.is_empty() && !key.starts_with('['));
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|header| {
            let name = header.trim_start_matches('[').trim_end_matches(']').trim();
            name.strip_prefix("tenant.")
                .or_else(|| (name == "tenant").then_some(""))
                .unwrap_or(name)
                .to_string()
        });
    let path = match (section, key) {
        (Some(section), Some(key)) if !section.is_empty() => format!("{section}.{key}"),
        (_, Some(key)) => key,
        (Some(section), None) if !section.is_empty() => section,
        _ => return format!("{message} (line {line_number})"),
    };
    format!("{path}: {message} (line {line_number})")
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
        let example = include_str!("../../examples/tenant.toml");
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
}
