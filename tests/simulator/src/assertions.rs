//! Client assertions at the token endpoint: a JWT signed with a certificate
//! registered on the app (certificate credentials), or a token issued by an
//! external identity provider that a federated identity credential trusts
//! (workload identity federation) — and, for tests, a signer that makes both.
//!
//! The verifier is the simulator's own (RSA signatures checked with ring, the
//! certificate read with x509-cert), independent of the JWT library the host
//! signs with, so the two can disagree.
//!
//! Pages relied on (MicrosoftDocs/entra-docs):
//! - docs/identity-platform/certificate-credentials.md, "Assertion format": the
//!   header (`alg`, `typ`, `x5t#S256` — "Base64url-encoded SHA-256 thumbprint of
//!   the X.509 certificate's DER encoding"; the page's earlier revision,
//!   commit 79736bd, gave `alg` RS256 and `x5t`, the "Base64url-encoded SHA-1
//!   thumbprint", so both are accepted) and the claims (`aud`
//!   `https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token`, `exp`,
//!   `iss` = `sub` = the client id, `jti`, `nbf`, `iat`). "Microsoft Entra ID
//!   doesn't place restrictions on the `exp` time currently": no lifetime
//!   limit is applied. No clock skew is documented; none is allowed.
//! - docs/identity-platform/v2-oauth2-client-creds-grant-flow.md, "Second case"
//!   and "Third case": `client_assertion_type` and `client_assertion` replace
//!   `client_secret`; a federated credential's assertion is "a JWT created by
//!   another identity provider".
//! - docs/workload-id/includes/federated-credential-configuration-considerations.md
//!   and workload-identity-federation-considerations.md ("Only issuers that
//!   provide tokens signed using the RS256 algorithm are supported";
//!   "AADSTS70021: No matching federated identity record found for presented
//!   assertion.").
//! - docs/identity-platform/reference-error-codes.md: AADSTS50027
//!   InvalidJwtToken (… "External ID token from issuer failed signature
//!   verification"), AADSTS50048 SubjectMismatchesIssuer, AADSTS700027
//!   "Client assertion failed signature validation".
//! - MicrosoftDocs/azure-dev-docs: articles/java/sdk/troubleshooting-authentication-service-principal.md
//!   (Microsoft's table: AADSTS700027 "Client assertion contains an invalid
//!   signature", AADSTS700021 "The client assertion application identifier
//!   doesn't match the `client_id` parameter", AADSTS700023 "The client
//!   assertion audience claim doesn't match the Realm issuer", AADSTS50027
//!   "JWT token is invalid or malformed").
//!
//! Exact messages not in those pages are the service's own, as Microsoft's
//! MSAL.NET tests capture them (AzureAD/microsoft-authentication-library-for-dotnet:
//! tests/Microsoft.Identity.Test.Common/Core/Mocks/MockHelpers.cs: AADSTS50027,
//! AADSTS90014, AADSTS5002738, AADSTS5002723, AADSTS700024, AADSTS700021) or
//! as the service printed them in public error reports (AADSTS700027's
//! "[Reason - …]" texts, AADSTS700211/700212/700213).
//!
//! Not modelled: Entra documents no rejection of a reused `jti`, and
//! Microsoft's MSAL for Python reuses one assertion for up to nine minutes
//! (`AssertionCreator.create_regenerative_assertion`, "a useful optimization to
//! reuse the client assertion"), so a reused `jti` is accepted — and counted
//! ([`crate::Simulator::assertion_jti_reuses`]) so tests can assert a client
//! never does it.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Map, Value, json};

use crate::credentials::{ParsedCert, parse_certificate};
use crate::rng::{guid_from, is_guid};
use crate::server::Shared;
use crate::token::{StsError, sts};
use crate::util::{
    b64url_decode, b64url_encode, hex_upper, pem_decode, sts_time_7, unix_now, us_date_time,
};

/// `client_assertion_type` for a JWT (v2-oauth2-client-creds-grant-flow.md:
/// "The value must be set to
/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`").
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A JWS signature algorithm the verifier accepts and the test signer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (certificate-credentials.md, earlier
    /// revision: "Should be **RS256**").
    Rs256,
    Rs384,
    Rs512,
    /// RSASSA-PSS with SHA-256 (certificate-credentials.md: "Should be
    /// **PS256**", "Use PSS padding").
    Ps256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
        }
    }

    /// The service's list when it refused HS256 was 'RS256,RS384,RS512'
    /// (AADSTS5002738 in MockHelpers.cs); the current certificate-credentials.md
    /// asks for PS256, so it is accepted too.
    fn parse(s: &str) -> Option<Alg> {
        Some(match s {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            _ => return None,
        })
    }

    fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
        }
    }

    fn encoding(self) -> &'static dyn signature::RsaEncoding {
        match self {
            Alg::Rs256 => &signature::RSA_PKCS1_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_SHA512,
            Alg::Ps256 => &signature::RSA_PSS_SHA256,
        }
    }
}

/// A decoded (not yet verified) JWT.
struct Jwt<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    alg: Alg,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// AADSTS50027 "JWT token is invalid or malformed." (azure-dev-docs table;
/// `invalid_request` as in MockHelpers.cs).
fn malformed() -> StsError {
    sts(
        400,
        "invalid_request",
        50_027,
        "JWT token is invalid or malformed.",
    )
}

fn parse(assertion: &str) -> Result<Jwt<'_>, StsError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(malformed());
    };
    let object = |part: &str| -> Option<Map<String, Value>> {
        match serde_json::from_slice(&b64url_decode(part)?).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    };
    let header = object(h).ok_or_else(malformed)?;
    let claims = object(p).ok_or_else(malformed)?;
    let signature = b64url_decode(s)
        .filter(|s| !s.is_empty())
        .ok_or_else(malformed)?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    let alg = Alg::parse(alg_name).ok_or_else(|| {
        // AADSTS5002738, as captured in MockHelpers.cs.
        sts(
            401,
            "invalid_client",
            5_002_738,
            format!(
                "Invalid JWT token. '{alg_name}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256,RS384,RS512,PS256'"
            ),
        )
    })?;
    Ok(Jwt {
        header,
        claims,
        alg,
        signing_input: &assertion[..h.len() + 1 + p.len()],
        signature,
    })
}

impl Jwt<'_> {
    fn claim(&self, name: &str) -> Option<&str> {
        self.claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A NumericDate claim (RFC 7519 §2), 0 when absent or not a number.
    fn time(&self, name: &str) -> u64 {
        self.claims
            .get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
            .map_or(0, |v| v as u64)
    }

    /// `aud` as a list: a string or an array of strings (RFC 7519 §4.1.3).
    fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn verifies_with(&self, cert: &ParsedCert) -> bool {
        cert.rsa_public_key.as_deref().is_some_and(|key| {
            UnparsedPublicKey::new(self.alg.verification(), key)
                .verify(self.signing_input.as_bytes(), &self.signature)
                .is_ok()
        })
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// AADSTS90014, as captured in MockHelpers.cs ("The required field 'iss' is
/// missing from the credential. …").
fn missing_field(name: &str) -> StsError {
    sts(
        400,
        "invalid_request",
        90_014,
        format!(
            "The required field '{name}' is missing from the credential. Ensure that you have all the necessary parameters for the login request."
        ),
    )
}

/// AADSTS700024, as captured in MockHelpers.cs (a missing `exp` prints as the
/// Unix epoch there, so it is treated as 0: long expired).
fn check_time_range(jwt: &Jwt<'_>, now: u64) -> Result<(), StsError> {
    let nbf = jwt.time("nbf");
    let exp = jwt.time("exp");
    if now >= exp || nbf > now {
        return Err(sts(
            401,
            "invalid_client",
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                sts_time_7(now),
                sts_time_7(nbf),
                sts_time_7(exp)
            ),
        ));
    }
    Ok(())
}

/// Verifies `client_assertion` for `client_id` (already known to be this
/// app's) at this tenant's token endpoint. `Ok` means the client is
/// authenticated.
pub(crate) fn verify(shared: &Shared, client_id: &str, assertion: &str) -> Result<(), StsError> {
    let jwt = parse(assertion)?;
    let now = shared.now();
    let iss = jwt.claim("iss").ok_or_else(|| missing_field("iss"))?;
    if iss.eq_ignore_ascii_case(client_id) {
        verify_certificate_assertion(shared, client_id, &jwt, now)
    } else if is_guid(iss) {
        // Another application's id: AADSTS700021 (MockHelpers.cs).
        Err(sts(
            401,
            "invalid_client",
            700_021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
        ))
    } else {
        verify_federated_assertion(shared, &jwt, iss, now)
    }
}

/// A JWT the app signed with one of its registered certificates.
fn verify_certificate_assertion(
    shared: &Shared,
    client_id: &str,
    jwt: &Jwt<'_>,
    now: u64,
) -> Result<(), StsError> {
    // The certificate named by the header: `x5t#S256`, else `x5t`, else `kid`
    // (the keyCredential's keyId). Neither: AADSTS5002723 (MockHelpers.cs).
    let (thumbprint, cert) = if let Some(t) = jwt.header_str("x5t#S256") {
        let bytes = b64url_decode(t).unwrap_or_default();
        (
            hex_upper(&bytes),
            shared.certificates.iter().find(|c| c.sha256 == bytes),
        )
    } else if let Some(t) = jwt.header_str("x5t") {
        let bytes = b64url_decode(t).unwrap_or_default();
        (
            hex_upper(&bytes),
            shared.certificates.iter().find(|c| c.sha1 == bytes),
        )
    } else if let Some(kid) = jwt.header_str("kid") {
        (
            kid.to_string(),
            shared
                .certificates
                .iter()
                .find(|c| c.key_id.eq_ignore_ascii_case(kid)),
        )
    } else {
        return Err(sts(
            401,
            "invalid_client",
            5_002_723,
            "Invalid JWT token. No certificate SHA-1 thumbprint, certificate SHA-256 thumbprint, nor keyId specified in token header.",
        ));
    };
    let Some(cert) = cert else {
        // AADSTS700027 with "[Reason - The key was not found., …]", as the
        // service answers an unregistered certificate.
        return Err(sts(
            401,
            "invalid_client",
            700_027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        ));
    };
    let found = format!(
        "Found key 'Start={}, End={}'",
        us_date_time(cert.not_before),
        us_date_time(cert.not_after)
    );
    let sha1 = hex_upper(&cert.sha1);
    if now >= cert.not_after {
        return Err(sts(
            401,
            "invalid_client",
            700_027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{sha1}', {found}]"
            ),
        ));
    }
    if !jwt.verifies_with(cert) {
        return Err(sts(
            401,
            "invalid_client",
            700_027,
            format!(
                "Client assertion contains an invalid signature. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{sha1}', {found}]"
            ),
        ));
    }
    // "`sub` … Use the same value as `iss`" (certificate-credentials.md);
    // reference-error-codes.md: "AADSTS50048 SubjectMismatchesIssuer -
    // Subject mismatches Issuer claim in the client assertion."
    let sub = jwt.claim("sub").ok_or_else(|| missing_field("sub"))?;
    if !sub.eq_ignore_ascii_case(client_id) {
        return Err(sts(
            401,
            "invalid_client",
            50_048,
            "Subject mismatches Issuer claim in the client assertion.",
        ));
    }
    // `aud`: this tenant's token endpoint,
    // `{login}/{tenantId}/oauth2/v2.0/token`; the page's example names the
    // tenant by domain (`contoso.onmicrosoft.com`), so a verified domain is
    // taken too.
    let audiences = jwt.audiences();
    if audiences.is_empty() {
        return Err(missing_field("aud"));
    }
    let fits = |aud: &str| {
        let aud = aud.trim_end_matches('/');
        std::iter::once(shared.tenant.id.as_str())
            .chain(
                shared
                    .tenant
                    .domains
                    .iter()
                    .filter(|d| d.is_verified)
                    .map(|d| d.id.as_str()),
            )
            .any(|t| {
                aud.eq_ignore_ascii_case(&format!("{}/{t}/oauth2/v2.0/token", shared.login_url))
            })
    };
    if !audiences.iter().any(|a| fits(a)) {
        return Err(sts(
            401,
            "invalid_client",
            700_023,
            "The client assertion audience claim doesn't match the Realm issuer.",
        ));
    }
    check_time_range(jwt, now)?;
    if let Some(jti) = jwt.claim("jti") {
        shared.note_assertion_jti(jti, jwt.time("exp"), now);
    }
    Ok(())
}

/// The service's text for a token no federated identity credential matches
/// (AADSTS700211 issuer, 700212 audience, 700213 subject), as it printed it
/// in 2026 (a captured 401 `invalid_client` for 700213 in a public CI log).
fn no_federated_record(code: u32, what: &str, value: &str) -> StsError {
    sts(
        401,
        "invalid_client",
        code,
        format!(
            "No matching federated identity record found for presented assertion {what} '{value}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
        ),
    )
}

/// An external identity provider's token, exchanged through a federated
/// identity credential: issuer, then signature (against the issuer's key),
/// then audience, then subject, then lifetime.
fn verify_federated_assertion(
    shared: &Shared,
    jwt: &Jwt<'_>,
    iss: &str,
    now: u64,
) -> Result<(), StsError> {
    // "*issuer* … must match the `issuer` claim of the external token"; "If
    // the `issuer` claim has leading or trailing whitespace in the value, the
    // token exchange is blocked" — so the comparison is exact.
    let by_issuer: Vec<_> = shared
        .federated
        .iter()
        .filter(|f| f.credential.issuer == iss)
        .collect();
    if by_issuer.is_empty() {
        return Err(no_federated_record(700_211, "issuer", iss));
    }
    if !by_issuer.iter().any(|f| jwt.verifies_with(&f.issuer_key)) {
        return Err(sts(
            400,
            "invalid_request",
            50_027,
            "Invalid JWT token. External ID token from issuer failed signature verification.",
        ));
    }
    let audiences = jwt.audiences();
    let by_audience: Vec<_> = by_issuer
        .into_iter()
        .filter(|f| {
            f.credential
                .audiences
                .iter()
                .any(|a| audiences.contains(&a.as_str()))
        })
        .collect();
    if by_audience.is_empty() {
        return Err(no_federated_record(
            700_212,
            "audience",
            audiences.first().copied().unwrap_or(""),
        ));
    }
    let sub = jwt.claim("sub").unwrap_or("");
    if !by_audience.iter().any(|f| f.credential.subject == sub) {
        return Err(no_federated_record(700_213, "subject", sub));
    }
    check_time_range(jwt, now)
}

// ---------------------------------------------------------------------------
// Test signing: what a client (the host, an e2e test) sends.

fn key_pair(private_key_pem: &str) -> anyhow::Result<RsaKeyPair> {
    let der = pem_decode(private_key_pem, "PRIVATE KEY")
        .ok_or_else(|| anyhow::anyhow!("no PKCS#8 'PRIVATE KEY' PEM block"))?;
    RsaKeyPair::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("not an RSA PKCS#8 key: {e}"))
}

/// Signs a JWT for tests: `header` (an object; `alg` is set from `alg`) and
/// `claims` with the RSA PKCS#8 key in `private_key_pem`.
pub fn sign_for_tests(
    private_key_pem: &str,
    alg: Alg,
    header: &Value,
    claims: &Value,
) -> anyhow::Result<String> {
    let mut header = header
        .as_object()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the JWT header must be a JSON object"))?;
    header.insert("alg".into(), Value::String(alg.as_str().into()));
    let signing_input = format!(
        "{}.{}",
        b64url_encode(&serde_json::to_vec(&header)?),
        b64url_encode(&serde_json::to_vec(claims)?)
    );
    let pair = key_pair(private_key_pem)?;
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        alg.encoding(),
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
    Ok(format!("{signing_input}.{}", b64url_encode(&sig)))
}

/// A random GUID for `jti`.
fn random_guid() -> String {
    let mut b = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut b);
    let (hi, lo) = b.split_at(8);
    guid_from(
        u64::from_le_bytes(hi.try_into().unwrap_or_default()),
        u64::from_le_bytes(lo.try_into().unwrap_or_default()),
    )
}

/// `x5t#S256` of a PEM certificate: base64url of the SHA-256 of its DER.
pub fn thumbprint_sha256(certificate_pem: &str) -> anyhow::Result<String> {
    let c = parse_certificate(certificate_pem).map_err(anyhow::Error::msg)?;
    Ok(b64url_encode(&c.sha256))
}

/// `x5t` of a PEM certificate: base64url of the SHA-1 of its DER.
pub fn thumbprint_sha1(certificate_pem: &str) -> anyhow::Result<String> {
    let c = parse_certificate(certificate_pem).map_err(anyhow::Error::msg)?;
    Ok(b64url_encode(&c.sha1))
}

/// A client assertion as certificate-credentials.md describes it: PS256,
/// `typ` JWT, `x5t#S256` of `certificate_pem`; `aud` = `token_url`, `iss` =
/// `sub` = `client_id`, a fresh `jti`, `nbf` = `iat` = now, `exp` = now +
/// `lifetime_secs`.
pub fn client_assertion_for_tests(
    private_key_pem: &str,
    certificate_pem: &str,
    client_id: &str,
    token_url: &str,
    lifetime_secs: u64,
) -> anyhow::Result<String> {
    let now = unix_now();
    sign_for_tests(
        private_key_pem,
        Alg::Ps256,
        &json!({"typ": "JWT", "x5t#S256": thumbprint_sha256(certificate_pem)?}),
        &json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": random_guid(),
            "nbf": now,
            "iat": now,
            "exp": now + lifetime_secs,
        }),
    )
}

/// An external identity provider's token for workload identity federation:
/// RS256, `iss`, `sub`, `aud`, `iat` = `nbf` = now, `exp` = now +
/// `lifetime_secs`, a `jti`.
pub fn external_token_for_tests(
    private_key_pem: &str,
    issuer: &str,
    subject: &str,
    audience: &str,
    lifetime_secs: u64,
) -> anyhow::Result<String> {
    let now = unix_now();
    sign_for_tests(
        private_key_pem,
        Alg::Rs256,
        &json!({"typ": "JWT"}),
        &json!({
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "jti": random_guid(),
            "nbf": now,
            "iat": now,
            "exp": now + lifetime_secs,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::FederatedCredential;
    use crate::credentials::fixtures::*;
    use crate::{SimConfig, TenantSpec};

    const ISSUER: &str = "https://token.example.test";
    const SUBJECT: &str = "system:serviceaccount:sync:m365sync";

    fn shared() -> Shared {
        let mut c = SimConfig::new(TenantSpec::new(5, 10));
        c.certificates = vec![APP_CERT.to_string()];
        c.federated_credentials = vec![FederatedCredential::new(ISSUER, SUBJECT, ISSUER_CERT)];
        Shared::new(
            c,
            "http://127.0.0.1:1".into(),
            "http://127.0.0.1:2".into(),
            "http://127.0.0.2:3".into(),
        )
    }

    fn token_url(s: &Shared) -> String {
        format!("{}/{}/oauth2/v2.0/token", s.login_url, s.tenant.id)
    }

    fn claims(s: &Shared) -> Value {
        let now = unix_now();
        json!({
            "aud": token_url(s), "iss": s.config.client_id, "sub": s.config.client_id,
            "jti": random_guid(), "nbf": now, "iat": now, "exp": now + 600,
        })
    }

    fn x5t256() -> Value {
        json!({"typ": "JWT", "x5t#S256": thumbprint_sha256(APP_CERT).expect("thumbprint")})
    }

    fn code(r: Result<(), StsError>) -> u32 {
        r.map_err(|e| e.code).err().unwrap_or(0)
    }

    #[test]
    fn a_well_formed_assertion_verifies_with_every_accepted_algorithm() {
        let s = shared();
        let id = s.config.client_id.clone();
        let a =
            client_assertion_for_tests(APP_KEY, APP_CERT, &id, &token_url(&s), 300).expect("sign");
        assert_eq!(verify(&s, &id, &a), Ok(()));
        for alg in [Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256] {
            let a = sign_for_tests(APP_KEY, alg, &x5t256(), &claims(&s)).expect("sign");
            assert_eq!(verify(&s, &id, &a), Ok(()), "{alg:?}");
        }
        // `x5t` (SHA-1) and `kid` (the keyCredential's keyId) select it too;
        // a verified domain may name the tenant in `aud`.
        let sha1 = json!({"x5t": thumbprint_sha1(APP_CERT).expect("sha1")});
        let a = sign_for_tests(APP_KEY, Alg::Rs256, &sha1, &claims(&s)).expect("sign");
        assert_eq!(verify(&s, &id, &a), Ok(()));
        let kid = json!({"kid": s.certificates[0].key_id});
        let a = sign_for_tests(APP_KEY, Alg::Rs256, &kid, &claims(&s)).expect("sign");
        assert_eq!(verify(&s, &id, &a), Ok(()));
        let mut c = claims(&s);
        c["aud"] = json!(format!(
            "{}/{}/oauth2/v2.0/token",
            s.login_url,
            s.tenant.default_domain()
        ));
        let a = sign_for_tests(APP_KEY, Alg::Ps256, &x5t256(), &c).expect("sign");
        assert_eq!(verify(&s, &id, &a), Ok(()));
    }

    #[test]
    fn each_defect_gets_its_documented_code() {
        let s = shared();
        let id = s.config.client_id.clone();
        let sign = |h: &Value, c: &Value| sign_for_tests(APP_KEY, Alg::Ps256, h, c).expect("sign");
        assert_eq!(code(verify(&s, &id, "not-a-jwt")), 50_027);
        assert_eq!(code(verify(&s, &id, "a.b.c")), 50_027);
        let hs = format!(
            "{}.{}.c2ln",
            b64url_encode(br#"{"alg":"HS256"}"#),
            b64url_encode(br#"{"iss":"x"}"#)
        );
        assert_eq!(code(verify(&s, &id, &hs)), 5_002_738);
        let mut c = claims(&s);
        c.as_object_mut().map(|o| o.remove("iss"));
        assert_eq!(code(verify(&s, &id, &sign(&x5t256(), &c))), 90_014);
        // No thumbprint at all; one of a certificate not registered; the
        // registered certificate's thumbprint on another key's signature.
        assert_eq!(
            code(verify(&s, &id, &sign(&json!({}), &claims(&s)))),
            5_002_723
        );
        let other = json!({"x5t#S256": thumbprint_sha256(OTHER_CERT).expect("t")});
        let e = verify(
            &s,
            &id,
            &sign_for_tests(OTHER_KEY, Alg::Ps256, &other, &claims(&s)).expect("sign"),
        )
        .expect_err("unregistered");
        assert_eq!(e.code, 700_027);
        assert!(e.message.contains("The key was not found"), "{}", e.message);
        let forged = sign_for_tests(OTHER_KEY, Alg::Ps256, &x5t256(), &claims(&s)).expect("sign");
        let e = verify(&s, &id, &forged).expect_err("forged");
        assert_eq!(e.code, 700_027);
        assert!(e.message.contains("Key was found, but"), "{}", e.message);
        // Another app's id as issuer; sub ≠ iss; wrong audience; outside the
        // time range.
        let mut c = claims(&s);
        c["iss"] = json!("00000000-0000-0000-0000-000000000001");
        assert_eq!(code(verify(&s, &id, &sign(&x5t256(), &c))), 700_021);
        let mut c = claims(&s);
        c["sub"] = json!("someone-else");
        assert_eq!(code(verify(&s, &id, &sign(&x5t256(), &c))), 50_048);
        for aud in [
            json!("https://login.microsoftonline.com/common/oauth2/v2.0/token"),
            json!(format!("{}/{}/oauth2/token", s.login_url, s.tenant.id)),
        ] {
            let mut c = claims(&s);
            c["aud"] = aud;
            assert_eq!(code(verify(&s, &id, &sign(&x5t256(), &c))), 700_023);
        }
        let mut c = claims(&s);
        c.as_object_mut().map(|o| o.remove("aud"));
        assert_eq!(code(verify(&s, &id, &sign(&x5t256(), &c))), 90_014);
        let now = unix_now();
        for (nbf, exp) in [(now - 700, now - 100), (now + 120, now + 600), (now, now)] {
            let mut c = claims(&s);
            c["nbf"] = json!(nbf);
            c["exp"] = json!(exp);
            let e = verify(&s, &id, &sign(&x5t256(), &c)).expect_err("time");
            assert_eq!(e.code, 700_024);
            assert!(e.message.contains("Current time: "), "{}", e.message);
        }
        let mut c = claims(&s);
        c.as_object_mut().map(|o| o.remove("exp"));
        let e = verify(&s, &id, &sign(&x5t256(), &c)).expect_err("no exp");
        assert!(
            e.message
                .contains("expiry time of assertion 1970-01-01T00:00:00.0000000Z")
        );
        // A tampered payload no longer matches its signature.
        let good = sign(&x5t256(), &claims(&s));
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        let mut c = claims(&s);
        c["exp"] = json!(now + 999_999);
        parts[1] = b64url_encode(&serde_json::to_vec(&c).expect("json"));
        assert_eq!(code(verify(&s, &id, &parts.join("."))), 700_027);
    }

    #[test]
    fn reused_jtis_are_accepted_and_counted() {
        let s = shared();
        let id = s.config.client_id.clone();
        let a =
            client_assertion_for_tests(APP_KEY, APP_CERT, &id, &token_url(&s), 300).expect("sign");
        assert_eq!(verify(&s, &id, &a), Ok(()));
        assert_eq!(s.assertion_jti_reuses(), 0);
        assert_eq!(verify(&s, &id, &a), Ok(()));
        assert_eq!(s.assertion_jti_reuses(), 1);
    }

    #[test]
    fn federated_tokens_are_checked_against_the_credential() {
        let s = shared();
        let id = s.config.client_id.clone();
        let token = |iss: &str, sub: &str, aud: &str, key: &str| {
            external_token_for_tests(key, iss, sub, aud, 600).expect("sign")
        };
        let aud = crate::credentials::TOKEN_EXCHANGE_AUDIENCE;
        assert_eq!(
            verify(&s, &id, &token(ISSUER, SUBJECT, aud, ISSUER_KEY)),
            Ok(())
        );
        // The same external token may be presented again (it is, by design:
        // a projected token file is read for each request).
        assert_eq!(
            verify(&s, &id, &token(ISSUER, SUBJECT, aud, ISSUER_KEY)),
            Ok(())
        );
        let e = verify(
            &s,
            &id,
            &token("https://elsewhere.test", SUBJECT, aud, ISSUER_KEY),
        )
        .expect_err("issuer");
        assert_eq!(e.code, 700_211);
        assert!(e.message.contains("issuer 'https://elsewhere.test'"));
        // The issuer, with a trailing slash: not the same issuer.
        let e = verify(
            &s,
            &id,
            &token(&format!("{ISSUER}/"), SUBJECT, aud, ISSUER_KEY),
        )
        .expect_err("slash");
        assert_eq!(e.code, 700_211);
        assert_eq!(
            code(verify(&s, &id, &token(ISSUER, SUBJECT, aud, APP_KEY))),
            50_027
        );
        assert_eq!(
            code(verify(
                &s,
                &id,
                &token(ISSUER, SUBJECT, "api://Other", ISSUER_KEY)
            )),
            700_212
        );
        let e = verify(
            &s,
            &id,
            &token(
                ISSUER,
                "System:ServiceAccount:sync:m365sync",
                aud,
                ISSUER_KEY,
            ),
        )
        .expect_err("subject is case-sensitive");
        assert_eq!(e.code, 700_213);
        let now = unix_now();
        let expired = sign_for_tests(
            ISSUER_KEY,
            Alg::Rs256,
            &json!({}),
            &json!({"iss": ISSUER, "sub": SUBJECT, "aud": [aud], "nbf": now - 900, "exp": now - 300}),
        )
        .expect("sign");
        assert_eq!(code(verify(&s, &id, &expired)), 700_024);
    }

    #[test]
    fn an_expired_registered_certificate_is_refused() {
        let s = shared();
        let id = s.config.client_id.clone();
        let mut s = s;
        s.certificates[0].not_after = unix_now() - 1;
        let a =
            client_assertion_for_tests(APP_KEY, APP_CERT, &id, &token_url(&s), 300).expect("sign");
        let e = verify(&s, &id, &a).expect_err("expired key");
        assert_eq!(e.code, 700_027);
        assert!(
            e.message.contains("The key used is expired"),
            "{}",
            e.message
        );
    }

    #[test]
    fn signing_helpers_refuse_bad_keys() {
        assert!(sign_for_tests("", Alg::Rs256, &json!({}), &json!({})).is_err());
        assert!(sign_for_tests(APP_CERT, Alg::Rs256, &json!({}), &json!({})).is_err());
        assert!(sign_for_tests(APP_KEY, Alg::Rs256, &json!([]), &json!({})).is_err());
        assert!(thumbprint_sha256("nope").is_err());
    }
}
