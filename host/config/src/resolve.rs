//! From a validated config to what a run needs: the tenant as the engine is told it, its
//! sync options, the sandbox's allowlist, and where its secret is read from.

use std::path::PathBuf;

use crate::app::Credential;
use crate::urls::Allowlist;
use crate::{ConfigFile, EndpointOverrides, TenantConfig, allowlist, cloud};
use m365sync_wit::types::{
    AccountFilter, AttributeFilter, Cloud, CredentialKind, Endpoints, FieldMapping, RemovalGuard,
    SyncOptions, Tenant,
};

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
/// how its app signs in.
#[derive(Debug, Clone)]
pub struct TenantRun {
    /// What the engine is told (`credential` is set from [`TenantRun::credential`] when
    /// the run starts).
    pub tenant: Tenant,
    pub options: SyncOptions,
    /// What the sandbox may reach.
    pub allowlist: Allowlist,
    pub credential: Credential,
    /// The `[[app]]` it signs in with, by name (none: the tenant's own client id).
    pub app: Option<String>,
}

impl TenantRun {
    /// A run of `tenant` with the default options (users, every account, removal policy
    /// keep), allowed to reach exactly its endpoints' hosts and its cloud's report download
    /// hosts.
    pub fn new(tenant: Tenant, credential: impl Into<Credential>) -> TenantRun {
        let downloads = cloud::report_download_urls(tenant.cloud);
        TenantRun {
            allowlist: allowlist(&tenant.endpoints, &downloads, None),
            tenant,
            options: default_options(),
            credential: credential.into(),
            app: None,
        }
    }

    /// The tenant as the engine is told it: its credential kind is the run's.
    pub fn engine_tenant(&self) -> Tenant {
        Tenant {
            credential: self.credential.kind(),
            ..self.tenant.clone()
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
                cloud: Cloud::Global,
                endpoints: Endpoints {
                    login: String::new(),
                    graph: String::new(),
                },
                credential: CredentialKind::ClientSecret,
            },
            options: default_options(),
            allowlist: Allowlist::default(),
            credential: SecretSource::Value(String::new()).into(),
            app: None,
        }
    }

    /// Let this run commit its removals whatever their number (`--allow-mass-removal`):
    /// the config's guard limits are never lifted by the config itself.
    pub fn allow_mass_removal(&mut self, allow: bool) {
        self.options.removal_guard.allow = allow;
    }
}

impl ConfigFile {
    /// Resolve a tenant into what a run needs.
    pub fn resolve(&self, tenant: &TenantConfig) -> TenantRun {
        let (endpoints, downloads) = endpoints_in(tenant.cloud, tenant.endpoints.as_ref());
        let choice = self.app_choice(tenant);
        let (client_id, credential) = match choice.app().and_then(|name| self.app(name)) {
            Some(app) => (app.client_id.trim().to_string(), app.credential()),
            None => (
                tenant.client_id.trim().to_string(),
                tenant
                    .keys()
                    .credential()
                    .expect("validated when the config was read"),
            ),
        };
        let allowlist = allowlist(&endpoints, &downloads, self.host.allowed_hosts.as_deref());
        TenantRun {
            tenant: Tenant {
                key: tenant.name.clone(),
                tenant_id: tenant.tenant_id.trim().to_string(),
                client_id,
                cloud: tenant.cloud,
                endpoints,
                credential: credential.kind(),
            },
            options: sync_options(tenant),
            allowlist,
            credential,
            app: choice.app().map(str::to_string),
        }
    }
}

/// Where a tenant of `cloud` is reached: the cloud's documented sign-in and Graph base URLs
/// and report download hosts, each replaced by `overrides` where it sets one.
pub fn endpoints_in(
    cloud: Cloud,
    overrides: Option<&EndpointOverrides>,
) -> (Endpoints, Vec<String>) {
    let mut endpoints = cloud::endpoints(cloud);
    let mut downloads = cloud::report_download_urls(cloud);
    if let Some(overrides) = overrides {
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
    (endpoints, downloads)
}

/// The options of a tenant config that sets none.
pub fn default_options() -> SyncOptions {
    sync_options(&TenantConfig::empty())
}

fn sync_options(tenant: &TenantConfig) -> SyncOptions {
    let sync = &tenant.sync;
    let filter = &tenant.filter;
    SyncOptions {
        mode: sync.mode,
        features: sync.features,
        filter: AccountFilter {
            domains: filter.domains.clone(),
            licensed_only: filter.licensed_only,
            enabled_only: filter.enabled_only,
            include_guests: filter.include_guests,
            attributes: filter
                .attributes
                .iter()
                .map(|a| AttributeFilter {
                    attribute: a.attribute,
                    include: a.include.clone(),
                    exclude: a.exclude.clone(),
                })
                .collect(),
        },
        match_key: sync.match_key,
        removal: sync.removal,
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
