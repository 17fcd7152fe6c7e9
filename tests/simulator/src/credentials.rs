//! The application's credentials as Microsoft Entra ID holds them: the
//! certificates registered on the app ("keyCredentials"), its client secrets
//! ("passwordCredentials") and its federated identity credentials, and how
//! each is shown by Graph (`GET /applications(appId='…')`, `applications.rs`)
//! and used by the token endpoint (`assertions.rs`).
//!
//! Pages relied on:
//! MicrosoftDocs/entra-docs: docs/identity-platform/certificate-credentials.md
//! (registration: "`$base64Thumbprint` - Base64-encoded value of the
//! certificate SHA-1 hash", `"type": "AsymmetricX509Cert"`, `"usage": "Verify"`;
//! the assertion header's `x5t` / `x5t#S256` thumbprints);
//! docs/workload-id/includes/federated-credential-configuration-considerations.md
//! (issuer, subject, audiences);
//! microsoftgraph/microsoft-graph-docs-contrib: api-reference/v1.0/resources/keycredential.md
//! and resources/passwordcredential.md (the JSON shapes).

use ring::digest;
use serde_json::{Value, json};
use x509_cert::der::Decode;
use x509_cert::spki::ObjectIdentifier;

use crate::rng::guid_from;
use crate::util::{b64_encode, iso8601, keyed_hash, pem_decode};

/// rsaEncryption (RFC 8017, A.1): the only key type the simulator verifies.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The audience a federated identity credential takes by default: "The value
/// must be "api://AzureADTokenExchange"" (federated-credential-configuration-considerations.md).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A client secret as Graph lists it in an application's
/// `passwordCredentials` (resources/passwordcredential.md). The secret itself
/// is never shown: Graph returns only its `hint`, "the first three
/// characters of the password".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordCredential {
    pub key_id: String,
    pub display_name: String,
    /// The first three characters of the secret.
    pub hint: String,
    /// Unix seconds.
    pub start: u64,
    /// Unix seconds; the secret is expired from this moment.
    pub end: u64,
}

impl PasswordCredential {
    /// Graph's JSON (resources/passwordcredential.md): `secretText` is only
    /// returned by addPassword, so it is `null` here; `customKeyIdentifier`
    /// is "Do not use", also `null`.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "customKeyIdentifier": null,
            "displayName": self.display_name,
            "endDateTime": iso8601(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": null,
            "startDateTime": iso8601(self.start),
        })
    }
}

/// A federated identity credential on the app registration: Entra exchanges an
/// external token whose `iss`, `sub` and `aud` match it ("the *issuer* and
/// *subject* values of the federated identity credential are checked against
/// the `issuer` and `subject` claims provided in the external token";
/// "*audiences* lists the audiences that can appear in the external token",
/// federated-credential-configuration-considerations.md). Entra checks the
/// external token's signature against the keys the issuer publishes at its
/// OpenID Connect endpoint; the simulator takes the issuer's signing
/// certificate instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Must equal the external token's `iss` exactly.
    pub issuer: String,
    /// Must equal the external token's `sub` exactly ("matching is done
    /// using a case-sensitive comparison").
    pub subject: String,
    /// Default `["api://AzureADTokenExchange"]`.
    pub audiences: Vec<String>,
    /// The PEM certificate whose RSA key signs the issuer's tokens.
    pub issuer_certificate_pem: String,
}

impl FederatedCredential {
    /// A credential trusting `subject` of `issuer`, with the default audience.
    pub fn new(issuer: &str, subject: &str, issuer_certificate_pem: &str) -> FederatedCredential {
        FederatedCredential {
            issuer: issuer.to_string(),
            subject: subject.to_string(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_string()],
            issuer_certificate_pem: issuer_certificate_pem.to_string(),
        }
    }
}

/// An X.509 certificate, parsed once: what the token endpoint needs to find
/// and use it, and what Graph shows of it.
#[derive(Debug, Clone)]
pub(crate) struct ParsedCert {
    pub der: Vec<u8>,
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
    /// The RSAPublicKey (PKCS #1) DER ring verifies with; `None` for a key
    /// that is not RSA.
    pub rsa_public_key: Option<Vec<u8>>,
    /// Unix seconds.
    pub not_before: u64,
    pub not_after: u64,
    /// RFC 4514, e.g. `CN=m365sync test app`: the display name the Entra
    /// admin center gives an uploaded certificate.
    pub subject: String,
    /// The keyCredential's `keyId`, derived from the certificate.
    pub key_id: String,
}

/// Parses a PEM certificate; the error says what is wrong.
pub(crate) fn parse_certificate(pem: &str) -> Result<ParsedCert, String> {
    let der = pem_decode(pem, "CERTIFICATE")
        .ok_or_else(|| "no PEM block labelled CERTIFICATE with valid base64".to_string())?;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| format!("not a DER X.509 certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let spki = &tbs.subject_public_key_info;
    let rsa_public_key = (spki.algorithm.oid == RSA_ENCRYPTION)
        .then(|| spki.subject_public_key.raw_bytes().to_vec());
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der)
        .as_ref()
        .to_vec();
    let sha256 = digest::digest(&digest::SHA256, &der).as_ref().to_vec();
    let key_id = guid_from(
        keyed_hash(0x006b_6579_4964, &sha256),
        keyed_hash(0x006b_6579_4965, &sha256),
    );
    Ok(ParsedCert {
        not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
        not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
        subject: tbs.subject.to_string(),
        rsa_public_key,
        sha1,
        sha256,
        key_id,
        der,
    })
}

impl ParsedCert {
    /// The keyCredential Graph lists for an uploaded certificate
    /// (resources/keycredential.md): `customKeyIdentifier` "defaults to the
    /// thumbprint of the certificate" — base64 of its SHA-1 hash, as
    /// certificate-credentials.md registers it; `key`, "the certificate's raw
    /// data … converted to Base64 string", only when `with_key` (keyCredentials
    /// named in `$select` on a single object, "otherwise, it is always `null`").
    pub fn key_credential(&self, with_key: bool) -> Value {
        json!({
            "customKeyIdentifier": b64_encode(&self.sha1),
            "displayName": self.subject,
            "endDateTime": iso8601(self.not_after),
            "key": if with_key { Value::String(b64_encode(&self.der)) } else { Value::Null },
            "keyId": self.key_id,
            "startDateTime": iso8601(self.not_before),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        })
    }
}

/// A federated identity credential with its issuer's key parsed.
#[derive(Debug, Clone)]
pub(crate) struct ParsedFederated {
    pub credential: FederatedCredential,
    pub issuer_key: ParsedCert,
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The test credentials in tests/fixtures/credentials (see its README).
    pub const APP_CERT: &str = include_str!("../../fixtures/credentials/app.cert.pem");
    pub const APP_KEY: &str = include_str!("../../fixtures/credentials/app.key.pem");
    pub const OTHER_CERT: &str = include_str!("../../fixtures/credentials/other.cert.pem");
    pub const OTHER_KEY: &str = include_str!("../../fixtures/credentials/other.key.pem");
    pub const ISSUER_CERT: &str = include_str!("../../fixtures/credentials/issuer.cert.pem");
    pub const ISSUER_KEY: &str = include_str!("../../fixtures/credentials/issuer.key.pem");
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::util::hex_upper;

    #[test]
    fn fixture_certificates_parse() {
        let c = parse_certificate(APP_CERT).expect("app cert");
        assert_eq!(c.subject, "CN=m365sync test app");
        assert!(c.rsa_public_key.is_some());
        assert!(c.not_after > c.not_before);
        assert_eq!(c.sha1.len(), 20);
        assert_eq!(c.sha256.len(), 32);
        assert!(crate::rng::is_guid(&c.key_id));
        // `openssl x509 -fingerprint -sha1` of the fixture.
        assert_eq!(
            hex_upper(&c.sha1),
            "3038BA5C5E2FE83A3750D5FD6C03386CC4215901"
        );
        let k = c.key_credential(false);
        assert_eq!(k["type"], "AsymmetricX509Cert");
        assert_eq!(k["usage"], "Verify");
        assert_eq!(k["displayName"], "CN=m365sync test app");
        assert!(k["key"].is_null());
        assert_eq!(k["customKeyIdentifier"], b64_encode(&c.sha1));
        assert!(
            c.key_credential(true)["key"]
                .as_str()
                .is_some_and(|s| s.starts_with("MII"))
        );
        for pem in [OTHER_CERT, ISSUER_CERT] {
            assert!(parse_certificate(pem).is_ok());
        }
        assert_ne!(
            parse_certificate(OTHER_CERT).map(|c| c.key_id).ok(),
            Some(c.key_id)
        );
    }

    #[test]
    fn bad_certificates_are_refused_not_panicked_on() {
        assert!(parse_certificate("").is_err());
        assert!(parse_certificate(APP_KEY).is_err());
        assert!(
            parse_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .is_err()
        );
        let truncated = APP_CERT.replacen("MII", "MIA", 1);
        assert!(parse_certificate(&truncated).is_err());
    }
}
