//! The removal guard end to end, on every store back end: a narrowed filter that would
//! delete everyone stops the run (error `mass-removal`, which the CLI exits 1 for) with
//! every person intact and the delta link kept; allowed, the same run deletes them.

use m365sync_e2e::{
    TENANT, checkpoint, on_both_stores, people_count, runtime, simulator, sync, tenant_run, users,
};
use m365sync_service::wit::types::{RemovalPolicy, SyncError, SyncMode};

on_both_stores! {
    async fn a_filter_that_would_remove_everyone_stops_unless_allowed(db) {
        let sim = simulator(1500).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.mode = SyncMode::Incremental;
        run.options.removal = RemovalPolicy::Delete;
        sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(people_count(&db, TENANT).await, 1500);
        let link = checkpoint(&db, "users.delta-link").await.unwrap();

        // A valid filter that takes no account of this tenant: everyone would be deleted.
        let mut narrowed = run.clone();
        narrowed.options.filter.domains = vec!["no-such-domain.example".to_string()];
        let error = sync(&runtime, &narrowed, &db).await.unwrap_err();
        assert_eq!(error.kind(), "mass-removal", "{error}");
        let Some(SyncError::MassRemoval(m)) = error.engine_error() else {
            panic!("expected mass-removal, got {error}");
        };
        assert_eq!((m.would_remove, m.stored, m.allowed), (1500, 1500, 150));
        assert!(m.message.contains("--allow-mass-removal"), "{}", m.message);
        assert_eq!(people_count(&db, TENANT).await, 1500, "people intact");
        assert_eq!(checkpoint(&db, "users.delta-link").await, Some(link));

        // Allowed: the same run deletes them.
        narrowed.options.removal_guard.allow = true;
        let report = sync(&runtime, &narrowed, &db).await.unwrap();
        assert_eq!(users(&report).removed, 1500);
        assert_eq!(people_count(&db, TENANT).await, 0);
        assert!(checkpoint(&db, "users.delta-link").await.is_some());
    }
}
