//! A stored tenant is bound to its directory, on every store back end: a config that
//! reuses a tenant's name for another directory fails with `tenant-mismatch` (the CLI
//! exits 1) and leaves the first directory's people as they were, even with removal policy
//! delete.

use m365sync_e2e::{on_both_stores, people_count, runtime, sync, tenant_run};
use m365sync_service::wit::types::{RemovalPolicy, SyncError};
use m365sync_simulator::{SimConfig, Simulator, TenantSpec};

on_both_stores! {
    async fn a_tenant_name_reused_for_another_directory_fails_and_keeps_the_first_directorys_people(db) {
        let first = Simulator::start(SimConfig::new(TenantSpec::new(7, 300)))
            .await
            .unwrap();
        let second = Simulator::start(SimConfig::new(TenantSpec::new(8, 200)))
            .await
            .unwrap();
        let (one, two) = (first.tenant().id, second.tenant().id);
        assert_ne!(one, two);
        let runtime = runtime();
        let mut run1 = tenant_run(&first);
        run1.tenant.key = "t1".to_string();
        run1.options.removal = RemovalPolicy::Delete;
        let mut run2 = tenant_run(&second);
        run2.tenant.key = "t1".to_string();
        run2.options.removal = RemovalPolicy::Delete;

        sync(&runtime, &run1, &db).await.unwrap();
        assert_eq!(people_count(&db, "t1").await, 300);
        let error = sync(&runtime, &run2, &db).await.unwrap_err();
        assert_eq!(error.kind(), "tenant-mismatch", "{error}");
        let Some(SyncError::TenantMismatch(message)) = error.engine_error() else {
            panic!("expected tenant-mismatch, got {error}");
        };
        for words in ["tenant t1", &one, &two, "m365sync reset --tenant t1"] {
            assert!(message.contains(words), "{words}: {message}");
        }
        assert_eq!(
            people_count(&db, "t1").await,
            300,
            "the first directory's people intact"
        );
        // The first directory still syncs.
        sync(&runtime, &run1, &db).await.unwrap();
        assert_eq!(people_count(&db, "t1").await, 300);
    }
}
