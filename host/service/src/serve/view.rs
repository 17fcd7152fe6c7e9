//! A served tenant as the API (`GET /v1/tenants`) and `m365sync status` show it: its status,
//! its last and next run, its schedule, how many people the store holds for it, and what
//! needs an admin's attention.

use std::collections::HashMap;

use serde::Serialize;

use m365sync_config::WebhookTarget;
use m365sync_store::queue::{TenantState, TenantStatus, WebhookState};
use m365sync_store::{StoreBackend, StoreError};

use super::{now_ms, rfc3339_ms};

/// A served tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantView {
    pub name: String,
    /// healthy, running, failing, needs-attention or paused.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: TenantStatus,
    pub paused: bool,
    pub running: bool,
    /// Failed runs since the last successful one.
    pub consecutive_failures: u32,
    /// What an admin must fix, when retrying cannot.
    pub attention: Option<String>,
    /// The schedule, in words.
    pub schedule: Option<String>,
    pub last_run: Option<LastRun>,
    /// When the next scheduled run is due, RFC 3339 UTC.
    pub next_run: Option<String>,
    /// People the store holds for the tenant.
    pub people: i64,
}

/// A tenant's last run that ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastRun {
    /// Its entry in the sync log (`GET /v1/runs/{id}`).
    pub id: Option<i64>,
    /// When it ended, RFC 3339 UTC.
    pub at: Option<String>,
    pub ok: bool,
}

/// Every served tenant of `store`, by name; `schedules` are their schedules in words (by
/// tenant), where known.
pub async fn tenant_views(
    store: &dyn StoreBackend,
    failing_after: u32,
    schedules: &HashMap<String, String>,
) -> Result<Vec<TenantView>, StoreError> {
    let mut views = Vec::new();
    for state in store.tenant_states(now_ms()).await? {
        let people = store.tenant_summary(&state.tenant).await?.people.total;
        views.push(view(state, failing_after, schedules, people));
    }
    Ok(views)
}

fn view(
    state: TenantState,
    failing_after: u32,
    schedules: &HashMap<String, String>,
    people: i64,
) -> TenantView {
    let status = state.status(failing_after);
    let last_run = state.last_run_ok.map(|ok| LastRun {
        id: state.last_run_id,
        at: state.last_run_ms.and_then(rfc3339_ms),
        ok,
    });
    TenantView {
        schedule: schedules.get(&state.tenant).cloned(),
        name: state.tenant,
        status,
        paused: state.paused,
        running: state.running,
        consecutive_failures: state.consecutive_failures,
        attention: state.attention,
        last_run,
        next_run: state.next_run_ms.and_then(rfc3339_ms),
        people,
    }
}

/// A webhook's deliveries, as `GET /v1/webhooks` shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub name: String,
    /// The receiver's origin (scheme, host, port): its path and query may hold a credential.
    pub receiver: String,
    /// The events it takes.
    pub events: Vec<String>,
    /// The tenants whose events it takes (None: all).
    pub tenants: Option<Vec<String>>,
    /// "delivering" (the last attempt succeeded, or none failed yet) or "failing".
    pub status: String,
    /// The last feed cursor delivered.
    pub cursor: i64,
    /// Events delivered so far.
    pub delivered: u64,
    /// Attempts failed since the last success, and the last one's error.
    pub failures: u32,
    pub last_error: Option<String>,
    /// When a delivery last succeeded, RFC 3339 UTC.
    pub last_delivered: Option<String>,
}

/// A webhook's view from its config and its state in the store.
pub fn webhook_view(target: &WebhookTarget, state: &WebhookState) -> WebhookView {
    WebhookView {
        name: target.name.clone(),
        receiver: target.url.origin().normalized.clone(),
        events: target.events.iter().map(|e| e.name().to_string()).collect(),
        tenants: target.tenants.clone(),
        status: if state.failures > 0 {
            "failing"
        } else {
            "delivering"
        }
        .to_string(),
        cursor: state.cursor,
        delivered: state.delivered,
        failures: state.failures,
        last_error: state.last_error.clone(),
        last_delivered: state.last_delivered_ms.and_then(rfc3339_ms),
    }
}
