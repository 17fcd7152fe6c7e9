//! Onboarding over HTTP: `POST /v1/connect` makes an admin-consent link for a platform's
//! "Connect Microsoft 365" button, and `GET /connect/callback` is where the identity
//! platform sends the customer's admin back to. The callback takes no bearer token (a
//! browser follows it): the single-use `state` the link carries is what binds the answer
//! to a request of ours (see `m365sync_service::onboarding`). It answers a small HTML page
//! that says, in plain words, what happened.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use m365sync_service::onboarding::{ConsentAnswer, ConsentLink, OnboardingError};

use crate::AppState;
use crate::error::ApiError;

/// What to connect.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ConnectRequest {
    /// The `[[app]]` the customer's admin consents to.
    pub app: String,
    /// The features the tenant will sync (default: all the app covers).
    pub features: Option<Vec<String>>,
}

/// The consent link to send the customer's admin to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ConnectLink {
    pub url: String,
    /// When the link stops working, RFC 3339 UTC.
    pub expires: String,
    pub app: String,
    pub features: Vec<String>,
}

impl From<ConsentLink> for ConnectLink {
    fn from(link: ConsentLink) -> Self {
        ConnectLink {
            url: link.url,
            expires: link.expires,
            app: link.app,
            features: link.features,
        }
    }
}

/// Make an admin-consent link for an app: the customer's admin follows it, grants
/// consent, and comes back to `/connect/callback`, which registers the tenant.
#[utoipa::path(post, path = "/v1/connect", tag = "onboarding",
    request_body = ConnectRequest,
    responses(
        (status = 201, description = "The link", body = ConnectLink),
        (status = 400, description = "Unknown app or features it does not cover", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn connect(
    State(state): State<AppState>,
    Json(request): Json<ConnectRequest>,
) -> Result<(StatusCode, Json<ConnectLink>), ApiError> {
    let features = match &request.features {
        None => None,
        Some(names) => Some(names.iter().try_fold(
            m365sync_service::wit::types::Features::empty(),
            |all, name| {
                m365sync_service::wit::names::feature_from_name(name)
                    .map(|f| all | f)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("features: {name:?} is not a feature"))
                    })
            },
        )?),
    };
    let link = state
        .service
        .consent_link(&request.app, features)
        .await
        .map_err(|error| match error {
            OnboardingError::Store(error) => ApiError::Store(error),
            other => ApiError::BadRequest(other.to_string()),
        })?;
    Ok((StatusCode::CREATED, Json(link.into())))
}

/// Where the identity platform sends the customer's admin back to after consent.
#[utoipa::path(get, path = "/connect/callback", tag = "onboarding",
    params(
        ("admin_consent" = Option<String>, Query, description = "True when consent was granted"),
        ("tenant" = Option<String>, Query, description = "The consenting tenant's id"),
        ("state" = Option<String>, Query, description = "The link's single-use state"),
        ("error" = Option<String>, Query, description = "An OAuth error code"),
        ("error_description" = Option<String>, Query, description = "The error in words"),
    ),
    responses(
        (status = 200, description = "Connected: an HTML page naming the tenant", content_type = "text/html"),
        (status = 400, description = "Not connected: an HTML page saying why", content_type = "text/html"),
    ))]
pub(crate) async fn callback(
    State(state): State<AppState>,
    Query(answer): Query<ConsentAnswer>,
) -> Response {
    match state.service.complete_consent(&answer).await {
        Ok(onboarded) => {
            let tenant = &onboarded.tenant;
            page(
                StatusCode::OK,
                "Connected",
                &format!(
                    "{} ({}) is connected as tenant \u{201c}{}\u{201d}. Its first sync is queued.",
                    tenant.display_name, tenant.tenant_id, tenant.name
                ),
            )
        }
        Err(error) => {
            let status = match error {
                OnboardingError::Store(_) | OnboardingError::SignIn(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::warn!("admin consent callback: {error}");
            page(status, "Not connected", &error.to_string())
        }
    }
}

/// A minimal HTML page with `title` and `message` (escaped).
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{t}</title>\
         <body><h1>{t}</h1><p id=\"message\">{m}</p></body></html>",
        t = escape(title),
        m = escape(message)
    );
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
