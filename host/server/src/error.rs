//! The API's errors: each a status and a JSON body `{"error": {"code", "message"}}` whose
//! message says what is wrong and where (never a secret).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use m365sync_service::serve::ServeError;
use m365sync_store::StoreError;
use serde::Serialize;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but the resource's state refuses it (a paused tenant).
    #[error("{0}")]
    Conflict(String),
    /// A parameter is out of its range or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// The body of an error answer.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub(crate) struct ErrorDetail {
    /// unauthorized, not-found, conflict, bad-request or store.
    pub code: String,
    pub message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store"),
        }
    }
}

impl From<ServeError> for ApiError {
    fn from(error: ServeError) -> Self {
        match error {
            ServeError::UnknownTenant(_) => ApiError::NotFound(error.to_string()),
            ServeError::Paused(_) => ApiError::Conflict(error.to_string()),
            ServeError::Store(error) => ApiError::Store(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!("API: {self}");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}
