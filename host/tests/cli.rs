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
    assert!(
        stdout.contains("(full run)") && stdout.contains("(incremental run)"),
        "{stdout}"
    );
    // 1,200 users, then 5 created (2 deleted ones are kept, marked removed).
    assert!(
        stdout.contains("People in the store for tenant demo: 1205"),
        "{stdout}"
    );
    assert!(stdout.contains("By department"), "{stdout}");
    assert!(
        stdout.contains("Licences (consumed of enabled units)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Microsoft 365 E3") || stdout.contains("Office 365 E3"),
        "{stdout}"
    );
    assert!(stdout.contains("teams"), "{stdout}");

    // Again, as JSON: the demo starts from a fresh database, and the incremental run
    // reads only the ten changes.
    let output = m365sync()
        .args(["demo", "--users", "1200", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["first"]["data_sets"][0]["created"], 1200);
    let users = &report["incremental"]["data_sets"][0];
    assert_eq!(
        (users["created"].as_u64(), users["updated"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(users["removed"], 2);
    assert_eq!(report["incremental"]["mode"], "incremental");

    // What the demo stored can be read back: inactive licences and exports.
    let output = m365sync()
        .args(["licences", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let licences: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let skus = licences[0]["skus"].as_array().unwrap();
    assert!(!skus.is_empty());
    assert!(licences[0]["usage_as_of"].is_string());
    assert!(
        skus.iter().any(|s| s["inactive"].as_u64() > Some(0)),
        "{licences}"
    );

    let output = m365sync()
        .args(["export", "people", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(output.status.success());
    let csv = String::from_utf8_lossy(&output.stdout);
    assert!(
        csv.starts_with("tenant,object_id,user_principal_name,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 1205);

    let output = m365sync()
        .args(["export", "usage", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(output.status.success());
    let usage: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let first = &usage.as_array().unwrap()[0];
    assert!(
        first["counts"].is_object(),
        "usage counts are exported as JSON: {first}"
    );
}

#[test]
fn reading_a_missing_database_is_a_clear_error() {
    let output = m365sync()
        .args(["licences", "--db", "/nonexistent/m.db"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/m.db"));
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
