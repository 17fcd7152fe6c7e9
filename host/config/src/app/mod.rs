//! `[[app]]` and credentials: the app registrations a platform signs in with, how each
//! proves who it is, and which one a tenant uses.
//!
//! A credential is one of: a client secret (from an environment variable or a file, with
//! the date it expires when known), a certificate (its PEM file and a PKCS#8 key file: the
//! host signs each client assertion, and the key never enters the sandbox), or a federated
//! token file (workload identity federation: the token an outside identity provider wrote,
//! re-read for every sign-in). A tenant states its own (`client_id` and a credential, as
//! before apps existed), names an app (`app = "…"`), or names neither and gets the least
//! privileged app that covers its enabled features (BrainStorm's pattern: one app per
//! combination of features, so no customer grants more than it enabled).
//!
//! Least privilege is decided on features: an app's permissions are those the engine
//! requires for the app's features, and that requirement only grows with the features, so
//! an app whose features are a subset of another's never needs more. Among the apps that
//! cover a tenant's features the one with the fewest wins, then the first in the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use m365sync_wit::types::{CredentialKind, Features};

use crate::located::{Document, KeyPath};
use crate::resolve::SecretSource;
use crate::validate::{env_var_name, key_error};
use crate::{ConfigError, ConfigFile, TenantConfig, rules};

/// `[[app]]`: an app registration of the platform's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Unique in the file; tenants name it with `app = "…"`.
    pub name: String,
    /// Application (client) id.
    pub client_id: String,
    /// The features its granted permissions cover (default: users only).
    #[serde(default = "users_only", deserialize_with = "rules::features")]
    pub features: Features,
    /// The app's home tenant (where it is registered): where its own credentials' expiry
    /// dates can be read (`Application.Read.All`).
    #[serde(default, deserialize_with = "optional_tenant_id")]
    pub home_tenant_id: Option<String>,
    /// The cloud of the tenants it onboards (admin consent).
    #[serde(default = "crate::schema::default_cloud")]
    pub cloud: m365sync_wit::types::Cloud,
    /// Base URL overrides for the tenants it onboards (tests, simulators).
    pub endpoints: Option<crate::EndpointOverrides>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "expiry_date")]
    pub client_secret_expires: Option<jiff::civil::Date>,
    pub certificate_file: Option<PathBuf>,
    pub certificate_key_file: Option<PathBuf>,
    pub federated_token_file: Option<PathBuf>,
}

fn users_only() -> Features {
    Features::USERS
}

fn optional_tenant_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    rules::tenant_id(d).map(Some)
}

/// `client_secret_expires = "2027-05-01"`: the day the secret stops working.
pub(crate) fn expiry_date<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<jiff::civil::Date>, D::Error> {
    use serde::de::Error as _;
    let text = String::deserialize(d)?;
    text.trim()
        .parse::<jiff::civil::Date>()
        .map(Some)
        .map_err(|_| {
            D::Error::custom(format!(
                "{text:?} is not a date: write it as YYYY-MM-DD, the day the secret expires \
             (Certificates & secrets in the app registration shows it)"
            ))
        })
}

/// How an app signs in, resolved from the keys of a `[[tenant]]` or an `[[app]]`.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A client secret.
    ClientSecret {
        source: SecretSource,
        /// The day it expires, when the config says.
        expires: Option<jiff::civil::Date>,
    },
    /// A certificate registered on the app, and its private key (PKCS#8 PEM).
    Certificate {
        certificate_file: PathBuf,
        key_file: PathBuf,
    },
    /// A token file an outside identity provider writes (workload identity federation).
    Federated { token_file: PathBuf },
}

impl Credential {
    /// How the engine signs in with it.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::ClientSecret { .. } => CredentialKind::ClientSecret,
            Credential::Certificate { .. } | Credential::Federated { .. } => {
                CredentialKind::ClientAssertion
            }
        }
    }

    /// The client secret's source, for a secret credential.
    pub fn client_secret(&self) -> Option<&SecretSource> {
        match self {
            Credential::ClientSecret { source, .. } => Some(source),
            _ => None,
        }
    }

    /// What it is and where it is read from, never its value: "client secret from
    /// environment variable X", "certificate app.cert.pem", "federated token file …".
    pub fn describe(&self) -> String {
        match self {
            Credential::ClientSecret { source, .. } => format!("client secret from {source:?}"),
            Credential::Certificate {
                certificate_file, ..
            } => format!("certificate {}", certificate_file.display()),
            Credential::Federated { token_file } => {
                format!("federated token file {}", token_file.display())
            }
        }
    }
}

impl From<SecretSource> for Credential {
    fn from(source: SecretSource) -> Self {
        Credential::ClientSecret {
            source,
            expires: None,
        }
    }
}

/// The credential keys of a `[[tenant]]` or an `[[app]]`, read alike.
pub(crate) struct CredentialKeys<'a> {
    pub client_secret_env: &'a Option<String>,
    pub client_secret_file: &'a Option<PathBuf>,
    pub client_secret_expires: &'a Option<jiff::civil::Date>,
    pub certificate_file: &'a Option<PathBuf>,
    pub certificate_key_file: &'a Option<PathBuf>,
    pub federated_token_file: &'a Option<PathBuf>,
}

impl CredentialKeys<'_> {
    fn any(&self) -> bool {
        self.client_secret_env.is_some()
            || self.client_secret_file.is_some()
            || self.client_secret_expires.is_some()
            || self.certificate_file.is_some()
            || self.certificate_key_file.is_some()
            || self.federated_token_file.is_some()
    }

    /// The one credential the keys describe, or the key that is wrong and why.
    pub(crate) fn credential(&self) -> Result<Credential, (&'static str, String)> {
        let secret = self.client_secret_env.is_some() || self.client_secret_file.is_some();
        let certificate = self.certificate_file.is_some() || self.certificate_key_file.is_some();
        let federated = self.federated_token_file.is_some();
        let ways = [secret, certificate, federated]
            .iter()
            .filter(|&&w| w)
            .count();
        if ways == 0 {
            return Err((
                "",
                "no credential (a client secret, a certificate or a federated token): set \
                 client_secret_env or client_secret_file, certificate_file with \
                 certificate_key_file, or federated_token_file"
                    .to_string(),
            ));
        }
        if ways > 1 {
            let key = if federated {
                "federated_token_file"
            } else {
                "certificate_file"
            };
            return Err((
                key,
                "more than one credential is set (client secret, certificate, federated \
                 token): choose one"
                    .to_string(),
            ));
        }
        if self.client_secret_expires.is_some() && !secret {
            return Err((
                "client_secret_expires",
                "client_secret_expires applies to a client secret, and none is set".to_string(),
            ));
        }
        if secret {
            let source = match (self.client_secret_env, self.client_secret_file) {
                (Some(_), Some(_)) => {
                    return Err((
                        "client_secret_file",
                        "client_secret_env and client_secret_file are both set: choose one"
                            .to_string(),
                    ));
                }
                (Some(var), None) => {
                    env_var_name(var).map_err(|message| ("client_secret_env", message))?;
                    SecretSource::Env(var.clone())
                }
                (None, Some(file)) => SecretSource::File(file.clone()),
                (None, None) => unreachable!("a secret key is set"),
            };
            return Ok(Credential::ClientSecret {
                source,
                expires: *self.client_secret_expires,
            });
        }
        if certificate {
            return match (self.certificate_file, self.certificate_key_file) {
                (Some(certificate_file), Some(key_file)) => Ok(Credential::Certificate {
                    certificate_file: certificate_file.clone(),
                    key_file: key_file.clone(),
                }),
                (Some(_), None) => Err((
                    "certificate_file",
                    "certificate_key_file is missing: the certificate's private key (PKCS#8 \
                     PEM) signs the client assertions"
                        .to_string(),
                )),
                _ => Err((
                    "certificate_key_file",
                    "certificate_file is missing: the certificate (PEM) registered on the \
                     app names the key to Microsoft"
                        .to_string(),
                )),
            };
        }
        Ok(Credential::Federated {
            token_file: self.federated_token_file.clone().expect("federated is set"),
        })
    }
}

impl AppSection {
    pub(crate) fn keys(&self) -> CredentialKeys<'_> {
        CredentialKeys {
            client_secret_env: &self.client_secret_env,
            client_secret_file: &self.client_secret_file,
            client_secret_expires: &self.client_secret_expires,
            certificate_file: &self.certificate_file,
            certificate_key_file: &self.certificate_key_file,
            federated_token_file: &self.federated_token_file,
        }
    }

    /// The app's credential (validated when the file was read).
    pub fn credential(&self) -> Credential {
        self.keys()
            .credential()
            .expect("validated when the config was read")
    }

    pub(crate) fn make_relative_to(&mut self, base: &Path) {
        for file in [
            &mut self.client_secret_file,
            &mut self.certificate_file,
            &mut self.certificate_key_file,
            &mut self.federated_token_file,
        ] {
            relative_to(base, file);
        }
    }
}

impl TenantConfig {
    pub(crate) fn keys(&self) -> CredentialKeys<'_> {
        CredentialKeys {
            client_secret_env: &self.client_secret_env,
            client_secret_file: &self.client_secret_file,
            client_secret_expires: &self.client_secret_expires,
            certificate_file: &self.certificate_file,
            certificate_key_file: &self.certificate_key_file,
            federated_token_file: &self.federated_token_file,
        }
    }

    pub(crate) fn make_relative_to(&mut self, base: &Path) {
        for file in [
            &mut self.client_secret_file,
            &mut self.certificate_file,
            &mut self.certificate_key_file,
            &mut self.federated_token_file,
        ] {
            relative_to(base, file);
        }
    }
}

pub(crate) fn relative_to(base: &Path, file: &mut Option<PathBuf>) {
    if let Some(path) = file
        && path.is_relative()
    {
        *path = base.join(&*path);
    }
}

/// Which app a tenant signs in with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppChoice {
    /// The tenant states its own `client_id` and credential.
    Own,
    /// The tenant names the app (`app = "…"`).
    Named(String),
    /// The least privileged app covering the tenant's features.
    LeastPrivileged {
        app: String,
        /// Every app of the file with whether it covers the tenant's features.
        considered: Vec<(String, Features, bool)>,
    },
}

impl AppChoice {
    /// The chosen `[[app]]`'s name, if any.
    pub fn app(&self) -> Option<&str> {
        match self {
            AppChoice::Own => None,
            AppChoice::Named(app) | AppChoice::LeastPrivileged { app, .. } => Some(app),
        }
    }
}

impl ConfigFile {
    /// The `[[app]]` named `name`.
    pub fn app(&self, name: &str) -> Option<&AppSection> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Which app `tenant` signs in with (the file was validated: one exists).
    pub fn app_choice(&self, tenant: &TenantConfig) -> AppChoice {
        self.choose_app(tenant)
            .expect("validated when the config was read")
    }

    fn choose_app(&self, tenant: &TenantConfig) -> Result<AppChoice, String> {
        if let Some(name) = &tenant.app {
            let app = self.app(name).ok_or_else(|| {
                let known: Vec<&str> = self.apps.iter().map(|a| a.name.as_str()).collect();
                format!(
                    "no [[app]] is named {name:?} (the file has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            })?;
            let needed = tenant.sync.features;
            if !app.features.contains(needed) {
                return Err(format!(
                    "app {name:?} covers {}, and the tenant enables {}: add the missing \
                     features (and their permissions) to the app, or name another app",
                    feature_names(app.features),
                    feature_names(needed)
                ));
            }
            return Ok(AppChoice::Named(name.clone()));
        }
        if !tenant.client_id.trim().is_empty() {
            return Ok(AppChoice::Own);
        }
        let needed = tenant.sync.features;
        let considered: Vec<(String, Features, bool)> = self
            .apps
            .iter()
            .map(|a| (a.name.clone(), a.features, a.features.contains(needed)))
            .collect();
        let best = considered
            .iter()
            .filter(|(_, _, covers)| *covers)
            .min_by_key(|(_, features, _)| m365sync_wit::names::feature_names(*features).len());
        match best {
            Some((app, _, _)) => Ok(AppChoice::LeastPrivileged {
                app: app.clone(),
                considered: considered.clone(),
            }),
            None if self.apps.is_empty() => Err(
                "no app: set client_id and a credential, or name an [[app]] with app = \"…\""
                    .to_string(),
            ),
            None => Err(format!(
                "no [[app]] covers the tenant's features ({}): {}",
                feature_names(needed),
                considered
                    .iter()
                    .map(|(name, features, _)| format!(
                        "{name} covers {}",
                        feature_names(*features)
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    /// The rules of `[[app]]` and of each tenant's credential.
    pub(crate) fn validate_apps(
        &self,
        path: &Path,
        document: &Document<'_>,
    ) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (index, app) in self.apps.iter().enumerate() {
            let at = KeyPath::item("app", index);
            let fail = |key: &str, message: &str| {
                let key = if key.is_empty() {
                    at.clone()
                } else {
                    at.clone().key(key)
                };
                key_error(path, document, &key, None, message)
            };
            if app.name.trim().is_empty() {
                return Err(fail("name", "name is empty"));
            }
            if !names.insert(app.name.as_str()) {
                return Err(fail("name", "name is used by another [[app]] in this file"));
            }
            if app.client_id.trim().is_empty() {
                return Err(fail("client_id", "client_id is empty"));
            }
            if app.features == Features::empty() {
                return Err(fail(
                    "features",
                    "the list is empty: name the features the app's permissions cover",
                ));
            }
            app.keys()
                .credential()
                .map_err(|(key, message)| fail(key, &message))?;
        }
        for (index, tenant) in self.tenants.iter().enumerate() {
            let at = KeyPath::tenant(index);
            let fail = |key: &str, message: &str| {
                let key = if key.is_empty() {
                    at.clone()
                } else {
                    at.clone().key(key)
                };
                key_error(path, document, &key, None, message)
            };
            if tenant.app.is_some() {
                if !tenant.client_id.trim().is_empty() {
                    return Err(fail(
                        "client_id",
                        "client_id and app are both set: the app states its client id",
                    ));
                }
                if tenant.keys().any() {
                    return Err(fail(
                        "app",
                        "a credential and app are both set: the app states its credential",
                    ));
                }
            } else if !tenant.client_id.trim().is_empty() || tenant.keys().any() {
                if tenant.client_id.trim().is_empty() {
                    return Err(fail(
                        "",
                        "client_id is missing (or name an app with app = \"…\")",
                    ));
                }
                tenant
                    .keys()
                    .credential()
                    .map_err(|(key, message)| fail(key, &message))?;
            }
            self.choose_app(tenant)
                .map_err(|message| fail(if tenant.app.is_some() { "app" } else { "" }, &message))?;
        }
        Ok(())
    }
}

/// "users, licences".
fn feature_names(features: Features) -> String {
    m365sync_wit::names::feature_names(features).join(", ")
}

#[cfg(test)]
mod tests;
