//! Every data set a platform imports, synced from the simulator into a store of each back
//! end and checked against its ground truth through the store's exports: people completed
//! (manager, hire date, proxy addresses, last sign-in), licences with product names (and
//! an unknown SKU), the organization and its domains, groups and members (incrementally),
//! mailbox usage and per-workload usage reports behind a redirect to a download host,
//! concealed report names.

use std::collections::HashMap;

use m365sync_e2e::{
    Kind, Record, TENANT, count, full_run, full_simulator, on_both_stores, people, people_count,
    records, runtime, sync, text,
};
use m365sync_service::store::read::Cell;
use m365sync_service::wit::types::{DataSet, SyncMode};
use m365sync_simulator::{GroupKind, Host, ReportKind};

/// A count or size as an export holds it (an integer; Null when there is none).
fn integer(value: Option<u64>) -> Cell {
    value.map_or(Cell::Null, |v| Cell::Integer(i64::try_from(v).unwrap()))
}

/// An optional text as an export holds it.
fn optional_text(value: Option<&str>) -> Cell {
    value.map_or(Cell::Null, |v| Cell::Text(v.to_string()))
}

/// The rows whose `column` is the text `value`.
fn rows_where<'a>(rows: &'a [Record], column: &str, value: &str) -> Vec<&'a Record> {
    rows.iter()
        .filter(|row| text(&row[column]) == Some(value))
        .collect()
}

on_both_stores! {
    async fn every_data_set_is_stored_as_the_tenant_has_it(db) {
        let sim = full_simulator(600, |_| {}).await;
        let runtime = runtime();
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
        let stored = people(&db, TENANT).await;
        for user in &truth.users {
            let person = &stored
                .get(&user.id)
                .unwrap_or_else(|| panic!("user {} missing", user.id))
                .person;
            assert_eq!(person.manager_id, user.manager_id, "manager of {}", user.id);
            assert_eq!(person.company_name, user.company_name);
            assert_eq!(
                person.hire_date.is_some(),
                user.employee_hire_date.is_some(),
                "hire date of {}",
                user.id
            );
            let mut expected = user.proxy_addresses.clone();
            let mut got = person.proxy_addresses.clone();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "proxy addresses of {}", user.id);
            assert_eq!(
                person.last_sign_in.is_some(),
                user.last_sign_in.is_some(),
                "last sign-in of {}",
                user.id
            );
        }

        // Licences: every SKU with Microsoft's product name; an unknown SKU keeps its part
        // number.
        assert_eq!(count(&db, Kind::Subscriptions, TENANT).await, truth.skus.len());
        let subscriptions = records(&db, Kind::Subscriptions, None).await;
        let products: HashMap<String, String> = subscriptions
            .iter()
            .map(|r| {
                (
                    text(&r["sku_part_number"]).unwrap().to_string(),
                    text(&r["product_name"]).unwrap().to_string(),
                )
            })
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
            let stored = rows_where(&subscriptions, "sku_id", &sku.sku_id);
            assert_eq!(
                stored[0]["enabled_units"],
                Cell::Integer(i64::from(sku.prepaid_enabled))
            );
            assert_eq!(
                stored[0]["consumed_units"],
                Cell::Integer(i64::from(sku.consumed_units))
            );
        }

        // Organization and domains.
        let organization = records(&db, Kind::Organization, None).await;
        assert_eq!(organization.len(), 1);
        assert_eq!(text(&organization[0]["display_name"]), Some(truth.name.as_str()));
        assert_eq!(text(&organization[0]["tenant_id"]), Some(truth.id.as_str()));
        assert_eq!(count(&db, Kind::Domains, TENANT).await, truth.domains.len());

        // Groups and their members.
        assert_eq!(count(&db, Kind::Groups, TENANT).await, truth.groups.len());
        let members: usize = truth.groups.iter().map(|g| g.members.len()).sum();
        assert_eq!(count(&db, Kind::GroupMembers, TENANT).await, members);

        // Mailboxes and usage, joined to people by user principal name.
        let mailboxes = records(&db, Kind::Mailboxes, None).await;
        let mailbox_rows = sim.report_rows(ReportKind::MailboxUsage, 7);
        assert!(!mailbox_rows.is_empty());
        for row in &mailbox_rows {
            let stored = rows_where(&mailboxes, "object_id", &row.user_id);
            assert_eq!(stored.len(), 1, "mailbox of {}", row.user_principal_name);
            assert_eq!(stored[0]["storage_used_bytes"], integer(row.storage_used_bytes));
            assert_eq!(stored[0]["item_count"], integer(row.item_count));
        }
        let usage = records(&db, Kind::Usage, None).await;
        let teams = sim.report_rows(ReportKind::TeamsUserActivity, 30);
        assert!(!teams.is_empty());
        for row in &teams {
            let stored: Vec<_> = rows_where(&usage, "object_id", &row.user_id)
                .into_iter()
                .filter(|r| text(&r["workload"]) == Some("teams"))
                .filter(|r| r["period_days"] == Cell::Integer(30))
                .collect();
            assert_eq!(
                stored.len(),
                1,
                "teams usage of {}",
                row.user_principal_name
            );
            assert_eq!(
                stored[0]["last_activity"],
                optional_text(row.last_activity_date.as_deref()),
                "teams last activity of {}",
                row.user_principal_name
            );
        }

        // The bearer token never went to the download host, and reports were downloaded
        // there.
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
}

on_both_stores! {
    async fn concealed_report_names_are_warned_and_never_joined(db) {
        let sim = full_simulator(200, |c| c.concealed_reports = true).await;
        let runtime = runtime();
        let report = sync(&runtime, &full_run(&sim), &db).await.unwrap();
        let warning = report
            .warnings
            .iter()
            .find(|w| w.code == "reports-concealed");
        let warning = warning
            .unwrap_or_else(|| panic!("no reports-concealed warning: {:?}", report.warnings));
        assert!(
            warning.message.to_lowercase().contains("concealed"),
            "{}",
            warning.message
        );
        assert_eq!(count(&db, Kind::Usage, TENANT).await, 0, "no row joined to anyone");
        assert_eq!(count(&db, Kind::Mailboxes, TENANT).await, 0);
        assert_eq!(people_count(&db, TENANT).await, 200);
    }
}

on_both_stores! {
    async fn groups_and_members_follow_the_tenant_incrementally(db) {
        let sim = full_simulator(300, |_| {}).await;
        let runtime = runtime();
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
        let memberships = records(&db, Kind::GroupMembers, None).await;
        let member_count = |group: &str| rows_where(&memberships, "group_id", group).len();
        assert_eq!(member_count(&new_group), 3);
        assert_eq!(member_count(&existing.id), existing.members.len() - 1);
        assert_eq!(member_count(&deleted), 0);
        let groups = records(&db, Kind::Groups, None).await;
        assert!(rows_where(&groups, "object_id", &deleted).is_empty());
        assert_eq!(
            text(&rows_where(&groups, "object_id", &new_group)[0]["kind"]),
            Some("security")
        );
    }
}

on_both_stores! {
    async fn a_tenant_without_premium_sign_in_data_is_told_once_and_the_rest_goes_on(db) {
        let sim = full_simulator(150, |c| c.premium = false).await;
        let runtime = runtime();
        let report = sync(&runtime, &full_run(&sim), &db).await.unwrap();
        let warnings: Vec<_> = report
            .warnings
            .iter()
            .filter(|w| w.code == "sign-in-activity-unavailable")
            .collect();
        assert_eq!(warnings.len(), 1, "{:?}", report.warnings);
        assert_eq!(people_count(&db, TENANT).await, 150);
        assert!(count(&db, Kind::Subscriptions, TENANT).await > 0);
    }
}
