//! What onboarding keeps in the store: admin-consent requests, and the tenants that
//! onboarding registered.
//!
//! A consent request is the `state` a consent link carries (MicrosoftDocs/entra-docs,
//! docs/identity-platform/v2-admin-consent.md: "a value included in the request that also
//! is returned in the token response", used against cross-site request forgery). It is
//! bound to the app and features the link was made for and to its redirect URI, is
//! short-lived, and is taken at most once: the callback that presents it gets it, and no
//! later one does. The link may be printed by one process (`m365sync connect`) and
//! answered by another (`serve`), so it lives in the shared store.
//!
//! A registered tenant serves as a tenant of the config does (its app and features are
//! the request's), and shows in `status` and the API.
//!
//! The rules every back end keeps:
//! - `put_consent_request` refuses a state it already holds (`invalid`).
//! - `take_consent_request` returns a request once and deletes it; an expired one
//!   (`expires_ms <= now_ms`) is deleted and not returned; of two concurrent takes of one
//!   state, one gets it. Expired requests may be deleted by any call.
//! - `register_tenant` keys tenants by directory id: registering a directory again
//!   replaces its row (name, display name, app, features, time, partner). A name held by another
//!   directory is refused (`invalid`).
//! - `registered_tenants` lists by name.
//!
//! Where the rules leave wording and storage open, every back end does this (the functions
//! at the end of this module): the same refusals ([`state_held`], [`name_held`]), and
//! features stored as the JSON list of their names ([`stored_features`],
//! [`features_from_stored`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use m365sync_wit::StorageError;
use m365sync_wit::names::{feature_from_name, feature_names};
use m365sync_wit::types::Features;

use crate::StoreError;
use crate::queue::rules::unknown_value;

/// A consent link's request, until its callback takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequest {
    /// The link's `state`: random, unguessable.
    pub state: String,
    /// The `[[app]]` the consent is for, by name.
    pub app: String,
    /// The features the onboarded tenant will sync.
    #[serde(with = "m365sync_wit::names::features_by_name")]
    pub features: Features,
    /// Where the identity platform sends the admin back to.
    pub redirect_uri: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A tenant onboarding registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredTenant {
    /// Its name in the host (as a config's `[[tenant]] name`): unique.
    pub name: String,
    /// Its directory (tenant) id: unique.
    pub tenant_id: String,
    /// The organization's name, as Graph gave it when it was registered.
    pub display_name: String,
    /// The `[[app]]` it signs in with, by name.
    pub app: String,
    #[serde(with = "m365sync_wit::names::features_by_name")]
    pub features: Features,
    pub registered_ms: i64,
    /// The `[[partner]]` it was added through (a customer of that partner's delegated
    /// admin relationships), by name; none when an admin consented through a link.
    #[serde(default)]
    pub partner: Option<String>,
}

#[async_trait]
pub trait Onboarding: Send + Sync {
    /// Keep a consent request until its callback takes it.
    async fn put_consent_request(&self, request: &ConsentRequest) -> Result<(), StoreError>;

    /// The request of `state`, once and only before it expires.
    async fn take_consent_request(
        &self,
        state: &str,
        now_ms: i64,
    ) -> Result<Option<ConsentRequest>, StoreError>;

    /// Register a tenant (again: its row is replaced).
    async fn register_tenant(&self, tenant: &RegisteredTenant) -> Result<(), StoreError>;

    /// The registered tenants, by name.
    async fn registered_tenants(&self) -> Result<Vec<RegisteredTenant>, StoreError>;
}

/// The refusal of a consent request whose state the store already holds. The state is not
/// shown: it is the link's secret.
pub fn state_held() -> StoreError {
    StoreError::Storage(StorageError::Invalid(
        "a consent request with this state is already kept: make the link again, with a \
         new state"
            .to_string(),
    ))
}

/// The refusal of registering `tenant` under a name another directory holds.
pub fn name_held(tenant: &RegisteredTenant) -> StoreError {
    StoreError::Storage(StorageError::Invalid(format!(
        "cannot register directory {} as tenant {}: another directory is registered under \
         that name",
        tenant.tenant_id, tenant.name
    )))
}

/// `features` as stored: the JSON list of their names, in WIT order.
pub fn stored_features(features: Features) -> String {
    serde_json::to_string(&feature_names(features)).unwrap_or_else(|_| "[]".to_string())
}

/// Features read back from `column`, or what is wrong with them (a name this m365sync
/// does not know is an error, never dropped).
pub fn features_from_stored(column: &str, stored: &str) -> Result<Features, String> {
    let names: Vec<String> = serde_json::from_str(stored)
        .map_err(|e| format!("{column} holds {stored:?}, not a list of names: {e}"))?;
    names.iter().try_fold(Features::empty(), |all, name| {
        feature_from_name(name)
            .map(|flag| all | flag)
            .ok_or_else(|| unknown_value(column, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_stored_as_their_names_and_read_back() {
        let some = Features::USERS | Features::GROUPS | Features::USAGE_REPORTS;
        let stored = stored_features(some);
        assert_eq!(stored, r#"["users","groups","usage-reports"]"#);
        assert_eq!(features_from_stored("f", &stored), Ok(some));
        // As PostgreSQL's jsonb prints it.
        let spaced = r#"["users", "groups", "usage-reports"]"#;
        assert_eq!(features_from_stored("f", spaced), Ok(some));
        assert_eq!(stored_features(Features::empty()), "[]");
        assert_eq!(features_from_stored("f", "[]"), Ok(Features::empty()));
        let all = features_from_stored("f", &stored_features(Features::all()));
        assert_eq!(all, Ok(Features::all()));
        let unknown = features_from_stored("t.features", r#"["users","telepathy"]"#);
        assert_eq!(
            unknown,
            Err(r#"t.features holds "telepathy", which this m365sync does not know"#.to_string())
        );
        assert!(features_from_stored("f", "users").is_err());
    }
}
