//! HTTP tests of the tenant's cloud (concepts/deployments.md: tokens are for
//! the cloud's own Graph resource) and of replays that carry only what changed
//! (`SimConfig::minimal_updates`, concepts/delta-query-overview.md).

use serde_json::Value;

use super::{assert_sts_error, send, token_reply};
use crate::util::b64url_decode;
use crate::{Cloud, SimConfig, Simulator, TenantSpec};

async fn start_in(cloud: Cloud) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(42, 5));
    config.cloud = cloud;
    Simulator::start(config).await.expect("start")
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&b64url_decode(payload).expect("base64url")).expect("claims")
}

#[tokio::test]
async fn tokens_are_for_the_graph_resource_of_the_tenants_cloud() {
    for (cloud, resource) in [
        (Cloud::Global, "https://graph.microsoft.com"),
        (Cloud::UsGov, "https://graph.microsoft.us"),
        (Cloud::UsGovDod, "https://dod-graph.microsoft.us"),
        (Cloud::China, "https://microsoftgraph.chinacloudapi.cn"),
    ] {
        assert_eq!(cloud.graph_resource(), resource);
        let sim = start_in(cloud).await;
        let c = sim.credentials();
        let r = token_reply(
            &sim,
            &c.tenant_id,
            &c.client_secret,
            &format!("{resource}/.default"),
        )
        .await;
        assert_eq!(r.status, 200, "{cloud:?}: {}", r.body);
        let at = r.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        assert_eq!(claims(&at)["aud"], resource, "{cloud:?}");
        let auth = format!("Bearer {at}");
        let users = send(
            "GET",
            &format!("{}/v1.0/users?$top=1", sim.graph_url()),
            &[("Authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(users.status, 200, "{cloud:?}: {}", users.body);

        // Any other cloud's Graph is an invalid scope here, with the body the
        // client credentials page documents.
        for other in [
            "https://graph.microsoft.com",
            "https://graph.microsoft.us",
            "https://dod-graph.microsoft.us",
        ]
        .into_iter()
        .filter(|o| *o != resource)
        {
            let r = token_reply(
                &sim,
                &c.tenant_id,
                &c.client_secret,
                &format!("{other}/.default"),
            )
            .await;
            assert_sts_error(&r, 400, "invalid_scope", 70_011);
            let description = r.json()["error_description"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(
                description.starts_with(&format!(
                    "AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope {other}/.default is not valid."
                )),
                "{description}"
            );
            assert!(
                r.json()["error_uri"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(cloud.login_authority())),
                "{}",
                r.body
            );
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn minimal_updates_carry_only_what_changed_without_being_asked() {
    let mut config = SimConfig::new(TenantSpec::new(42, 20));
    config.minimal_updates = true;
    let sim = Simulator::start(config).await.expect("start");
    let c = sim.credentials();
    let r = token_reply(
        &sim,
        &c.tenant_id,
        &c.client_secret,
        "https://graph.microsoft.com/.default",
    )
    .await;
    let auth = format!(
        "Bearer {}",
        r.json()["access_token"].as_str().expect("token")
    );
    let h = [("Authorization", auth.as_str())];
    let g = sim.graph_url();
    let mut url = format!("{g}/v1.0/users/delta?$select=id,userPrincipalName,mail,department");
    let delta_link = loop {
        let r = send("GET", &url, &h, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if let Some(d) = v["@odata.deltaLink"].as_str() {
            break d.to_string();
        }
        url = v["@odata.nextLink"].as_str().expect("next").to_string();
    };
    let ids: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    sim.update_users(&ids[..1], |u| {
        u.department = Some("Minimal Research".into())
    });
    let created = sim.create_users(1);

    let r = send("GET", &delta_link, &h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Not asked for, so not echoed.
    assert_eq!(r.header("preference-applied"), None);
    let items = r.json()["value"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{items:?}");
    let updated = items
        .iter()
        .find(|v| v["id"] == ids[0].as_str())
        .and_then(Value::as_object)
        .expect("updated");
    let mut keys: Vec<&str> = updated.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["department", "id"]);
    assert_eq!(updated["department"], "Minimal Research");
    // A new user still comes in full.
    let new = items
        .iter()
        .find(|v| v["id"] == created[0].as_str())
        .expect("created");
    assert!(new["userPrincipalName"].is_string(), "{new}");
    sim.shutdown().await;
}
