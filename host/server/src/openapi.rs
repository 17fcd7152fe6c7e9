//! The API's OpenAPI document, generated from the handlers' paths and types: served at
//! `/v1/openapi.json`, and checked in a test against the routes.

use utoipa::OpenApi;

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "m365sync",
        description = "The sync service's API: tenants and their status, sync now, pause and \
                       resume, the sync log, the queue and the change feed. Every /v1 route and \
                       /metrics take `Authorization: Bearer <token>` when the service has a token."
    ),
    paths(
        api::list_tenants,
        api::get_tenant,
        api::sync_now,
        api::pause,
        api::resume,
        api::list_runs,
        api::get_run,
        api::list_jobs,
        api::list_changes,
        api::list_webhooks,
        crate::connect::connect,
        crate::connect::callback,
        api::health,
        api::metrics,
        api::openapi_document,
    ),
    components(schemas(crate::error::ErrorDetail)),
    tags(
        (name = "tenants", description = "Served tenants"),
        (name = "runs", description = "The sync log"),
        (name = "queue", description = "The job queue"),
        (name = "changes", description = "The change feed"),
        (name = "onboarding", description = "Admin consent: connect a customer's tenant"),
        (name = "service", description = "Health, metrics, this document"),
    )
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let document = super::document();
        let paths: Vec<&str> = document.paths.paths.keys().map(String::as_str).collect();
        for route in [
            "/v1/tenants",
            "/v1/tenants/{name}",
            "/v1/tenants/{name}/sync",
            "/v1/tenants/{name}/pause",
            "/v1/tenants/{name}/resume",
            "/v1/runs",
            "/v1/connect",
            "/connect/callback",
            "/v1/runs/{id}",
            "/v1/jobs",
            "/v1/changes",
            "/v1/webhooks",
            "/healthz",
            "/metrics",
            "/v1/openapi.json",
        ] {
            assert!(paths.contains(&route), "{route} is not in {paths:?}");
        }
        let json = serde_json::to_value(&document).unwrap();
        for schema in [
            "TenantView",
            "RunRecord",
            "Job",
            "ChangesPage",
            "SyncAccepted",
        ] {
            assert!(
                json["components"]["schemas"][schema].is_object(),
                "{schema} missing from the document's schemas"
            );
        }
    }
}
