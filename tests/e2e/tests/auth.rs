//! Sign-in and permission failures, each mapped to a typed error an admin can act on:
//! an expired secret, an unknown app, an unknown tenant, an app without the roles its
//! features need. Nothing is written in any of them. (Sign-in only: these run on SQLite.)

use std::sync::Arc;

use m365sync_e2e::{
    TENANT, TestStore, people_count, runtime, simulator, simulator_with, sync, tenant_run,
};
use m365sync_service::runtime::TracingSink;
use m365sync_service::wit::types::{AuthFailure, SyncError};

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_secret_says_it_expired_and_must_be_rotated() {
    let sim = simulator_with(20, |c| c.secret_expired = true).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let error = sync(&runtime, &tenant_run(&sim), &db).await.unwrap_err();
    let Some(SyncError::Auth(auth)) = error.engine_error() else {
        panic!("{error}")
    };
    assert_eq!(auth.failure, AuthFailure::ExpiredSecret);
    assert_eq!(auth.aadsts, Some(7000222));
    let message = auth.message.to_lowercase();
    assert!(
        message.contains("expired") && message.contains("rotate"),
        "{message}"
    );
    assert_eq!(people_count(&db, TENANT).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_app_and_an_unknown_tenant_are_named() {
    let sim = simulator(20).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();

    let mut run = tenant_run(&sim);
    run.tenant.client_id = "00000000-0000-0000-0000-0000000000aa".to_string();
    let error = sync(&runtime, &run, &db).await.unwrap_err();
    let Some(SyncError::Auth(auth)) = error.engine_error() else {
        panic!("{error}")
    };
    assert_eq!(
        (auth.failure, auth.aadsts),
        (AuthFailure::AppNotFound, Some(700016))
    );

    let mut run = tenant_run(&sim);
    run.tenant.tenant_id = "no-such-tenant.onmicrosoft.com".to_string();
    let error = sync(&runtime, &run, &db).await.unwrap_err();
    let Some(SyncError::Auth(auth)) = error.engine_error() else {
        panic!("{error}")
    };
    assert_eq!(
        (auth.failure, auth.aadsts),
        (AuthFailure::TenantNotFound, Some(90002))
    );
    assert_eq!(people_count(&db, TENANT).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_without_the_needed_role_is_stopped_before_reading_and_told_which() {
    let sim = simulator_with(20, |c| c.roles = vec!["Reports.Read.All".to_string()]).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let run = tenant_run(&sim);

    let error = sync(&runtime, &run, &db).await.unwrap_err();
    let Some(SyncError::Permission(denied)) = error.engine_error() else {
        panic!("{error}")
    };
    assert_eq!(denied.permission, "User.Read.All");
    assert_eq!(denied.feature, "users");
    assert_eq!(people_count(&db, TENANT).await, 0);
    assert!(
        sim.graph_requests().is_empty(),
        "stopped before any Graph request"
    );

    let check = runtime
        .check_permissions(&run, Arc::new(TracingSink))
        .await
        .unwrap();
    assert_eq!(check.granted, vec!["Reports.Read.All".to_string()]);
    assert_eq!(check.missing.len(), 1);
    assert_eq!(check.missing[0].permission, "User.Read.All");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_broader_role_is_enough() {
    let sim = simulator_with(20, |c| c.roles = vec!["Directory.Read.All".to_string()]).await;
    let runtime = runtime();
    let check = runtime
        .check_permissions(&tenant_run(&sim), Arc::new(TracingSink))
        .await
        .unwrap();
    assert!(check.missing.is_empty(), "{check:?}");
}
