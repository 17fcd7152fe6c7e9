//! Syncs at once, with the real binary, on every store back end. Two syncs of one tenant:
//! the second is refused at once, naming the process that holds the tenant, and is in the
//! sync log as refused; the first completes undisturbed. Two syncs of two tenants into one
//! PostgreSQL database (the many-workers, one-database set-up): both finish, each tenant
//! stored as its directory has it, nothing doubled.

mod cli_process;

use std::collections::HashSet;
use std::time::Duration;

use cli_process::{Backend, Tenant, text, wait_for};
use m365sync_e2e::{Kind, records, text as cell_text};
use m365sync_service::wit::types::PersonStatus;

fn a_second_sync_of_a_tenant_is_refused_at_once_and_logged(backend: Backend) {
    // A slow tenant: every Graph request is answered after a second.
    let Some(tenant) = Tenant::start_on(backend, 3000, Duration::from_secs(1)) else {
        return;
    };
    let mut first = tenant.spawn(&["sync"]);
    wait_for(
        "the first sync holds the lock",
        Duration::from_secs(120),
        || tenant.locked(),
    );

    let second = tenant.run(&["sync", "--json"]);
    // Refused while the first is still running: not after SQLite's 30 s busy timeout.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first sync is still running when the second has finished"
    );
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!(
            "tenant contoso is being synced by another process (pid {} on",
            first.id()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("wait for it to finish"), "{stderr}");
    assert!(!stderr.contains("database is locked"), "{stderr}");
    let printed: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(printed[0]["status"], "refused", "{printed}");
    assert_eq!(printed[0]["error_kind"], "locked");

    let output = first.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(tenant.people(), 3000);
    let logs = tenant.logs();
    assert_eq!(logs.len(), 2, "{logs:?}");
    let status = |s: &str| logs.iter().filter(|r| r["status"] == s).collect::<Vec<_>>();
    assert_eq!(status("ok").len(), 1, "{logs:?}");
    let refused = status("refused");
    assert_eq!(refused.len(), 1, "{logs:?}");
    assert_eq!(refused[0]["error_kind"], "locked");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("is being synced by another process"),
        "{}",
        refused[0]
    );
    assert!(
        refused[0]["started_at"].as_str() > status("ok")[0]["started_at"].as_str(),
        "the refused run started after the first"
    );
    let listed = String::from_utf8_lossy(&tenant.run(&["logs"]).stdout).into_owned();
    assert!(listed.contains("REFUSED"), "{listed}");
    // The lock went with the first sync: a third runs.
    let third = tenant.run(&["sync"]);
    assert!(third.status.success(), "{}", text(&third));
}

mod a_second_sync_of_a_tenant_is_refused_at_once_and_logged {
    use super::*;

    #[test]
    fn sqlite() {
        a_second_sync_of_a_tenant_is_refused_at_once_and_logged(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        a_second_sync_of_a_tenant_is_refused_at_once_and_logged(Backend::Postgres);
    }
}

/// The tenant's people are its directory's, each once and active, with the directory's
/// values.
fn assert_ground_truth(tenant: &Tenant) {
    let truth = tenant.simulator().tenant().users;
    assert_eq!(
        tenant.people(),
        truth.len() as i64,
        "{}: nobody doubled",
        tenant.key
    );
    let stored = tenant.stored_people();
    assert_eq!(stored.len(), truth.len(), "{}", tenant.key);
    for user in &truth {
        let person = stored
            .get(&user.id)
            .unwrap_or_else(|| panic!("{}: user {} missing", tenant.key, user.id));
        assert_eq!(person.status, PersonStatus::Active, "{}", user.id);
        assert_eq!(person.person.user_principal_name, user.user_principal_name);
        assert_eq!(person.person.mail, user.mail);
        assert_eq!(
            person.person.display_name.as_deref(),
            Some(user.display_name.as_str())
        );
        assert_eq!(person.person.department, user.department);
        assert_eq!(person.person.account_enabled, user.account_enabled);
    }
}

#[test]
fn two_syncs_of_two_tenants_into_one_postgres_database_at_once_both_finish() {
    // Two slow tenants (four pages of users each, every Graph answer after half a second),
    // each with a config of its own, one PostgreSQL database.
    let latency = Duration::from_millis(500);
    let Some(contoso) = Tenant::start_on(Backend::Postgres, 3500, latency) else {
        return;
    };
    let fabrikam = contoso.another("fabrikam", 29, 3200, latency);
    assert_ne!(
        contoso.simulator().tenant().id,
        fabrikam.simulator().tenant().id,
        "two directories"
    );

    let one = contoso.spawn(&["sync", "--json"]);
    let two = fabrikam.spawn(&["sync", "--json"]);
    // Both runs hold their tenant's lock at the same moment: they run at once.
    wait_for(
        "both syncs running at once",
        Duration::from_secs(120),
        || contoso.locked() && fabrikam.locked(),
    );
    let one = one.wait_with_output().unwrap();
    let two = two.wait_with_output().unwrap();
    assert!(one.status.success(), "contoso: {}", text(&one));
    assert!(two.status.success(), "fabrikam: {}", text(&two));
    for (tenant, output) in [(&contoso, &one), (&fabrikam, &two)] {
        let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(printed[0]["tenant"], tenant.key.as_str(), "{printed}");
    }

    // Each tenant is its directory, nothing doubled, nothing of the other's.
    assert_ground_truth(&contoso);
    assert_ground_truth(&fabrikam);
    let everyone = contoso.block_on(records(contoso.store(), Kind::People, None));
    let truth = |t: &Tenant| t.simulator().tenant().users.len();
    assert_eq!(everyone.len(), truth(&contoso) + truth(&fabrikam));
    let rows: HashSet<(&str, &str)> = everyone
        .iter()
        .map(|row| {
            (
                cell_text(&row["tenant"]).unwrap(),
                cell_text(&row["object_id"]).unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), everyone.len(), "each person once");

    // Both runs are in the sync log, as ok, each under its own tenant.
    for tenant in [&contoso, &fabrikam] {
        let logs = tenant.logs();
        assert_eq!(logs.len(), 1, "{}: {logs:?}", tenant.key);
        assert_eq!(logs[0]["status"], "ok", "{}", logs[0]);
        assert_eq!(logs[0]["tenant"], tenant.key.as_str(), "{}", logs[0]);
        let runs = tenant.block_on(m365sync_e2e::runs(tenant.store(), &tenant.key));
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].status, "ok");
        assert!(
            !tenant.locked(),
            "{}: the lock went with the run",
            tenant.key
        );
    }
}
