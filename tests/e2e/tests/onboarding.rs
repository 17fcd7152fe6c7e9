//! Onboarding by admin consent, end to end with no secret copied: `m365sync serve` makes a
//! consent link (`POST /v1/connect`), the customer's "admin" follows it to the simulator's
//! consent page and accepts, the identity platform's redirect comes back to serve's
//! `/connect/callback`, and the tenant — unknown to the app until then — is registered,
//! signed in to, synced (people = its directory) and shows in the API and `status`. A
//! replayed answer, a declined consent and a forged state register nothing.

mod cli_process;
mod serve_process;

use std::time::Duration;

use m365sync_simulator::{SimConfig, Simulator, TenantSpec};
use serde_json::Value;
use serve_process::{Backend, Fleet, Server};

const SECRET_VAR: &str = "M365SYNC_E2E_PLATFORM_SECRET";
const USERS: usize = 60;

/// A browser: no redirects followed, every status answered.
fn browser() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

fn page(mut response: ureq::http::Response<ureq::Body>) -> Page {
    Page {
        status: response.status().as_u16(),
        location: response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// A consent link from the server's API.
fn consent_link(server: &Server) -> Value {
    let response = browser()
        .post(format!("{}/v1/connect", server.base_url()))
        .header("content-type", "application/json")
        .send(r#"{"app": "platform"}"#)
        .unwrap();
    let reply = page(response);
    assert_eq!(reply.status, 201, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

/// The admin opens the link, sees the consent page, and answers `decision`; where the
/// identity platform sends the browser back to.
fn answer(link: &str, decision: &str) -> String {
    let shown = page(browser().get(link).call().unwrap());
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(
        shown.body.contains("decision"),
        "a consent form: {}",
        shown.body
    );
    let answered = page(
        browser()
            .post(link)
            .send_form([("decision", decision)])
            .unwrap(),
    );
    assert_eq!(answered.status, 302, "{}", answered.body);
    answered.location.expect("a redirect back")
}

fn onboarding(backend: Backend) {
    let Some(fleet) = Fleet::new(backend) else {
        return;
    };
    let simulator = fleet.block_on(async {
        let mut config = SimConfig::new(TenantSpec::new(29, USERS));
        config.consented = false;
        config.roles = vec!["User.Read.All".into(), "Organization.Read.All".into()];
        Simulator::start(config).await.unwrap()
    });
    let credentials = simulator.credentials();
    let config = fleet.dir.path().join("platform.toml");
    std::fs::write(
        &config,
        format!(
            "[[app]]\nname = \"platform\"\nclient_id = \"{}\"\nfeatures = [\"users\"]\n\
             client_secret_env = \"{SECRET_VAR}\"\n\
             [app.endpoints]\nlogin = \"{}\"\ngraph = \"{}\"\n",
            credentials.client_id,
            simulator.login_url(),
            simulator.graph_url()
        ),
    )
    .unwrap();
    let server = fleet.serve(&config, &[], &[(SECRET_VAR, &credentials.client_secret)]);
    assert!(server.tenants().is_empty(), "nothing onboarded yet");

    // Before consent, the app cannot sign in to the tenant at all.
    assert!(!simulator.is_consented());

    let link = consent_link(&server);
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/organizations/v2.0/adminconsent?",
            simulator.login_url()
        )),
        "{url}"
    );
    assert!(
        url.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        "{url}"
    );
    let callback = answer(url, "approve");
    assert!(
        callback.starts_with(&format!("{}/connect/callback?", server.base_url())),
        "{callback}"
    );
    let connected = page(browser().get(&callback).call().unwrap());
    assert_eq!(
        connected.status,
        200,
        "{}\n{}",
        connected.body,
        server.stderr()
    );
    assert!(
        connected.body.contains("is connected as tenant"),
        "{}",
        connected.body
    );
    assert!(simulator.is_consented());

    // Registered, served, and synced at once: its people are its directory's.
    let name = server.wait(
        "the onboarded tenant's first sync",
        Duration::from_secs(120),
        || {
            server
                .tenants()
                .into_iter()
                .find(|(_, t)| t["last_run"]["ok"] == true)
                .map(|(name, _)| name)
        },
    );
    assert_eq!(fleet.people(&name), USERS as i64, "{}", server.stderr());

    // The answer is single-use: replaying it registers nothing more.
    let replayed = page(browser().get(&callback).call().unwrap());
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    assert!(replayed.body.contains("already used"), "{}", replayed.body);

    // A declined consent is said in plain words.
    let link = consent_link(&server);
    let declined = answer(link["url"].as_str().unwrap(), "decline");
    let said = page(browser().get(&declined).call().unwrap());
    assert_eq!(said.status, 400, "{}", said.body);
    assert!(said.body.contains("declined"), "{}", said.body);

    // A state this server never issued is refused.
    let forged = page(
        browser()
            .get(format!(
                "{}/connect/callback?admin_consent=True&tenant={}&state=forged",
                server.base_url(),
                credentials.tenant_id
            ))
            .call()
            .unwrap(),
    );
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert_eq!(server.tenants().len(), 1, "one tenant onboarded");

    // `status` reads the same tenant from the store.
    let output = fleet
        .command(&["status", "--json", "--db", &fleet.db()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", cli_process::text(&output));
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status[0]["name"], name.as_str(), "{status}");
    assert_eq!(status[0]["people"], USERS as i64, "{status}");
}

#[test]
fn a_tenant_is_onboarded_by_admin_consent_on_sqlite() {
    onboarding(Backend::Sqlite);
}

#[test]
fn a_tenant_is_onboarded_by_admin_consent_on_postgres() {
    onboarding(Backend::Postgres);
}

/// `[[partner]] auto_add = true`: serve adds the partner's consented customers as tenants
/// by itself and syncs them; customers it cannot sign in to are left out. What it reads
/// daily becomes the tenants' notices: the app's client secret that ends in 5 days (read
/// from the app registration in Graph) shows in the API's view and `/metrics`, with one
/// `secret-expiring` event in the change feed however often it is read; once the
/// partner's relationship with the customer has expired, the customer is not synced any
/// more and needs an admin, with why.
#[test]
fn serve_adds_a_partners_consented_customers_by_itself() {
    use m365sync_simulator::{DelegatedAdminRelationship, PasswordCredential, RelationshipStatus};
    let fleet = Fleet::new(Backend::Sqlite).expect("SQLite is always there");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ending_key = "0f0f0f0f-1111-2222-3333-444444444444";
    let simulator = fleet.block_on(async {
        let mut config = SimConfig::new(TenantSpec::new(31, USERS));
        config.roles = vec![
            "User.Read.All".into(),
            "DelegatedAdminRelationship.Read.All".into(),
            "Application.Read.All".into(),
        ];
        config.password_credentials.push(PasswordCredential {
            key_id: ending_key.to_string(),
            display_name: "old".to_string(),
            hint: "x1~".to_string(),
            start: now - 700 * 86_400,
            end: now + 5 * 86_400 + 3_600,
        });
        Simulator::start(config).await.unwrap()
    });
    let credentials = simulator.credentials();
    let partner = credentials.tenant_id.clone();
    let relationships = |status| {
        vec![
            DelegatedAdminRelationship::new(&partner, &partner, "Northwind", status),
            DelegatedAdminRelationship::new(
                &partner,
                "dddddddd-1111-2222-3333-444444444444",
                "Elsewhere Ltd",
                RelationshipStatus::Active,
            ),
        ]
    };
    simulator.set_delegated_admin_relationships(relationships(RelationshipStatus::Active));
    let endpoints = format!(
        "login = \"{}\"\ngraph = \"{}\"\n",
        simulator.login_url(),
        simulator.graph_url()
    );
    let config = fleet.dir.path().join("msp.toml");
    std::fs::write(
        &config,
        format!(
            "[[app]]\nname = \"msp\"\nclient_id = \"{}\"\nfeatures = [\"users\"]\n\
             client_secret_env = \"{SECRET_VAR}\"\nhome_tenant_id = \"{partner}\"\n\
             [app.endpoints]\n{endpoints}\n\
             [[partner]]\nname = \"msp\"\ntenant_id = \"{partner}\"\napp = \"msp\"\n\
             auto_add = true\n",
            credentials.client_id
        ),
    )
    .unwrap();
    let env = [(SECRET_VAR, credentials.client_secret.as_str())];
    let server = fleet.serve(&config, &[], &env);
    let view = server.wait(
        "northwind added and synced",
        Duration::from_secs(120),
        || {
            server
                .tenants()
                .remove("northwind")
                .filter(|t| t["last_run"]["ok"] == true && t["running"] == false)
        },
    );
    assert_eq!(view["people"], USERS as i64, "{view}");
    let tenants = server.tenants();
    assert_eq!(
        tenants.keys().collect::<Vec<_>>(),
        ["northwind"],
        "the customer it cannot sign in to is not added"
    );

    // The app's secret that ends in 5 days: a notice of the tenant, in its view and in
    // /metrics, and one event in the feed.
    let notice_key = format!("app:msp:{ending_key}");
    let view = server.wait_tenant("northwind", "a notice", Duration::from_secs(30), |t| {
        t["notices"].as_array().is_some_and(|n| !n.is_empty())
    });
    let notice = &view["notices"][0];
    assert_eq!(notice["kind"], "secret-expiring", "{view:#}");
    assert_eq!(notice["key"], notice_key.as_str(), "{view:#}");
    assert_eq!(notice["stage"], "ending", "{view:#}");
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.contains("client secret \"old\"") && message.contains("(in 5 days)"),
        "{message}"
    );
    assert!(
        !view.to_string().contains("x1~"),
        "the hint is not shown: {view}"
    );
    assert_eq!(
        server.metric("m365sync_client_secret_days_left{tenant=\"northwind\"}"),
        Some(5.0)
    );
    let expiring = |server: &Server| -> Vec<Value> {
        serve_process::feed_pages(server, 0, 100, Some("northwind"))
            .into_iter()
            .filter(|e| e["kind"] == "secret-expiring")
            .collect()
    };
    let events = expiring(&server);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["object_id"], notice_key.as_str());
    assert_eq!(events[0]["status"], "ending");

    // The partner's relationship with Northwind expires; serve looks again when it starts.
    server.stop("TERM", Duration::from_secs(30));
    drop(server);
    simulator.set_delegated_admin_relationships(relationships(RelationshipStatus::Expired));
    let server = fleet.serve(&config, &[], &env);
    let view = server.wait_tenant(
        "northwind",
        "relationship ended",
        Duration::from_secs(30),
        |t| {
            t["notices"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["kind"] == "relationship-ending"))
        },
    );
    let ended = (view["notices"].as_array().unwrap().iter())
        .find(|n| n["kind"] == "relationship-ending")
        .unwrap();
    assert_eq!(ended["stage"], "ended", "{view:#}");
    // Read again: the secret's notice is not raised twice.
    assert_eq!(expiring(&server).len(), 1);
    let runs_before = server.runs_of("northwind").len();
    let reply = server.post("/v1/tenants/northwind/sync");
    assert!(reply.status < 300, "{}", reply.text());
    let view = server.wait_tenant("northwind", "stopped", Duration::from_secs(60), |t| {
        t["status"] == "needs-attention"
    });
    let attention = view["attention"].as_str().unwrap();
    assert!(
        attention.contains("relationships with this customer have ended")
            && attention.contains("stopped"),
        "{attention}"
    );
    let runs = server.runs_of("northwind");
    assert_eq!(runs.len(), runs_before + 1, "{runs:#?}");
    assert_eq!(runs.last().unwrap()["error_kind"], "stopped", "{runs:#?}");
    assert_eq!(fleet.people("northwind"), USERS as i64, "its data stays");
}
