//! Signing in without a client secret, end to end: the real component in the host, its
//! token requests to the simulator's token endpoint (which verifies client assertions as
//! Microsoft documents them). A certificate's key stays in the host (the assertion is all
//! the sandbox gets); a federated token file is read again for every run; refusals name
//! the AADSTS error and never show a key or a token.

use std::path::PathBuf;

use m365sync_e2e::*;
use m365sync_service::config::Credential;
use m365sync_service::runtime::RunError;
use m365sync_service::wit::types::{AuthFailure, SyncError};
use m365sync_simulator::assertions::external_token_for_tests;
use m365sync_simulator::{FederatedCredential, TOKEN_EXCHANGE_AUDIENCE};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/credentials")
        .join(name)
}

fn pem(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn auth_failure(error: &RunError) -> (AuthFailure, Option<u32>, String) {
    match error.engine_error() {
        Some(SyncError::Auth(auth)) => (auth.failure, auth.aadsts, auth.message.clone()),
        other => panic!("a sign-in failure, not {other:?}"),
    }
}

const ISSUER: &str = "https://oidc.example.test/cluster-1";
const SUBJECT: &str = "system:serviceaccount:m365sync:sync";

on_both_stores! {
    async fn a_certificate_signs_in_and_the_key_never_leaves_the_host(db) {
        let simulator = simulator_with(120, |config| {
            config.certificates = vec![pem("app.cert.pem")];
            config.secret_registered = false;
        })
        .await;
        let runtime = runtime();
        let mut run = tenant_run(&simulator);
        run.credential = Credential::Certificate {
            certificate_file: fixture("app.cert.pem"),
            key_file: fixture("app.key.pem"),
        };
        let report = sync(&runtime, &run, &db).await.expect("signed in with the certificate");
        assert_eq!(users(&report).created, 120);
        assert_eq!(people_count(&db, &run.tenant.key).await, 120);
        // Each token request carried an assertion, and never a secret.
        let tokens: Vec<_> = simulator
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
            .collect();
        assert!(!tokens.is_empty());

        // A certificate the app does not hold is refused, named, and nothing of the key shows.
        run.credential = Credential::Certificate {
            certificate_file: fixture("other.cert.pem"),
            key_file: fixture("other.key.pem"),
        };
        let error = sync(&runtime, &run, &db).await.expect_err("an unknown certificate");
        let (failure, code, message) = auth_failure(&error);
        assert_eq!((failure, code), (AuthFailure::InvalidAssertion, Some(700_027)), "{message}");
        let shown = error.to_string();
        let key = pem("other.key.pem");
        let key_line = key.lines().nth(1).unwrap();
        assert!(!shown.contains(key_line), "{shown}");
        assert!(!shown.contains("eyJ"), "no assertion in the error: {shown}");
    }
}

on_both_stores! {
    async fn a_federated_token_file_is_read_again_for_each_run(db) {
        let simulator = simulator_with(40, |config| {
            config.federated_credentials =
                vec![FederatedCredential::new(ISSUER, SUBJECT, &pem("issuer.cert.pem"))];
            config.secret_registered = false;
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("azure-identity-token");
        let write_token = |subject: &str, lifetime: u64| {
            let token = external_token_for_tests(
                &pem("issuer.key.pem"),
                ISSUER,
                subject,
                TOKEN_EXCHANGE_AUDIENCE,
                lifetime,
            )
            .unwrap();
            std::fs::write(&token_file, format!("{token}\n")).unwrap();
            token
        };
        let runtime = runtime();
        let mut run = tenant_run(&simulator);
        run.credential = Credential::Federated {
            token_file: token_file.clone(),
        };
        write_token(SUBJECT, 3600);
        sync(&runtime, &run, &db).await.expect("signed in with the federated token");
        assert_eq!(people_count(&db, &run.tenant.key).await, 40);

        // The identity provider rotates the file: the next run reads the new token.
        let wrong = write_token("system:serviceaccount:other:sa", 3600);
        let error = sync(&runtime, &run, &db).await.expect_err("a subject with no credential");
        let (failure, code, message) = auth_failure(&error);
        assert_eq!((failure, code), (AuthFailure::InvalidAssertion, Some(700_213)), "{message}");
        assert!(!error.to_string().contains(&wrong), "{error}");

        write_token(SUBJECT, 3600);
        run.options.mode = m365sync_service::wit::types::SyncMode::Incremental;
        sync(&runtime, &run, &db).await.expect("the rotated token signs in");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_file_is_named_before_any_request_with_a_secret() {
    let simulator = simulator_with(5, |config| {
        config.certificates = vec![pem("app.cert.pem")];
    })
    .await;
    let db = TestStore::sqlite().await;
    let mut run = tenant_run(&simulator);
    let missing = fixture("nowhere.key.pem");
    run.credential = Credential::Certificate {
        certificate_file: fixture("app.cert.pem"),
        key_file: missing.clone(),
    };
    let error = sync(&runtime(), &run, &db).await.expect_err("no key");
    let shown = error.to_string();
    assert!(
        matches!(error.engine_error(), Some(SyncError::Secret(_))),
        "{shown}"
    );
    assert!(shown.contains("nowhere.key.pem"), "{shown}");
    assert!(
        simulator
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/oauth2/v2.0/token")),
        "no token request without an assertion"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_is_not_the_certificates_is_named_before_any_request() {
    // Signed anyway, the assertion would be refused at the token endpoint with an
    // AADSTS700027 that names neither file.
    let simulator = simulator_with(5, |config| {
        config.certificates = vec![pem("app.cert.pem")];
        config.secret_registered = false;
    })
    .await;
    let db = TestStore::sqlite().await;
    let mut run = tenant_run(&simulator);
    run.credential = Credential::Certificate {
        certificate_file: fixture("app.cert.pem"),
        key_file: fixture("other.key.pem"),
    };
    let error = sync(&runtime(), &run, &db)
        .await
        .expect_err("not the certificate's key");
    let shown = error.to_string();
    assert!(
        matches!(error.engine_error(), Some(SyncError::Secret(_))),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "the private key in {} does not belong to the certificate in {} (their public keys \
             differ)",
            fixture("other.key.pem").display(),
            fixture("app.cert.pem").display()
        )),
        "{shown}"
    );
    let key = pem("other.key.pem");
    assert!(
        key.lines()
            .filter(|l| !l.starts_with("-----"))
            .all(|l| !shown.contains(l)),
        "{shown}"
    );
    assert!(
        simulator
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/oauth2/v2.0/token")),
        "no token request with a key that is not the certificate's"
    );
}
