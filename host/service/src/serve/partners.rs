//! `[[partner]] auto_add = true`: at start and then daily, each such partner's customers
//! the app is consented in are registered as tenants (as `m365sync partner add --all`
//! does), served from then on, and their first sync is queued. Customers already known
//! are left as they are.

use std::sync::Arc;
use std::time::Duration;

use super::Service;

/// How often a partner's customers are looked at again.
pub const PARTNER_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Add the consented customers of every `auto_add` partner, now and every
/// [`PARTNER_REFRESH`], until the service stops.
pub(crate) async fn partner_loop(service: Arc<Service>) {
    loop {
        for partner in service.config().partners.iter().filter(|p| p.auto_add) {
            if let Err(error) = add_customers(&service, partner).await {
                tracing::warn!("partner {}: adding its customers: {error}", partner.name);
            }
        }
        tokio::select! {
            _ = service.stopping.cancelled() => return,
            _ = tokio::time::sleep(PARTNER_REFRESH) => {}
        }
    }
}

async fn add_customers(
    service: &Arc<Service>,
    partner: &m365sync_config::PartnerSection,
) -> Result<(), String> {
    let config = service.config();
    let app = config
        .app(&partner.app)
        .ok_or_else(|| format!("no [[app]] is named {:?}", partner.app))?;
    let customers = crate::partner::customers(
        &service.runtime,
        config,
        partner,
        None,
        Arc::new(m365sync_runtime::TracingSink),
    )
    .await
    .map_err(|e| e.to_string())?;
    let known = service
        .store
        .registered_tenants()
        .await
        .map_err(|e| e.to_string())?;
    for customer in customers.iter().filter(|c| c.state == "consented") {
        if known.iter().any(|t| t.tenant_id == customer.tenant_id)
            || config
                .tenants
                .iter()
                .any(|t| t.tenant_id.trim() == customer.tenant_id)
        {
            continue;
        }
        let tenant = crate::onboarding::register(
            service.store.as_ref(),
            config,
            app,
            app.features,
            &customer.tenant_id,
            &customer.display_name,
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(
            "partner {}: added customer {} ({}) as tenant {}",
            partner.name,
            customer.display_name,
            customer.tenant_id,
            tenant.name
        );
        service
            .serve_registered(&tenant)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
