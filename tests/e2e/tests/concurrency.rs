//! Two syncs of one tenant at once, with the real binary: the second is refused at once,
//! naming the process that holds the tenant, and is in the sync log as refused; the first
//! completes undisturbed.

mod cli_process;

use std::time::Duration;

use cli_process::{Tenant, text, wait_for};

#[test]
fn a_second_sync_of_a_tenant_is_refused_at_once_and_logged() {
    // A slow tenant: every Graph request is answered after a second.
    let tenant = Tenant::start(3000, Duration::from_secs(1));
    let mut first = tenant.spawn(&["sync"]);
    wait_for(
        "the first sync holds the lock",
        Duration::from_secs(120),
        || {
            rusqlite::Connection::open(tenant.db())
                .and_then(|c| {
                    c.query_row(
                        "SELECT COUNT(*) FROM tenant_locks WHERE tenant = 'contoso'",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|n| n > 0)
        },
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
