//! Admin consent, as QuickHelp and BrainStorm onboard a customer: one multi-tenant app of
//! the platform's, a link the customer's admin follows to grant it consent, and the
//! redirect back, after which the tenant is registered and synced. No secret is copied.
//!
//! The link (MicrosoftDocs/entra-docs, docs/identity-platform/v2-admin-consent.md,
//! "Request the permissions from a directory admin"):
//! `{login}/organizations/v2.0/adminconsent?client_id=…&scope={graph}/.default&redirect_uri=…&state=…`
//! — `organizations` lets any work or school admin sign in, and `/.default` asks for every
//! application permission configured on the app. The answer ("Successful response"):
//! `{redirect_uri}?admin_consent=True&tenant={tenant id}&scope=…&state=…`, or ("Error
//! response") `{redirect_uri}?error=…&error_description=…&state=…`, e.g.
//! `consent_required` with "AADSTS65004: …" when the admin declined.
//!
//! `state` is single-use, bound to the app, features and redirect URI of the request that
//! made it, and expires after [`CONSENT_LIFETIME`] (the store's `onboarding` contract): a
//! callback whose state was not issued here, was used, or is stale registers nothing.
//! After a successful answer the host signs in app-only to the new tenant, compares the
//! token's roles with the features, reads its organization (put up for review against the
//! platform's organizations), and registers it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use m365sync_config::{AppSection, ConfigFile, TenantRun, cloud};
use m365sync_runtime::{EventSink, RunError, Runtime};
use m365sync_store::onboarding::{ConsentRequest, RegisteredTenant};
use m365sync_store::{Access, StoreBackend, StoreError};
use m365sync_wit::types::{Features, OrganizationMatch};

/// How long a consent link stays good.
pub const CONSENT_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Why onboarding did not register a tenant: each says what happened in plain words.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error("no [[app]] is named {0:?} in the config")]
    UnknownApp(String),
    #[error("app {app:?} does not cover {missing}: its permissions cover {covered}")]
    FeaturesNotCovered {
        app: String,
        missing: String,
        covered: String,
    },
    #[error(
        "this consent answer is not one this server asked for, was already used, or has \
         expired (links are good for {} minutes): start again with a new link",
        CONSENT_LIFETIME.as_secs() / 60
    )]
    UnknownState,
    #[error("the administrator did not grant consent: {0}")]
    Declined(String),
    #[error("the answer from Microsoft is incomplete: {0}")]
    BadAnswer(String),
    #[error(
        "consent was granted, but the app's token for tenant {tenant} lacks {missing}: add \
         these application permissions to the app registration and consent again"
    )]
    RolesMissing { tenant: String, missing: String },
    #[error("signing in to the new tenant failed: {0}")]
    SignIn(RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A consent link to give the customer's admin.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentLink {
    pub url: String,
    /// When the link stops working, RFC 3339 UTC.
    pub expires: String,
    pub app: String,
    /// The features the onboarded tenant will sync.
    pub features: Vec<String>,
}

/// The query of the redirect back from the admin-consent endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct ConsentAnswer {
    pub admin_consent: Option<String>,
    pub tenant: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A tenant onboarding registered, with what the host found in it.
#[derive(Debug, Clone)]
pub struct Onboarded {
    pub tenant: RegisteredTenant,
    /// App roles in the app's token for the tenant.
    pub granted_roles: Vec<String>,
    /// The tenant's organization against the platform's (for review).
    pub organization: OrganizationMatch,
}

/// Make a consent link for `app` (its features, or `features` when given: a subset of the
/// app's), answered at `redirect_uri`, and keep its request in `store`.
pub async fn start(
    store: &dyn StoreBackend,
    config: &ConfigFile,
    app: &str,
    features: Option<Features>,
    redirect_uri: &str,
) -> Result<ConsentLink, OnboardingError> {
    let app = config
        .app(app)
        .ok_or_else(|| OnboardingError::UnknownApp(app.to_string()))?;
    let features = features.unwrap_or(app.features);
    if !app.features.contains(features) {
        let names = m365sync_wit::names::feature_names;
        let missing: Vec<&str> = names(features)
            .into_iter()
            .filter(|f| !names(app.features).contains(f))
            .collect();
        return Err(OnboardingError::FeaturesNotCovered {
            app: app.name.clone(),
            missing: missing.join(", "),
            covered: names(app.features).join(", "),
        });
    }
    let now = m365sync_store::time::unix_now_ms();
    let expires_ms = now + CONSENT_LIFETIME.as_millis() as i64;
    // 244 random bits: two version-4 UUIDs.
    let state = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    store
        .put_consent_request(&ConsentRequest {
            state: state.clone(),
            app: app.name.clone(),
            features,
            redirect_uri: redirect_uri.to_string(),
            created_ms: now,
            expires_ms,
        })
        .await?;
    Ok(ConsentLink {
        url: consent_url(app, redirect_uri, &state),
        expires: crate::serve::rfc3339_ms(expires_ms).unwrap_or_default(),
        app: app.name.clone(),
        features: m365sync_wit::names::feature_names(features)
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}

/// The admin-consent URL of `app` for any organization's admin.
fn consent_url(app: &AppSection, redirect_uri: &str, state: &str) -> String {
    let (endpoints, _) = m365sync_config::endpoints_in(app.cloud, app.endpoints.as_ref());
    // The scope names the cloud's Graph resource, whatever base URL it is reached at.
    let resource = cloud::endpoints(app.cloud).graph;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", app.client_id.trim())
        .append_pair("scope", &format!("{resource}/.default"))
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .finish();
    format!(
        "{}/organizations/v2.0/adminconsent?{query}",
        endpoints.login
    )
}

/// Take the answer of the admin-consent endpoint: on consent, sign in to the tenant,
/// check the roles, read its organization, and register it under a name of its own
/// (`taken` names are used already: the config's tenants).
pub async fn complete(
    runtime: &Runtime,
    store: &dyn StoreBackend,
    config: &ConfigFile,
    answer: &ConsentAnswer,
    sink: Arc<dyn EventSink>,
) -> Result<Onboarded, OnboardingError> {
    let state = answer.state.as_deref().unwrap_or_default();
    if state.is_empty() {
        return Err(OnboardingError::UnknownState);
    }
    let request = store
        .take_consent_request(state, m365sync_store::time::unix_now_ms())
        .await?
        .ok_or(OnboardingError::UnknownState)?;
    if let Some(error) = &answer.error {
        return Err(OnboardingError::Declined(declined(
            error,
            answer.error_description.as_deref(),
        )));
    }
    if !answer
        .admin_consent
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        return Err(OnboardingError::BadAnswer(
            "admin_consent is not True".to_string(),
        ));
    }
    let tenant_id = answer
        .tenant
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| OnboardingError::BadAnswer("no tenant".to_string()))?
        .trim()
        .to_string();
    let app = config
        .app(&request.app)
        .ok_or_else(|| OnboardingError::UnknownApp(request.app.clone()))?;
    let provisional = format!("onboarding-{tenant_id}");
    let mut run = registered_run(config, app, &provisional, &tenant_id, request.features);
    let check = runtime
        .check_permissions(&run, sink.clone())
        .await
        .map_err(OnboardingError::SignIn)?;
    if !check.missing.is_empty() {
        let missing: Vec<String> = check.missing.iter().map(|m| m.permission.clone()).collect();
        return Err(OnboardingError::RolesMissing {
            tenant: tenant_id,
            missing: missing.join(", "),
        });
    }
    let reader = store.open_tenant(&provisional, Access::ReadOnly).await?;
    let organization = runtime
        .review_organization(&run, reader, sink)
        .await
        .map_err(OnboardingError::SignIn)?;
    let tenant = register(
        store,
        config,
        app,
        request.features,
        (&tenant_id, &organization.tenant_name),
        None,
    )
    .await?;
    run.tenant.key = tenant.name.clone();
    Ok(Onboarded {
        tenant,
        granted_roles: check.granted,
        organization: OrganizationMatch {
            tenant_key: run.tenant.key,
            ..organization
        },
    })
}

/// Every tenant the host knows: the config's, then those onboarding registered (whose app
/// the config still has, and whose name no tenant of the config takes).
pub async fn tenant_runs(
    config: &ConfigFile,
    store: &dyn StoreBackend,
) -> Result<Vec<TenantRun>, StoreError> {
    Ok(runs_with(config, &store.registered_tenants().await?))
}

/// [`tenant_runs`] with the registered tenants already read.
pub fn runs_with(config: &ConfigFile, registered: &[RegisteredTenant]) -> Vec<TenantRun> {
    let mut runs: Vec<TenantRun> = config.tenants.iter().map(|t| config.resolve(t)).collect();
    for registered in registered {
        if runs.iter().any(|r| r.tenant.key == registered.name) {
            continue;
        }
        if let Some(app) = config.app(&registered.app) {
            runs.push(registered_run(
                config,
                app,
                &registered.name,
                &registered.tenant_id,
                registered.features,
            ));
        }
    }
    runs
}

/// Register `tenant_id` (named after `display_name`, unique) as a tenant signing in with
/// `app` for its features, added through `partner` when a partner's customer; the
/// registered row (an already registered directory keeps its name).
pub async fn register(
    store: &dyn StoreBackend,
    config: &ConfigFile,
    app: &AppSection,
    features: Features,
    (tenant_id, display_name): (&str, &str),
    partner: Option<&str>,
) -> Result<RegisteredTenant, StoreError> {
    let registered = store.registered_tenants().await?;
    let name = match registered.iter().find(|t| t.tenant_id == tenant_id) {
        Some(existing) => existing.name.clone(),
        None => unique_name(display_name, tenant_id, config, &registered),
    };
    let tenant = RegisteredTenant {
        name,
        tenant_id: tenant_id.to_string(),
        display_name: display_name.to_string(),
        app: app.name.clone(),
        features,
        registered_ms: m365sync_store::time::unix_now_ms(),
        partner: partner.map(str::to_string),
    };
    store.register_tenant(&tenant).await?;
    Ok(tenant)
}

/// How a registered tenant runs: as its app, in the app's cloud, with its features.
pub fn registered_run(
    config: &ConfigFile,
    app: &AppSection,
    name: &str,
    tenant_id: &str,
    features: Features,
) -> TenantRun {
    let mut run = config.app_run(app, name, tenant_id, app.cloud, app.endpoints.as_ref());
    run.options.features = features;
    run
}

/// A name for the tenant from its organization's name ("Contoso Ltd" → "contoso-ltd"),
/// made unique among the config's and the registered tenants.
fn unique_name(
    display_name: &str,
    tenant_id: &str,
    config: &ConfigFile,
    registered: &[RegisteredTenant],
) -> String {
    let mut base = String::new();
    for c in display_name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            base.push(c);
        } else if !base.ends_with('-') && !base.is_empty() {
            base.push('-');
        }
    }
    let base = base
        .trim_end_matches('-')
        .chars()
        .take(48)
        .collect::<String>();
    let base = if base.is_empty() {
        tenant_id.to_string()
    } else {
        base
    };
    let taken = |name: &str| {
        config.tenants.iter().any(|t| t.name == name) || registered.iter().any(|t| t.name == name)
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// An error answer in plain words: AADSTS65004 is the admin declining; other answers
/// keep the identity platform's first line.
fn declined(error: &str, description: Option<&str>) -> String {
    let first_line = description
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .trim();
    if first_line.starts_with("AADSTS65004") {
        return "the administrator declined to grant the app access (AADSTS65004); nothing \
                was registered, and the link can be sent again"
            .to_string();
    }
    if first_line.is_empty() {
        format!("Microsoft answered {error}")
    } else {
        format!("Microsoft answered {error}: {first_line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declined_consent_is_said_in_plain_words() {
        let said = declined(
            "consent_required",
            Some(
                "AADSTS65004: The resource owner or authorization server denied the request.\r\nTrace ID: x",
            ),
        );
        assert!(said.starts_with("the administrator declined"), "{said}");
        let other = declined(
            "access_denied",
            Some("AADSTS90094: Admin consent is required.\nmore"),
        );
        assert_eq!(
            other,
            "Microsoft answered access_denied: AADSTS90094: Admin consent is required."
        );
    }

    #[test]
    fn names_come_from_the_organization_and_stay_unique() {
        let config = ConfigFile::parse(
            "[[tenant]]\nname = \"contoso-ltd\"\ntenant_id = \"contoso.onmicrosoft.com\"\n\
             client_id = \"x\"\nclient_secret_env = \"S\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            unique_name("Fabrikam, Inc.", "t1", &config, &[]),
            "fabrikam-inc"
        );
        assert_eq!(
            unique_name("Contoso Ltd", "t2", &config, &[]),
            "contoso-ltd-2"
        );
        assert_eq!(unique_name("", "t3", &config, &[]), "t3");
    }
}
