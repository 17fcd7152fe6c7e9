//! `m365sync:engine/credentials`: client assertions for the one tenant a sandbox runs for.
//!
//! A certificate credential: the host signs a JWT with the certificate's private key, as
//! the identity platform documents for certificate credentials (MicrosoftDocs/entra-docs:
//! docs/identity-platform/certificate-credentials.md, "Assertion format"): header `alg`
//! PS256, `typ` JWT and `x5t#S256` (the base64url SHA-256 thumbprint of the certificate's
//! DER); claims `aud` (the token endpoint the assertion is for), `iss` = `sub` = the client
//! id, a fresh `jti`, `nbf`, `iat`, and an `exp` ten minutes on. The key and the
//! certificate are read from their files for each assertion (a rotated certificate is
//! picked up by the next sign-in) and never leave the host: the sandbox gets the assertion
//! for one token request.
//!
//! Before it signs, the host checks the pair as the identity platform would find it only
//! at sign-in, with an AADSTS700027 that names neither file: the private key must be the
//! certificate's (the public key derived from it, RSA modulus and exponent, is the one in
//! the certificate's SubjectPublicKeyInfo), and the certificate must be within its validity
//! period (the service refuses an assertion signed with an expired certificate's key:
//! AADSTS700027 "[Reason - The key used is expired.]"). [`check_credential`] makes the same
//! checks for a caller that wants them before any run.
//!
//! A federated credential (workload identity federation, docs/workload-id/): the assertion
//! is the token an outside identity provider wrote to a file (a Kubernetes projected
//! service account token, a CI job's OIDC token), re-read for each sign-in since it is
//! rotated under us.
//!
//! Files are read as secret files are (regular files only, bounded, without blocking), and
//! errors name the file and what is wrong with it, never its content.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m365sync_config::Credential;
use m365sync_wit::CredentialError;
use ring::rsa::PublicKeyComponents;
use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::UintRef;
use x509_cert::der::{DateTime, Decode, Reader, SliceReader};
use x509_cert::spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::Validity;

use crate::capabilities::secrets::read_secret_file;

/// How long a signed assertion is good for: long enough for clock skew and a slow token
/// request, short enough to be useless soon after.
pub const ASSERTION_LIFETIME_SECS: u64 = 600;

/// The credential of one tenant's app.
pub struct TenantCredentials {
    client_id: String,
    credential: Credential,
    /// The tenant's token endpoint: the only audience an assertion is made for, so a
    /// sandbox cannot have one signed for any other service.
    token_endpoint: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

impl TenantCredentials {
    /// The credential of `client_id` signing in at `token_endpoint`
    /// (`{login}/{tenant}/oauth2/v2.0/token`).
    pub fn new(client_id: &str, credential: Credential, token_endpoint: String) -> Self {
        TenantCredentials {
            client_id: client_id.to_string(),
            credential,
            token_endpoint,
        }
    }

    /// A client assertion for the token endpoint `audience`.
    pub fn client_assertion(&self, audience: &str) -> Result<String, CredentialError> {
        if matches!(self.credential, Credential::ClientSecret { .. }) {
            return Err(CredentialError::NotConfigured(
                "the app signs in with a client secret, not a client assertion".to_string(),
            ));
        }
        if audience != self.token_endpoint {
            return Err(CredentialError::NotConfigured(format!(
                "an assertion is made for this tenant's token endpoint {} only, not for {audience}",
                self.token_endpoint
            )));
        }
        match &self.credential {
            Credential::ClientSecret { .. } => Err(CredentialError::NotConfigured(
                "the app signs in with a client secret, not a client assertion".to_string(),
            )),
            Credential::Certificate {
                certificate_file,
                key_file,
            } => self.signed_assertion(audience, certificate_file, key_file),
            Credential::Federated { token_file } => {
                let token = read(token_file, "federated token")?;
                let token = token.trim();
                if token.is_empty() {
                    return Err(unreadable(token_file, "federated token", "it is empty"));
                }
                Ok(token.to_string())
            }
        }
    }

    fn signed_assertion(
        &self,
        audience: &str,
        certificate_file: &Path,
        key_file: &Path,
    ) -> Result<String, CredentialError> {
        let now = SystemTime::now();
        let signer = SigningCertificate::load(certificate_file, key_file, now)?;
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(signer.thumbprint);
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = Claims {
            aud: audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &signer.key).map_err(|e| {
            unreadable(
                key_file,
                "certificate key",
                &format!("signing failed: {}", e.kind_name()),
            )
        })
    }
}

/// Checks a credential's files as a sign-in would use them, before any run: a certificate
/// and its key are read and checked (the key is the certificate's, the certificate is
/// within its validity period), a federated token file is read. A client secret is the
/// secrets capability's (nothing to check here).
pub fn check_credential(credential: &Credential) -> Result<(), CredentialError> {
    match credential {
        Credential::ClientSecret { .. } => Ok(()),
        Credential::Certificate {
            certificate_file,
            key_file,
        } => SigningCertificate::load(certificate_file, key_file, SystemTime::now()).map(|_| ()),
        Credential::Federated { token_file } => {
            if read(token_file, "federated token")?.trim().is_empty() {
                return Err(unreadable(token_file, "federated token", "it is empty"));
            }
            Ok(())
        }
    }
}

/// `rsaEncryption` (RFC 8017 appendix A.1): the algorithm of an RSA SubjectPublicKeyInfo.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A certificate and its private key, read and checked, ready to sign.
struct SigningCertificate {
    /// `x5t#S256`: the base64url SHA-256 thumbprint of the certificate's DER.
    thumbprint: String,
    key: EncodingKey,
}

impl SigningCertificate {
    /// Reads the certificate and its key and checks that the key is the certificate's and
    /// that the certificate is valid at `now`.
    fn load(
        certificate_file: &Path,
        key_file: &Path,
        now: SystemTime,
    ) -> Result<Self, CredentialError> {
        let certificate = read(certificate_file, "certificate")?;
        let der = CertificateDer::from_pem_slice(certificate.as_bytes()).map_err(|_| {
            unreadable(
                certificate_file,
                "certificate",
                "no PEM CERTIFICATE block in it",
            )
        })?;
        let parsed = Certificate::from_der(der.as_ref()).map_err(|e| {
            unreadable(
                certificate_file,
                "certificate",
                &format!("its CERTIFICATE block is not an X.509 certificate: {e}"),
            )
        })?;
        let tbs = &parsed.tbs_certificate;
        let certified = certificate_rsa_key(certificate_file, &tbs.subject_public_key_info)?;
        let pem = read(key_file, "certificate key")?;
        let key =
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| not_an_rsa_key(key_file))?;
        if private_key_public_key(key_file, &pem)? != certified {
            return Err(CredentialError::Unreadable(format!(
                "the private key in {} does not belong to the certificate in {} (their public \
                 keys differ): certificate_key_file must be the private key the certificate \
                 in certificate_file was made with",
                key_file.display(),
                certificate_file.display()
            )));
        }
        check_validity(certificate_file, &tbs.validity, now)?;
        Ok(SigningCertificate {
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref())),
            key,
        })
    }
}

/// An RSA public key: modulus and exponent, big-endian without leading zeros.
#[derive(PartialEq, Eq)]
struct RsaPublicKey {
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

/// The RSA public key a certificate certifies (its SubjectPublicKeyInfo).
fn certificate_rsa_key(
    certificate_file: &Path,
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<RsaPublicKey, CredentialError> {
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(unreadable(
            certificate_file,
            "certificate",
            &format!(
                "its public key is not an RSA key (algorithm {}): client assertions are \
                 signed PS256, with an RSA key",
                spki.algorithm.oid
            ),
        ));
    }
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1)
    let decoded = spki.subject_public_key.as_bytes().and_then(|bytes| {
        let mut reader = SliceReader::new(bytes).ok()?;
        let key = reader
            .sequence(|r| {
                Ok(RsaPublicKey {
                    modulus: UintRef::decode(r)?.as_bytes().to_vec(),
                    exponent: UintRef::decode(r)?.as_bytes().to_vec(),
                })
            })
            .ok()?;
        reader.finish(key).ok()
    });
    decoded.ok_or_else(|| {
        unreadable(
            certificate_file,
            "certificate",
            "its RSA public key is not a DER RSAPublicKey",
        )
    })
}

/// The public key of an RSA private key in PEM (PKCS#8 or PKCS#1), derived by ring.
fn private_key_public_key(key_file: &Path, pem: &str) -> Result<RsaPublicKey, CredentialError> {
    let pair = match PrivateKeyDer::from_pem_slice(pem.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs8(der)) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
        Ok(PrivateKeyDer::Pkcs1(der)) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
        _ => return Err(not_an_rsa_key(key_file)),
    }
    .map_err(|rejected| {
        // KeyRejected names the reason ("InvalidEncoding", "TooSmall"), never the key.
        unreadable(
            key_file,
            "certificate key",
            &format!("not a usable RSA private key: {rejected}"),
        )
    })?;
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok(RsaPublicKey {
        modulus: public.n,
        exponent: public.e,
    })
}

fn not_an_rsa_key(key_file: &Path) -> CredentialError {
    unreadable(
        key_file,
        "certificate key",
        "not an RSA private key in PEM (PKCS#8 \"PRIVATE KEY\" or PKCS#1)",
    )
}

/// The certificate's validity period (RFC 5280 4.1.2.5: notBefore and notAfter inclusive)
/// holds `now`.
fn check_validity(
    certificate_file: &Path,
    validity: &Validity,
    now: SystemTime,
) -> Result<(), CredentialError> {
    let (not_before, not_after) = (validity.not_before, validity.not_after);
    if now > not_after.to_system_time() {
        return Err(CredentialError::Unreadable(format!(
            "the certificate in {} expired on {not_after} (notAfter; it was valid from \
             {not_before}): the identity platform refuses assertions signed with an expired \
             certificate's key (AADSTS700027); register a new certificate on the app and \
             point certificate_file and certificate_key_file at it and its key",
            certificate_file.display()
        )));
    }
    if now < not_before.to_system_time() {
        let now = DateTime::from_system_time(now)
            .map_or_else(|_| "unknown".to_string(), |t| t.to_string());
        return Err(CredentialError::Unreadable(format!(
            "the certificate in {} is not valid yet: its validity starts {not_before} \
             (notBefore; it ends {not_after}) and this machine's clock says {now}",
            certificate_file.display()
        )));
    }
    Ok(())
}

/// The text of a credential file, or what is wrong with it.
fn read(path: &Path, what: &str) -> Result<String, CredentialError> {
    read_secret_file(path).map_err(|why| unreadable(path, what, &why))
}

fn unreadable(path: &Path, what: &str, why: &str) -> CredentialError {
    CredentialError::Unreadable(format!("{what} file {} ({why})", path.display()))
}

/// The error kind's name: jsonwebtoken's messages never hold the key, but its kind is
/// all a user can act on.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

#[cfg(test)]
mod tests;
