//! `m365sync serve`'s HTTP API over a running [`Service`]: the served tenants and their
//! status, "sync now", pause and resume, the sync log, the queue, the change feed, a health
//! check, Prometheus metrics and the OpenAPI document generated from the handlers' types.
//!
//! - `api`: the handlers and what they answer; `error`: errors as JSON with their status.
//! - `auth`: the bearer token every `/v1` route and `/metrics` ask for (when one is set).
//! - `connect`: onboarding by admin consent (`/v1/connect`, `/connect/callback`).
//! - `openapi`: the document served at `/v1/openapi.json`.
//!
//! Binding is the caller's (the CLI): with no token it must bind to loopback only.

mod api;
mod auth;
mod connect;
mod error;
pub mod openapi;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use m365sync_service::serve::Service;
use tokio::net::TcpListener;

pub use auth::ApiToken;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub service: Arc<Service>,
}

/// The API's routes over `service`; `token` guards `/v1` and `/metrics` when set.
pub fn router(service: Arc<Service>, token: Option<ApiToken>) -> Router {
    let state = AppState { service };
    let guarded = Router::new()
        .route("/v1/tenants", get(api::list_tenants))
        .route("/v1/tenants/{name}", get(api::get_tenant))
        .route("/v1/tenants/{name}/sync", post(api::sync_now))
        .route("/v1/tenants/{name}/pause", post(api::pause))
        .route("/v1/tenants/{name}/resume", post(api::resume))
        .route("/v1/runs", get(api::list_runs))
        .route("/v1/runs/{id}", get(api::get_run))
        .route("/v1/jobs", get(api::list_jobs))
        .route("/v1/changes", get(api::list_changes))
        .route("/v1/webhooks", get(api::list_webhooks))
        .route("/v1/connect", post(connect::connect))
        .route("/v1/openapi.json", get(api::openapi_document))
        .route("/metrics", get(api::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(api::health))
        // A browser follows it from the identity platform: its single-use state, not a
        // bearer token, ties it to a request of ours.
        .route("/connect/callback", get(connect::callback))
        .merge(guarded)
        .fallback(api::not_found)
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` completes (then in-flight requests finish).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
