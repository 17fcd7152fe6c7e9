//! From a validated config to what a run needs: the tenant as the engine is told it, its
//! sync options, the sandbox's allowlist, and where its secret is read from.

use std::path::PathBuf;

use crate::urls::Allowlist;
use crate::{ConfigFile, TenantConfig, allowlist, cloud};
use m365sync_wit::types::{
    AccountFilter, AttributeFilter, Cloud, Endpoints, FieldMapping, RemovalGuard, SyncOptions,
    Tenant,
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
        let downloads = cloud::report_download_urls(tenant.cloud);
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
                cloud: Cloud::Global,
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

impl ConfigFile {
    /// Resolve a tenant into what a run needs.
    pub fn resolve(&self, tenant: &TenantConfig) -> TenantRun {
        let mut endpoints = cloud::endpoints(tenant.cloud);
        let mut downloads = cloud::report_download_urls(tenant.cloud);
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
                cloud: tenant.cloud,
                endpoints,
            },
            options: sync_options(tenant),
            allowlist,
            client_secret,
        }
    }
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
