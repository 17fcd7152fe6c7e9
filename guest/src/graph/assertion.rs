//! Client assertions (`tenant.credential` `client-assertion`): the app proves who it is with
//! a JWT the host makes for each token request (`credentials.client-assertion`), signed with
//! the app's certificate key, or a federated token the host read (workload identity
//! federation). This module has what the engine needs around one: the form field's fixed
//! type, what an assertion says about itself that an admin can check (the certificate's
//! thumbprint from its header, or a federated token's issuer, subject and audience: none of
//! it secret), the host's `credential-error` as a typed `sync-error`, and the identity
//! platform's refusals of an assertion (`auth-failure.invalid-assertion`) with advice that
//! names what to fix.
//!
//! An assertion is a bearer credential while it lives: the session hands it to the
//! redactor before it is sent, keeps none, and nothing here quotes it or its signature.

use serde::Deserialize;

use super::token::{Credentials, base64url_decode};
use crate::bindings::m365sync::engine::credentials::CredentialError;
use crate::types::SyncError;

/// `client_assertion_type` of a JWT client assertion ("This is a fixed value",
/// MicrosoftDocs/entra-docs: docs/identity-platform/certificate-credentials.md, "Using a
/// client assertion").
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Characters of a claim quoted in a message at most.
const CLAIM_CHARS: usize = 200;

/// What a client assertion says about itself that an admin can check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssertionFacts {
    /// Signed by the host with the app's certificate key: the header's `x5t#S256` (SHA-256
    /// of the certificate's DER, certificate-credentials.md "Header") and, from older
    /// signers, `x5t` (SHA-1, the thumbprint the Entra admin center lists), in hex.
    Certificate {
        sha256: Option<String>,
        sha1: Option<String>,
    },
    /// A token another identity provider issued (its `iss` is not the app).
    Federated {
        issuer: String,
        subject: Option<String>,
        audiences: Vec<String>,
    },
    /// Not a JWT the engine can read.
    Opaque,
}

#[derive(Deserialize)]
struct Header {
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    x5t: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    #[serde(default, deserialize_with = "audiences")]
    aud: Vec<String>,
}

/// `aud` is one string or a list of them (RFC 7519, 4.1.3). A visitor rather than
/// `#[serde(untagged)]`, which would buffer the value and pull a lot of code into the
/// component.
fn audiences<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(a) = seq.next_element::<String>()? {
                out.push(a);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// A claim as a message may quote it: one line, at most [`CLAIM_CHARS`] characters.
fn quotable(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(CLAIM_CHARS)
        .collect()
}

/// The bytes of a base64url thumbprint as uppercase hex.
fn thumbprint_hex(b64: &str) -> Option<String> {
    let bytes = base64url_decode(b64.trim())?;
    if bytes.is_empty() || bytes.len() > 64 {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

fn part<T: for<'de> Deserialize<'de>>(segment: Option<&str>) -> Option<T> {
    serde_json::from_slice(&base64url_decode(segment?)?).ok()
}

impl AssertionFacts {
    /// Reads the header and claims of `assertion` (its signature is neither checked nor
    /// kept). `client_id`: the app, the `iss` of an assertion the host signed itself.
    pub fn of(assertion: &str, client_id: &str) -> Self {
        let mut parts = assertion.split('.');
        let (header, claims) = (parts.next(), parts.next());
        let header: Option<Header> = part(header);
        let claims: Option<Claims> = part(claims);
        if header.is_none() && claims.is_none() {
            return AssertionFacts::Opaque;
        }
        let (sha256, sha1) = header
            .map(|h| {
                (
                    h.x5t_s256.as_deref().and_then(thumbprint_hex),
                    h.x5t.as_deref().and_then(thumbprint_hex),
                )
            })
            .unwrap_or_default();
        let issuer = claims
            .as_ref()
            .and_then(|c| c.iss.as_deref())
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty());
        match (issuer, claims) {
            (Some(iss), Some(c)) if sha256.is_none() && sha1.is_none() && iss != client_id => {
                AssertionFacts::Federated {
                    issuer: quotable(&iss),
                    subject: c.sub.as_deref().map(quotable),
                    audiences: c.aud.iter().map(|a| quotable(a)).collect(),
                }
            }
            _ => AssertionFacts::Certificate { sha256, sha1 },
        }
    }

    /// What signed the assertion, in words: "the certificate with SHA-256 thumbprint …".
    fn signer(&self) -> String {
        match self {
            AssertionFacts::Certificate {
                sha256: Some(s256),
                sha1,
            } => {
                let mut s = format!("the certificate with SHA-256 thumbprint {s256}");
                if let Some(s1) = sha1 {
                    s.push_str(&format!(" (SHA-1 thumbprint {s1})"));
                }
                s
            }
            AssertionFacts::Certificate {
                sha256: None,
                sha1: Some(s1),
            } => format!("the certificate with thumbprint {s1}"),
            AssertionFacts::Certificate { .. } => {
                "the app's certificate (the assertion names no thumbprint)".into()
            }
            AssertionFacts::Federated {
                issuer,
                subject,
                audiences,
            } => format!(
                "the federated token of issuer {issuer}, subject {}, audience {}",
                subject.as_deref().unwrap_or("(none)"),
                if audiences.is_empty() {
                    "(none)".into()
                } else {
                    audiences.join(", ")
                }
            ),
            AssertionFacts::Opaque => "a client assertion that is not a readable JWT".into(),
        }
    }
}

/// The host's `credential-error` as the typed error of a run: it names the source (a path,
/// a setting) the host named, never a key or a token.
pub fn credential_error(e: CredentialError, creds: &Credentials) -> SyncError {
    let who = format!("app {} of tenant {}", creds.client_id, creds.tenant_id);
    SyncError::Secret(match e {
        CredentialError::NotConfigured(source) => format!(
            "the tenant signs in with a client assertion, but the host has no assertion \
             credential (a certificate and its key, or a federated token file) for {who}: \
             {source}"
        ),
        CredentialError::Unreadable(source) => {
            format!("the host could not make a client assertion for {who}: {source}")
        }
    })
}

/// An assertion the host handed over that is no assertion.
pub fn empty_assertion(creds: &Credentials) -> SyncError {
    SyncError::Secret(format!(
        "the host handed an empty client assertion for app {} of tenant {}",
        creds.client_id, creds.tenant_id
    ))
}

/// Where an app's certificates and federated credentials are managed.
fn blade(client_id: &str, section: &str) -> String {
    format!(
        "In the Microsoft Entra admin center, open App registrations > {client_id} > \
         Certificates & secrets > {section}"
    )
}

/// If `code` is an AADSTS code of a refused client assertion, the advice for it (which
/// certificate or federated credential to check, and where); else `None`. `facts`: what
/// the refused assertion said about itself, when the request carried one.
///
/// The codes, each as Microsoft documents it:
/// - AADSTS700027 "Client assertion failed signature validation" and AADSTS50012
///   AuthenticationFailed ("Client assertion contains an invalid signature", "Thumbprint of
///   the signing certificate isn't authorized"), AADSTS50027 InvalidJwtToken ("unexpected
///   issuer", "unexpected audience", "not within its valid time range", "token format isn't
///   proper"), AADSTS50013 InvalidAssertion, AADSTS50048 SubjectMismatchesIssuer ("Subject
///   mismatches Issuer claim in the client assertion"): MicrosoftDocs/entra-docs:
///   docs/identity-platform/reference-error-codes.md, "AADSTS error codes".
/// - AADSTS700021 "The client assertion application identifier doesn't match the client_id
///   parameter", AADSTS700023 "The client assertion audience claim doesn't match the Realm
///   issuer", AADSTS50027 "JWT token is invalid or malformed": MicrosoftDocs/azure-dev-docs:
///   articles/java/sdk/troubleshooting-authentication-service-principal.md
///   ("Troubleshoot ClientAssertionCredential", "ClientCertificateCredential").
/// - AADSTS700024 "Client assertion is not within its valid time range", AADSTS70021 "No
///   matching federated identity record found for presented assertion", AADSTS700211 "... for
///   presented assertion issuer", AADSTS700213 "... for presented assertion subject",
///   AADSTS70025 "Client application has no configured federated identity credentials",
///   AADSTS700223 / AADSTS700238 workload identity federation constrained or disabled in the
///   tenant: MicrosoftDocs/azure-devops-docs:
///   docs/pipelines/release/troubleshoot-workload-identity.md, "Error messages".
///   AADSTS70021 also in MicrosoftDocs/entra-docs:
///   docs/workload-id/workload-identity-federation-considerations.md ("Time for federated
///   credential changes to propagate": a credential just added may not match yet).
/// - AADSTS700212 "No matching federated identity record found for presented assertion
///   audience": the identity platform's own error text; no Microsoft page lists it, but it
///   is the audience member of the AADSTS70021 family above.
pub fn refusal(code: u32, facts: Option<&AssertionFacts>, creds: &Credentials) -> Option<String> {
    let client_id = creds.client_id.as_str();
    let tenant_id = creds.tenant_id.as_str();
    let signer = facts.map_or_else(|| "the client assertion".to_owned(), AssertionFacts::signer);
    let federated = matches!(facts, Some(AssertionFacts::Federated { .. }));
    let advice = match code {
        700_027 | 50_012 if federated => format!(
            "the identity platform could not verify the signature of {signer} with its \
             issuer's published signing keys. Check that the host reads a current token of \
             that issuer, and that the issuer's OpenID Connect discovery document and keys \
             are reachable from the internet."
        ),
        700_027 | 50_012 => format!(
            "the client assertion of app {client_id} is signed with {signer}, which is not \
             registered on the app, or the key the host signs with is not that \
             certificate's. {}: upload that certificate (its public part, .cer or .pem), or \
             configure the host with the key of a certificate listed there.",
            blade(client_id, "Certificates")
        ),
        700_024 if federated => format!(
            "{signer} is expired or not yet valid. The host reads the token file again for \
             each token request: make sure whatever writes it (a projected Kubernetes service \
             account token, a CI job's identity token) renews it before it expires, and that \
             the host's clock is right."
        ),
        700_024 => format!(
            "the client assertion of app {client_id} ({signer}) was outside its valid time \
             range when the identity platform read it: the clock of the host that signs it is \
             probably wrong (keep it in step with NTP), or the assertion expired before it \
             was sent."
        ),
        50_027 | 50_013 => format!(
            "the client assertion of app {client_id} ({signer}) is not a valid JWT for this \
             sign-in: malformed, of an unexpected issuer or audience, or outside its validity. \
             An assertion the host signs must have iss = sub = {client_id}, aud = {} and \
             nbf/exp around now; a federated token must be one the app has a federated \
             credential for.",
            creds.token_url()
        ),
        700_021 | 50_048 => format!(
            "the client assertion ({signer}) does not name app {client_id} as it must: an \
             assertion the host signs needs iss = sub = {client_id}; a federated token must \
             be presented with the client id of the app that holds its federated credential."
        ),
        700_023 => format!(
            "the audience of the client assertion ({signer}) is not this tenant's token \
             endpoint: the host must set aud to {}, the URL the engine asked for.",
            creds.token_url()
        ),
        70_021 | 700_211 | 700_212 | 700_213 | 70_025 => {
            let what = match code {
                700_211 => "no federated credential of the app trusts the token's issuer",
                700_212 => "no federated credential of the app accepts the token's audience",
                700_213 => "no federated credential of the app matches the token's subject",
                70_025 => "the app has no federated credentials at all",
                _ => "no federated credential of the app matches the token",
            };
            let presented = if federated {
                signer
            } else {
                "the token the host presents (it could not be read, so its issuer, subject \
                 and audience are not known here)"
                    .to_owned()
            };
            format!(
                "app {client_id} signed in with {presented}, but {what}. {}: add or correct \
                 one with exactly that issuer, subject and audience (compared case-sensitively; \
                 the audience is api://AzureADTokenExchange unless configured otherwise). A \
                 credential added in the last few minutes may not have reached every sign-in \
                 server yet: try again shortly.",
                blade(client_id, "Federated credentials")
            )
        }
        700_223 | 700_238 => format!(
            "workload identity federation is disabled or restricted in tenant {tenant_id}, so \
             {signer} was refused. An administrator must allow federated credentials of \
             this issuer for app {client_id} (a Microsoft Entra policy), or the app must \
             sign in with a certificate instead."
        ),
        _ => return None,
    };
    Some(advice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{cert_assertion, credentials, federated_token};
    use crate::graph::token::base64url_encode;

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> String {
        format!(
            "{}.{}.sig",
            base64url_encode(header.to_string().as_bytes()),
            base64url_encode(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn reads_the_certificate_or_the_federated_token_without_the_signature() {
        let facts = AssertionFacts::of(&cert_assertion(1), "client-1");
        assert_eq!(
            facts,
            AssertionFacts::Certificate {
                sha256: Some("AB".repeat(32)),
                sha1: None
            }
        );
        let sha1 = jwt(
            serde_json::json!({"alg": "RS256", "x5t": base64url_encode(&[0x01, 0xfe])}),
            serde_json::json!({"iss": "client-1", "sub": "client-1"}),
        );
        assert_eq!(
            AssertionFacts::of(&sha1, "client-1"),
            AssertionFacts::Certificate {
                sha256: None,
                sha1: Some("01FE".into())
            }
        );
        assert_eq!(
            AssertionFacts::of(&federated_token(), "client-1"),
            AssertionFacts::Federated {
                issuer: "https://oidc.example.test/cluster-1".into(),
                subject: Some("system:serviceaccount:m365sync:engine".into()),
                audiences: vec!["api://AzureADTokenExchange".into()],
            }
        );
        let one_aud = jwt(
            serde_json::json!({"alg": "RS256"}),
            serde_json::json!({"iss": "https://idp", "aud": "x\ny"}),
        );
        let AssertionFacts::Federated {
            audiences, subject, ..
        } = AssertionFacts::of(&one_aud, "client-1")
        else {
            panic!()
        };
        assert_eq!((audiences, subject), (vec!["xy".to_owned()], None));
        assert_eq!(AssertionFacts::of("not-a-jwt", "c"), AssertionFacts::Opaque);
        // Signed by the app itself but naming no thumbprint (a `kid` only).
        let kid = jwt(
            serde_json::json!({"alg": "PS256", "kid": "k"}),
            serde_json::json!({"iss": "client-1", "sub": "client-1"}),
        );
        assert_eq!(
            AssertionFacts::of(&kid, "client-1"),
            AssertionFacts::Certificate {
                sha256: None,
                sha1: None
            }
        );
    }

    #[test]
    fn assertion_codes_have_advice_and_others_none() {
        let c = credentials();
        let cert = AssertionFacts::of(&cert_assertion(1), "client-1");
        let fed = AssertionFacts::of(&federated_token(), "client-1");
        let a = refusal(700_027, Some(&cert), &c).unwrap();
        for want in [
            "client-1",
            &format!("SHA-256 thumbprint {}", "AB".repeat(32)),
            "not registered on the app",
            "Certificates & secrets > Certificates",
            "upload that certificate",
        ] {
            assert!(a.contains(want), "{want}: {a}");
        }
        let a = refusal(700_024, Some(&cert), &c).unwrap();
        assert!(a.contains("clock") && a.contains("valid time range"), "{a}");
        let a = refusal(700_024, Some(&fed), &c).unwrap();
        assert!(a.contains("renews it before it expires"), "{a}");
        for code in [70_021, 700_211, 700_212, 700_213, 70_025] {
            let a = refusal(code, Some(&fed), &c).unwrap();
            for want in [
                "Federated credentials",
                "https://oidc.example.test/cluster-1",
                "system:serviceaccount:m365sync:engine",
                "api://AzureADTokenExchange",
                "try again shortly",
            ] {
                assert!(a.contains(want), "{code} {want}: {a}");
            }
        }
        assert!(refusal(700_211, Some(&fed), &c).unwrap().contains("issuer"));
        assert!(refusal(700_213, None, &c).unwrap().contains("not known"));
        let a = refusal(50_027, None, &c).unwrap();
        assert!(
            a.contains("aud = https://login.test/tenant-1/oauth2/v2.0/token"),
            "{a}"
        );
        for code in [50_012, 50_013, 50_048, 700_021, 700_023, 700_223, 700_238] {
            assert!(refusal(code, Some(&cert), &c).is_some(), "{code}");
        }
        for code in [
            7_000_215, 7_000_222, 700_016, 90_002, 65_001, 70_011, 50_034,
        ] {
            assert!(refusal(code, Some(&cert), &c).is_none(), "{code}");
        }
    }

    #[test]
    fn credential_errors_name_the_source() {
        let c = credentials();
        let SyncError::Secret(m) = credential_error(
            CredentialError::Unreadable("/etc/app.key: EACCES".into()),
            &c,
        ) else {
            panic!()
        };
        assert!(
            m.contains("/etc/app.key: EACCES") && m.contains("client-1"),
            "{m}"
        );
        let SyncError::Secret(m) =
            credential_error(CredentialError::NotConfigured("no certificate".into()), &c)
        else {
            panic!()
        };
        assert!(m.contains("no assertion credential"), "{m}");
    }
}
