//! `m365sync partner tenants`: a partner's customers from its delegated admin
//! relationships, each with whether the partner's app can sign in to it and with which
//! roles (`consented`, `roles-missing`, `not-consented` with the consent link, `error`),
//! and relationships that end soon. See `m365sync_service::partner`.

use std::sync::Arc;

use anyhow::anyhow;

use super::{Failure, Output, PartnerAddArgs, PartnerTenantsArgs};
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

/// `m365sync partner add`: register the partner's consented customers (all, or those
/// named) as tenants in the store; `serve` syncs them as it does the config's, signing in
/// as the partner's app.
pub async fn add(args: PartnerAddArgs, output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let partner = config
        .partner(args.partner.as_deref())
        .map_err(|e| Failure::usage(anyhow!(e)))?;
    if args.tenant.is_empty() && !args.all {
        return Err(Failure::usage(anyhow!(
            "name the customers to add with --tenant ID (repeatable), or add every consented one with --all"
        )));
    }
    let runtime = super::sync::load_runtime(&config).await?;
    let customers = customers(&runtime, &config, partner, None, Arc::new(TracingSink))
        .await
        .map_err(Failure::run)?;
    for wanted in &args.tenant {
        if !customers.iter().any(|c| &c.tenant_id == wanted) {
            return Err(Failure::usage(anyhow!(
                "{wanted} is not a customer of partner {}: `m365sync partner tenants` lists them",
                partner.name
            )));
        }
    }
    let location = super::store_location(args.db.as_deref(), Some(&config));
    let store = super::open_store(&location).await?;
    let mut added = Vec::new();
    let mut refused = Vec::new();
    for customer in customers
        .iter()
        .filter(|c| args.all || args.tenant.contains(&c.tenant_id))
    {
        if customer.state != "consented" {
            refused.push(format!(
                "{} ({}): {}{}",
                customer.display_name,
                customer.tenant_id,
                customer.state,
                customer
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
            continue;
        }
        let tenant =
            m365sync_service::partner::add_customer(store.as_ref(), &config, partner, customer)
                .await
                .map_err(Failure::run)?;
        added.push(tenant);
    }
    if output.json {
        outln!(
            "{}",
            serde_json::json!({"added": added, "not_added": refused})
        );
    } else {
        for tenant in &added {
            outln!(
                "added {} ({}) as tenant {:?}",
                tenant.display_name,
                tenant.tenant_id,
                tenant.name
            );
        }
        for line in &refused {
            outln!("not added: {line}");
        }
    }
    if !args.tenant.is_empty() && !refused.is_empty() {
        return Err(Failure::run(anyhow!(
            "{} of the named customers could not be added",
            refused.len()
        )));
    }
    Ok(())
}
