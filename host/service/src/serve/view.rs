//! A served tenant as the API (`GET /v1/tenants`) and `m365sync status` show it: its status,
//! its last and next run, its schedule, how many people the store holds for it, and what
//! needs an admin's attention.

use std::collections::HashMap;

use serde::Serialize;

use m365sync_config::{ConfigFile, Schedule, TenantRun, WebhookTarget};
use m365sync_store::notices::Notice;
use m365sync_store::queue::{TenantState, TenantStatus, WebhookState};
use m365sync_store::{StoreBackend, StoreError};

use super::{now_ms, rfc3339_ms};
use crate::expiry::{CredentialExpiry, credential_expiry};

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
    /// When the tenant's client secret ends, where the config says
    /// (`client_secret_expires`); `warn` from 30 days before.
    pub credential_expiry: Option<CredentialExpiry>,
    /// What an admin must act on before it breaks the tenant's syncs, as `serve` last
    /// found it (credentials ending, read from the app registration; the partner's
    /// relationship ending or ended).
    pub notices: Vec<Notice>,
}

impl TenantNotes {
    /// The notes of a tenant that runs as `run` on `schedule`, as of `today`.
    pub fn new(run: &TenantRun, schedule: &Schedule, today: jiff::civil::Date) -> TenantNotes {
        TenantNotes {
            schedule: Some(schedule.to_string()),
            credential_expiry: credential_expiry(run, today),
        }
    }
}

/// What the config says of a tenant that the store does not hold.
#[derive(Debug, Clone, Default)]
pub struct TenantNotes {
    /// Its schedule, in words.
    pub schedule: Option<String>,
    pub credential_expiry: Option<CredentialExpiry>,
}

/// The notes of each tenant of `config` and each tenant registered in `store` (as `serve`
/// runs them), by name, as of today.
pub async fn tenant_notes(
    config: &ConfigFile,
    store: &dyn StoreBackend,
) -> Result<HashMap<String, TenantNotes>, StoreError> {
    let today = crate::expiry::today();
    let mut notes: HashMap<String, TenantNotes> = config
        .tenants
        .iter()
        .map(|tenant| {
            let notes = TenantNotes::new(&config.resolve(tenant), &config.schedule(tenant), today);
            (tenant.name.clone(), notes)
        })
        .collect();
    for registered in store.registered_tenants().await? {
        if notes.contains_key(&registered.name) {
            continue;
        }
        if let Some(served) = super::registered_config(config, &registered) {
            let note = TenantNotes::new(&served.run, &served.schedule, today);
            notes.insert(registered.name, note);
        }
    }
    Ok(notes)
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

/// Every served tenant of `store`, by name, with the config's `notes` on them where
/// known (see [`tenant_notes`]).
pub async fn tenant_views(
    store: &dyn StoreBackend,
    failing_after: u32,
    notes: &HashMap<String, TenantNotes>,
) -> Result<Vec<TenantView>, StoreError> {
    let mut views = Vec::new();
    let mut notices = crate::notices::shown_by_tenant(store).await?;
    for state in store.tenant_states(now_ms()).await? {
        let people = store.tenant_summary(&state.tenant).await?.people.total;
        let notes = notes.get(&state.tenant).cloned().unwrap_or_default();
        let notices = notices.remove(&state.tenant).unwrap_or_default();
        views.push(view(state, failing_after, notes, people, notices));
    }
    Ok(views)
}

fn view(
    state: TenantState,
    failing_after: u32,
    notes: TenantNotes,
    people: i64,
    notices: Vec<Notice>,
) -> TenantView {
    let status = state.status(failing_after);
    let last_run = state.last_run_ok.map(|ok| LastRun {
        id: state.last_run_id,
        at: state.last_run_ms.and_then(rfc3339_ms),
        ok,
    });
    TenantView {
        schedule: notes.schedule,
        name: state.tenant,
        status,
        paused: state.paused,
        running: state.running,
        consecutive_failures: state.consecutive_failures,
        attention: state.attention,
        last_run,
        next_run: state.next_run_ms.and_then(rfc3339_ms),
        people,
        credential_expiry: notes.credential_expiry,
        notices,
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
