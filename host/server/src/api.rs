//! The API's handlers: what each route reads or does, and the shape of its answer (the
//! OpenAPI document is generated from these, see openapi.rs).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use m365sync_service::serve::{TenantView, WebhookView};
use m365sync_store::RunRecord;
use m365sync_store::feed::ChangeEvent;
use m365sync_store::queue::{Enqueued, Job, JobState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::ApiError;

/// The most rows one answer gives.
const MAX_LIMIT: u32 = 1000;

/// A query's parameters, or a 400 naming what is wrong with them.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// `limit` checked against its range, or its default.
fn limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit {n} is outside 1..={MAX_LIMIT}"
        ))),
    }
}

/// Every served tenant.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, description = "The served tenants, by name", body = [TenantView])))]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    Ok(Json(state.service.tenant_views().await?))
}

/// One served tenant.
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name in the config")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant is served", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    tenant_view(&state, &name).await.map(Json)
}

async fn tenant_view(state: &AppState, name: &str) -> Result<TenantView, ApiError> {
    state
        .service
        .tenant_views()
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no tenant named {name:?} is served")))
}

/// A "sync now" accepted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SyncAccepted {
    /// The job that will run (`GET /v1/jobs`).
    pub job_id: i64,
    /// True when a job of the tenant was queued already and became this one.
    pub merged: bool,
}

/// Sync a tenant now: a manual job, ahead of scheduled ones.
#[utoipa::path(post, path = "/v1/tenants/{name}/sync", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name in the config")),
    responses(
        (status = 202, description = "Queued", body = SyncAccepted),
        (status = 404, description = "No such tenant is served", body = crate::error::ErrorDetail),
        (status = 409, description = "The tenant is paused", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn sync_now(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<SyncAccepted>), ApiError> {
    let queued = state.service.sync_now(&name).await?;
    let merged = !matches!(queued, Enqueued::Queued(_));
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncAccepted {
            job_id: queued.id(),
            merged,
        }),
    ))
}

/// Pause a tenant: it keeps its data and delta links and is not scheduled until resumed.
#[utoipa::path(post, path = "/v1/tenants/{name}/pause", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name in the config")),
    responses(
        (status = 200, description = "Paused", body = TenantView),
        (status = 404, description = "No such tenant is served", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    state.service.set_paused(&name, true).await?;
    tenant_view(&state, &name).await.map(Json)
}

/// Resume a paused tenant.
#[utoipa::path(post, path = "/v1/tenants/{name}/resume", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name in the config")),
    responses(
        (status = 200, description = "Resumed", body = TenantView),
        (status = 404, description = "No such tenant is served", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    state.service.set_paused(&name, false).await?;
    tenant_view(&state, &name).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only this tenant's runs.
    tenant: Option<String>,
    /// At most this many (1 to 1000; default 20).
    limit: Option<u32>,
}

/// The sync log, newest first (as `m365sync logs --json` writes it).
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunsQuery),
    responses(
        (status = 200, description = "Runs, newest first", body = [RunRecord]),
        (status = 400, description = "A parameter is wrong", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    params: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let params = query(params)?;
    let limit = limit(params.limit, 20)?;
    let runs = state
        .service
        .store()
        .list_runs(params.tenant.as_deref(), limit)
        .await?;
    Ok(Json(runs))
}

/// One run of the sync log.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "The run's id in the sync log")),
    responses(
        (status = 200, description = "The run", body = RunRecord),
        (status = 404, description = "No such run", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<RunRecord>, ApiError> {
    state
        .service
        .store()
        .get_run(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("the sync log has no run {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// Only jobs in this state: queued, running, succeeded, failed, cancelled.
    state: Option<String>,
    /// At most this many (1 to 1000; default 100).
    limit: Option<u32>,
}

/// The queue: jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "queue", params(JobsQuery),
    responses(
        (status = 200, description = "Jobs, newest first", body = [Job]),
        (status = 400, description = "A parameter is wrong", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    params: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Json<Vec<Job>>, ApiError> {
    let params = query(params)?;
    let limit = limit(params.limit, 100)?;
    let states = match params.state.as_deref() {
        None => None,
        Some(name) => Some(vec![JobState::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = JobState::ALL.iter().map(|s| s.name()).collect();
            ApiError::BadRequest(format!("state {name:?} is not one of {}", known.join(", ")))
        })?]),
    };
    let jobs = state.service.store().jobs(states.as_deref(), limit).await?;
    Ok(Json(jobs))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChangesQuery {
    /// The cursor the consumer has seen (0 or absent: from the start).
    after: Option<i64>,
    /// At most this many events (1 to 1000; default 100).
    limit: Option<u32>,
    /// Only this tenant's events.
    tenant: Option<String>,
}

/// A page of the change feed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ChangesPage {
    /// Events after the cursor asked for, in cursor order.
    pub events: Vec<ChangeEvent>,
    /// The cursor to ask after next (the last event's, or the one asked for when none).
    pub next_after: i64,
}

/// The change feed, after a cursor: every committed change a platform acts on, at least
/// once, in commit order.
#[utoipa::path(get, path = "/v1/changes", tag = "changes", params(ChangesQuery),
    responses(
        (status = 200, description = "A page of events", body = ChangesPage),
        (status = 400, description = "A parameter is wrong", body = crate::error::ErrorDetail),
    ))]
pub(crate) async fn list_changes(
    State(state): State<AppState>,
    params: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Json<ChangesPage>, ApiError> {
    let params = query(params)?;
    let limit = limit(params.limit, 100)?;
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest(format!(
            "after {after} is negative: cursors start at 0"
        )));
    }
    let events = state
        .service
        .store()
        .changes(after, limit, params.tenant.as_deref())
        .await?;
    let next_after = events.last().map_or(after, |e| e.cursor);
    Ok(Json(ChangesPage { events, next_after }))
}

/// The webhooks and how their deliveries stand (delivering or failing, the last error).
#[utoipa::path(get, path = "/v1/webhooks", tag = "changes",
    responses((status = 200, description = "The config's webhooks", body = [WebhookView])))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    Ok(Json(state.service.webhook_views().await?))
}

/// What `/healthz` checked.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Health {
    pub ok: bool,
    /// "ok", or why the store does not answer.
    pub store: String,
    /// "ok", or why a sandbox does not instantiate.
    pub sandbox: String,
    /// This worker's id.
    pub worker: String,
}

/// Health: the store answers and a sandbox instantiates (200), else 503 saying which.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Not healthy", body = Health),
    ))]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let store = match state.service.store().last_cursor().await {
        Ok(_) => "ok".to_string(),
        Err(error) => error.to_string(),
    };
    let sandbox = match state.service.runtime().instantiate_check().await {
        Ok(()) => "ok".to_string(),
        Err(error) => error.to_string(),
    };
    let ok = store == "ok" && sandbox == "ok";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        ok,
        store,
        sandbox,
        worker: state.service.worker().id.clone(),
    };
    (status, Json(health)).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let service = &state.service;
    let queued = service
        .store()
        .jobs(Some(&[JobState::Queued]), u32::MAX)
        .await?
        .len();
    let failing_after = service.options().failing_after;
    let statuses: Vec<_> = service
        .store()
        .tenant_states(m365sync_service::serve::now_ms())
        .await?
        .iter()
        .map(|t| t.status(failing_after))
        .collect();
    let secret_days_left = service.credential_days_left().await?;
    let text = service
        .metrics()
        .encode(queued, &statuses, &secret_days_left);
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub(crate) async fn openapi_document() -> Response {
    Json(crate::openapi::document()).into_response()
}

/// Any other path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route: see /v1/openapi.json".to_string())
}
