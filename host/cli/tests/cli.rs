//! The `m365sync` binary as a user runs it: the demo end to end, and clear errors with the
//! right exit codes for bad arguments and bad config. The commands that read or write a
//! store run on both back ends: a SQLite file, and a PostgreSQL schema of the test server
//! (skipped, saying so, where no server answers, unless `M365SYNC_REQUIRE_POSTGRES=1`).

use std::process::Command;

use m365sync_service::StoreLocation;
use m365sync_service::store::{Access, StoreBackend};
use m365sync_store_postgres::testing::TestSchema;

/// The store back end a test runs the binary against.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// `fn $name(backend: Backend)` as two tests, `$name::sqlite` and `$name::postgres`.
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                super::$name(super::Backend::Postgres)
            }
        }
    };
}

/// A throwaway PostgreSQL schema on the test server (None, said, without a server).
fn postgres_schema(runtime: &tokio::runtime::Runtime) -> Option<TestSchema> {
    runtime.block_on(m365sync_store_postgres::testing::schema())
}

/// A current-thread runtime for a test's own store calls and the simulator.
fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn m365sync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_m365sync"))
}

on_both_stores!(demo_syncs_the_simulated_tenant_and_prints_the_report);

fn demo_syncs_the_simulated_tenant_and_prints_the_report(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = test_runtime();
    let schema;
    let db = match backend {
        Backend::Sqlite => dir.path().join("demo.db").display().to_string(),
        Backend::Postgres => {
            schema = postgres_schema(&runtime);
            match &schema {
                Some(schema) => schema.url.clone(),
                None => return,
            }
        }
    };
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
    // The seeded organizations give the demo tenant a suggestion, and the log has both runs.
    assert!(
        stdout.contains("Organization match") && stdout.contains("suggested"),
        "{stdout}"
    );
    // This demo's two runs (a server database keeps earlier demos' runs, not shown).
    let log = &stdout[stdout.find("Sync log").expect("a sync log")..];
    assert_eq!(log.matches("\n#").count(), 2, "{log}");
    assert!(log.contains("incremental") && log.contains("full"), "{log}");

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
    assert_eq!(report["organization"]["state"], "suggested", "{report}");
    assert!(report["organization"]["suggestions"][0]["score"].as_f64() > Some(0.75));
    let log = report["log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["mode"], "incremental");
    assert_eq!(log[0]["status"], "ok");

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
        "[[tenant]]\nname = \"contoso\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\n\
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
        "[[tenant]]\nname = \"contoso\"\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\nclient_secret_env = \"X\"\n",
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

/// A simulated tenant running on a runtime of its own while the test runs the binary, and
/// a config file pointing at it and at a store of the chosen back end (a SQLite file in
/// the same temporary directory, or a PostgreSQL schema of its own). The app holds every
/// role; its secret is passed in `SECRET_VAR`.
struct SimulatedTenant {
    runtime: tokio::runtime::Runtime,
    simulator: Option<m365sync_simulator::Simulator>,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    secret: String,
    /// The store, as `--db` takes it.
    db: String,
    /// Dropped after the simulator (it drops the schema).
    _schema: Option<TestSchema>,
}

const SECRET_VAR: &str = "M365SYNC_CLI_TEST_SECRET";

impl SimulatedTenant {
    /// On `backend`; None when it is PostgreSQL and no server answers (said).
    fn start_on(backend: Backend, users: usize, tenant_sections: &str) -> Option<SimulatedTenant> {
        use m365sync_simulator::{SimConfig, Simulator, TenantSpec};
        let runtime = test_runtime();
        let dir = tempfile::tempdir().unwrap();
        let (schema, db, store_section) = match backend {
            Backend::Sqlite => {
                let db = dir.path().join("m.db").display().to_string();
                (None, db, "[host]\ndb = \"m.db\"".to_string())
            }
            Backend::Postgres => {
                let schema = postgres_schema(&runtime)?;
                let url = schema.url.clone();
                let section = format!("[store]\nurl = \"{url}\"");
                (Some(schema), url, section)
            }
        };
        let simulator = runtime.block_on(async {
            let mut config = SimConfig::new(TenantSpec::new(11, users));
            config.roles = [
                "User.Read.All",
                "GroupMember.Read.All",
                "Organization.Read.All",
                "Domain.Read.All",
                "Reports.Read.All",
                "AuditLog.Read.All",
            ]
            .map(String::from)
            .to_vec();
            Simulator::start(config).await.unwrap()
        });
        let credentials = simulator.credentials();
        let config = dir.path().join("tenant.toml");
        std::fs::write(
            &config,
            format!(
                "{store_section}\n\n[[tenant]]\nname = \"contoso\"\ntenant_id = \"{}\"\n\
                 client_id = \"{}\"\nclient_secret_env = \"{SECRET_VAR}\"\n\
                 [tenant.endpoints]\nlogin = \"{}\"\ngraph = \"{}\"\n{tenant_sections}",
                credentials.tenant_id,
                credentials.client_id,
                simulator.login_url(),
                simulator.graph_url(),
            ),
        )
        .unwrap();
        Some(SimulatedTenant {
            runtime,
            simulator: Some(simulator),
            dir,
            config,
            secret: credentials.client_secret,
            db,
            _schema: schema,
        })
    }

    /// The store, as `--db` takes it: a path or a URL.
    fn db(&self) -> &str {
        &self.db
    }

    fn tenant(&self) -> m365sync_simulator::Tenant {
        self.simulator.as_ref().unwrap().tenant()
    }

    /// The store opened in this process (as another process would see it).
    fn store(&self) -> Box<dyn StoreBackend> {
        let location = StoreLocation::parse(&self.db);
        self.runtime
            .block_on(m365sync_service::open_store(&location))
            .unwrap()
    }

    /// How many people the store holds for the tenant.
    fn people(&self) -> i64 {
        let store = self.store();
        self.runtime
            .block_on(store.tenant_summary("contoso"))
            .unwrap()
            .people
            .total
    }

    /// Run the binary with the config (after `args`) and the right secret.
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_with_secret(args, &self.secret)
    }

    fn run_with_secret(&self, args: &[&str], secret: &str) -> std::process::Output {
        m365sync()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env(SECRET_VAR, secret)
            .output()
            .unwrap()
    }
}

impl Drop for SimulatedTenant {
    fn drop(&mut self) {
        if let Some(simulator) = self.simulator.take() {
            self.runtime.block_on(simulator.shutdown());
        }
    }
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn text_of(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

on_both_stores!(logs_list_successful_and_failed_runs_newest_first);

fn logs_list_successful_and_failed_runs_newest_first(backend: Backend) {
    let Some(tenant) = SimulatedTenant::start_on(backend, 40, "[tenant.sync]\nmode = \"full\"\n")
    else {
        return;
    };
    let ok = tenant.run(&["sync"]);
    assert!(ok.status.success(), "{:?}", text_of(&ok));
    let wrong = "wrong-Secret-0123456789";
    let failed = tenant.run_with_secret(&["sync", "--json"], wrong);
    assert_eq!(failed.status.code(), Some(1), "{:?}", text_of(&failed));
    assert_eq!(json_of(&failed)[0]["error_kind"], "auth");

    let logs = tenant.run(&["logs", "--json"]);
    assert!(logs.status.success(), "{:?}", text_of(&logs));
    let runs = json_of(&logs);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["error_kind"], "auth");
    // Counted by the engine's failure report: the one token request that was refused.
    assert_eq!(runs[0]["requests"], 1, "{runs:?}");
    assert_eq!(runs[0]["mode"], "full");
    assert!(runs[0]["error"].as_str().unwrap().contains("AADSTS7000215"));
    assert_eq!(runs[1]["status"], "ok");
    assert_eq!(runs[1]["report"]["data_sets"][0]["created"], 40);
    assert!(
        !logs
            .stdout
            .windows(wrong.len())
            .any(|w| w == wrong.as_bytes())
    );

    let (text, _) = text_of(&tenant.run(&["logs"]));
    assert!(
        text.contains("FAILED") && text.contains("error (auth)"),
        "{text}"
    );
    assert!(
        text.contains("users") && text.contains("created 40"),
        "{text}"
    );
    assert!(!text.contains(wrong), "{text}");

    let limited = json_of(&tenant.run(&["logs", "--json", "--limit", "1"]));
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let id = runs[1]["id"].as_i64().unwrap().to_string();
    let one = m365sync()
        .args(["logs", "--run", &id, "--db"])
        .arg(tenant.db())
        .output()
        .unwrap();
    let (text, stderr) = text_of(&one);
    assert!(one.status.success(), "{stderr}");
    assert!(
        text.contains("pages") && text.contains("retry wait"),
        "{text}"
    );
    let other = json_of(
        &m365sync()
            .args(["logs", "--json", "--tenant", "fabrikam", "--db"])
            .arg(tenant.db())
            .output()
            .unwrap(),
    );
    assert_eq!(other, serde_json::json!([]));
    let missing = tenant.run(&["logs", "--run", "999"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text_of(&missing).1.contains("no run 999"));
    let no_db = m365sync()
        .args(["logs", "--db"])
        .arg(tenant.dir.path().join("none.db"))
        .output()
        .unwrap();
    assert_eq!(no_db.status.code(), Some(2));
}

on_both_stores!(preview_groups_accounts_by_outcome_and_writes_nothing);

fn preview_groups_accounts_by_outcome_and_writes_nothing(backend: Backend) {
    let Some(tenant) = SimulatedTenant::start_on(
        backend,
        60,
        "[tenant.sync]\nmatch_key = \"user-principal-name\"\nremoval = \"flag\"\n\
         [tenant.filter]\ninclude_guests = false\n[tenant.field_map]\njobTitle = \"title\"\n",
    ) else {
        return;
    };
    let guests = tenant
        .tenant()
        .users
        .iter()
        .filter(|u| u.user_type == "Guest")
        .count();
    assert!(guests > 0, "the simulated tenant has guests");

    let output = tenant.run(&["preview", "--json"]);
    assert!(output.status.success(), "{:?}", text_of(&output));
    let export = tenant.run(&["export", "people"]);
    assert_eq!(
        export.status.code(),
        Some(2),
        "a preview creates no store: {:?}",
        text_of(&export)
    );
    let preview = json_of(&output);
    let preview = &preview[0];
    assert_eq!(preview["counts"]["create"], 60 - guests as u64);
    assert_eq!(preview["counts"]["filtered-out"], guests as u64);
    let people = preview["people"].as_array().unwrap();
    assert_eq!(people.len(), 60);
    let left_out = people
        .iter()
        .find(|p| p["outcome"] == "filtered-out")
        .unwrap();
    assert!(left_out["reason"].is_string(), "{left_out}");
    assert!(preview["report"]["dry_run"].as_bool().unwrap());

    let (text, _) = text_of(&tenant.run(&["preview"]));
    assert!(
        text.contains(&format!("would be created: {}", 60 - guests)),
        "{text}"
    );
    assert!(
        text.contains(&format!("left out by a filter: {guests}")),
        "{text}"
    );

    // After a sync, the same preview finds everybody unchanged, and still writes nothing.
    let sync = tenant.run(&["sync"]);
    assert!(sync.status.success(), "{:?}", text_of(&sync));
    let before = tenant.run(&["export", "people"]).stdout;
    let again = json_of(&tenant.run(&["preview", "--json", "--tenant", "contoso"]));
    assert_eq!(again[0]["counts"]["unchanged"], 60 - guests as u64);
    assert_eq!(again[0]["counts"]["create"], 0);
    let logs = json_of(&tenant.run(&["logs", "--json"]));
    assert_eq!(logs.as_array().unwrap().len(), 1, "a preview is not a run");
    assert_eq!(
        tenant.run(&["export", "people"]).stdout,
        before,
        "a preview changes nothing stored"
    );

    // An override the engine does not know is a config error naming the key.
    std::fs::write(
        &tenant.config,
        std::fs::read_to_string(&tenant.config)
            .unwrap()
            .replace("jobTitle = \"title\"", "favouriteColour = \"colour\""),
    )
    .unwrap();
    let bad = tenant.run(&["preview"]);
    let (_, stderr) = text_of(&bad);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tenant.toml")
            && stderr.contains("contoso")
            && stderr.contains("field_map.favouriteColour"),
        "{stderr}"
    );
}

on_both_stores!(organizations_are_managed_and_a_tenant_match_is_reviewed);

fn organizations_are_managed_and_a_tenant_match_is_reviewed(backend: Backend) {
    let Some(tenant) = SimulatedTenant::start_on(
        backend,
        20,
        "[tenant.sync]\nfeatures = [\"users\", \"organization\"]\n",
    ) else {
        return;
    };
    let name = tenant.tenant().name;
    let db = tenant.db();
    let organizations = |args: &[&str]| {
        m365sync()
            .arg("organizations")
            .args(args)
            .arg("--db")
            .arg(db)
            .output()
            .unwrap()
    };
    // A near miss of the tenant's name (one letter doubled) and an unrelated name.
    let mut chars: Vec<char> = name.chars().collect();
    chars.insert(2, chars[1]);
    let near: String = chars.into_iter().collect();
    let added = organizations(&["add", &near, "--json"]);
    assert!(added.status.success(), "{:?}", text_of(&added));
    let near_id = json_of(&added)["id"].as_str().unwrap().to_string();
    let csv = tenant.dir.path().join("orgs.csv");
    std::fs::write(
        &csv,
        "id,name,notes\nwb-1,Woodgrove Bank,x\n,Fourth Coffee,\n",
    )
    .unwrap();
    let imported = organizations(&["import", csv.to_str().unwrap(), "--json"]);
    assert!(imported.status.success(), "{:?}", text_of(&imported));
    assert_eq!(json_of(&imported)["created"].as_array().unwrap().len(), 2);
    let again = json_of(&organizations(&["import", csv.to_str().unwrap(), "--json"]));
    assert_eq!(again["unchanged"], 2);
    let listed = json_of(&organizations(&["list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 3);
    std::fs::write(&csv, "title\nx\n").unwrap();
    let bad = organizations(&["import", csv.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text_of(&bad).1.contains("\"name\" column"),
        "{:?}",
        text_of(&bad)
    );

    let sync = tenant.run(&["sync"]);
    assert!(sync.status.success(), "{:?}", text_of(&sync));
    let review = tenant.run(&["review", "--json"]);
    assert!(review.status.success(), "{:?}", text_of(&review));
    let matches = json_of(&review);
    assert_eq!(matches[0]["state"], "suggested", "{matches}");
    assert_eq!(matches[0]["suggestions"][0]["id"], near_id.as_str());
    let (text, _) = text_of(&tenant.run(&["review"]));
    assert!(
        text.contains("suggested") && text.contains(&near_id),
        "{text}"
    );

    // Creating a duplicate is refused while a suggestion exists.
    let create = tenant.run(&["review", "--tenant", "contoso", "create"]);
    let (_, stderr) = text_of(&create);
    assert_eq!(create.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&near_id), "{stderr}");

    let accept = tenant.run(&["review", "--json", "accept", &near_id]);
    assert!(accept.status.success(), "{:?}", text_of(&accept));
    let accepted = json_of(&accept);
    assert_eq!(accepted["state"], "matched");
    assert_eq!(accepted["organization"]["id"], near_id.as_str());
    let matches = json_of(&tenant.run(&["review", "--json"]));
    assert_eq!(matches[0]["state"], "matched");

    let ignore = tenant.run(&["review", "ignore"]);
    let (text, stderr) = text_of(&ignore);
    assert!(ignore.status.success(), "{stderr}");
    assert!(text.contains("ignored"), "{text}");

    let unknown = tenant.run(&["review", "change", "no-such-org"]);
    assert_eq!(unknown.status.code(), Some(2), "{:?}", text_of(&unknown));
}

#[test]
fn the_new_commands_have_help() {
    for args in [
        &["logs", "--help"][..],
        &["preview", "--help"],
        &["review", "--help"],
        &["review", "accept", "--help"],
        &["organizations", "--help"],
        &["organizations", "import", "--help"],
    ] {
        let output = m365sync().args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
    }
    let output = m365sync().args(["logs", "--run", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// A config with one tenant whose Graph and sign-in endpoints are loopback ports where
/// nothing listens, plus `extra` (a `[host]` table must come first, so it goes in `host`).
fn offline_config(dir: &std::path::Path, host: &str, tenant: &str) -> std::path::PathBuf {
    let config = dir.join("tenant.toml");
    std::fs::write(
        &config,
        format!(
            "{host}\n[[tenant]]\nname = \"contoso\"\ntenant_id = \"contoso.onmicrosoft.com\"\n\
             client_id = \"00000000-0000-0000-0000-000000000000\"\n{tenant}\n"
        ),
    )
    .unwrap();
    config
}

#[test]
fn bad_config_values_exit_2_naming_file_line_key_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "client_secret_env = \"M365SYNC_CLI_TEST_UNSET\"";
    for (host, tenant, expected) in [
        (
            "[host]\nmemory_limit_mib = 0",
            secret.to_string(),
            &["line 2", "host.memory_limit_mib", "16..=4096"][..],
        ),
        (
            "[host]\nmemory_limit_mib = 17592186044416",
            secret.to_string(),
            &["line 2", "host.memory_limit_mib", "16..=4096"],
        ),
        (
            "[host]\nsandboxes = 100000",
            secret.to_string(),
            &["line 2", "host.sandboxes", "0..=1024"],
        ),
        (
            "[host]\nrun_timeout_secs = 0",
            secret.to_string(),
            &["line 2", "host.run_timeout_secs", "1..=86400"],
        ),
        (
            "",
            format!("{secret}\n[tenant.filter]\ndomains = [\"not a domain!\"]"),
            &[
                "line 8",
                "tenant \"contoso\"",
                "filter.domains",
                "not a domain!",
            ],
        ),
        (
            "",
            format!("{secret}\n[tenant.sync]\nmax_removal_percent = 150"),
            &["line 8", "sync.max_removal_percent", "0..=100"],
        ),
        (
            "",
            format!("{secret}\n[tenant.endpoints]\ngraph = \"https://127.0.0.1:99999\""),
            &["line 8", "endpoints.graph", "1..=65535"],
        ),
        (
            "",
            "name2 = 1".to_string(),
            &["line 6", "tenant \"contoso\"", "name2"],
        ),
        (
            "[host]\nmemory_limit_mib = 256\n",
            "".to_string(),
            &["line 4", "tenant \"contoso\"", "client secret"],
        ),
    ] {
        let config = offline_config(dir.path(), host, &tenant);
        let output = m365sync()
            .arg("sync")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{host} {tenant}: {stderr}");
        assert!(stderr.contains("tenant.toml"), "{stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{part:?} missing: {stderr}");
        }
    }
}

#[test]
fn plain_http_is_refused_for_a_remote_host_and_accepted_for_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(
        dir.path(),
        "",
        "client_secret_env = \"X\"\n[tenant.endpoints]\ngraph = \"http://graph.microsoft.com\"",
    );
    let output = m365sync()
        .args(["permissions", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tenant.toml")
            && stderr.contains("line 8")
            && stderr.contains("endpoints.graph")
            && stderr.contains("not loopback"),
        "{stderr}"
    );

    let config = offline_config(
        dir.path(),
        "",
        "client_secret_env = \"X\"\n[tenant.endpoints]\ngraph = \"http://127.0.0.1:9\"",
    );
    let output = m365sync()
        .args(["permissions", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `m365sync sync` on `config`, failing the test if it has not ended in `limit`.
fn sync_within(config: &std::path::Path, limit: std::time::Duration) -> (Option<i32>, String) {
    let mut child = m365sync()
        .args(["sync", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("m365sync sync still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(unix)]
#[test]
fn secret_files_that_would_block_or_never_end_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("secret.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let endpoints =
        "[tenant.endpoints]\nlogin = \"http://127.0.0.1:9\"\ngraph = \"http://127.0.0.1:9\"";
    for (file, what) in [
        (fifo.display().to_string(), "FIFO"),
        ("/dev/zero".to_string(), "character device"),
    ] {
        let config = offline_config(
            dir.path(),
            "[host]\ndb = \"m.db\"\nrun_timeout_secs = 600",
            &format!("client_secret_file = \"{file}\"\n{endpoints}"),
        );
        let (code, stderr) = sync_within(&config, std::time::Duration::from_secs(60));
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&file) && stderr.contains(what),
            "{file}: {stderr}"
        );
    }
}

#[test]
fn an_unset_secret_variable_is_named_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config(
        dir.path(),
        "[host]\ndb = \"m.db\"",
        "client_secret_env = \"M365SYNC_CLI_TEST_UNSET\"\n[tenant.endpoints]\n\
         login = \"http://127.0.0.1:9\"\ngraph = \"http://127.0.0.1:9\"",
    );
    let (code, stderr) = sync_within(&config, std::time::Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "could not be read from environment variable M365SYNC_CLI_TEST_UNSET (not set)"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_config_says_the_os_error_once() {
    let output = m365sync()
        .args(["sync", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

on_both_stores!(a_mass_removal_is_stopped_with_its_counts_until_allowed);

fn a_mass_removal_is_stopped_with_its_counts_until_allowed(backend: Backend) {
    let Some(tenant) = SimulatedTenant::start_on(backend, 40, "") else {
        return;
    };
    let first = tenant.run(&["sync"]);
    assert!(first.status.success(), "{:?}", text_of(&first));
    let gone: Vec<String> = tenant.tenant().users[..20]
        .iter()
        .map(|u| u.id.clone())
        .collect();
    tenant.simulator.as_ref().unwrap().delete_users(&gone, true);

    let stopped = tenant.run(&["sync", "--json"]);
    let (_, stderr) = text_of(&stopped);
    assert_eq!(stopped.status.code(), Some(1), "{stderr}");
    assert_eq!(json_of(&stopped)[0]["error_kind"], "mass-removal");
    assert!(stderr.contains("--allow-mass-removal"), "{stderr}");
    assert!(stderr.contains("20"), "the count is named: {stderr}");

    let allowed = tenant.run(&["sync", "--json", "--allow-mass-removal"]);
    assert!(allowed.status.success(), "{:?}", text_of(&allowed));
    assert_eq!(json_of(&allowed)[0]["data_sets"][0]["removed"], 20);
    let (help, _) = text_of(&m365sync().args(["sync", "--help"]).output().unwrap());
    assert!(help.contains("--allow-mass-removal"), "{help}");
}

on_both_stores!(reset_deletes_a_tenants_data_only_with_yes_and_not_while_it_syncs);

fn reset_deletes_a_tenants_data_only_with_yes_and_not_while_it_syncs(backend: Backend) {
    let Some(tenant) = SimulatedTenant::start_on(backend, 30, "") else {
        return;
    };
    let synced = tenant.run(&["sync"]);
    assert!(synced.status.success(), "{:?}", text_of(&synced));
    let added = tenant.run(&["organizations", "add", "Contoso Holdings"]);
    assert!(added.status.success(), "{:?}", text_of(&added));
    assert_eq!(tenant.people(), 30);

    let unconfirmed = tenant.run(&["reset", "--tenant", "contoso"]);
    let (_, stderr) = text_of(&unconfirmed);
    assert_eq!(unconfirmed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(tenant.people(), 30, "nothing deleted without --yes");

    // A running sync holds the tenant's lock (this process stands in for it).
    let store = tenant.store();
    let mut held = tenant
        .runtime
        .block_on(store.open_tenant("contoso", Access::Sync))
        .unwrap();
    let locked = tenant.run(&["reset", "--tenant", "contoso", "--yes"]);
    let (_, stderr) = text_of(&locked);
    assert_eq!(locked.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "tenant contoso is being synced by another process (pid {}",
            std::process::id()
        )),
        "{stderr}"
    );
    assert_eq!(tenant.people(), 30, "nothing deleted while locked");
    tenant.runtime.block_on(held.finish()).unwrap();

    let reset = tenant.run(&["reset", "--tenant", "contoso", "--yes", "--json"]);
    assert!(reset.status.success(), "{:?}", text_of(&reset));
    let outcome = json_of(&reset);
    assert_eq!(outcome["deleted"]["people"], 30, "{outcome}");
    assert_eq!(tenant.people(), 0);
    for what in ["people", "subscriptions", "organization"] {
        let export = tenant.run(&["export", what, "--json"]);
        assert_eq!(json_of(&export), serde_json::json!([]), "{what}");
    }
    let organizations = json_of(&tenant.run(&["organizations", "list", "--json"]));
    assert_eq!(
        organizations.as_array().unwrap().len(),
        1,
        "the platform's organizations are kept"
    );
    let logs = json_of(&tenant.run(&["logs", "--json"]));
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2, "the sync log is kept: {logs:?}");
    assert_eq!(logs[0]["status"], "reset");
    assert!(
        logs[0]["error"].as_str().unwrap().contains("30 people"),
        "{}",
        logs[0]
    );
    assert_eq!(logs[1]["status"], "ok");
    let (listed, _) = text_of(&tenant.run(&["logs"]));
    assert!(listed.contains("reset: deleted"), "{listed}");

    // The next sync starts the tenant afresh.
    let again = tenant.run(&["sync", "--json"]);
    assert!(again.status.success(), "{:?}", text_of(&again));
    assert_eq!(json_of(&again)[0]["data_sets"][0]["created"], 30);
    let (help, _) = text_of(&m365sync().args(["reset", "--help"]).output().unwrap());
    assert!(
        help.contains("--yes") && help.contains("--tenant"),
        "{help}"
    );
}
