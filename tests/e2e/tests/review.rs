//! The organization review across syncs, on every store back end: a tenant whose name is
//! near one of the platform's organizations is suggested; a reviewer accepts, and the next
//! sync's report says matched. Ignore makes the tenant ignored (not unmatched); create is
//! refused while any organization is suggested.

use m365sync_e2e::{
    TENANT, TestStore, add_organization, full_simulator, on_both_stores, runs, runtime, sink,
    sync_logged, tenant_run,
};
use m365sync_service::wit::types::{Features, MatchState, ReviewAction, SyncError};

/// `name` with its second letter doubled: a near miss the engine suggests.
fn near_miss(name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    chars.insert(2, chars[1]);
    chars.into_iter().collect()
}

/// The platform's organizations, of every tenant.
async fn organizations(db: &TestStore) -> usize {
    db.store
        .list_organizations()
        .await
        .expect("list organizations")
        .len()
}

on_both_stores! {
    async fn suggest_then_accept_then_the_next_sync_reports_matched(db) {
        let sim = full_simulator(30, |_| {}).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.features = Features::USERS | Features::ORGANIZATION;
        let name = sim.tenant().name;
        let near = add_organization(&db, &near_miss(&name)).await;
        let unrelated = add_organization(&db, "Zzyzx Unrelated Holdings").await;

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
            .review_organization(&run, db.reader(TENANT).await, sink())
            .await
            .unwrap();
        assert_eq!(review.state, MatchState::Suggested);

        // Create is refused while a suggestion exists, and creates nothing.
        let refused = runtime
            .decide_organization(&run, &ReviewAction::Create, db.tenant(TENANT).await, sink())
            .await
            .unwrap_err();
        let Some(SyncError::InvalidRequest(message)) = refused.engine_error() else {
            panic!("expected invalid-request, got {refused}");
        };
        assert!(message.contains(&near), "{message}");
        assert_eq!(organizations(&db).await, 2);

        // Accepting a name that is not a suggestion is refused too.
        let refused = runtime
            .decide_organization(
                &run,
                &ReviewAction::Accept(unrelated.clone()),
                db.tenant(TENANT).await,
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
                db.tenant(TENANT).await,
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
        let log = runs(&db, TENANT).await;
        let logged = log[0]
            .report
            .as_ref()
            .and_then(|r| r.organization.as_ref())
            .expect("the logged organization match");
        assert_eq!(logged.state, MatchState::Matched);
        assert_eq!(logged.organization.as_ref().map(|o| o.id.as_str()), Some(near.as_str()));
    }
}

on_both_stores! {
    async fn ignore_is_not_unmatched_and_change_matches_any_organization(db) {
        let sim = full_simulator(20, |_| {}).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.features = Features::USERS | Features::ORGANIZATION;
        let near = add_organization(&db, &near_miss(&sim.tenant().name)).await;
        let other = add_organization(&db, "Zzyzx Unrelated Holdings").await;
        sync_logged(&runtime, &run, &db).await.unwrap();

        let ignored = runtime
            .decide_organization(&run, &ReviewAction::Ignore, db.tenant(TENANT).await, sink())
            .await
            .unwrap();
        assert_eq!(ignored.state, MatchState::Ignored);
        let report = sync_logged(&runtime, &run, &db).await.unwrap();
        let found = report.organization.unwrap();
        assert_eq!(found.state, MatchState::Ignored, "ignored, not unmatched");
        assert!(found.organization.is_none());
        // Still refused: creating would duplicate the suggestion the reviewer ignored.
        let refused = runtime
            .decide_organization(&run, &ReviewAction::Create, db.tenant(TENANT).await, sink())
            .await
            .unwrap_err();
        assert!(refused.to_string().contains(&near), "{refused}");

        let changed = runtime
            .decide_organization(
                &run,
                &ReviewAction::Change(other.clone()),
                db.tenant(TENANT).await,
                sink(),
            )
            .await
            .unwrap();
        assert_eq!(changed.state, MatchState::Matched);
        assert_eq!(changed.organization.unwrap().id, other);
    }
}

on_both_stores! {
    async fn create_makes_an_organization_when_nothing_matches(db) {
        let sim = full_simulator(10, |_| {}).await;
        let runtime = runtime();
        let mut run = tenant_run(&sim);
        run.options.features = Features::USERS | Features::ORGANIZATION;
        add_organization(&db, "Zzyzx Unrelated Holdings").await;
        let first = sync_logged(&runtime, &run, &db).await.unwrap();
        assert_eq!(first.organization.unwrap().state, MatchState::Unmatched);

        let created = runtime
            .decide_organization(&run, &ReviewAction::Create, db.tenant(TENANT).await, sink())
            .await
            .unwrap();
        assert_eq!(created.state, MatchState::Matched);
        let organization = created.organization.unwrap();
        assert_eq!(organization.name, sim.tenant().name);
        assert_eq!(organizations(&db).await, 2);
        // Created once: a second create is refused, the tenant matches it now.
        let again = runtime
            .decide_organization(&run, &ReviewAction::Create, db.tenant(TENANT).await, sink())
            .await;
        assert!(again.is_err());
        assert_eq!(organizations(&db).await, 2);
        let report = sync_logged(&runtime, &run, &db).await.unwrap();
        assert_eq!(
            report.organization.unwrap().organization.unwrap().id,
            organization.id
        );
    }
}
