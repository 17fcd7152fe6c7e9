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

/// The lines of a key file's base64: none may show in an error.
fn key_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect()
}

fn pair(certificate: PathBuf, key: PathBuf) -> TenantCredentials {
    TenantCredentials::new(
        CLIENT,
        Credential::Certificate {
            certificate_file: certificate,
            key_file: key,
        },
        AUDIENCE.to_string(),
    )
}

fn refusal(credentials: &TenantCredentials) -> String {
    match credentials.client_assertion(AUDIENCE) {
        Err(CredentialError::Unreadable(why)) => why,
        Ok(_) => panic!("signed"),
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_before_signing() {
    // The matching pairs sign, and pass the up-front check.
    for name in ["app", "other"] {
        let credential = Credential::Certificate {
            certificate_file: fixture(&format!("{name}.cert.pem")),
            key_file: fixture(&format!("{name}.key.pem")),
        };
        check_credential(&credential).unwrap();
        TenantCredentials::new(CLIENT, credential, AUDIENCE.to_string())
            .client_assertion(AUDIENCE)
            .unwrap();
    }
    for (certificate, key) in [("other", "app"), ("app", "other"), ("app", "issuer")] {
        let (certificate_file, key_file) = (
            fixture(&format!("{certificate}.cert.pem")),
            fixture(&format!("{key}.key.pem")),
        );
        let credential = Credential::Certificate {
            certificate_file: certificate_file.clone(),
            key_file: key_file.clone(),
        };
        let why = refusal(&pair(certificate_file.clone(), key_file.clone()));
        assert_eq!(
            why,
            format!(
                "the private key in {} does not belong to the certificate in {} (their public \
                 keys differ): certificate_key_file must be the private key the certificate in \
                 certificate_file was made with",
                key_file.display(),
                certificate_file.display()
            )
        );
        for line in key_lines(&format!("{key}.key.pem")) {
            assert!(!why.contains(&line), "{why}");
        }
        let Err(CredentialError::Unreadable(up_front)) = check_credential(&credential) else {
            panic!("the up-front check refuses it too");
        };
        assert_eq!(up_front, why);
    }
}

/// A `Time` as RFC 5280 4.1.2.5 encodes it: UTCTime through 2049, GeneralizedTime after.
fn time(year: u16) -> x509_cert::time::Time {
    use x509_cert::der::asn1::{GeneralizedTime, UtcTime};
    let date = x509_cert::der::DateTime::new(year, 1, 1, 0, 0, 0).unwrap();
    if year <= 2049 {
        x509_cert::time::Time::UtcTime(UtcTime::from_date_time(date).unwrap())
    } else {
        x509_cert::time::Time::GeneralTime(GeneralizedTime::from_date_time(date))
    }
}

/// `app.cert.pem` with another validity period, re-signed with `app.key.pem`: a genuine
/// self-signed certificate of the app's key, as `openssl req -x509` makes one, written to
/// `dir` in PEM.
fn app_certificate_valid(dir: &std::path::Path, from: u16, to: u16) -> PathBuf {
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use x509_cert::der::asn1::BitString;
    use x509_cert::der::{Decode, Encode};

    let pem = std::fs::read(fixture("app.cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let mut cert = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
    // The fixture is signed sha256WithRSAEncryption (openssl req -sha256): the same here.
    assert_eq!(
        cert.signature_algorithm.oid.to_string(),
        "1.2.840.113549.1.1.11"
    );
    cert.tbs_certificate.validity.not_before = time(from);
    cert.tbs_certificate.validity.not_after = time(to);
    let key = PrivatePkcs8KeyDer::from_pem_file(fixture("app.key.pem")).unwrap();
    let key = RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()).unwrap();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        &cert.tbs_certificate.to_der().unwrap(),
        &mut signature,
    )
    .unwrap();
    cert.signature = BitString::from_bytes(&signature).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(cert.to_der().unwrap());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let file = dir.join(format!("app-{from}-{to}.cert.pem"));
    std::fs::write(&file, pem).unwrap();
    file
}

#[test]
fn a_certificate_outside_its_validity_period_is_refused_with_its_dates() {
    let dir = tempfile::tempdir().unwrap();
    // Still valid (until 9999): the same key, another certificate; it signs.
    let current = app_certificate_valid(dir.path(), 2020, 9999);
    pair(current.clone(), fixture("app.key.pem"))
        .client_assertion(AUDIENCE)
        .unwrap();

    let expired = app_certificate_valid(dir.path(), 2020, 2021);
    let credentials = pair(expired.clone(), fixture("app.key.pem"));
    let why = refusal(&credentials);
    assert_eq!(
        why,
        format!(
            "the certificate in {} expired on 2021-01-01T00:00:00Z (notAfter; it was valid \
             from 2020-01-01T00:00:00Z): the identity platform refuses assertions signed with \
             an expired certificate's key (AADSTS700027); register a new certificate on the \
             app and point certificate_file and certificate_key_file at it and its key",
            expired.display()
        )
    );
    let Err(CredentialError::Unreadable(up_front)) = check_credential(&credentials.credential)
    else {
        panic!("the up-front check refuses it too");
    };
    assert_eq!(up_front, why);

    let future = app_certificate_valid(dir.path(), 2100, 2101);
    let why = refusal(&pair(future.clone(), fixture("app.key.pem")));
    let prefix = format!(
        "the certificate in {} is not valid yet: its validity starts 2100-01-01T00:00:00Z \
         (notBefore; it ends 2101-01-01T00:00:00Z) and this machine's clock says 20",
        future.display()
    );
    assert!(why.starts_with(&prefix), "{why}");
    for line in key_lines("app.key.pem") {
        assert!(!why.contains(&line), "{why}");
    }

    // A wrong key is named before an expired certificate: both are to be replaced.
    let why = refusal(&pair(expired, fixture("other.key.pem")));
    assert!(why.contains("does not belong"), "{why}");
}

#[test]
fn the_validity_period_includes_both_its_ends() {
    use std::time::Duration;
    use x509_cert::der::Decode;

    let pem = std::fs::read(fixture("app.cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let validity = x509_cert::Certificate::from_der(der.as_ref())
        .unwrap()
        .tbs_certificate
        .validity;
    let (start, end) = (
        validity.not_before.to_system_time(),
        validity.not_after.to_system_time(),
    );
    let second = Duration::from_secs(1);
    let load = |now| {
        SigningCertificate::load(&fixture("app.cert.pem"), &fixture("app.key.pem"), now).map(|_| ())
    };
    load(start).unwrap();
    load(end).unwrap();
    let Err(CredentialError::Unreadable(why)) = load(end + second) else {
        panic!("expired a second after notAfter");
    };
    assert!(why.contains("expired on"), "{why}");
    let Err(CredentialError::Unreadable(why)) = load(start - second) else {
        panic!("not valid a second before notBefore");
    };
    assert!(why.contains("not valid yet"), "{why}");
}

#[test]
fn a_certificate_that_is_not_x509_or_not_rsa_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.cert.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let why = refusal(&pair(garbage.clone(), fixture("app.key.pem")));
    assert!(
        why.starts_with(&format!("certificate file {}", garbage.display()))
            && why.contains("not an X.509 certificate"),
        "{why}"
    );

    // The app's certificate claiming an EC public key (id-ecPublicKey): never a PS256 signer.
    use x509_cert::der::{Decode, Encode};
    let pem = std::fs::read(fixture("app.cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let mut cert = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
    cert.tbs_certificate.subject_public_key_info.algorithm.oid =
        x509_cert::spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    let body = base64::engine::general_purpose::STANDARD.encode(cert.to_der().unwrap());
    let ec = dir.path().join("ec.cert.pem");
    std::fs::write(
        &ec,
        format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    let why = refusal(&pair(ec.clone(), fixture("app.key.pem")));
    assert_eq!(
        why,
        format!(
            "certificate file {} (its public key is not an RSA key (algorithm \
             1.2.840.10045.2.1): client assertions are signed PS256, with an RSA key)",
            ec.display()
        )
    );
}
