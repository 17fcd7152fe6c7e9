//! The organization review across syncs: a tenant whose name is near one of the
//! platform's organizations is suggested; a reviewer accepts, and the next sync's report
//! says matched. Ignore makes the tenant ignored (not unmatched); create is refused while
//! any organization is suggested.

use m365sync::runtime::bindings::types::{Features, MatchState, ReviewAction, SyncError};
use m365sync::{RunLimits, Runtime};
use m365sync_e2e::{
    add_organization, database, full_simulator, sink, store, sync_logged, tenant_run,
};

/// `name` with its second letter doubled: a near miss the engine suggests.
fn near_miss(name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    chars.insert(2, chars[1]);
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn suggest_then_accept_then_the_next_sync_reports_matched() {
    let sim = full_simulator(30, |_| {}).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let mut run = tenant_run(&sim);
    run.options.features = Features::USERS | Features::ORGANIZATION;
    let name = sim.tenant().name;
    let near = add_organization(&db, &near_miss(&name));
    let unrelated = add_organization(&db, "Zzyzx Unrelated Holdings");

    // First sync: the tenant's name is read, and the near miss is suggested.
    let first = sync_logged(&runtime, &run, &db).await.unwrap();
    let found = first
        .organization
        .expect("the report has the organization match");
    assert_eq!(found.state, MatchState::Suggested, "{found:?}");
    assert_eq!(found.tenant_name, name);
    assert_eq!(found.suggestions[0].organization.id, near);
    assert!(
        found
            .suggestions
            .iter()
            .all(|s| s.organization.id != unrelated)
    );
    assert!(found.suggestions[0].score >= 0.75 && found.suggestions[0].score < 1.0);

    let review = runtime
        .review_organization(&run, store(&db, &run), sink())
        .await
        .unwrap();
    assert_eq!(review.state, MatchState::Suggested);

    // Create is refused while a suggestion exists, and creates nothing.
    let refused = runtime
        .decide_organization(&run, &ReviewAction::Create, store(&db, &run), sink())
        .await
        .unwrap_err();
    let Some(SyncError::InvalidRequest(message)) = refused.engine_error() else {
        panic!("expected invalid-request, got {refused}");
    };
    assert!(message.contains(&near), "{message}");
    assert_eq!(m365sync_e2e::count_all(&db, "platform_organizations"), 2);

    // Accepting a name that is not a suggestion is refused too.
    let refused = runtime
        .decide_organization(
            &run,
            &ReviewAction::Accept(unrelated.clone()),
            store(&db, &run),
            sink(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        refused.engine_error(),
        Some(SyncError::InvalidRequest(_))
    ));

    let accepted = runtime
        .decide_organization(
            &run,
            &ReviewAction::Accept(near.clone()),
            store(&db, &run),
            sink(),
        )
        .await
        .unwrap();
    assert_eq!(accepted.state, MatchState::Matched);
    assert_eq!(accepted.organization.as_ref().unwrap().id, near);

    // The second sync's report says matched.
    let second = sync_logged(&runtime, &run, &db).await.unwrap();
    let found = second.organization.expect("organization match");
    assert_eq!(found.state, MatchState::Matched);
    assert_eq!(found.organization.unwrap().id, near);
    // And so does the sync log.
    let log = m365sync_e2e::runs(&db, "contoso");
    let logged = &log[0].report.as_ref().unwrap()["organization"];
    assert_eq!(logged["state"], "matched");
    assert_eq!(logged["organization"]["id"], near.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn ignore_is_not_unmatched_and_change_matches_any_organization() {
    let sim = full_simulator(20, |_| {}).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let mut run = tenant_run(&sim);
    run.options.features = Features::USERS | Features::ORGANIZATION;
    let near = add_organization(&db, &near_miss(&sim.tenant().name));
    let other = add_organization(&db, "Zzyzx Unrelated Holdings");
    sync_logged(&runtime, &run, &db).await.unwrap();

    let ignored = runtime
        .decide_organization(&run, &ReviewAction::Ignore, store(&db, &run), sink())
        .await
        .unwrap();
    assert_eq!(ignored.state, MatchState::Ignored);
    let report = sync_logged(&runtime, &run, &db).await.unwrap();
    let found = report.organization.unwrap();
    assert_eq!(found.state, MatchState::Ignored, "ignored, not unmatched");
    assert!(found.organization.is_none());
    // Still refused: creating would duplicate the suggestion the reviewer ignored.
    let refused = runtime
        .decide_organization(&run, &ReviewAction::Create, store(&db, &run), sink())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains(&near), "{refused}");

    let changed = runtime
        .decide_organization(
            &run,
            &ReviewAction::Change(other.clone()),
            store(&db, &run),
            sink(),
        )
        .await
        .unwrap();
    assert_eq!(changed.state, MatchState::Matched);
    assert_eq!(changed.organization.unwrap().id, other);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_makes_an_organization_when_nothing_matches() {
    let sim = full_simulator(10, |_| {}).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let mut run = tenant_run(&sim);
    run.options.features = Features::USERS | Features::ORGANIZATION;
    add_organization(&db, "Zzyzx Unrelated Holdings");
    let first = sync_logged(&runtime, &run, &db).await.unwrap();
    assert_eq!(first.organization.unwrap().state, MatchState::Unmatched);

    let created = runtime
        .decide_organization(&run, &ReviewAction::Create, store(&db, &run), sink())
        .await
        .unwrap();
    assert_eq!(created.state, MatchState::Matched);
    let organization = created.organization.unwrap();
    assert_eq!(organization.name, sim.tenant().name);
    assert_eq!(m365sync_e2e::count_all(&db, "platform_organizations"), 2);
    // Created once: a second create is refused, the tenant matches it now.
    let again = runtime
        .decide_organization(&run, &ReviewAction::Create, store(&db, &run), sink())
        .await;
    assert!(again.is_err());
    assert_eq!(m365sync_e2e::count_all(&db, "platform_organizations"), 2);
    let report = sync_logged(&runtime, &run, &db).await.unwrap();
    assert_eq!(
        report.organization.unwrap().organization.unwrap().id,
        organization.id
    );
}
