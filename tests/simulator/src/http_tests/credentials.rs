//! HTTP tests of client authentication by assertion at the token endpoint:
//! certificate credentials (certificate-credentials.md) and workload identity
//! federation (workload-identity-federation.md), and of an app without a
//! registered secret.

use serde_json::{Value, json};

use super::{FORM, Reply, assert_sts_error, form, send, token_reply};
use crate::assertions::{
    Alg, JWT_BEARER, client_assertion_for_tests, external_token_for_tests, sign_for_tests,
    thumbprint_sha256,
};
use crate::credentials::fixtures::*;
use crate::util::unix_now;
use crate::{FederatedCredential, SimConfig, Simulator, TOKEN_EXCHANGE_AUDIENCE, TenantSpec};

const ISSUER: &str = "https://oidc.example.test/cluster-1";
const SUBJECT: &str = "system:serviceaccount:sync:m365sync";
const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";

async fn start(tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::new(TenantSpec::new(42, 5));
    config.certificates = vec![APP_CERT.to_string()];
    config.federated_credentials = vec![FederatedCredential::new(ISSUER, SUBJECT, ISSUER_CERT)];
    tweak(&mut config);
    Simulator::start(config).await.expect("start")
}

/// POSTs a client-credentials request with `extra` form fields.
async fn token_with(sim: &Simulator, tenant: &str, extra: &[(&str, &str)]) -> Reply {
    let c = sim.credentials();
    let mut pairs = vec![
        ("client_id", c.client_id.as_str()),
        ("scope", GRAPH_DEFAULT),
        ("grant_type", "client_credentials"),
    ];
    pairs.extend_from_slice(extra);
    send(
        "POST",
        &format!("{}/{tenant}/oauth2/v2.0/token", sim.login_url()),
        &[FORM],
        Some(&form(&pairs)),
    )
    .await
}

async fn with_assertion(sim: &Simulator, assertion: &str) -> Reply {
    let tenant = sim.credentials().tenant_id;
    token_with(
        sim,
        &tenant,
        &[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn app_assertion(sim: &Simulator) -> String {
    client_assertion_for_tests(
        APP_KEY,
        APP_CERT,
        &sim.credentials().client_id,
        &sim.token_url(),
        300,
    )
    .expect("sign")
}

/// The access token works at Graph.
async fn graph_ok(sim: &Simulator, r: &Reply) {
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let auth = format!("Bearer {at}");
    let g = send(
        "GET",
        &format!("{}/v1.0/organization", sim.graph_url()),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    // The default roles (User.Read.All) do not cover the organization: a 403
    // proves the token itself was accepted.
    assert!(g.status == 200 || g.status == 403, "{}", g.body);
    let u = send(
        "GET",
        &format!("{}/v1.0/users?$top=1", sim.graph_url()),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(u.status, 200, "{}", u.body);
}

#[tokio::test]
async fn a_certificate_assertion_gets_a_token() {
    let sim = start(|_| {}).await;
    let r = with_assertion(&sim, &app_assertion(&sim)).await;
    graph_ok(&sim, &r).await;
    // By domain name in the path and in `aud`, with RS256 and `x5t`.
    let domain = sim.tenant().default_domain().to_string();
    let c = sim.credentials();
    let now = unix_now();
    let a = sign_for_tests(
        APP_KEY,
        Alg::Rs256,
        &json!({"typ": "JWT", "x5t": crate::assertions::thumbprint_sha1(APP_CERT).expect("x5t")}),
        &json!({
            "aud": format!("{}/{domain}/oauth2/v2.0/token", sim.login_url()),
            "iss": c.client_id, "sub": c.client_id, "jti": "one", "nbf": now, "exp": now + 60,
        }),
    )
    .expect("sign");
    let r = token_with(
        &sim,
        &domain,
        &[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The assertion is never recorded.
    assert!(sim.requests().iter().all(|q| !q.query.contains(&a)));
    assert_eq!(sim.assertion_jti_reuses(), 0);
    let r = token_with(
        &sim,
        &domain,
        &[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(sim.assertion_jti_reuses(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_certificate_assertions_get_their_aadsts_errors() {
    let sim = start(|_| {}).await;
    let c = sim.credentials();
    let now = unix_now();
    let claims = |aud: &str| json!({"aud": aud, "iss": c.client_id, "sub": c.client_id, "jti": "j", "nbf": now, "exp": now + 300});
    let header = json!({"x5t#S256": thumbprint_sha256(APP_CERT).expect("t")});
    let token_url = sim.token_url();

    // An unregistered certificate; another key behind the registered
    // thumbprint.
    let other = client_assertion_for_tests(OTHER_KEY, OTHER_CERT, &c.client_id, &token_url, 300)
        .expect("sign");
    let r = with_assertion(&sim, &other).await;
    assert_sts_error(&r, 401, "invalid_client", 700_027);
    assert!(
        r.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("is not registered on application"))
    );
    let forged = sign_for_tests(OTHER_KEY, Alg::Ps256, &header, &claims(&token_url)).expect("sign");
    assert_sts_error(
        &with_assertion(&sim, &forged).await,
        401,
        "invalid_client",
        700_027,
    );
    // Wrong audience: another tenant's endpoint, the v1 endpoint.
    let wrong = sign_for_tests(
        APP_KEY,
        Alg::Ps256,
        &header,
        &claims("https://login.microsoftonline.com/organizations/oauth2/v2.0/token"),
    )
    .expect("sign");
    assert_sts_error(
        &with_assertion(&sim, &wrong).await,
        401,
        "invalid_client",
        700_023,
    );
    // Expired.
    let mut expired = claims(&token_url);
    expired["nbf"] = json!(now - 900);
    expired["exp"] = json!(now - 1);
    let expired = sign_for_tests(APP_KEY, Alg::Ps256, &header, &expired).expect("sign");
    assert_sts_error(
        &with_assertion(&sim, &expired).await,
        401,
        "invalid_client",
        700_024,
    );
    // Not a JWT; HS256; no thumbprint.
    assert_sts_error(
        &with_assertion(&sim, "abc").await,
        400,
        "invalid_request",
        50_027,
    );
    let no_thumb =
        sign_for_tests(APP_KEY, Alg::Ps256, &json!({}), &claims(&token_url)).expect("sign");
    assert_sts_error(
        &with_assertion(&sim, &no_thumb).await,
        401,
        "invalid_client",
        5_002_723,
    );

    // The request itself: a missing type or assertion, an unknown type, a
    // secret as well.
    let a = app_assertion(&sim);
    let tenant = c.tenant_id.clone();
    let r = token_with(&sim, &tenant, &[("client_assertion", &a)]).await;
    assert_sts_error(&r, 400, "invalid_request", 900_144);
    assert!(
        r.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("'client_assertion_type'"))
    );
    let r = token_with(&sim, &tenant, &[("client_assertion_type", JWT_BEARER)]).await;
    assert_sts_error(&r, 400, "invalid_request", 900_144);
    let r = token_with(
        &sim,
        &tenant,
        &[
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_sts_error(&r, 400, "invalid_request", 90_023);
    let r = token_with(
        &sim,
        &tenant,
        &[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_sts_error(&r, 400, "invalid_request", 90_023);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_federated_token_gets_a_token_when_a_credential_matches() {
    let sim = start(|_| {}).await;
    let ext = |iss: &str, sub: &str, aud: &str| {
        external_token_for_tests(ISSUER_KEY, iss, sub, aud, 600).expect("sign")
    };
    let r = with_assertion(&sim, &ext(ISSUER, SUBJECT, TOKEN_EXCHANGE_AUDIENCE)).await;
    graph_ok(&sim, &r).await;
    let r = with_assertion(
        &sim,
        &ext(
            "https://other.example.test",
            SUBJECT,
            TOKEN_EXCHANGE_AUDIENCE,
        ),
    )
    .await;
    assert_sts_error(&r, 401, "invalid_client", 700_211);
    let r = with_assertion(&sim, &ext(ISSUER, SUBJECT, "api://AzureADMyOrg")).await;
    assert_sts_error(&r, 401, "invalid_client", 700_212);
    let r = with_assertion(
        &sim,
        &ext(
            ISSUER,
            "system:serviceaccount:other:x",
            TOKEN_EXCHANGE_AUDIENCE,
        ),
    )
    .await;
    assert_sts_error(&r, 401, "invalid_client", 700_213);
    let desc = r.json()["error_description"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        desc.contains("subject 'system:serviceaccount:other:x'"),
        "{desc}"
    );
    // Signed by someone else than the issuer.
    let forged = external_token_for_tests(APP_KEY, ISSUER, SUBJECT, TOKEN_EXCHANGE_AUDIENCE, 600)
        .expect("sign");
    assert_sts_error(
        &with_assertion(&sim, &forged).await,
        400,
        "invalid_request",
        50_027,
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_app_without_a_secret_refuses_every_secret() {
    let sim = start(|c| c.secret_registered = false).await;
    let c = sim.credentials();
    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, GRAPH_DEFAULT).await;
    assert_sts_error(&r, 401, "invalid_client", 7_000_215);
    let r = with_assertion(&sim, &app_assertion(&sim)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_secret_past_its_end_is_expired() {
    let sim = start(|c| {
        for p in &mut c.password_credentials {
            p.end = unix_now() - 60;
        }
    })
    .await;
    let c = sim.credentials();
    let r = token_reply(&sim, &c.tenant_id, &c.client_secret, GRAPH_DEFAULT).await;
    assert_sts_error(&r, 401, "invalid_client", 7_000_222);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_certificates_in_the_config_are_refused_at_start() {
    let mut config = SimConfig::new(TenantSpec::new(42, 5));
    config.certificates = vec!["not a certificate".into()];
    let e = Simulator::start(config).await.expect_err("bad pem");
    assert!(e.to_string().contains("certificates[0]"), "{e}");
    let mut config = SimConfig::new(TenantSpec::new(42, 5));
    config.federated_credentials = vec![FederatedCredential::new(ISSUER, SUBJECT, APP_KEY)];
    assert!(Simulator::start(config).await.is_err());
}

#[tokio::test]
async fn discovery_lists_private_key_jwt() {
    let sim = start(|_| {}).await;
    let tid = sim.credentials().tenant_id;
    let r = send(
        "GET",
        &format!(
            "{}/{tid}/v2.0/.well-known/openid-configuration",
            sim.login_url()
        ),
        &[],
        None,
    )
    .await;
    let v: Value = r.json();
    let methods = v["token_endpoint_auth_methods_supported"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(methods.contains(&json!("private_key_jwt")), "{}", r.body);
    sim.shutdown().await;
}
