//! A real sync, end to end, on every store back end: the host loads the real component,
//! which signs in to the simulated tenant over HTTP, pages through its users, and writes
//! them to the store; the test reads the store back through its contract and checks it
//! against the simulator's ground truth.

use m365sync_e2e::{
    TENANT, on_both_stores, people, people_count, runs, runtime, simulator, sync, tenant_run,
};
use m365sync_service::wit::types::DataSet;
use m365sync_simulator::Host;

on_both_stores! {
    async fn full_sync_writes_every_user_with_the_right_fields(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        let run = tenant_run(&sim);

        let report = sync(&runtime, &run, &db).await.unwrap();

        let users = report
            .data_sets
            .iter()
            .find(|d| d.data_set == DataSet::Users)
            .unwrap();
        assert_eq!(users.pages, 3, "2,500 users at $top=999 are three pages");
        assert_eq!(users.read, 2500);
        assert_eq!(users.created, 2500);
        assert_eq!(users.written, 2500);
        assert_eq!(report.requests, 4, "one token request and three pages");

        // Exactly one token POST and three GETs of /v1.0/users reached the simulator.
        let requests = sim.requests();
        let token: Vec<_> = requests.iter().filter(|r| r.host == Host::Login).collect();
        assert_eq!(token.len(), 1);
        assert_eq!(token[0].method, "POST");
        let pages: Vec<_> = requests.iter().filter(|r| r.host == Host::Graph).collect();
        assert_eq!(pages.len(), 3);
        assert!(
            pages
                .iter()
                .all(|r| r.method == "GET" && r.path == "/v1.0/users/delta" && r.status == 200)
        );
        assert!(pages.iter().all(|r| r.authorization));

        // Every user is in the store with the simulator's values.
        let stored = people(&db, TENANT).await;
        assert_eq!(stored.len(), 2500);
        assert_eq!(people_count(&db, TENANT).await, 2500);
        for user in &sim.tenant().users {
            let row = &stored
                .get(&user.id)
                .unwrap_or_else(|| panic!("user {} missing", user.id))
                .person;
            assert_eq!(row.object_id, user.id);
            assert_eq!(row.user_principal_name, user.user_principal_name);
            assert_eq!(row.mail, user.mail);
            assert_eq!(row.given_name, user.given_name);
            assert_eq!(row.surname, user.surname);
            assert_eq!(row.display_name.as_deref(), Some(user.display_name.as_str()));
            assert_eq!(row.department, user.department);
            assert_eq!(row.job_title, user.job_title);
            assert_eq!(row.country, user.country);
            assert_eq!(row.usage_location, user.usage_location);
            assert_eq!(row.office_location, user.office_location);
            assert_eq!(row.account_enabled, user.account_enabled);
            assert_eq!(row.user_type, user.user_type);
            // The engine keeps licences sorted, so Graph's ordering never looks like a change.
            let mut expected = user.assigned_licenses.clone();
            expected.sort();
            assert_eq!(row.licences, expected, "licences of {}", user.id);
            assert_eq!(row.created_at.as_deref(), Some(user.created_date_time.as_str()));
        }
        assert_eq!(runs(&db, TENANT).await.len(), 1, "the run is in the sync log");
    }
}

on_both_stores! {
    async fn a_second_sync_changes_and_duplicates_nothing(db) {
        let sim = simulator(2500).await;
        let runtime = runtime();
        let run = tenant_run(&sim);

        let first = sync(&runtime, &run, &db).await.unwrap();
        let second = sync(&runtime, &run, &db).await.unwrap();

        assert_eq!(first.data_sets[0].created, 2500);
        let users = &second.data_sets[0];
        assert_eq!(
            (users.created, users.updated, users.removed, users.written),
            (0, 0, 0, 0)
        );
        assert_eq!(users.unchanged, 2500);
        assert_eq!(people_count(&db, TENANT).await, 2500, "no duplicates");
        assert_eq!(runs(&db, TENANT).await.len(), 2);
    }
}
