//! A real sync, end to end: the host loads the real component, which signs in to the
//! simulated tenant over HTTP, pages through its users, and writes them to SQLite; the
//! test reads the database back and checks it against the simulator's ground truth.

use std::collections::HashMap;

use m365sync::runtime::bindings::types::DataSet;
use m365sync::{RunLimits, Runtime};
use m365sync_e2e::{count, database, simulator, sync, tenant_run};
use m365sync_simulator::Host;

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_writes_every_user_with_the_right_fields() {
    let sim = simulator(2500).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
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

    // Every user is in SQLite with the simulator's values.
    let connection = rusqlite::Connection::open(&db).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT object_id, user_principal_name, mail, given_name, surname, display_name,
                    department, job_title, country, usage_location, office_location,
                    account_enabled, user_type, licences, created_at
             FROM people WHERE tenant = 'contoso'",
        )
        .unwrap();
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
        String,
        String,
        Option<String>,
    );
    let rows: HashMap<String, Row> = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    r.get(13)?,
                    r.get(14)?,
                ),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2500);
    for user in &sim.tenant().users {
        let row = rows
            .get(&user.id)
            .unwrap_or_else(|| panic!("user {} missing", user.id));
        assert_eq!(row.1.as_deref(), Some(user.user_principal_name.as_str()));
        assert_eq!(row.2, user.mail);
        assert_eq!(row.3, user.given_name);
        assert_eq!(row.4, user.surname);
        assert_eq!(row.5.as_deref(), Some(user.display_name.as_str()));
        assert_eq!(row.6, user.department);
        assert_eq!(row.7, user.job_title);
        assert_eq!(row.8, user.country);
        assert_eq!(row.9, user.usage_location);
        assert_eq!(row.10, user.office_location);
        assert_eq!(row.11, user.account_enabled);
        assert_eq!(row.12, user.user_type);
        // The engine keeps licences sorted, so Graph's ordering never looks like a change.
        let licences: Vec<String> = serde_json::from_str(&row.13).unwrap();
        let mut expected = user.assigned_licenses.clone();
        expected.sort();
        assert_eq!(licences, expected, "licences of {}", user.id);
        assert_eq!(row.14.as_deref(), Some(user.created_date_time.as_str()));
    }
    assert_eq!(
        count(&db, "runs", "contoso"),
        1,
        "the run is in the sync log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_changes_and_duplicates_nothing() {
    let sim = simulator(2500).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
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
    assert_eq!(count(&db, "people", "contoso"), 2500, "no duplicates");
    assert_eq!(count(&db, "runs", "contoso"), 2);
}
