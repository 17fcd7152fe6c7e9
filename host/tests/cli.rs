//! The `m365sync` binary as a user runs it: the demo end to end, and clear errors with the
//! right exit codes for bad arguments and bad config.

use std::process::Command;

fn m365sync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_m365sync"))
}

#[test]
fn demo_syncs_the_simulated_tenant_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = m365sync()
        .args(["demo", "--users", "1200", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("Simulated tenant"), "{stdout}");
    assert!(stdout.contains("users"), "{stdout}");
    assert!(
        stdout.contains("People in the store for tenant demo: 1200"),
        "{stdout}"
    );
    assert!(stdout.contains("By department"), "{stdout}");

    // Again, as JSON: nothing changes the second time.
    let output = m365sync()
        .args(["demo", "--users", "1200", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["data_sets"][0]["unchanged"], 1200);
    assert_eq!(report["data_sets"][0]["created"], 0);
}

#[test]
fn a_bad_config_names_the_file_and_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenant.toml");
    std::fs::write(
        &config,
        "[[tenant]]\nname = \"contoso\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\n\
         [tenant.sync]\nremoval = \"shred\"\n",
    )
    .unwrap();
    let output = m365sync()
        .arg("sync")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tenant.toml") && stderr.contains("shred"),
        "{stderr}"
    );

    let output = m365sync()
        .args(["sync", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn help_is_available_everywhere_and_unknown_arguments_are_refused() {
    for args in [
        &["--help"][..],
        &["sync", "--help"],
        &["demo", "--help"],
        &["permissions", "--help"],
    ] {
        let output = m365sync().args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let output = m365sync().args(["sync", "--frobnicate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn permissions_lists_read_only_permissions_for_the_enabled_features() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenant.toml");
    std::fs::write(
        &config,
        "[[tenant]]\nname = \"contoso\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\n",
    )
    .unwrap();
    let output = m365sync()
        .args(["permissions", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("User.Read.All"), "{stdout}");
    assert!(stdout.contains("/v1.0/users"), "{stdout}");
    assert!(!stdout.contains("ReadWrite"), "{stdout}");
}
