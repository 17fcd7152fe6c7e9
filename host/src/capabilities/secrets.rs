//! `m365sync:engine/secrets`: the secrets of the one tenant a sandbox runs for.
//!
//! Values are read when the component asks (so a rotated secret is picked up by the next
//! run) and handed only to the component; errors name the source, never the value.

use crate::config::SecretSource;
use crate::runtime::bindings::secrets::SecretError;

/// The secrets of one tenant.
pub struct TenantSecrets {
    client_secret: SecretSource,
}

/// The secret names the engine asks for.
pub const CLIENT_SECRET: &str = "client-secret";

impl TenantSecrets {
    pub fn new(client_secret: SecretSource) -> Self {
        TenantSecrets { client_secret }
    }

    pub fn get(&self, name: &str) -> Result<String, SecretError> {
        if name != CLIENT_SECRET {
            return Err(SecretError::NotFound(format!(
                "no secret named {name:?} is configured for this tenant"
            )));
        }
        let value = match &self.client_secret {
            SecretSource::Value(value) => value.clone(),
            SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                SecretError::NotFound(format!(
                    "{CLIENT_SECRET}: environment variable {var} is not set"
                ))
            })?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|error| {
                    SecretError::Unreadable(format!(
                        "{CLIENT_SECRET}: cannot read {}: {}",
                        path.display(),
                        error.kind()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        if value.trim().is_empty() {
            return Err(SecretError::NotFound(format!(
                "{CLIENT_SECRET}: {:?} is empty",
                self.client_secret
            )));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secret_is_trimmed_and_missing_file_names_the_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secrets = TenantSecrets::new(SecretSource::File(path.clone()));
        assert_eq!(secrets.get(CLIENT_SECRET).unwrap(), "s3cr3t");
        std::fs::remove_file(&path).unwrap();
        let SecretError::Unreadable(message) = secrets.get(CLIENT_SECRET).unwrap_err() else {
            panic!("expected unreadable")
        };
        assert!(
            message.contains("secret") && !message.contains("s3cr3t"),
            "{message}"
        );
    }

    #[test]
    fn unknown_name_and_unset_variable_are_not_found() {
        let secrets = TenantSecrets::new(SecretSource::Env("M365SYNC_TEST_UNSET_VAR".into()));
        assert!(matches!(
            secrets.get("other"),
            Err(SecretError::NotFound(_))
        ));
        let SecretError::NotFound(message) = secrets.get(CLIENT_SECRET).unwrap_err() else {
            panic!("expected not found")
        };
        assert!(message.contains("M365SYNC_TEST_UNSET_VAR"), "{message}");
    }
}
