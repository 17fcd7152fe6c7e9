//! Matching without duplicates, end to end: a record whose account is gone is taken over
//! (linked) by a new account with the same email, keeping the record and re-keying it in
//! the store; two accounts claiming one record are a conflict, listed in the report and
//! the sync log, and neither is merged into it nor created beside it.

use m365sync::runtime::bindings::types::PersonKey;
use m365sync::runtime::bindings::types::PersonStatus;
use m365sync::{RunLimits, Runtime, SqliteStore, TenantStore};
use m365sync_e2e::{column, count, database, runs, simulator, sync_logged, tenant_run, users};

#[tokio::test(flavor = "multi_thread")]
async fn a_new_account_with_a_gone_accounts_email_takes_over_its_record() {
    let sim = simulator(50).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let run = tenant_run(&sim);
    sync_logged(&runtime, &run, &db).await.unwrap();

    let tenant = sim.tenant();
    let gone = tenant
        .users
        .iter()
        .find(|u| u.user_type == "Member" && u.mail.is_some())
        .unwrap()
        .clone();
    sim.delete_users(std::slice::from_ref(&gone.id), true);
    let report = sync_logged(&runtime, &run, &db).await.unwrap();
    assert_eq!(users(&report).removed, 1);
    assert_eq!(column(&db, &gone.id, "status").as_deref(), Some("removed"));

    // The person comes back as a new account (a new object id) with the same addresses.
    let new_id = sim.create_users(1).remove(0);
    sim.update_users(std::slice::from_ref(&new_id), |u| {
        u.mail = gone.mail.clone();
        u.user_principal_name = gone.user_principal_name.clone();
    });
    let report = sync_logged(&runtime, &run, &db).await.unwrap();
    let counts = users(&report);
    assert_eq!((counts.linked, counts.created), (1, 0), "{counts:?}");
    assert!(report.conflicts.is_empty());

    // One record, re-keyed to the new account and active again.
    assert_eq!(count(&db, "people", "contoso"), 50);
    assert_eq!(column(&db, &gone.id, "object_id"), None);
    assert_eq!(column(&db, &new_id, "status").as_deref(), Some("active"));
    assert_eq!(column(&db, &new_id, "mail"), gone.mail);
    let mut store = SqliteStore::open(&db, "contoso").unwrap();
    let mail = m365sync::store::sqlite::normalise_key(gone.mail.as_deref().unwrap());
    let found = store.find_people(&[PersonKey::Email(mail)]).unwrap();
    let found = found[0].as_ref().unwrap();
    assert_eq!(found.person.object_id, new_id);
    assert_eq!(found.status, PersonStatus::Active);

    // The sync log counts the link.
    let log = runs(&db, "contoso");
    let logged = &log[0].report.as_ref().unwrap()["data_sets"][0];
    assert_eq!(logged["linked"], 1);

    // Nothing changes on the next run: the link holds.
    let report = sync_logged(&runtime, &run, &db).await.unwrap();
    assert_eq!((users(&report).linked, users(&report).created), (0, 0));
    assert_eq!(count(&db, "people", "contoso"), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_accounts_claiming_one_record_are_a_conflict_not_a_merge() {
    let sim = simulator(40).await;
    let (_dir, db) = database();
    let runtime = Runtime::new(RunLimits::default()).unwrap();
    let run = tenant_run(&sim);
    sync_logged(&runtime, &run, &db).await.unwrap();

    let gone = sim
        .tenant()
        .users
        .iter()
        .find(|u| u.user_type == "Member" && u.mail.is_some())
        .unwrap()
        .clone();
    sim.delete_users(std::slice::from_ref(&gone.id), true);
    sync_logged(&runtime, &run, &db).await.unwrap();

    let claimants = sim.create_users(2);
    sim.update_users(&claimants, |u| {
        u.mail = gone.mail.clone();
    });
    let report = sync_logged(&runtime, &run, &db).await.unwrap();
    let counts = users(&report);
    assert_eq!(counts.linked, 0, "{counts:?}");
    assert_eq!(counts.conflicts, 2, "{counts:?}");
    let conflict = report
        .conflicts
        .iter()
        .find(|c| claimants.iter().all(|id| c.object_ids.contains(id)))
        .unwrap_or_else(|| panic!("a conflict naming both accounts: {:?}", report.conflicts));
    assert_eq!(
        conflict.key,
        m365sync::store::sqlite::normalise_key(gone.mail.as_deref().unwrap())
    );
    assert!(!conflict.message.is_empty());
    // The record is neither taken over nor doubled.
    assert_eq!(column(&db, &gone.id, "status").as_deref(), Some("removed"));
    for id in &claimants {
        assert_eq!(column(&db, id, "object_id"), None);
    }
    // The sync log lists the conflict.
    let log = runs(&db, "contoso");
    let logged = log[0].report.as_ref().unwrap()["conflicts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        logged.iter().any(|c| c["key"] == conflict.key.as_str()),
        "{logged:?}"
    );
}
