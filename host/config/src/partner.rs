//! `[[partner]]`: a partner (MSP) tenant whose customers are found through its delegated
//! admin relationships (GDAP), as IT Glue discovers them. The partner signs in with one of
//! the file's `[[app]]`s, which needs `DelegatedAdminRelationship.Read.All` in the partner
//! tenant, and reaches each customer as that same multi-tenant app once the customer's
//! admin has consented to it.

use std::path::Path;

use serde::Deserialize;

use m365sync_wit::types::{Cloud, Tenant};

use crate::located::{Document, KeyPath};
use crate::schema::EndpointOverrides;
use crate::validate::key_error;
use crate::{AppSection, ConfigError, ConfigFile, TenantRun, allowlist, rules};

/// The application permission a partner's app needs in the partner tenant to list its
/// customers (read-only).
pub const PARTNER_PERMISSION: &str = "DelegatedAdminRelationship.Read.All";

/// `[[partner]]` as the file has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSection {
    /// Unique in the file.
    pub name: String,
    /// The partner's own directory (tenant) id or domain.
    #[serde(deserialize_with = "rules::tenant_id")]
    pub tenant_id: String,
    /// The `[[app]]` it signs in with (to the partner tenant and to each customer), in the
    /// app's cloud and at its endpoints.
    pub app: String,
    /// `serve` adds the customers the app is consented in as tenants by itself (at start,
    /// then daily), as `m365sync partner add --all` does.
    #[serde(default)]
    pub auto_add: bool,
}

impl ConfigFile {
    /// The `[[partner]]` named `name`, or the only one when `name` is none.
    pub fn partner(&self, name: Option<&str>) -> Result<&PartnerSection, String> {
        match name {
            Some(name) => self
                .partners
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| format!("no [[partner]] is named {name:?}")),
            None => match self.partners.as_slice() {
                [only] => Ok(only),
                [] => Err("the config has no [[partner]]".to_string()),
                _ => {
                    Err("the config has several [[partner]]s: name one with --partner".to_string())
                }
            },
        }
    }

    /// A run signed in to `tenant_id` (the partner's own, or a customer's) as the partner's
    /// app, in the app's cloud and at its endpoints, with the app's features.
    pub fn partner_run(&self, partner: &PartnerSection, key: &str, tenant_id: &str) -> TenantRun {
        let app = self
            .app(&partner.app)
            .expect("validated when the config was read");
        self.app_run(app, key, tenant_id, app.cloud, app.endpoints.as_ref())
    }

    /// A run of the directory `tenant_id`, named `key`, signed in to as `app` in `cloud`
    /// (its endpoints overridden by `endpoints`), with the app's features: how partners'
    /// customers and tenants registered by onboarding are reached.
    pub fn app_run(
        &self,
        app: &AppSection,
        key: &str,
        tenant_id: &str,
        cloud: Cloud,
        endpoints: Option<&EndpointOverrides>,
    ) -> TenantRun {
        let (resolved, downloads) = crate::resolve::endpoints_in(cloud, endpoints);
        let credential = app.credential();
        let mut run = TenantRun::new(
            Tenant {
                key: key.to_string(),
                tenant_id: tenant_id.to_string(),
                client_id: app.client_id.trim().to_string(),
                cloud,
                endpoints: resolved.clone(),
                credential: credential.kind(),
            },
            credential,
        );
        run.allowlist = allowlist(&resolved, &downloads, self.host.allowed_hosts.as_deref());
        run.options.features = app.features;
        run.app = Some(app.name.clone());
        run
    }

    pub(crate) fn validate_partners(
        &self,
        path: &Path,
        document: &Document<'_>,
    ) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (index, partner) in self.partners.iter().enumerate() {
            let at = KeyPath::item("partner", index);
            let fail =
                |key: &str, message: &str| key_error(path, document, &at.key(key), None, message);
            if partner.name.trim().is_empty() {
                return Err(fail("name", "name is empty"));
            }
            if !names.insert(partner.name.as_str()) {
                return Err(fail(
                    "name",
                    "name is used by another [[partner]] in this file",
                ));
            }
            if self.app(&partner.app).is_none() {
                return Err(fail(
                    "app",
                    &format!(
                        "no [[app]] is named {:?}: a partner signs in with one of the file's apps",
                        partner.app
                    ),
                ));
            }
        }
        Ok(())
    }
}
