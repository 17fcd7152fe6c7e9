//! Client assertions as the identity platform checks them: read back with the fixture
//! certificate's public key (tests/fixtures/credentials), claims and header as documented.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use m365sync_config::{Credential, SecretSource};
use m365sync_wit::CredentialError;
use sha2::{Digest, Sha256};

use super::*;

const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const AUDIENCE: &str =
    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/credentials")
        .join(name)
}

fn certificate() -> TenantCredentials {
    TenantCredentials::new(
        CLIENT,
        Credential::Certificate {
            certificate_file: fixture("app.cert.pem"),
            key_file: fixture("app.key.pem"),
        },
        AUDIENCE.to_string(),
    )
}

/// The certificate's public key (the fixture's `app.pubkey.pem`, from openssl).
fn decoding_key() -> DecodingKey {
    DecodingKey::from_rsa_pem(&std::fs::read(fixture("app.pubkey.pem")).unwrap()).unwrap()
}

#[test]
fn a_certificate_assertion_is_signed_ps256_with_the_documented_header_and_claims() {
    let assertion = certificate().client_assertion(AUDIENCE).unwrap();
    let header = jsonwebtoken::decode_header(&assertion).unwrap();
    assert_eq!(header.alg, Algorithm::PS256);
    let pem = std::fs::read(fixture("app.cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(
        header.x5t_s256.as_deref(),
        Some(
            URL_SAFE_NO_PAD
                .encode(Sha256::digest(der.as_ref()))
                .as_str()
        )
    );
    let mut validation = Validation::new(Algorithm::PS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[CLIENT]);
    validation.sub = Some(CLIENT.to_string());
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let token = jsonwebtoken::decode::<serde_json::Value>(&assertion, &decoding_key(), &validation)
        .expect("the certificate's key verifies it");
    let claims = token.claims;
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - nbf, ASSERTION_LIFETIME_SECS);
    let again = certificate().client_assertion(AUDIENCE).unwrap();
    let jti = |a: &str| {
        jsonwebtoken::decode::<serde_json::Value>(a, &decoding_key(), &validation)
            .unwrap()
            .claims["jti"]
            .clone()
    };
    assert_ne!(jti(&assertion), jti(&again), "a fresh jti each time");
    // No assertion for another audience: a sandbox cannot have one made for elsewhere.
    let Err(CredentialError::NotConfigured(why)) =
        certificate().client_assertion("https://login.example.com/other/oauth2/v2.0/token")
    else {
        panic!("another audience is refused");
    };
    assert!(why.contains("only"), "{why}");
}

#[test]
fn a_federated_token_is_read_from_its_file_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "eyJ.first.token\n").unwrap();
    let credentials = TenantCredentials::new(
        CLIENT,
        Credential::Federated {
            token_file: file.clone(),
        },
        AUDIENCE.to_string(),
    );
    assert_eq!(
        credentials.client_assertion(AUDIENCE).unwrap(),
        "eyJ.first.token"
    );
    std::fs::write(&file, "eyJ.rotated.token").unwrap();
    assert_eq!(
        credentials.client_assertion(AUDIENCE).unwrap(),
        "eyJ.rotated.token"
    );
    std::fs::write(&file, "  \n").unwrap();
    let Err(CredentialError::Unreadable(why)) = credentials.client_assertion(AUDIENCE) else {
        panic!("an empty token is refused");
    };
    assert!(
        why.contains("federated token file") && why.contains("empty"),
        "{why}"
    );
}

#[test]
fn unusable_files_are_named_and_their_content_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("key.pem");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGJ5dGVz\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases = [
        (
            Credential::Certificate {
                certificate_file: fixture("app.cert.pem"),
                key_file: not_a_key.clone(),
            },
            "not an RSA private key",
        ),
        (
            Credential::Certificate {
                certificate_file: fixture("app.key.pem"),
                key_file: fixture("app.key.pem"),
            },
            "no PEM CERTIFICATE block",
        ),
        (
            Credential::Certificate {
                certificate_file: dir.path().join("missing.pem"),
                key_file: fixture("app.key.pem"),
            },
            "missing.pem",
        ),
        (
            Credential::Federated {
                token_file: dir.path().to_path_buf(),
            },
            "not a regular file",
        ),
    ];
    for (credential, expected) in cases {
        let Err(CredentialError::Unreadable(why)) =
            TenantCredentials::new(CLIENT, credential, AUDIENCE.to_string())
                .client_assertion(AUDIENCE)
        else {
            panic!("refused: {expected}");
        };
        assert!(why.contains(expected), "{expected:?} not in {why}");
        assert!(!why.contains("c2VjcmV0"), "{why}");
    }
    let secret = TenantCredentials::new(
        CLIENT,
        SecretSource::Value("s".into()).into(),
        AUDIENCE.to_string(),
    );
    assert!(matches!(
        secret.client_assertion(AUDIENCE),
        Err(CredentialError::NotConfigured(_))
    ));
}
