//! What `serve` does at start and then daily: each `[[partner]] auto_add = true` partner's
//! customers the app is consented in are registered as tenants (as `m365sync partner add
//! --all` does), served from then on, and their first sync is queued (customers already
//! known are left as they are); then every tenant's notices are looked at again
//! (`crate::notices::refresh`: credentials ending, partner relationships ended), which
//! appends their change-feed events and stops a customer whose relationships all ended.

use std::sync::Arc;
use std::time::Duration;

use super::Service;

/// How often partners' customers and tenants' notices are looked at again.
pub const DAILY: Duration = Duration::from_secs(24 * 3600);

/// Add `auto_add` partners' customers and refresh the notices, now and every [`DAILY`],
/// until the service stops.
pub(crate) async fn daily_loop(service: Arc<Service>) {
    loop {
        for partner in service.config().partners.iter().filter(|p| p.auto_add) {
            if let Err(error) = add_customers(&service, partner).await {
                tracing::warn!("partner {}: adding its customers: {error}", partner.name);
            }
        }
        refresh_notices(&service).await;
        tokio::select! {
            _ = service.stopping.cancelled() => return,
            _ = tokio::time::sleep(DAILY) => {}
        }
    }
}

async fn refresh_notices(service: &Service) {
    let refreshed = crate::notices::refresh(
        &service.runtime,
        service.config(),
        service.store.as_ref(),
        crate::expiry::now(),
        Arc::new(m365sync_runtime::TracingSink),
    )
    .await;
    match refreshed {
        Ok(refreshed) => {
            for error in &refreshed.errors {
                tracing::warn!("looking at the tenants' notices: {error}");
            }
            for notice in &refreshed.notices {
                tracing::warn!("tenant {}: {}", notice.tenant, notice.message);
            }
        }
        Err(error) => tracing::warn!("looking at the tenants' notices: {error}"),
    }
}

async fn add_customers(
    service: &Arc<Service>,
    partner: &m365sync_config::PartnerSection,
) -> Result<(), String> {
    let config = service.config();
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
        let tenant =
            crate::partner::add_customer(service.store.as_ref(), config, partner, customer)
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
