//! The config file's schema: what each table and key may hold, with its default, as serde
//! reads it. Each value's own rule runs as it is read (`rules`); the rules between values
//! are in `validate`, and what a run needs is derived in `resolve`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::app::AppSection;
use crate::partner::PartnerSection;
use crate::rules;
use crate::schedule::ScheduleSection;
use crate::serve::ServeSection;
use crate::webhook::WebhookSection;
use m365sync_wit::types::{Attribute, Cloud, Features, MatchKey, RemovalPolicy, SyncMode};

/// A whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub host: HostSection,
    #[serde(default)]
    pub store: StoreSection,
    /// How `m365sync serve` runs (see [`ConfigFile::serve_settings`]).
    #[serde(default)]
    pub serve: ServeSection,
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// `[[app]]`: the platform's app registrations tenants sign in with.
    #[serde(default, rename = "app")]
    pub apps: Vec<AppSection>,
    /// `[[partner]]`: partner tenants whose customers are listed from their delegated
    /// admin relationships.
    #[serde(default, rename = "partner")]
    pub partners: Vec<PartnerSection>,
    /// Where `serve` delivers change events (see [`ConfigFile::webhooks`]).
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookSection>,
}

/// Where the host keeps its store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store: a `postgres://user@host/db` URL or a SQLite file (relative to the config
    /// file); wins over `host.db`, and the CLI's `--db` wins over it.
    #[serde(default, deserialize_with = "rules::store_url")]
    pub url: Option<String>,
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

/// One tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The host's name for the tenant; unique in the file.
    pub name: String,
    /// Directory (tenant) id (a GUID) or a verified domain.
    #[serde(deserialize_with = "rules::tenant_id")]
    pub tenant_id: String,
    /// Application (client) id; empty when the tenant signs in with an `[[app]]`.
    #[serde(default)]
    pub client_id: String,
    /// The `[[app]]` it signs in with; none: its own `client_id` and credential, or, with
    /// neither, the least privileged app covering its features (see [`crate::app`]).
    pub app: Option<String>,
    #[serde(default = "default_cloud")]
    pub cloud: Cloud,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// File holding the client secret (relative to the config file).
    pub client_secret_file: Option<PathBuf>,
    /// The day the client secret expires (`"2027-05-01"`): warned about from 30 days before.
    #[serde(default, deserialize_with = "crate::app::expiry_date")]
    pub client_secret_expires: Option<jiff::civil::Date>,
    /// The certificate (PEM) registered on the app, for client assertions.
    pub certificate_file: Option<PathBuf>,
    /// The certificate's private key (PKCS#8 PEM); read by the host only, when it signs.
    pub certificate_key_file: Option<PathBuf>,
    /// A token file an outside identity provider writes (workload identity federation).
    pub federated_token_file: Option<PathBuf>,
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
    /// `[tenant.schedule]`: when `serve` runs it (see [`ConfigFile::schedule`]).
    #[serde(default)]
    pub schedule: ScheduleSection,
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

/// The removal guard's defaults: Microsoft Entra Connect's 500, and 10 % of the stored
/// people.
pub const DEFAULT_MAX_REMOVAL_PERCENT: u8 = 10;
pub const DEFAULT_MAX_REMOVALS: u32 = 500;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    #[serde(default = "default_mode")]
    pub mode: SyncMode,
    /// The features by name (`users`, `managers`, ...: the WIT's `features` flags).
    #[serde(default = "default_features", deserialize_with = "rules::features")]
    pub features: Features,
    #[serde(default = "default_removal")]
    pub removal: RemovalPolicy,
    #[serde(default = "default_match_key")]
    pub match_key: MatchKey,
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
            mode: default_mode(),
            features: default_features(),
            removal: default_removal(),
            match_key: default_match_key(),
            field_map: Default::default(),
            usage_periods: default_periods(),
            max_removal_percent: DEFAULT_MAX_REMOVAL_PERCENT,
            max_removals: DEFAULT_MAX_REMOVALS,
        }
    }
}

fn default_mode() -> SyncMode {
    SyncMode::Incremental
}

fn default_features() -> Features {
    Features::USERS
}

fn default_removal() -> RemovalPolicy {
    RemovalPolicy::Keep
}

fn default_match_key() -> MatchKey {
    MatchKey::Email
}

pub(crate) fn default_cloud() -> Cloud {
    Cloud::Global
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSection {
    pub attribute: Attribute,
    #[serde(default, deserialize_with = "rules::include_values")]
    pub include: Vec<String>,
    #[serde(default, deserialize_with = "rules::exclude_values")]
    pub exclude: Vec<String>,
}

impl TenantConfig {
    pub(crate) fn empty() -> TenantConfig {
        TenantConfig {
            name: String::new(),
            tenant_id: String::new(),
            client_id: String::new(),
            app: None,
            cloud: Cloud::Global,
            client_secret_env: None,
            client_secret_file: None,
            client_secret_expires: None,
            certificate_file: None,
            certificate_key_file: None,
            federated_token_file: None,
            endpoints: None,
            sync: SyncSection::default(),
            filter: FilterSection::default(),
            field_map: BTreeMap::new(),
            schedule: ScheduleSection::default(),
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
    /// The store the file names: `[store] url`, else `host.db`.
    pub fn store_location(&self) -> Option<String> {
        self.store.url.clone().or_else(|| {
            self.host
                .db
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
        })
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
}
