//! National clouds: the token is always for the Graph resource of the tenant's configured
//! cloud (concepts/deployments.md, "Microsoft Graph and Graph Explorer service root
//! endpoints"), even when the endpoints are overridden (here, to point at a simulator); a
//! tenant configured for the wrong cloud fails at sign-in with the identity platform's
//! invalid-scope answer (AADSTS70011), which the engine turns into advice an admin can
//! act on. (Sign-in only: these run on SQLite.)

use std::path::Path;

use m365sync_e2e::{
    TENANT, TestStore, people_count, runtime, simulator_with, sync, tenant_run, users,
};
use m365sync_service::config::{ConfigFile, SecretSource};
use m365sync_service::wit::types::{AuthFailure, SyncError};
use m365sync_simulator::{Cloud, Host, Simulator};

/// A us-gov simulated tenant.
async fn us_gov(users: usize) -> Simulator {
    simulator_with(users, |c| c.cloud = Cloud::UsGov).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_us_gov_tenant_with_overridden_endpoints_syncs_against_a_us_gov_simulator() {
    let sim = us_gov(150).await;
    let c = sim.credentials();
    // What an admin writes: the cloud, and (for a proxy, here the simulator) endpoints.
    let toml = format!(
        r#"
[[tenant]]
name = "contoso"
tenant_id = "{}"
client_id = "{}"
cloud = "us-gov"
client_secret_env = "M365SYNC_E2E_NOT_READ"

[tenant.endpoints]
login = "{}"
graph = "{}"
"#,
        c.tenant_id,
        c.client_id,
        sim.login_url(),
        sim.graph_url()
    );
    let config = ConfigFile::parse(&toml, Path::new("clouds.toml")).unwrap();
    let mut run = config.resolve(config.tenant(None).unwrap());
    run.credential = SecretSource::Value(c.client_secret.clone()).into();
    assert_eq!(run.tenant.endpoints.graph, sim.graph_url());

    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let report = sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(users(&report).created, 150);
    assert_eq!(people_count(&db, TENANT).await, 150);
    // Signed in once (the simulator issues tokens for https://graph.microsoft.us only),
    // then Graph took the token.
    let login: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Login)
        .collect();
    assert_eq!(login.len(), 1);
    assert_eq!(login[0].status, 200);
    assert!(sim.graph_requests().iter().all(|r| r.status == 200));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_tenant_against_a_us_gov_simulator_fails_with_a_clear_auth_error() {
    let sim = us_gov(20).await;
    // tenant_run configures the global cloud.
    let run = tenant_run(&sim);
    let db = TestStore::sqlite().await;
    let runtime = runtime();
    let error = sync(&runtime, &run, &db).await.unwrap_err();
    let Some(SyncError::Auth(auth)) = error.engine_error() else {
        panic!("an auth error, not {error}")
    };
    assert_eq!(auth.aadsts, Some(70_011));
    assert_eq!(auth.failure, AuthFailure::Other);
    for want in [
        "AADSTS70011",
        "https://graph.microsoft.com/.default",
        "global cloud",
        "another Microsoft cloud",
        "set `cloud` in the tenant config",
    ] {
        assert!(auth.message.contains(want), "{want}: {}", auth.message);
    }
    let shown = error.to_string();
    assert!(shown.contains("cloud"), "{shown}");
    assert!(!shown.contains(&sim.credentials().client_secret));
    // Nothing reached Graph, nothing was stored.
    assert!(sim.graph_requests().is_empty());
    assert_eq!(people_count(&db, TENANT).await, 0);
}
