//! Every data set a platform imports, synced from the simulator and checked against its
//! ground truth: people completed (manager, hire date, proxy addresses, last sign-in),
//! licences with product names (and an unknown SKU), the organization and its domains,
//! groups and members (incrementally), mailbox usage and per-workload usage reports
//! behind a redirect to a download host, concealed report names.

use std::collections::HashMap;

use m365sync::runtime::bindings::types::{DataSet, SyncMode};
use m365sync::{RunLimits, Runtime};
use m365sync_e2e::{column, count, database, full_run, full_simulator, sync};
use m365sync_simulator::{GroupKind, Host, ReportKind};

fn rows(db: &std::path::Path, sql: &str) -> Vec<Vec<Option<String>>> {
    let connection = rusqlite::Connection::open(db).unwrap();
    let mut statement = connection.prepare(sql).unwrap();
    let n = statement.column_count();
    statement
        .query_map([], |row| {
            (0..n)
                .map(|i| {
                    row.get_ref(i).map(|v| match v {
                        rusqlite::types::ValueRef::Null => None,
                        rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
                        rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_data_set_is_stored_as_the_tenant_has_it() {
    let sim = full_simulator(600, |_| {}).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let run = full_run(&sim);
    let report = sync(&runtime, &run, &db).await.unwrap();
    let truth = sim.tenant();

    let sets: Vec<DataSet> = report.data_sets.iter().map(|d| d.data_set).collect();
    for expected in [
        DataSet::Users,
        DataSet::Subscriptions,
        DataSet::Organization,
        DataSet::Groups,
        DataSet::Mailboxes,
        DataSet::Usage,
    ] {
        assert!(
            sets.contains(&expected),
            "{expected:?} missing from {sets:?}"
        );
    }

    // People, completed.
    for user in &truth.users {
        assert_eq!(
            column(&db, &user.id, "manager_id"),
            user.manager_id,
            "manager of {}",
            user.id
        );
        assert_eq!(column(&db, &user.id, "company_name"), user.company_name);
        let hire = column(&db, &user.id, "hire_date");
        assert_eq!(
            hire.is_some(),
            user.employee_hire_date.is_some(),
            "hire date of {}",
            user.id
        );
        let proxies: Vec<String> =
            serde_json::from_str(&column(&db, &user.id, "proxy_addresses").unwrap()).unwrap();
        let mut expected = user.proxy_addresses.clone();
        let mut got = proxies.clone();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "proxy addresses of {}", user.id);
        assert_eq!(
            column(&db, &user.id, "last_sign_in").is_some(),
            user.last_sign_in.is_some(),
            "last sign-in of {}",
            user.id
        );
    }

    // Licences: every SKU with Microsoft's product name; an unknown SKU keeps its part number.
    assert_eq!(
        count(&db, "subscriptions", "contoso") as usize,
        truth.skus.len()
    );
    let products: HashMap<String, String> = rows(
        &db,
        "SELECT sku_part_number, product_name FROM subscriptions",
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect();
    if let Some(name) = products.get("ENTERPRISEPACK") {
        assert_eq!(name, "Office 365 E3");
    }
    if let Some(name) = products.get("SPE_E3") {
        assert_eq!(name, "Microsoft 365 E3");
    }
    assert_eq!(
        products.get("CONTOSO_CUSTOM_ADDON").map(String::as_str),
        Some("CONTOSO_CUSTOM_ADDON")
    );
    assert!(
        report.warnings.iter().any(|w| w.code == "unknown-sku"),
        "{:?}",
        report.warnings
    );
    for sku in &truth.skus {
        let stored = rows(
            &db,
            &format!(
                "SELECT enabled_units, consumed_units FROM subscriptions WHERE sku_id = '{}'",
                sku.sku_id
            ),
        );
        assert_eq!(
            stored[0][0].as_deref(),
            Some(sku.prepaid_enabled.to_string().as_str())
        );
        assert_eq!(
            stored[0][1].as_deref(),
            Some(sku.consumed_units.to_string().as_str())
        );
    }

    // Organization and domains.
    let organization = rows(&db, "SELECT display_name, tenant_id FROM organizations");
    assert_eq!(organization.len(), 1);
    assert_eq!(organization[0][0].as_deref(), Some(truth.name.as_str()));
    assert_eq!(organization[0][1].as_deref(), Some(truth.id.as_str()));
    assert_eq!(
        count(&db, "domains", "contoso") as usize,
        truth.domains.len()
    );

    // Groups and their members.
    assert_eq!(count(&db, "groups", "contoso") as usize, truth.groups.len());
    let members: usize = truth.groups.iter().map(|g| g.members.len()).sum();
    assert_eq!(count(&db, "group_members", "contoso") as usize, members);

    // Mailboxes and usage, joined to people by user principal name.
    let mailbox_rows = sim.report_rows(ReportKind::MailboxUsage, 7);
    assert!(!mailbox_rows.is_empty());
    for row in &mailbox_rows {
        let stored = rows(
            &db,
            &format!(
                "SELECT storage_used_bytes, item_count FROM mailboxes WHERE object_id = '{}'",
                row.user_id
            ),
        );
        assert_eq!(stored.len(), 1, "mailbox of {}", row.user_principal_name);
        assert_eq!(stored[0][0], row.storage_used_bytes.map(|v| v.to_string()));
        assert_eq!(stored[0][1], row.item_count.map(|v| v.to_string()));
    }
    let teams = sim.report_rows(ReportKind::TeamsUserActivity, 30);
    assert!(!teams.is_empty());
    for row in &teams {
        let stored = rows(
            &db,
            &format!(
                "SELECT last_activity FROM usage WHERE object_id = '{}' AND workload = 'teams' AND period_days = 30",
                row.user_id
            ),
        );
        assert_eq!(
            stored.len(),
            1,
            "teams usage of {}",
            row.user_principal_name
        );
        assert_eq!(
            stored[0][0], row.last_activity_date,
            "teams last activity of {}",
            row.user_principal_name
        );
    }

    // The bearer token never went to the download host, and reports were downloaded there.
    let downloads: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Download)
        .collect();
    assert!(!downloads.is_empty());
    assert!(
        downloads
            .iter()
            .all(|r| !r.authorization && r.method == "GET")
    );

    // A second run with nothing changed writes no person again.
    let mut again = run.clone();
    again.options.mode = SyncMode::Incremental;
    let second = sync(&runtime, &again, &db).await.unwrap();
    let users = second
        .data_sets
        .iter()
        .find(|d| d.data_set == DataSet::Users)
        .unwrap();
    assert_eq!((users.created, users.updated), (0, 0), "{second:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concealed_report_names_are_warned_and_never_joined() {
    let sim = full_simulator(200, |c| c.concealed_reports = true).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let report = sync(&runtime, &full_run(&sim), &db).await.unwrap();
    let warning = report
        .warnings
        .iter()
        .find(|w| w.code == "reports-concealed");
    let warning =
        warning.unwrap_or_else(|| panic!("no reports-concealed warning: {:?}", report.warnings));
    assert!(
        warning.message.to_lowercase().contains("concealed"),
        "{}",
        warning.message
    );
    assert_eq!(count(&db, "usage", "contoso"), 0, "no row joined to anyone");
    assert_eq!(count(&db, "mailboxes", "contoso"), 0);
    assert_eq!(count(&db, "people", "contoso"), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_and_members_follow_the_tenant_incrementally() {
    let sim = full_simulator(300, |_| {}).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let mut run = full_run(&sim);
    run.options.mode = SyncMode::Incremental;
    sync(&runtime, &run, &db).await.unwrap();

    let truth = sim.tenant();
    let ids: Vec<String> = truth.users.iter().map(|u| u.id.clone()).collect();
    let new_group = sim.create_group("Delta Testers", GroupKind::Security, &ids[0..3]);
    let existing = &truth.groups[0];
    sim.remove_group_members(&existing.id, &existing.members[0..1]);
    let deleted = truth.groups[1].id.clone();
    sim.delete_group(&deleted);

    let report = sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(report.mode, SyncMode::Incremental);
    let member_count = |group: &str| {
        rows(
            &db,
            &format!("SELECT COUNT(*) FROM group_members WHERE group_id = '{group}'"),
        )[0][0]
            .clone()
            .unwrap()
    };
    assert_eq!(member_count(&new_group), "3");
    assert_eq!(
        member_count(&existing.id),
        (existing.members.len() - 1).to_string()
    );
    assert_eq!(member_count(&deleted), "0");
    assert!(
        rows(
            &db,
            &format!("SELECT 1 FROM groups WHERE object_id = '{deleted}'")
        )
        .is_empty()
    );
    assert_eq!(
        rows(
            &db,
            &format!("SELECT kind FROM groups WHERE object_id = '{new_group}'")
        )[0][0]
            .as_deref(),
        Some("security")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_without_premium_sign_in_data_is_told_once_and_the_rest_goes_on() {
    let sim = full_simulator(150, |c| c.premium = false).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let report = sync(&runtime, &full_run(&sim), &db).await.unwrap();
    let warnings: Vec<_> = report
        .warnings
        .iter()
        .filter(|w| w.code == "sign-in-activity-unavailable")
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", report.warnings);
    assert_eq!(count(&db, "people", "contoso"), 150);
    assert!(count(&db, "subscriptions", "contoso") > 0);
}
