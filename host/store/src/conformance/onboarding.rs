//! Conformance cases of onboarding (the rules in `onboarding.rs`'s module docs): a consent
//! request is taken once, as it was put, by any handle; a state already held is refused;
//! an expired request is never returned and is gone; of two concurrent takes one gets the
//! request; a directory registered again replaces its row; a name another directory holds
//! is refused; registered tenants are listed by name; features and the partner round-trip.
//! Times are fixed Unix milliseconds, never the clock.

use m365sync_wit::StorageError;
use m365sync_wit::types::Features;

use super::Subject;
use crate::onboarding::{ConsentRequest, RegisteredTenant};
use crate::{StoreBackend, StoreError};

/// When the cases' requests are made, and how long they live.
const CREATED_MS: i64 = 1_000;
const LIFETIME_MS: i64 = 600_000;

/// A request of `state` for app `app-1`, made at [`CREATED_MS`] for [`LIFETIME_MS`].
fn request(state: &str) -> ConsentRequest {
    ConsentRequest {
        state: state.to_string(),
        app: "app-1".to_string(),
        features: Features::USERS | Features::LICENCES,
        redirect_uri: "https://sync.example/consent/callback".to_string(),
        created_ms: CREATED_MS,
        expires_ms: CREATED_MS + LIFETIME_MS,
    }
}

/// Directory `tenant_id` registered as `name`.
fn tenant(name: &str, tenant_id: &str) -> RegisteredTenant {
    RegisteredTenant {
        name: name.to_string(),
        tenant_id: tenant_id.to_string(),
        display_name: format!("{name} Ltd"),
        app: "app-1".to_string(),
        features: Features::USERS | Features::GROUPS,
        registered_ms: 5_000,
        partner: None,
    }
}

async fn put(store: &dyn StoreBackend, request: &ConsentRequest) {
    if let Err(error) = store.put_consent_request(request).await {
        panic!("putting the consent request {request:?}: {error}");
    }
}

async fn take(store: &dyn StoreBackend, state: &str, now_ms: i64) -> Option<ConsentRequest> {
    match store.take_consent_request(state, now_ms).await {
        Ok(taken) => taken,
        Err(error) => panic!("taking the consent request {state} at {now_ms}: {error}"),
    }
}

async fn register(store: &dyn StoreBackend, tenant: &RegisteredTenant) {
    if let Err(error) = store.register_tenant(tenant).await {
        panic!("registering {tenant:?}: {error}");
    }
}

async fn registered(store: &dyn StoreBackend) -> Vec<RegisteredTenant> {
    match store.registered_tenants().await {
        Ok(tenants) => tenants,
        Err(error) => panic!("listing the registered tenants: {error}"),
    }
}

/// The message of an `invalid` refusal, or a panic naming `what` was expected.
fn invalid(result: Result<(), StoreError>, what: &str) -> String {
    match result {
        Err(StoreError::Storage(StorageError::Invalid(message))) => message,
        other => panic!("{what} is refused as invalid: {other:?}"),
    }
}

pub async fn a_consent_request_is_taken_once_as_it_was_put(subject: &Subject) {
    let store = &*subject.store;
    assert_eq!(take(store, "none", CREATED_MS).await, None, "nothing put");
    let first = request("state-1");
    let second = request("state-2");
    put(store, &first).await;
    put(store, &second).await;
    assert_eq!(take(store, "state-1", CREATED_MS + 1).await, Some(first));
    assert_eq!(take(store, "state-1", CREATED_MS + 1).await, None, "taken");
    // Another handle (the callback answered by another process) sees what was put, and
    // that a request was taken.
    let other = subject.reopen().await;
    assert_eq!(take(&*other, "state-1", CREATED_MS + 2).await, None);
    assert_eq!(take(&*other, "state-2", CREATED_MS + 2).await, Some(second));
    assert_eq!(take(store, "state-2", CREATED_MS + 3).await, None);
}

pub async fn a_state_already_held_is_refused(subject: &Subject) {
    let store = &*subject.store;
    let first = request("state-1");
    put(store, &first).await;
    let again = ConsentRequest {
        app: "app-2".to_string(),
        redirect_uri: "https://elsewhere.example/callback".to_string(),
        ..request("state-1")
    };
    let message = invalid(store.put_consent_request(&again).await, "a state held");
    assert!(
        !message.contains("state-1"),
        "the state is the link's secret and never shown: {message}"
    );
    let other = subject.reopen().await;
    let refused = other.put_consent_request(&again).await;
    invalid(refused, "a state held, put through another handle");
    assert_eq!(
        take(store, "state-1", CREATED_MS).await,
        Some(first),
        "the request first put is kept"
    );
    // Once taken, the state is free again.
    put(store, &again).await;
    assert_eq!(take(store, "state-1", CREATED_MS).await, Some(again));
}

pub async fn an_expired_consent_request_is_not_returned_and_is_gone(subject: &Subject) {
    let store = &*subject.store;
    let expires_ms = CREATED_MS + LIFETIME_MS;
    put(store, &request("late")).await;
    put(store, &request("in-time")).await;
    // Up to, not including, its expiry.
    assert_eq!(
        take(store, "in-time", expires_ms - 1).await,
        Some(request("in-time"))
    );
    assert_eq!(take(store, "late", expires_ms).await, None, "expired");
    // Gone: not returned even to a take whose clock says it would still be live.
    assert_eq!(take(store, "late", CREATED_MS).await, None, "deleted");
    let other = subject.reopen().await;
    assert_eq!(take(&*other, "late", CREATED_MS).await, None, "deleted");
    // And its state is free again.
    put(store, &request("late")).await;
    assert_eq!(take(store, "late", CREATED_MS).await, Some(request("late")));
}

pub async fn of_two_concurrent_takes_one_gets_the_request(subject: &Subject) {
    let store = &*subject.store;
    let other = subject.reopen().await;
    for round in 0..8 {
        let state = format!("state-{round}");
        put(store, &request(&state)).await;
        // The first take through this handle or another, in turn.
        let (a, b) = if round % 2 == 0 {
            (store, &*other)
        } else {
            (&*other, store)
        };
        let (first, second) = tokio::join!(
            take(a, &state, CREATED_MS + 1),
            take(b, &state, CREATED_MS + 1)
        );
        let got: Vec<ConsentRequest> = first.into_iter().chain(second).collect();
        assert_eq!(
            got,
            vec![request(&state)],
            "round {round}: exactly one of two concurrent takes gets the request"
        );
    }
    // Concurrent takes through one handle.
    put(store, &request("same")).await;
    let (first, second) = tokio::join!(
        take(store, "same", CREATED_MS + 1),
        take(store, "same", CREATED_MS + 1)
    );
    assert_eq!(first.into_iter().chain(second).count(), 1, "one handle");
}

pub async fn registering_a_directory_again_replaces_its_row(subject: &Subject) {
    let store = &*subject.store;
    let first = tenant("contoso", "tid-1");
    register(store, &first).await;
    register(store, &tenant("fabrikam", "tid-2")).await;
    assert_eq!(
        registered(store).await,
        vec![first.clone(), tenant("fabrikam", "tid-2")]
    );
    // The same registration again changes nothing.
    register(store, &first).await;
    assert_eq!(registered(store).await.len(), 2, "one row per directory");
    // Again, with everything but the directory changed: its row is replaced.
    let renamed = RegisteredTenant {
        name: "contoso-eu".to_string(),
        tenant_id: "tid-1".to_string(),
        display_name: "Contoso Europe".to_string(),
        app: "app-2".to_string(),
        features: Features::USERS | Features::MAILBOXES,
        registered_ms: 9_000,
        partner: Some("partner-1".to_string()),
    };
    register(store, &renamed).await;
    let other = subject.reopen().await;
    assert_eq!(
        registered(&*other).await,
        vec![renamed, tenant("fabrikam", "tid-2")],
        "the directory's row replaced, seen by another handle"
    );
    // Its former name is free for another directory.
    register(store, &tenant("contoso", "tid-3")).await;
    let names: Vec<String> = (registered(store).await.into_iter())
        .map(|t| format!("{} {}", t.name, t.tenant_id))
        .collect();
    assert_eq!(
        names,
        ["contoso tid-3", "contoso-eu tid-1", "fabrikam tid-2"]
    );
}

pub async fn a_name_another_directory_holds_is_refused(subject: &Subject) {
    let store = &*subject.store;
    register(store, &tenant("contoso", "tid-1")).await;
    register(store, &tenant("fabrikam", "tid-2")).await;
    let before = registered(store).await;
    // A new directory under a held name.
    let message = invalid(
        store.register_tenant(&tenant("contoso", "tid-3")).await,
        "a new directory under a name another holds",
    );
    assert!(message.contains("contoso"), "names the name: {message}");
    // A registered directory renamed to a name another holds.
    let other = subject.reopen().await;
    invalid(
        other.register_tenant(&tenant("contoso", "tid-2")).await,
        "a directory renamed to a name another holds",
    );
    assert_eq!(registered(store).await, before, "nothing changed");
}

pub async fn registered_tenants_are_listed_by_name(subject: &Subject) {
    let store = &*subject.store;
    assert_eq!(registered(store).await, vec![], "none yet");
    // Directory ids in another order than names; names compared byte-wise.
    for (name, tenant_id) in [
        ("northwind", "tid-1"),
        ("adatum", "tid-4"),
        ("Fabrikam", "tid-2"),
        ("contoso", "tid-3"),
    ] {
        register(store, &tenant(name, tenant_id)).await;
    }
    let other = subject.reopen().await;
    let names: Vec<String> = (registered(&*other).await.into_iter())
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["Fabrikam", "adatum", "contoso", "northwind"]);
}

pub async fn features_round_trip_as_they_were_given(subject: &Subject) {
    let store = &*subject.store;
    let sets = [
        Features::empty(),
        Features::USERS,
        Features::USERS | Features::MANAGERS | Features::SIGN_IN_ACTIVITY,
        Features::GROUPS | Features::LICENCES | Features::ORGANIZATION,
        Features::MAILBOXES | Features::USAGE_REPORTS | Features::USERS,
        Features::all(),
    ];
    let other = subject.reopen().await;
    for (i, features) in sets.into_iter().enumerate() {
        let state = format!("state-{i}");
        let put_request = ConsentRequest {
            features,
            ..request(&state)
        };
        put(store, &put_request).await;
        assert_eq!(
            take(&*other, &state, CREATED_MS).await,
            Some(put_request),
            "a request's features {features:?}"
        );
        let registration = RegisteredTenant {
            features,
            ..tenant(&format!("tenant-{i}"), &format!("tid-{i}"))
        };
        register(store, &registration).await;
    }
    let listed: Vec<Features> = (registered(&*other).await.iter())
        .map(|t| t.features)
        .collect();
    assert_eq!(listed, sets, "the registered tenants' features, by name");
}

pub async fn a_registered_tenants_partner_round_trips(subject: &Subject) {
    let store = &*subject.store;
    let through_partner = RegisteredTenant {
        partner: Some("csp-partner".to_string()),
        ..tenant("contoso", "tid-1")
    };
    let through_link = tenant("fabrikam", "tid-2");
    register(store, &through_partner).await;
    register(store, &through_link).await;
    let other = subject.reopen().await;
    assert_eq!(
        registered(&*other).await,
        vec![through_partner.clone(), through_link.clone()],
        "a partner's name, and none"
    );
    // Registered again: the partner is replaced with the row, to none or to another.
    let consented = RegisteredTenant {
        partner: None,
        ..through_partner
    };
    let added = RegisteredTenant {
        partner: Some("another partner".to_string()),
        ..through_link
    };
    register(store, &consented).await;
    register(&*other, &added).await;
    assert_eq!(registered(store).await, vec![consented, added]);
}
