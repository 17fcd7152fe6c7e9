//! A tenant's effective field map, checked before anything runs: the engine's default map
//! with the config's overrides applied, as the engine resolves it. An override the engine
//! refuses (an unknown Graph property, one platform field fed twice) is a config error that
//! names the file, the tenant and the key.

use std::path::Path;

use m365sync_config::{ConfigError, TenantConfig, TenantRun};
use m365sync_runtime::{RunError, Runtime};
use m365sync_wit::types::{FieldMapping, SyncError};

/// Why a tenant's field map could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum FieldMapError {
    /// The config's overrides are wrong (exit 2 at the CLI).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine could not be asked.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The tenant's effective field map; `path` is the config file, for errors.
pub async fn effective_field_map(
    runtime: &Runtime,
    path: &Path,
    tenant: &TenantConfig,
    run: &TenantRun,
) -> Result<Vec<FieldMapping>, FieldMapError> {
    let overrides = &run.options.field_map;
    let refused = |message: String| {
        FieldMapError::Config(ConfigError::Tenant {
            path: path.to_path_buf(),
            tenant: tenant.name.clone(),
            message,
        })
    };
    let error = match runtime.field_map(overrides).await {
        Ok(map) => return Ok(map),
        Err(error) => error,
    };
    let Some(SyncError::InvalidRequest(message)) = error.engine_error() else {
        return Err(error.into());
    };
    // Name the override the engine refused: the first that fails on its own.
    let section = if tenant.field_map.is_empty() {
        "sync.field_map"
    } else {
        "field_map"
    };
    for mapping in overrides {
        if let Err(single) = runtime.field_map(std::slice::from_ref(mapping)).await
            && let Some(SyncError::InvalidRequest(why)) = single.engine_error()
        {
            return Err(refused(format!(
                "{section}.{}: {}",
                mapping.graph_property,
                why.split_once(": ").map(|(_, w)| w).unwrap_or(why)
            )));
        }
    }
    Err(refused(format!("{section}: {message}")))
}
