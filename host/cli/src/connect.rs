//! `m365sync connect`: an admin-consent link for a customer's admin. The link's request
//! is kept in the store, so the `serve` that answers `/connect/callback` (at `[serve]
//! public_url`, else its listen address) registers the tenant when the admin comes back.

use anyhow::anyhow;

use super::{ConnectArgs, Failure, Output};
use m365sync_config::ConfigFile;
use m365sync_service::onboarding;

pub async fn run(args: ConnectArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let features = match &args.features {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .try_fold(m365sync_wit::types::Features::empty(), |all, name| {
                    m365sync_wit::names::feature_from_name(name)
                        .map(|f| all | f)
                        .ok_or_else(|| {
                            Failure::usage(anyhow!("--features: {name:?} is not a feature"))
                        })
                })?,
        ),
    };
    let location = super::store_location(args.db.as_deref(), Some(&config));
    let store = super::open_store(&location).await?;
    let redirect = config.consent_redirect_uri(config.serve_settings().listen);
    let link = onboarding::start(store.as_ref(), &config, &args.app, features, &redirect)
        .await
        .map_err(|e| match e {
            onboarding::OnboardingError::Store(e) => Failure::run(anyhow!(e)),
            other => Failure::usage(anyhow!(other)),
        })?;
    if output.json {
        outln!("{}", serde_json::to_string(&link).map_err(Failure::run)?);
    } else {
        outln!(
            "Send this link to the customer's administrator (good until {}):\n\n  {}\n\n\
             They sign in, review the permissions of app {:?} ({}) and accept; `m365sync \
             serve` then registers their tenant at {redirect} and syncs it.",
            link.expires,
            link.url,
            link.app,
            link.features.join(", ")
        );
    }
    Ok(())
}
