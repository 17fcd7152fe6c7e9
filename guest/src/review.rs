//! The organization review of a tenant (multi-tenant platforms): its match to one of the
//! platform's organizations, computed by `crate::orgmatch` from the tenant's name and the
//! stored decision, and a reviewer's decisions, stored through the host. The tenant's name
//! is the one the last sync with feature `organization` saved; without one it is read from
//! Graph (`GET /v1.0/organization`).

use crate::bindings::m365sync::engine::log::Level;
use crate::graph::client::Reply;
use crate::orgmatch::{self, Decided};
use crate::platform::{Env, Store};
use crate::sources::organization;
use crate::sync::{self, CheckedTenant, storage_error};
use crate::types::{
    HttpFailure, MatchDecision, OrganizationMatch, ReviewAction, SyncError, Tenant, Warning,
};
use crate::url::display_url;

/// Checkpoint: the tenant's organization display name, saved by the organization phase.
pub const ORGANIZATION_NAME: &str = "organization.display-name";

/// The tenant's match as stored decisions and the platform's organizations make it, and a
/// warning when a stored decision names an organization that no longer exists.
pub fn current(
    store: &mut dyn Store,
    tenant_key: &str,
    tenant_name: &str,
) -> Result<(OrganizationMatch, Option<Warning>), SyncError> {
    let organizations = store
        .list_organizations()
        .map_err(|e| storage_error("list-organizations", e))?;
    let decision = store
        .get_decision(tenant_key)
        .map_err(|e| storage_error("get-decision", e))?;
    let found =
        orgmatch::match_organization(tenant_key, tenant_name, &organizations, decision.as_ref());
    let warning = decision
        .as_ref()
        .and_then(|d| orgmatch::stale_decision(d, &organizations))
        .map(|id| Warning {
            code: "organization-decision-stale".into(),
            message: format!(
                "The review decision of tenant {tenant_key} names organization {id}, which no \
                 longer exists; the tenant is {} again until it is reviewed.",
                state_name(&found)
            ),
        });
    Ok((found, warning))
}

fn state_name(m: &OrganizationMatch) -> &'static str {
    use crate::types::MatchState;
    match m.state {
        MatchState::Matched => "matched",
        MatchState::Suggested => "suggested",
        MatchState::Unmatched => "unmatched",
        MatchState::Ignored => "ignored",
    }
}

/// `engine.review-organization`.
pub fn review(env: &mut Env<'_>, tenant: &Tenant) -> Result<OrganizationMatch, SyncError> {
    let t = sync::check_tenant(tenant)?;
    let name = tenant_name(env, &t)?;
    let (found, warning) = current(&mut *env.store, &t.key, &name)?;
    if let Some(w) = warning {
        env.log.log(Level::Warn, &w.message);
    }
    Ok(found)
}

/// `engine.decide-organization`: checks the action against the current match, creates an
/// organization when asked (and nothing matches), and stores the decision.
pub fn decide(
    env: &mut Env<'_>,
    tenant: &Tenant,
    action: &ReviewAction,
) -> Result<OrganizationMatch, SyncError> {
    let t = sync::check_tenant(tenant)?;
    let name = tenant_name(env, &t)?;
    let (found, _) = current(&mut *env.store, &t.key, &name)?;
    let organizations = env
        .store
        .list_organizations()
        .map_err(|e| storage_error("list-organizations", e))?;
    let decided = orgmatch::decide(&found, &organizations, action)
        .map_err(|e| SyncError::InvalidRequest(format!("review of tenant {}: {e}", t.key)))?;
    let decided = match decided {
        Decided::Create { name } => {
            let created = env
                .store
                .create_organization(&name)
                .map_err(|e| storage_error("create-organization", e))?;
            orgmatch::created(&t.key, &found.tenant_name, created)
        }
        stored => stored,
    };
    let Decided::Store { action, result } = decided else {
        unreachable!("orgmatch::created always answers Store")
    };
    env.store
        .put_decision(&MatchDecision {
            tenant_key: t.key.clone(),
            action,
            decided_at: env.clock.wall_rfc3339(),
        })
        .map_err(|e| storage_error("put-decision", e))?;
    env.log.log(
        Level::Info,
        &format!("review of tenant {}: now {}", t.key, state_name(&result)),
    );
    Ok(result)
}

/// The tenant's display name: saved by the last organization phase, else read from Graph.
fn tenant_name(env: &mut Env<'_>, t: &CheckedTenant) -> Result<String, SyncError> {
    if let Some(name) = env
        .store
        .get_checkpoint(ORGANIZATION_NAME)
        .map_err(|e| storage_error("get-checkpoint", e))?
    {
        return Ok(name);
    }
    let mut graph = sync::graph_client(
        &mut *env.http,
        &mut *env.clock,
        &mut *env.secrets,
        &mut *env.credentials,
        t,
    )?;
    let url = organization::organization_url(graph.graph());
    let result = graph.get_json(
        &url,
        organization::ORGANIZATION_NEED,
        &[],
        "organization",
        |b| organization::parse_organizations(b, &url),
    );
    let redactor = graph.redactor().clone();
    let page = match result.map_err(|e| redactor.error(e))? {
        Reply::Ok(page) => page,
        Reply::Resync(f) => return Err(SyncError::Http(f)),
    };
    page.items
        .into_iter()
        .next()
        .map(|o| o.display_name)
        .ok_or_else(|| {
            SyncError::BadResponse(HttpFailure {
                url: display_url(&url),
                status: Some(200),
                graph_code: None,
                message: format!(
                    "the answer to GET {} lists no organization",
                    display_url(&url)
                ),
            })
        })
}
