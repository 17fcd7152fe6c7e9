//! Filters, matching and merge end to end (links of gone accounts' records are in
//! matching.rs): the host runs the real component against the simulator into a store of
//! each back end, and what was stored is read back through the store's contract and
//! compared with the tenant.

use m365sync_e2e::{
    ALL_ROLES, TENANT, TestStore, on_both_stores, people_count, person, runtime, simulator_with,
    sync, tenant_run, users,
};
use m365sync_service::config::TenantRun;
use m365sync_service::wit::types::{
    AccountFilter, Attribute, AttributeFilter, MatchKey, PersonStatus, SyncMode, SyncReport,
};
use m365sync_simulator::{GroupKind, Simulator};

fn every_account() -> AccountFilter {
    AccountFilter {
        domains: vec![],
        licensed_only: false,
        enabled_only: false,
        include_guests: true,
        attributes: vec![],
    }
}

/// An incremental run of every account (delta replays after the first sync).
fn incremental_run(sim: &Simulator) -> TenantRun {
    let mut run = tenant_run(sim);
    run.options.mode = SyncMode::Incremental;
    run.options.filter = every_account();
    run
}

fn reason(report: &SyncReport, reason: &str) -> u64 {
    users(report)
        .filtered_out
        .iter()
        .find(|c| c.reason == reason)
        .map_or(0, |c| c.count)
}

on_both_stores! {
    async fn a_changed_email_updates_the_same_person_and_names_the_field(db) {
        let sim = simulator_with(60, |_| {}).await;
        let runtime = runtime();
        let run = incremental_run(&sim);
        sync(&runtime, &run, &db).await.unwrap();
        let before = people_count(&db, TENANT).await;

        let id = sim.tenant().users[3].id.clone();
        sim.update_users(std::slice::from_ref(&id), |u| {
            u.mail = Some("renamed.person@contoso.example".into())
        });
        let report = sync(&runtime, &run, &db).await.unwrap();
        let u = users(&report);
        assert_eq!((u.created, u.updated, u.linked), (0, 1, 0));
        assert_eq!(
            people_count(&db, TENANT).await,
            before,
            "never a second person"
        );
        assert_eq!(
            person(&db, &id).await.and_then(|p| p.person.mail).as_deref(),
            Some("renamed.person@contoso.example")
        );
    }
}

on_both_stores! {
    async fn accounts_claiming_one_email_are_conflicts_never_duplicates(db) {
        let sim = simulator_with(60, |_| {}).await;
        let runtime = runtime();
        let run = incremental_run(&sim);
        sync(&runtime, &run, &db).await.unwrap();
        let before = people_count(&db, TENANT).await;

        let tenant = sim.tenant();
        let taken = tenant.users.iter().find(|u| u.mail.is_some()).unwrap();
        let taken_mail = taken.mail.clone().unwrap();
        // One new account claims an imported person's email (in another case); two more
        // share a new email with each other; one is new and unique.
        let new = sim.create_users(4);
        sim.update_users(&new[0..1], |u| u.mail = Some(taken_mail.to_uppercase()));
        sim.update_users(&new[1..3], |u| {
            u.mail = Some("shared@contoso.example".into())
        });

        let report = sync(&runtime, &run, &db).await.unwrap();
        let u = users(&report);
        assert_eq!(u.created, 1, "{report:?}");
        assert_eq!(u.conflicts, 3);
        assert_eq!(people_count(&db, TENANT).await, before + 1);
        for id in &new[0..3] {
            assert!(person(&db, id).await.is_none(), "{id} not imported");
        }
        assert!(person(&db, &new[3]).await.is_some());
        assert_eq!(report.conflicts.len(), 2, "{:?}", report.conflicts);
        let first = report
            .conflicts
            .iter()
            .find(|c| c.key == taken_mail.to_lowercase())
            .expect("the conflict on the taken email");
        assert_eq!(first.object_ids, vec![taken.id.clone(), new[0].clone()]);
        assert!(first.message.contains(&taken.user_principal_name));
        let shared = report
            .conflicts
            .iter()
            .find(|c| c.key == "shared@contoso.example")
            .unwrap();
        assert_eq!(shared.object_ids.len(), 2);
        // The imported person is untouched.
        assert_eq!(
            person(&db, &taken.id).await.and_then(|p| p.person.mail),
            Some(taken_mail)
        );
    }
}

on_both_stores! {
    async fn attribute_filters_on_department_licence_and_group_import_exactly_the_chosen(db) {
        let sim = simulator_with(150, |c| {
            c.roles = vec!["User.Read.All".into(), "GroupMember.Read.All".into()];
        })
        .await;
        let runtime = runtime();
        let tenant = sim.tenant();
        // Each filter syncs into a fresh store of the same back end.
        let backend = db.backend;

        // Department (case-insensitive, prefix form), excluding guests.
        let mut run = tenant_run(&sim);
        let department = tenant
            .users
            .iter()
            .find_map(|u| u.department.clone())
            .unwrap();
        let head: String = department.chars().take(2).collect();
        let prefix = format!("{}*", head.to_uppercase());
        run.options.filter = AccountFilter {
            include_guests: false,
            attributes: vec![AttributeFilter {
                attribute: Attribute::Department,
                include: vec![prefix.clone()],
                exclude: vec![],
            }],
            ..every_account()
        };
        let report = sync(&runtime, &run, &db).await.unwrap();
        let lower = prefix.trim_end_matches('*').to_lowercase();
        let guests = tenant
            .users
            .iter()
            .filter(|u| u.user_type == "Guest")
            .count() as u64;
        let expected = tenant
            .users
            .iter()
            .filter(|u| u.user_type != "Guest")
            .filter(|u| {
                u.department
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().starts_with(&lower))
            })
            .count() as i64;
        assert!(expected > 0);
        assert_eq!(people_count(&db, TENANT).await, expected);
        assert_eq!(reason(&report, "guest"), guests);
        assert_eq!(
            reason(&report, "attribute:department") as i64,
            tenant.users.len() as i64 - guests as i64 - expected
        );

        // Licence by SKU part number: anyone holding the first SKU.
        let db2 = TestStore::of(backend).await.expect("a second store");
        let sku = tenant.skus[0].clone();
        let mut run = tenant_run(&sim);
        run.options.filter = AccountFilter {
            attributes: vec![AttributeFilter {
                attribute: Attribute::Sku,
                include: vec![sku.sku_part_number.to_lowercase()],
                exclude: vec![],
            }],
            ..every_account()
        };
        // The licence filter reads the tenant's SKUs: without Organization.Read.All the run
        // says which permission the filter needs.
        let e = sync(&runtime, &run, &db2).await.unwrap_err().to_string();
        assert!(
            e.contains("Organization.Read.All") && e.contains("filter on licences"),
            "{e}"
        );
        sim.set_roles(ALL_ROLES.iter().map(|r| r.to_string()).collect());
        let report = sync(&runtime, &run, &db2).await.unwrap();
        let holders = tenant
            .users
            .iter()
            .filter(|u| u.assigned_licenses.contains(&sku.sku_id))
            .count() as i64;
        assert!(holders > 0);
        assert_eq!(people_count(&db2, TENANT).await, holders);
        assert_eq!(
            reason(&report, "attribute:sku") as i64,
            tenant.users.len() as i64 - holders
        );

        // Group membership, followed incrementally: a member added to the group is imported
        // by the next incremental sync (the filter's data changed: everyone is filtered
        // again).
        let db3 = TestStore::of(backend).await.expect("a third store");
        let members: Vec<String> = tenant.users[..5].iter().map(|u| u.id.clone()).collect();
        let group = sim.create_group("Pilot Users", GroupKind::Security, &members);
        let mut run = tenant_run(&sim);
        run.options.mode = SyncMode::Incremental;
        run.options.filter = AccountFilter {
            attributes: vec![AttributeFilter {
                attribute: Attribute::Group,
                include: vec!["pilot users".into()],
                exclude: vec![],
            }],
            ..every_account()
        };
        sync(&runtime, &run, &db3).await.unwrap();
        assert_eq!(people_count(&db3, TENANT).await, 5);
        sim.add_group_members(&group, &[tenant.users[9].id.clone()]);
        let report = sync(&runtime, &run, &db3).await.unwrap();
        assert_eq!(report.mode, SyncMode::Full, "the group's members changed");
        assert_eq!(users(&report).created, 1);
        assert_eq!(people_count(&db3, TENANT).await, 6);
    }
}

on_both_stores! {
    async fn a_changed_filter_filters_stored_people_again_and_a_rerun_changes_nothing(db) {
        let sim = simulator_with(80, |_| {}).await;
        let runtime = runtime();
        let mut run = incremental_run(&sim);
        sync(&runtime, &run, &db).await.unwrap();
        let all = people_count(&db, TENANT).await;

        run.options.filter.enabled_only = true;
        let report = sync(&runtime, &run, &db).await.unwrap();
        let disabled = sim
            .tenant()
            .users
            .iter()
            .filter(|u| !u.account_enabled)
            .count() as u64;
        assert!(disabled > 0);
        assert_eq!(report.mode, SyncMode::Full);
        assert_eq!(users(&report).removed, disabled);
        assert_eq!(reason(&report, "enabled-only"), disabled);
        assert_eq!(people_count(&db, TENANT).await, all, "kept, marked removed");

        // No change in the tenant: zero changes.
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(report.mode, SyncMode::Incremental);
        let u = users(&report);
        assert_eq!(
            (u.created, u.updated, u.linked, u.removed, u.written),
            (0, 0, 0, 0, 0)
        );
    }
}

on_both_stores! {
    async fn the_upn_match_key_links_by_user_principal_name_first(db) {
        let sim = simulator_with(30, |_| {}).await;
        let runtime = runtime();
        let mut run = incremental_run(&sim);
        run.options.match_key = MatchKey::UserPrincipalName;
        sync(&runtime, &run, &db).await.unwrap();

        let old = sim.tenant().users[2].clone();
        sim.delete_users(std::slice::from_ref(&old.id), true);
        sync(&runtime, &run, &db).await.unwrap();
        // A new account gets the old sign-in name but a different email.
        let new = sim.create_users(1);
        let upn = old.user_principal_name.clone();
        sim.update_users(&new, |u| {
            u.user_principal_name = upn.clone();
            u.mail = Some("someone.else@contoso.example".into());
        });
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(users(&report).linked, 1, "{report:?}");
        assert_eq!(
            person(&db, &new[0]).await.map(|p| p.person.user_principal_name),
            Some(old.user_principal_name)
        );
    }
}

on_both_stores! {
    async fn a_conflict_is_decided_again_by_the_next_incremental_sync_once_its_cause_is_gone(db) {
        let sim = simulator_with(40, |_| {}).await;
        let runtime = runtime();
        let run = incremental_run(&sim);
        sync(&runtime, &run, &db).await.unwrap();
        let before = people_count(&db, TENANT).await;

        let holder = sim
            .tenant()
            .users
            .iter()
            .find(|u| u.mail.is_some())
            .unwrap()
            .clone();
        let successor = sim.create_users(1);
        sim.update_users(&successor, |u| u.mail = holder.mail.clone());
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(users(&report).conflicts, 1);
        assert!(person(&db, &successor[0]).await.is_none());

        // The old account goes; the replay does not list the successor again (it did not
        // change), yet its conflict is decided again and it takes the record over.
        sim.delete_users(std::slice::from_ref(&holder.id), true);
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(report.mode, SyncMode::Incremental);
        let u = users(&report);
        assert_eq!((u.removed, u.linked, u.conflicts), (1, 1, 0), "{report:?}");
        assert_eq!(people_count(&db, TENANT).await, before);
        assert_eq!(
            person(&db, &successor[0]).await.map(|p| p.status),
            Some(PersonStatus::Active)
        );
        assert!(person(&db, &holder.id).await.is_none());

        // Nothing left to decide: the next run changes nothing.
        let report = sync(&runtime, &run, &db).await.unwrap();
        assert_eq!(users(&report).written, 0);
    }
}
