//! The rules between a config's values (each value's own rule ran as it was read), and
//! the errors that name the file, the line, the tenant and the key.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::located::{Document, KeyPath};
use crate::{ConfigError, ConfigFile, TenantConfig};
use m365sync_wit::types::Features;

impl ConfigFile {
    /// The rules between values (each value's own rule ran as it was read).
    pub(crate) fn validate(&self, path: &Path, document: &Document<'_>) -> Result<(), ConfigError> {
        if self.tenants.is_empty() && self.partners.is_empty() && self.apps.is_empty() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: "no [[tenant]] is configured (nor an [[app]] to onboard tenants with, \
                          nor a [[partner]])"
                    .to_string(),
            });
        }
        let mut names = HashSet::new();
        for (index, tenant) in self.tenants.iter().enumerate() {
            let at = KeyPath::tenant(index);
            // `key` may be dotted (`sync.features`): one segment per table, so the error
            // finds the key's own line.
            let fail = |key: &str, message: &str| {
                let key = key
                    .split('.')
                    .filter(|k| !k.is_empty())
                    .fold(at.clone(), |path, k| path.key(k));
                key_error(path, document, &key, None, message)
            };
            if tenant.name.trim().is_empty() {
                return Err(fail("name", "name is empty"));
            }
            if !names.insert(tenant.name.as_str()) {
                return Err(fail("name", "name is used by another tenant in this file"));
            }
            let schedule = &tenant.schedule;
            if schedule.cron.is_some() && schedule.every.is_some() {
                return Err(fail(
                    "schedule.every",
                    "cron and every are both set: choose one (cron for times of day in a \
                     zone, every for an interval)",
                ));
            }
            if schedule.every.is_some() && schedule.timezone.is_some() {
                return Err(fail(
                    "schedule.timezone",
                    "timezone applies to cron times, and every is an interval of elapsed \
                     time: remove timezone, or use cron",
                ));
            }
            if tenant.sync.features == Features::empty() {
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
        self.validate_apps(path, document)?;
        self.validate_partners(path, document)?;
        self.serve.validate(path, document)?;
        self.validate_webhooks(path, document)?;
        Ok(())
    }
}

/// An environment variable name a secret is read from: not empty, no `=` or NUL (which no
/// variable name can hold).
pub(crate) fn env_var_name(var: &str) -> Result<(), String> {
    if var.trim().is_empty() || var.contains(['=', '\0']) {
        Err(format!("{var:?} is not an environment variable name"))
    } else {
        Ok(())
    }
}

/// The arrays of tables besides `[[tenant]]` whose items errors name by their `name`.
const NAMED_ARRAYS: &[&str] = &["webhook", "app", "partner"];

/// The error for `key` of the file: its line (at byte `at` when toml gave a span, else
/// where `key` is), its tenant by name, and the key inside the tenant.
pub(crate) fn key_error(
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
    let name = |array: &str, index: usize| {
        document
            .item_name(array, index)
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| format!("#{}", index + 1))
    };
    // A tenant by its name; an item of another named array too: `webhook "crm".url`.
    let item = NAMED_ARRAYS.iter().find_map(|array| {
        key.split_item(array)
            .map(|(index, rest)| (*array, index, rest))
    });
    let (tenant, key) = match (key.split_tenant(), item) {
        (Some((index, rest)), _) => (Some(name("tenant", index)), rest.to_string()),
        (None, Some((array, index, rest))) => {
            let item = format!("{array} {:?}", name(array, index));
            let key = if rest.0.is_empty() {
                item
            } else {
                format!("{item}.{rest}")
            };
            (None, key)
        }
        (None, None) => (None, key.to_string()),
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
