//! `m365sync partner tenants`: a partner's customers from its delegated admin
//! relationships, each with whether the partner's app can sign in to it and with which
//! roles (`consented`, `roles-missing`, `not-consented` with the consent link, `error`),
//! and relationships that end soon. See `m365sync_service::partner`.

use std::sync::Arc;

use anyhow::anyhow;

use super::{Failure, Output, PartnerTenantsArgs};
use m365sync_config::ConfigFile;
use m365sync_runtime::TracingSink;
use m365sync_service::partner::{Customer, customers};

pub async fn tenants(args: PartnerTenantsArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let partner = config
        .partner(args.partner.as_deref())
        .map_err(|e| Failure::usage(anyhow!(e)))?;
    let runtime = super::sync::load_runtime(&config).await?;
    let customers = customers(
        &runtime,
        &config,
        partner,
        args.redirect_uri.as_deref(),
        Arc::new(TracingSink),
    )
    .await
    .map_err(Failure::run)?;
    if output.json {
        outln!(
            "{}",
            serde_json::to_string(&customers).map_err(Failure::run)?
        );
        return Ok(());
    }
    outln!(
        "Partner {} ({}): {} customer{}",
        partner.name,
        partner.tenant_id,
        customers.len(),
        if customers.len() == 1 { "" } else { "s" }
    );
    for customer in &customers {
        out!("{}", customer_text(customer));
    }
    Ok(())
}

fn customer_text(customer: &Customer) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<38} {}",
        customer.display_name, customer.tenant_id, customer.state
    );
    for r in &customer.relationships {
        let _ = writeln!(
            out,
            "  relationship {:?}: {}, ends {}, extends by {}, {} role{}",
            r.display_name,
            r.status,
            r.end_date_time.as_deref().unwrap_or("-"),
            r.auto_extend_duration.as_deref().unwrap_or("PT0S"),
            r.role_template_ids.len(),
            if r.role_template_ids.len() == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    if !customer.granted_roles.is_empty() {
        let _ = writeln!(out, "  app roles: {}", customer.granted_roles.join(", "));
    }
    if let Some(message) = &customer.message {
        let _ = writeln!(out, "  {message}");
    }
    if let Some(url) = &customer.consent_url {
        let _ = writeln!(out, "  consent: {url}");
    }
    for warning in &customer.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    out
}
