//! `[[webhook]]`: where `m365sync serve` POSTs the change feed's events, signed. Each entry
//! names a receiver URL (https, or http to loopback only: the same rule as every URL of
//! the file), where its signing secret is read from, and which events and tenants it
//! takes. The URLs named here are the only places deliveries go (redirects are not
//! followed).
//!
//! A receiver URL may carry a credential in its path or query (Slack-style URLs,
//! `?code=` keys), so it is shown nowhere: Debug output and messages name its origin
//! (`https://hooks.example.com:443`) only.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use m365sync_store::feed::ChangeKind;

use crate::located::{Document, KeyPath};
use crate::resolve::SecretSource;
use crate::urls::{Origin, endpoint_url};
use crate::validate::{env_var_name, key_error};
use crate::{ConfigError, ConfigFile};

/// The longest webhook name (it is a key in the store and in the API's paths).
pub const MAX_WEBHOOK_NAME: usize = 64;

/// `[[webhook]]` as the file has it; [`ConfigFile::webhooks`] resolves it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Unique in the file: the key of the webhook's delivery position in the store.
    pub name: String,
    /// The receiver: https, or http to a loopback host only.
    #[serde(deserialize_with = "receiver_url")]
    pub url: ReceiverUrl,
    /// Environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// File holding the signing secret (relative to the config file).
    pub secret_file: Option<PathBuf>,
    /// The events it takes, by name (`person.created`...); default: all.
    #[serde(default = "all_events", deserialize_with = "events")]
    pub events: Vec<ChangeKind>,
    /// The tenants (by name, of this file) whose events it takes; default: all.
    pub tenants: Option<Vec<String>>,
}

impl fmt::Debug for WebhookSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSection")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret_env", &self.secret_env)
            .field("secret_file", &self.secret_file)
            .field("events", &self.events)
            .field("tenants", &self.tenants)
            .finish()
    }
}

/// A receiver URL that passed the URL rule, and its origin (what may be shown).
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiverUrl {
    url: String,
    origin: Origin,
}

impl ReceiverUrl {
    /// Check `url`: https, or http to a loopback host; a valid host and port; no user info.
    /// A path and a query are allowed. The error names the origin at most.
    pub fn parse(url: &str) -> Result<ReceiverUrl, String> {
        let url = url.trim();
        let origin = endpoint_url(url)?;
        Ok(ReceiverUrl {
            url: url.to_string(),
            origin,
        })
    }

    /// The whole URL, to send to; may hold a credential: never show it.
    pub fn as_secret_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host:port`: what to show.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl fmt::Debug for ReceiverUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}/…\"", self.origin.normalized)
    }
}

/// A webhook ready to deliver to.
#[derive(Clone)]
pub struct WebhookTarget {
    /// Its name: the key of its delivery position (cursor, lease) in the store.
    pub name: String,
    pub url: ReceiverUrl,
    /// The signing secret's source, read at each delivery (a rotated secret is picked up);
    /// its Debug names the source, never the value.
    pub secret: SecretSource,
    /// The events it takes (never empty).
    pub events: Vec<ChangeKind>,
    /// The tenants whose events it takes; None: all.
    pub tenants: Option<Vec<String>>,
}

impl WebhookTarget {
    /// Whether an event of `kind` for `tenant` goes to this webhook.
    pub fn wants(&self, kind: ChangeKind, tenant: &str) -> bool {
        self.events.contains(&kind)
            && self
                .tenants
                .as_ref()
                .is_none_or(|tenants| tenants.iter().any(|t| t == tenant))
    }
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret)
            .field("events", &self.events)
            .field("tenants", &self.tenants)
            .finish()
    }
}

impl ConfigFile {
    /// The file's webhooks, ready to deliver to.
    pub fn webhooks(&self) -> Vec<WebhookTarget> {
        self.webhooks
            .iter()
            .map(|webhook| WebhookTarget {
                name: webhook.name.trim().to_string(),
                url: webhook.url.clone(),
                secret: match (&webhook.secret_env, &webhook.secret_file) {
                    (Some(var), _) => SecretSource::Env(var.clone()),
                    (None, Some(file)) => SecretSource::File(file.clone()),
                    // Refused at load (exactly one is set).
                    (None, None) => SecretSource::Env(String::new()),
                },
                events: webhook.events.clone(),
                tenants: webhook.tenants.clone(),
            })
            .collect()
    }

    /// The rules between `[[webhook]]` values, and against the file's tenants.
    pub(crate) fn validate_webhooks(
        &self,
        path: &Path,
        document: &Document<'_>,
    ) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (index, webhook) in self.webhooks.iter().enumerate() {
            let at = KeyPath::item("webhook", index);
            let fail = |key: &str, message: &str| {
                let key = if key.is_empty() {
                    at.clone()
                } else {
                    at.key(key)
                };
                key_error(path, document, &key, None, message)
            };
            let name = webhook.name.trim();
            if name.is_empty() {
                return Err(fail("name", "name is empty"));
            }
            if name.chars().any(char::is_control) || name.chars().count() > MAX_WEBHOOK_NAME {
                return Err(fail(
                    "name",
                    &format!(
                        "{name:?} is not a webhook name (printable, at most {MAX_WEBHOOK_NAME} \
                         characters)"
                    ),
                ));
            }
            if !names.insert(name) {
                return Err(fail("name", "name is used by another webhook in this file"));
            }
            match (&webhook.secret_env, &webhook.secret_file) {
                (None, None) => {
                    return Err(fail(
                        "",
                        "no signing secret source: set secret_env or secret_file",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(fail(
                        "secret_file",
                        "secret_env and secret_file are both set: choose one",
                    ));
                }
                (Some(var), None) => {
                    env_var_name(var).map_err(|message| fail("secret_env", &message))?;
                }
                (None, Some(_)) => {}
            }
            if let Some(tenants) = &webhook.tenants {
                if tenants.is_empty() {
                    return Err(fail(
                        "tenants",
                        "the list is empty, so nothing would be delivered: list tenants, or \
                         leave tenants out for all",
                    ));
                }
                for (i, tenant) in tenants.iter().enumerate() {
                    if !self.tenants.iter().any(|t| &t.name == tenant) {
                        let known: Vec<&str> =
                            self.tenants.iter().map(|t| t.name.as_str()).collect();
                        return Err(fail(
                            "tenants",
                            &format!(
                                "item {}: no tenant named {tenant:?} in this file (tenants: {})",
                                i + 1,
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn receiver_url<'de, D: Deserializer<'de>>(d: D) -> Result<ReceiverUrl, D::Error> {
    let url = String::deserialize(d)?;
    ReceiverUrl::parse(&url).map_err(D::Error::custom)
}

fn all_events() -> Vec<ChangeKind> {
    ChangeKind::ALL.to_vec()
}

/// Event names, each one the change feed has, none twice, at least one.
fn events<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ChangeKind>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.is_empty() {
        return Err(D::Error::custom(
            "the list is empty, so nothing would be delivered: list events, or leave events \
             out for all",
        ));
    }
    let mut kinds = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let kind = ChangeKind::from_name(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.name()).collect();
            D::Error::custom(format!(
                "item {}: unknown event {name:?}, expected one of: {}",
                index + 1,
                known.join(", ")
            ))
        })?;
        if kinds.contains(&kind) {
            return Err(D::Error::custom(format!(
                "item {}: {name:?} is listed twice",
                index + 1
            )));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests;
