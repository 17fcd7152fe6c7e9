//! JSON batching in an incremental sync: a user the account filter left out comes into it
//! by a change, and Graph's delta replay reports it with only the properties that changed
//! ("Updated instances are represented by their id with *at least* the properties that
//! have been updated", concepts/delta-query-overview.md). The store does not hold it, so
//! the engine reads it whole by id through `POST /v1.0/$batch` (concepts/json-batching.md)
//! and stores the full record; requests throttled inside the batch are sent again alone
//! after their Retry-After (concepts/throttling.md, "Throttling and batching"). (The
//! HTTP layer: these run on SQLite.)

use m365sync_e2e::{
    TENANT, TestStore, people_count, person, runtime, simulator_with, sync, tenant_run, users,
};
use m365sync_service::config::TenantRun;
use m365sync_service::wit::types::{Attribute, AttributeFilter, PersonStatus, SyncMode};
use m365sync_simulator::{Host, Simulator, Throttle, User};

const SALES: &str = "Sales";

/// A simulated tenant whose users/delta replays carry only what changed, and an
/// incremental run that takes the Sales department only.
async fn sales_only(users: usize) -> (Simulator, TenantRun) {
    let sim = simulator_with(users, |c| c.minimal_updates = true).await;
    let mut run = tenant_run(&sim);
    run.options.mode = SyncMode::Incremental;
    run.options.filter.attributes = vec![AttributeFilter {
        attribute: Attribute::Department,
        include: vec![SALES.to_string()],
        exclude: Vec::new(),
    }];
    (sim, run)
}

/// Live users outside Sales.
fn outside_sales(sim: &Simulator) -> Vec<User> {
    sim.tenant()
        .users
        .into_iter()
        .filter(|u| u.department.as_deref() != Some(SALES))
        .collect()
}

async fn assert_stored_in_full(db: &TestStore, user: &User) {
    let stored = person(db, &user.id)
        .await
        .unwrap_or_else(|| panic!("{} stored", user.id));
    assert_eq!(
        stored.person.user_principal_name, user.user_principal_name,
        "{}",
        user.id
    );
    assert_eq!(stored.person.mail, user.mail);
    assert_eq!(
        stored.person.display_name.as_deref(),
        Some(user.display_name.as_str())
    );
    assert_eq!(stored.person.given_name, user.given_name);
    assert_eq!(stored.person.surname, user.surname);
    assert_eq!(stored.person.department.as_deref(), Some(SALES));
    assert_eq!(stored.status, PersonStatus::Active);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_a_change_lets_into_the_filter_is_read_whole_through_a_batch() {
    let (sim, run) = sales_only(300).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();

    let first = sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(first.mode, SyncMode::Full);
    let outside = outside_sales(&sim);
    let stored = people_count(&db, TENANT).await;
    assert_eq!(stored as usize, 300 - outside.len(), "only Sales is stored");
    let newcomer = outside[0].clone();
    assert!(person(&db, &newcomer.id).await.is_none());

    sim.update_users(std::slice::from_ref(&newcomer.id), |u| {
        u.department = Some(SALES.to_string())
    });
    let graph_before = sim.graph_requests().len();
    let second = sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(second.mode, SyncMode::Incremental);
    let u = users(&second);
    assert_eq!((u.read, u.created, u.updated), (1, 1, 0), "{second:?}");
    assert!(
        second
            .warnings
            .iter()
            .all(|w| w.code != "partial-unknown-user"),
        "{second:?}"
    );

    // The full record was stored, though the replay carried only the department.
    let now = sim
        .tenant()
        .users
        .into_iter()
        .find(|u| u.id == newcomer.id)
        .unwrap();
    assert_stored_in_full(&db, &now).await;
    assert_eq!(people_count(&db, TENANT).await, stored + 1);

    // One delta page, then one batch that read the user with a GET.
    let graph: Vec<_> = sim
        .graph_requests()
        .into_iter()
        .skip(graph_before)
        .collect();
    let calls: Vec<(&str, &str)> = graph
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        vec![("GET", "/v1.0/users/delta"), ("POST", "/v1.0/$batch")]
    );
    let batched = sim.batched_requests();
    assert_eq!(batched.len(), 1, "{batched:?}");
    assert_eq!(batched[0].method, "GET");
    assert_eq!(batched[0].path, format!("/v1.0/users/{}", newcomer.id));
    assert!(
        batched[0]
            .query
            .starts_with("$select=id,userPrincipalName,mail")
    );
    assert_eq!(batched[0].status, 200);

    // Nothing changed since: nothing read, nothing batched.
    let third = sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(users(&third).read, 0);
    assert_eq!(sim.batched_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_throttled_inside_the_batch_is_sent_again_alone() {
    let (sim, run) = sales_only(300).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    sync(&runtime, &run, &db).await.unwrap();
    let stored = people_count(&db, TENANT).await;

    let newcomers: Vec<String> = outside_sales(&sim)
        .into_iter()
        .take(3)
        .map(|u| u.id)
        .collect();
    sim.update_users(&newcomers, |u| u.department = Some(SALES.to_string()));
    // The second request inside the first batch gets 429 with Retry-After: 1.
    sim.set_batch_throttle(Some(Throttle {
        every_nth: None,
        burst: Some((2, 1)),
        status: 429,
        retry_after_secs: Some(1),
    }));

    let report = sync(&runtime, &run, &db).await.unwrap();
    let u = users(&report);
    assert_eq!((u.read, u.created), (3, 3), "{report:?}");
    assert_eq!(report.retries, 1, "the throttled request, once: {report:?}");
    assert!(
        report.retry_wait_ms >= 1000,
        "Retry-After honoured: {report:?}"
    );
    assert_eq!(people_count(&db, TENANT).await, stored + 3);
    let now = sim.tenant();
    for id in &newcomers {
        let user = now.users.iter().find(|u| &u.id == id).unwrap();
        assert_stored_in_full(&db, user).await;
    }

    // Batch 1 carried the three, one throttled; batch 2 only that one.
    let batched = sim.batched_requests();
    let seen: Vec<(usize, u16)> = batched.iter().map(|b| (b.batch, b.status)).collect();
    assert_eq!(seen, vec![(1, 200), (1, 429), (1, 200), (2, 200)]);
    assert_eq!(batched[1].path, batched[3].path);
    assert!(batched.iter().all(|b| b.method == "GET"));
    // Read-only: every Graph request is a GET, or the batch envelope of GETs.
    assert!(
        sim.requests()
            .iter()
            .filter(|r| r.host == Host::Graph)
            .all(|r| r.method == "GET" || (r.method == "POST" && r.path == "/v1.0/$batch"))
    );
}
