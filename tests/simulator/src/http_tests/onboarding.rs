//! HTTP tests of a tenant that exists for the app only after an
//! administrator's consent (v2-admin-consent.md; AADSTS700016 before).

use super::{FORM, Reply, assert_sts_error, send, token_reply};
use crate::util::{form_urlencode, parse_form};
use crate::{SimConfig, Simulator, TenantSpec};

const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";
const REDIRECT: &str = "http://127.0.0.1:9999/consent/callback";

async fn start(tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(42, 5));
    config.consented = false;
    tweak(&mut config);
    Simulator::start(config).await.expect("start")
}

fn consent_url(base: &str, client_id: &str, scope: Option<&str>, redirect: &str) -> String {
    let mut url = format!(
        "{base}?client_id={}&redirect_uri={}&state=st%20ate",
        form_urlencode(client_id),
        form_urlencode(redirect)
    );
    if let Some(scope) = scope {
        url.push_str(&format!("&scope={}", form_urlencode(scope)));
    }
    url
}

/// The redirect's query parameters, decoded, in order.
fn redirect_params(r: &Reply, redirect: &str) -> Vec<(String, String)> {
    assert_eq!(r.status, 302, "{}", r.body);
    let location = r.header("location").expect("location");
    let query = location
        .strip_prefix(redirect)
        .and_then(|q| q.strip_prefix('?'))
        .unwrap_or_else(|| panic!("{location}"));
    parse_form(query).expect("form-encoded")
}

async fn decide(url: &str, decision: &str) -> Reply {
    send("POST", url, &[FORM], Some(&format!("decision={decision}"))).await
}

#[tokio::test]
async fn consent_turns_aadsts700016_into_tokens() {
    let sim = start(|_| {}).await;
    let c = sim.credentials();
    assert!(!sim.is_consented());
    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, GRAPH_DEFAULT).await;
    assert_sts_error(&r, 400, "unauthorized_client", 700_016);
    let desc = r.json()["error_description"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        desc.contains("has not been installed by the administrator of the tenant"),
        "{desc}"
    );

    let url = consent_url(
        &sim.admin_consent_url(),
        &c.client_id,
        Some(GRAPH_DEFAULT),
        REDIRECT,
    );
    let page = send("GET", &url, &[], None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert!(page.body.contains("value=\"approve\"") && page.body.contains("value=\"decline\""));
    assert!(!sim.is_consented(), "showing the page consents to nothing");

    // Declined: the documented error redirect; still no service principal.
    let r = decide(&url, "decline").await;
    let p = redirect_params(&r, REDIRECT);
    assert_eq!(p[0], ("admin_consent".into(), "True".into()));
    assert_eq!(p[1], ("error".into(), "consent_required".into()));
    assert_eq!(p[2].0, "error_description");
    assert!(
        p[2].1.starts_with("AADSTS65004: The resource owner or authorization server denied the request.\r\nTrace ID: "),
        "{}",
        p[2].1
    );
    assert_eq!(p[3], ("state".into(), "st ate".into()));
    assert!(!sim.is_consented());

    // Accepted: admin_consent, tenant, scope and state, in the page's order.
    let r = decide(&url, "approve").await;
    let p = redirect_params(&r, REDIRECT);
    let expected: Vec<(String, String)> = [
        ("admin_consent", "True"),
        ("tenant", c.tenant_id.as_str()),
        ("scope", GRAPH_DEFAULT),
        ("state", "st ate"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(p, expected);
    assert!(sim.is_consented());
    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, GRAPH_DEFAULT).await;
    assert_eq!(r.status, 200, "{}", r.body);

    sim.set_consented(false);
    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, GRAPH_DEFAULT).await;
    assert_sts_error(&r, 400, "unauthorized_client", 700_016);
    sim.shutdown().await;
}

#[tokio::test]
async fn consent_errors_are_shown_or_redirected_as_documented() {
    let sim = start(|c| c.redirect_uris = vec![REDIRECT.to_string()]).await;
    let c = sim.credentials();
    let base = sim.admin_consent_url();
    let page_error = |r: &Reply, code: &str| {
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.header("location").is_none());
        assert!(r.body.contains(&format!("AADSTS{code}: ")), "{}", r.body);
    };
    // An unknown app, an unregistered redirect URI, a missing one: a page,
    // never a redirect.
    let r = send(
        "GET",
        &consent_url(
            &base,
            "11111111-2222-3333-4444-555555555555",
            Some(GRAPH_DEFAULT),
            REDIRECT,
        ),
        &[],
        None,
    )
    .await;
    page_error(&r, "700016");
    let r = send(
        "GET",
        &consent_url(
            &base,
            &c.client_id,
            Some(GRAPH_DEFAULT),
            "http://127.0.0.1:9999/elsewhere",
        ),
        &[],
        None,
    )
    .await;
    page_error(&r, "50011");
    let r = send(
        "GET",
        &format!("{base}?client_id={}&scope=openid", c.client_id),
        &[],
        None,
    )
    .await;
    page_error(&r, "900144");
    let r = send(
        "GET",
        &format!("{}/nowhere.example/v2.0/adminconsent", sim.login_url()),
        &[],
        None,
    )
    .await;
    page_error(&r, "90002");
    // A missing or foreign scope: redirected with the error.
    let r = send(
        "GET",
        &consent_url(&base, &c.client_id, None, REDIRECT),
        &[],
        None,
    )
    .await;
    let p = redirect_params(&r, REDIRECT);
    assert_eq!(p[1], ("error".into(), "invalid_request".into()));
    assert!(p[2].1.starts_with("AADSTS900144: "), "{}", p[2].1);
    let r = send(
        "GET",
        &consent_url(
            &base,
            &c.client_id,
            Some("https://management.azure.com/.default"),
            REDIRECT,
        ),
        &[],
        None,
    )
    .await;
    let p = redirect_params(&r, REDIRECT);
    assert_eq!(p[1], ("error".into(), "invalid_scope".into()));
    assert!(p[2].1.starts_with("AADSTS70011: "), "{}", p[2].1);
    // A POST without a decision.
    let url = consent_url(&base, &c.client_id, Some(GRAPH_DEFAULT), REDIRECT);
    let r = decide(&url, "maybe").await;
    page_error(&r, "90004");
    assert!(!sim.is_consented());
    // `organizations` stands for the tenant the administrator signs in to.
    let orgs = format!("{}/organizations/v2.0/adminconsent", sim.login_url());
    let r = decide(
        &consent_url(&orgs, &c.client_id, Some(GRAPH_DEFAULT), REDIRECT),
        "approve",
    )
    .await;
    let p = redirect_params(&r, REDIRECT);
    assert_eq!(p[1], ("tenant".into(), c.tenant_id.clone()));
    assert!(sim.is_consented());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_v1_endpoint_answers_with_its_own_parameters() {
    let sim = start(|_| {}).await;
    let c = sim.credentials();
    let base = format!("{}/{}/adminconsent", sim.login_url(), c.tenant_id);
    let url = consent_url(&base, &c.client_id, None, REDIRECT);
    let r = decide(&url, "decline").await;
    let p = redirect_params(&r, REDIRECT);
    assert_eq!(p[0], ("error".into(), "permission_denied".into()));
    assert_eq!(
        p[1],
        (
            "error_description".into(),
            "The admin canceled the request".into()
        )
    );
    let r = decide(&url, "approve").await;
    let p = redirect_params(&r, REDIRECT);
    assert_eq!(
        p,
        vec![
            ("tenant".to_string(), c.tenant_id.clone()),
            ("state".to_string(), "st ate".to_string()),
            ("admin_consent".to_string(), "True".to_string()),
        ]
    );
    assert!(sim.is_consented());
    sim.shutdown().await;
}
