//! Apps, partners and secrets ending, through the real binary: a tenant with no app of its
//! own gets the least privileged `[[app]]` (and `permissions` says why); `partner tenants`
//! lists a partner's customers from its delegated admin relationships with the app's
//! consent state in each (a customer whose admin never consented gets its consent link)
//! and the relationships that end soon; `partner add` registers the consented ones, which
//! `sync` then runs beside the config's tenants; a client secret that ends within 30 days,
//! and a partner relationship that does, are warned about by `sync` (report, stderr, the
//! change feed); once the relationship has expired, the customer is not synced any more.

mod cli_process;

use std::process::Command;

use m365sync_simulator::{
    DelegatedAdminRelationship, RelationshipStatus, SimConfig, Simulator, TenantSpec,
};
use serde_json::Value;

const SECRET_VAR: &str = "M365SYNC_E2E_PARTNER_SECRET";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_partners_customers_apps_and_ending_secrets() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let own_tenant = "aaaaaaaa-1111-2222-3333-444444444444";
    let simulator = runtime.block_on(async {
        let mut config = SimConfig::new(TenantSpec::new(77, 30));
        config.roles = vec![
            "User.Read.All".to_string(),
            // `review` reads the organization.
            "Organization.Read.All".to_string(),
            "DelegatedAdminRelationship.Read.All".to_string(),
            // `credentials` reads the app registration.
            "Application.Read.All".to_string(),
        ];
        Simulator::start(config).await.unwrap()
    });
    let credentials = simulator.credentials();
    let partner_tid = credentials.tenant_id.clone();
    // The partner administers its own directory too (a customer it can sign in to), one
    // customer whose tenant this cloud does not know, one expired and one pending.
    let mut own = DelegatedAdminRelationship::new(
        &partner_tid,
        &partner_tid,
        "Partner's own",
        RelationshipStatus::Active,
    );
    own.end = Some(unix_now() + 10 * 86_400 + 3_600);
    own.auto_extend_duration = "PT0S".to_string();
    let mut relationships = vec![
        own,
        DelegatedAdminRelationship::new(
            &partner_tid,
            own_tenant,
            "Unknown Ltd",
            RelationshipStatus::Active,
        ),
        DelegatedAdminRelationship::new(
            &partner_tid,
            "bbbbbbbb-1111-2222-3333-444444444444",
            "Gone Ltd",
            RelationshipStatus::Expired,
        ),
        DelegatedAdminRelationship::new(
            &partner_tid,
            "cccccccc-1111-2222-3333-444444444444",
            "Pending Ltd",
            RelationshipStatus::ApprovalPending,
        ),
    ];
    // The page size is 2: the list takes two pages.
    relationships.sort_by(|a, b| a.customer_display_name.cmp(&b.customer_display_name));
    simulator.set_delegated_admin_relationships(relationships);

    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let expires = today.checked_add(jiff::Span::new().days(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("msp.toml");
    let endpoints = format!(
        "login = \"{}\"\ngraph = \"{}\"\n",
        simulator.login_url(),
        simulator.graph_url()
    );
    std::fs::write(
        &config,
        format!(
            "[[app]]\nname = \"everything\"\nclient_id = \"{client}\"\n\
             features = [\"users\", \"licences\", \"groups\"]\n\
             client_secret_env = \"{SECRET_VAR}\"\n\n\
             [[app]]\nname = \"msp\"\nclient_id = \"{client}\"\nfeatures = [\"users\"]\n\
             client_secret_env = \"{SECRET_VAR}\"\nclient_secret_expires = \"{expires}\"\n\
             home_tenant_id = \"{partner_tid}\"\n\
             [app.endpoints]\n{endpoints}\n\
             [[partner]]\nname = \"msp\"\ntenant_id = \"{partner_tid}\"\napp = \"msp\"\n\n\
             [[tenant]]\nname = \"own\"\ntenant_id = \"{partner_tid}\"\n\
             [tenant.endpoints]\n{endpoints}\n[tenant.sync]\nfeatures = [\"users\"]\n",
            client = credentials.client_id,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(cli_process::binary())
            .args(args)
            .arg("--config")
            .arg(&config)
            .env(SECRET_VAR, &credentials.client_secret)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", cli_process::text(&output));
        let stdout: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", cli_process::text(&output)));
        (stdout, String::from_utf8_lossy(&output.stderr).into_owned())
    };

    // The least privileged app covering the tenant's features, and why.
    let (permissions, _) = run(&["permissions", "--json"]);
    let own = &permissions[0];
    assert_eq!(own["app"], "msp", "{own}");
    assert_eq!(own["credential"], "client-secret", "{own}");
    let why = own["app_reason"].as_str().unwrap();
    assert!(why.contains("least privileged"), "{why}");
    assert!(
        why.contains("everything also covers them but grants more"),
        "{why}"
    );

    // The partner's customers, by customer, with the app's state in each.
    let callback = "http://127.0.0.1:8080/connect/callback";
    let (customers, _) = run(&["partner", "tenants", "--json", "--redirect-uri", callback]);
    let by_name = |name: &str| -> Value {
        customers
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["display_name"] == name)
            .unwrap_or_else(|| panic!("{name} in {customers:#}"))
            .clone()
    };
    assert_eq!(customers.as_array().unwrap().len(), 4, "{customers:#}");
    let partners_own = by_name("Partner's own");
    assert_eq!(partners_own["state"], "consented", "{partners_own:#}");
    assert!(
        partners_own["granted_roles"]
            .as_array()
            .unwrap()
            .contains(&Value::from("User.Read.All")),
        "{partners_own:#}"
    );
    let warning = partners_own["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("(in 10 days) and does not extend itself"),
        "{warning}"
    );
    // A customer whose admin never consented: the app is not found in its directory
    // (AADSTS700016), so its admin gets the consent link, for the customer's directory.
    let unknown = by_name("Unknown Ltd");
    assert_eq!(unknown["state"], "not-consented", "{unknown:#}");
    let link = unknown["consent_url"].as_str().unwrap();
    assert!(
        link.contains(&format!("/{own_tenant}/v2.0/adminconsent?client_id=")),
        "{link}"
    );
    assert!(unknown["message"].as_str().is_some(), "{unknown:#}");
    let gone = by_name("Gone Ltd");
    assert_eq!(gone["state"], "inactive", "{gone:#}");
    assert!(
        gone["warnings"][0]
            .as_str()
            .unwrap()
            .contains("relationship\" (expired)) and none is active"),
        "{gone:#}"
    );
    assert_eq!(by_name("Pending Ltd")["state"], "inactive");
    assert_eq!(
        partners_own["relationships"][0]["auto_extend_duration"],
        "PT0S"
    );

    // Consented customers become tenants of the store in one command; the others are
    // named with why not.
    let db = dir.path().join("m365sync.db");
    let (added, _) = run(&[
        "partner",
        "add",
        "--all",
        "--json",
        "--db",
        db.to_str().unwrap(),
    ]);
    let names: Vec<&str> = added["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["partner-s-own"], "{added:#}");
    assert_eq!(added["added"][0]["tenant_id"], partner_tid.as_str());
    let not_added = added["not_added"].to_string();
    assert!(not_added.contains("Unknown Ltd"), "{added:#}");
    assert!(not_added.contains("Gone Ltd (bbbbbbbb"), "{added:#}");
    // The added tenant is one the host knows: its organization is up for review.
    let (reviews, _) = run(&["review", "--json", "--db", db.to_str().unwrap()]);
    let reviewed: Vec<&str> = reviews
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(reviewed, ["own", "partner-s-own"], "{reviews:#}");

    // The app registration's own credentials, read from Graph in its home tenant: the
    // simulator's secret ends in about two years; none of its value shows.
    let (apps, _) = run(&["credentials", "--json"]);
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps:#}");
    let msp = &apps[0];
    assert_eq!(msp["app"], "msp");
    assert_eq!(msp["error"], Value::Null, "{msp:#}");
    let secret = &msp["credentials"][0];
    assert_eq!(secret["kind"], "password", "{msp:#}");
    let days = secret["days_left"].as_i64().unwrap();
    assert!((700..=740).contains(&days), "{msp:#}");
    assert_eq!(secret["warn"], false);
    assert!(!msp.to_string().contains(&credentials.client_secret));

    // A sync runs the config's tenant and the one `partner add` registered; it warns of
    // the secret that ends in 10 days, and of the partner's relationship with the
    // registered customer that ends in 10 days, in its report and on stderr.
    let (reports, stderr) = run(&["sync", "--json", "--db", db.to_str().unwrap()]);
    let report = |tenant: &str| -> Value {
        (reports.as_array().unwrap().iter())
            .find(|r| r["tenant"] == tenant)
            .unwrap_or_else(|| panic!("{tenant} in {reports:#}"))
            .clone()
    };
    let expiry = &report("own")["credential_expiry"];
    assert_eq!(expiry["days_left"], 10, "{expiry}");
    assert_eq!(expiry["warn"], true, "{expiry}");
    assert_eq!(expiry["app"], "msp", "{expiry}");
    assert!(
        stderr.contains(&format!("expires on {expires} (in 10 days)")),
        "{stderr}"
    );
    assert!(!stderr.contains(&credentials.client_secret), "{stderr}");
    let customer = report("partner-s-own");
    assert!(customer["error"].is_null(), "{customer:#}");
    assert_eq!(
        customer["notices"][0]["kind"], "relationship-ending",
        "{customer:#}"
    );
    assert_eq!(customer["notices"][0]["stage"], "ending", "{customer:#}");
    assert!(
        stderr.contains(
            "tenant partner-s-own: relationship \"Partner's own admin relationship\" ends on"
        ),
        "{stderr}"
    );

    // The relationship expires: the customer is not synced any more, with why; the
    // config's tenant of the same directory is not a partner's customer and still runs.
    let mut expired = DelegatedAdminRelationship::new(
        &partner_tid,
        &partner_tid,
        "Partner's own",
        RelationshipStatus::Expired,
    );
    expired.end = Some(unix_now() - 86_400);
    simulator.set_delegated_admin_relationships(vec![expired]);
    let output = Command::new(cli_process::binary())
        .args(["sync", "--json", "--db", db.to_str().unwrap(), "--config"])
        .arg(&config)
        .env(SECRET_VAR, &credentials.client_secret)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        cli_process::text(&output)
    );
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stopped = (reports.as_array().unwrap().iter())
        .find(|r| r["tenant"] == "partner-s-own")
        .unwrap();
    assert_eq!(stopped["error_kind"], "stopped", "{reports:#}");
    assert!(
        stopped["error"]
            .as_str()
            .unwrap()
            .contains("syncs are stopped"),
        "{reports:#}"
    );
    assert!(
        (reports.as_array().unwrap().iter()).any(|r| r["tenant"] == "own" && r["error"].is_null()),
        "{reports:#}"
    );
    // The change feed says when the relationship was found ending, then ended.
    let (events, _) = run(&[
        "changes",
        "--json",
        "--tenant",
        "partner-s-own",
        "--db",
        db.to_str().unwrap(),
    ]);
    let said: Vec<(String, String)> = (events["events"].as_array().unwrap().iter())
        .filter(|e| e["kind"] == "relationship-ending")
        .map(|e| {
            (
                e["object_id"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(said.len(), 2, "{events:#}");
    assert_eq!(said[0].1, "ending", "{events:#}");
    assert_eq!(
        said[1],
        (format!("relationship:{partner_tid}"), "ended".to_string()),
        "{events:#}"
    );
    drop(runtime);
}
