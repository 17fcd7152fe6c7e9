//! PostgreSQL-specific tests of what onboarding keeps: the migration from schema 2, takes
//! and registrations racing on many connections, and texts PostgreSQL cannot hold.

use m365sync_store::onboarding::{ConsentRequest, Onboarding, RegisteredTenant};
use m365sync_store::queue::{Queue, ServedTenant};
use m365sync_store::{Access, Store, StoreError};
use m365sync_wit::StorageError;
use m365sync_wit::types::Features;

use m365sync_store::conformance::fixtures::{create, saved};

use super::{count, fresh, sql};
use crate::PostgresStore;

fn request(state: &str) -> ConsentRequest {
    ConsentRequest {
        state: state.to_string(),
        app: "app-1".to_string(),
        features: Features::USERS | Features::GROUPS,
        redirect_uri: "https://sync.example/consent/callback".to_string(),
        created_ms: 1_000,
        expires_ms: 601_000,
    }
}

pub(super) fn tenant(name: &str, tenant_id: &str) -> RegisteredTenant {
    RegisteredTenant {
        name: name.to_string(),
        tenant_id: tenant_id.to_string(),
        display_name: "Contoso".to_string(),
        app: "app-1".to_string(),
        features: Features::USERS | Features::LICENCES,
        registered_ms: 1_000,
        partner: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_2_schema_gains_the_onboarding_tables_and_keeps_its_rows() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut t = store.open_tenant("t", Access::Sync).await.expect("opening");
    t.commit(saved(vec![create("a")]))
        .await
        .expect("committing");
    t.finish().await.expect("finishing");
    let served = [ServedTenant {
        tenant: "t".to_string(),
        app: "app-1".to_string(),
    }];
    store.serve_tenants(&served).await.expect("serving");
    // Back to schema 2: its tables are unchanged by schemas 3 and 4, which only add these
    // (schema 4's column is of schema 3's table).
    let client = sql(&schema).await;
    client
        .batch_execute(
            "DROP TABLE consent_requests, registered_tenants, notices;
             DELETE FROM m365sync_schema_versions WHERE version >= 3;",
        )
        .await
        .expect("a schema-2 store");
    drop(store);
    let versions = "SELECT COUNT(*) FROM m365sync_schema_versions";
    assert_eq!(count(&client, versions).await, 2);
    let store = PostgresStore::open(&schema.url).await.expect("migrating");
    assert_eq!(count(&client, versions).await, 4);
    assert_eq!(count(&client, "SELECT COUNT(*) FROM people").await, 1);
    let states = store.tenant_states(0).await.expect("reading the states");
    assert_eq!(states.len(), 1, "the served tenant is kept");
    store
        .put_consent_request(&request("s"))
        .await
        .expect("putting");
    let taken = store.take_consent_request("s", 2_000).await;
    assert_eq!(taken.expect("taking"), Some(request("s")));
    let registered = tenant("contoso", "tid-1");
    store
        .register_tenant(&registered)
        .await
        .expect("registering");
    let listed = store.registered_tenants().await.expect("listing");
    assert_eq!(listed, vec![registered]);
}

#[tokio::test(flavor = "multi_thread")]
async fn takes_racing_on_many_connections_give_each_request_once() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(PostgresStore::open(&schema.url).await.expect("opening"));
    }
    for round in 0..10 {
        let state = format!("state-{round}");
        store
            .put_consent_request(&request(&state))
            .await
            .expect("putting");
        let takes = stores.iter().map(|s| {
            let (s, state) = (s.clone(), state.clone());
            tokio::spawn(async move { s.take_consent_request(&state, 2_000).await })
        });
        let mut got = 0;
        for take in futures::future::join_all(takes).await {
            let taken = take.expect("the task").expect("taking");
            if let Some(taken) = taken {
                assert_eq!(taken, request(&state));
                got += 1;
            }
        }
        assert_eq!(got, 1, "round {round}: one take gets the request");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_directories_registering_one_name_at_once_one_is_refused() {
    let Some((schema, store)) = fresh().await else {
        return;
    };
    let other = PostgresStore::open(&schema.url).await.expect("opening");
    for round in 0..5 {
        let name = format!("contoso-{round}");
        let first = tenant(&name, &format!("tid-a{round}"));
        let second = tenant(&name, &format!("tid-b{round}"));
        let (a, b) = tokio::join!(
            store.register_tenant(&first),
            other.register_tenant(&second)
        );
        let refused: Vec<String> = [a, b]
            .into_iter()
            .filter_map(|result| match result {
                Ok(()) => None,
                Err(StoreError::Storage(StorageError::Invalid(message))) => Some(message),
                Err(other) => panic!("refused as invalid: {other:?}"),
            })
            .collect();
        assert_eq!(refused.len(), 1, "round {round}: {refused:?}");
        assert!(
            refused[0].contains(&name) && refused[0].contains("another directory"),
            "the contract's refusal, not the server's words: {}",
            refused[0]
        );
    }
    assert_eq!(store.registered_tenants().await.expect("listing").len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_with_a_nul_is_refused_naming_its_field() {
    let Some((_schema, store)) = fresh().await else {
        return;
    };
    let bad = RegisteredTenant {
        display_name: "Contoso\0".to_string(),
        ..tenant("contoso", "tid-1")
    };
    let refused = store.register_tenant(&bad).await;
    let Err(StoreError::Storage(StorageError::Invalid(message))) = &refused else {
        panic!("refused as invalid: {refused:?}");
    };
    assert!(message.contains("display name"), "{message}");
    let bad = ConsentRequest {
        redirect_uri: "https://x\0".to_string(),
        ..request("s")
    };
    let refused = store.put_consent_request(&bad).await;
    assert!(
        matches!(&refused, Err(StoreError::Storage(StorageError::Invalid(_)))),
        "{refused:?}"
    );
    let taken = store.take_consent_request("s\0", 0).await;
    assert_eq!(taken.expect("taking"), None);
}
