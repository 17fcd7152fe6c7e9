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
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

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
        let certificate = read(certificate_file, "certificate")?;
        let der = CertificateDer::from_pem_slice(certificate.as_bytes()).map_err(|_| {
            unreadable(
                certificate_file,
                "certificate",
                "no PEM CERTIFICATE block in it",
            )
        })?;
        let key = read(key_file, "certificate key")?;
        let key = EncodingKey::from_rsa_pem(key.as_bytes()).map_err(|_| {
            unreadable(
                key_file,
                "certificate key",
                "not an RSA private key in PEM (PKCS#8 \"PRIVATE KEY\" or PKCS#1)",
            )
        })?;
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref())));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            aud: audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| {
            unreadable(
                key_file,
                "certificate key",
                &format!("signing failed: {}", e.kind_name()),
            )
        })
    }
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
