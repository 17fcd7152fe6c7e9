//! Matching without duplicates, end to end on every store back end: a record whose account
//! is gone is taken over (linked) by a new account with the same email, keeping the record
//! and re-keying it in the store; two accounts claiming one record are a conflict, listed
//! in the report and the sync log, and neither is merged into it nor created beside it.

use m365sync_e2e::{
    TENANT, logged_counts, on_both_stores, people_count, person, runs, runtime, simulator,
    sync_logged, tenant_run, users,
};
use m365sync_service::wit::types::{DataSet, PersonKey, PersonStatus};

/// An email as the engine keys it (`person-key.email`): trimmed and case-folded. The
/// simulator's addresses are plain ASCII, for which that is all the engine's key does.
fn email_key(mail: &str) -> String {
    mail.trim().to_lowercase()
}

on_both_stores! {
    async fn a_new_account_with_a_gone_accounts_email_takes_over_its_record(db) {
        let sim = simulator(50).await;
        let runtime = runtime();
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
        assert_eq!(
            person(&db, &gone.id).await.map(|p| p.status),
            Some(PersonStatus::Removed)
        );

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
        assert_eq!(people_count(&db, TENANT).await, 50);
        assert!(person(&db, &gone.id).await.is_none());
        let taken_over = person(&db, &new_id).await.expect("the new account's record");
        assert_eq!(taken_over.status, PersonStatus::Active);
        assert_eq!(taken_over.person.mail, gone.mail);
        let mail = email_key(gone.mail.as_deref().unwrap());
        let found = db
            .reader(TENANT)
            .await
            .find_people(&[PersonKey::Email(mail)])
            .await
            .unwrap();
        let found = found[0].as_ref().unwrap();
        assert_eq!(found.person.object_id, new_id);
        assert_eq!(found.status, PersonStatus::Active);

        // The sync log counts the link.
        let log = runs(&db, TENANT).await;
        let logged = logged_counts(&log[0], DataSet::Users).expect("the users' counts");
        assert_eq!(logged.linked, 1);

        // Nothing changes on the next run: the link holds.
        let report = sync_logged(&runtime, &run, &db).await.unwrap();
        assert_eq!((users(&report).linked, users(&report).created), (0, 0));
        assert_eq!(people_count(&db, TENANT).await, 50);
    }
}

on_both_stores! {
    async fn two_accounts_claiming_one_record_are_a_conflict_not_a_merge(db) {
        let sim = simulator(40).await;
        let runtime = runtime();
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
        assert_eq!(conflict.key, email_key(gone.mail.as_deref().unwrap()));
        assert!(!conflict.message.is_empty());
        // The record is neither taken over nor doubled.
        assert_eq!(
            person(&db, &gone.id).await.map(|p| p.status),
            Some(PersonStatus::Removed)
        );
        for id in &claimants {
            assert!(person(&db, id).await.is_none(), "{id} not stored");
        }
        // The sync log lists the conflict.
        let log = runs(&db, TENANT).await;
        let logged = &log[0].report.as_ref().expect("the run's report").conflicts;
        assert!(
            logged.iter().any(|c| c.key == conflict.key),
            "{logged:?}"
        );
    }
}
