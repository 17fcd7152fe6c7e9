//! The credentials of the tenant's own app registration, and when they end:
//! `GET /v1.0/applications(appId='{client-id}')?$select=passwordCredentials,keyCredentials`.
//!
//! Per microsoftgraph/microsoft-graph-docs-contrib: api-reference/v1.0/api/application-get.md
//! (an application addressed by its appId, `$select` supported; selecting keyCredentials has
//! a throttling limit of 150 requests a minute per tenant; least privileged application
//! permission Application.Read.All), resources/passwordcredential.md (`keyId`,
//! `displayName`, `hint` "the first three characters of the password", `endDateTime`,
//! `startDateTime`; `secretText` only in the answer to addPassword, never here) and
//! resources/keycredential.md (`keyId`, `displayName`, `endDateTime`, `type`, `usage`, and
//! `key`, the certificate's public data, which is not read). The answer is one application
//! object, not a collection.

use serde::Deserialize;

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::unusable;
use crate::types::{AppCredential, AppCredentialKind};
use crate::url::path_segment_encode;

pub const NEED: Need = Need {
    permission: "Application.Read.All",
    feature: "credentials",
};

/// The app registration of `client_id`, with only its credentials. The id is an OData
/// string literal (a `'` doubled) in a path segment (percent-encoded).
pub fn url(graph: &str, client_id: &str) -> String {
    let literal = path_segment_encode(&client_id.replace('\'', "''"));
    format!(
        "{graph}/v1.0/applications(appId='{literal}')?$select=passwordCredentials,keyCredentials"
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawApplication {
    #[serde(default)]
    password_credentials: Option<Vec<RawPassword>>,
    #[serde(default)]
    key_credentials: Option<Vec<RawKey>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPassword {
    key_id: Option<String>,
    display_name: Option<String>,
    hint: Option<String>,
    end_date_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    key_id: Option<String>,
    display_name: Option<String>,
    end_date_time: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn no_key_id(url: &str, what: &str, n: usize) -> BodyError {
    BodyError::Unusable(unusable(url, format!("{what} #{n} has no keyId")))
}

/// Parses the application: its client secrets (kind password) first, then its certificates
/// (kind certificate), each in Graph's order.
pub fn parse(body: &[u8], url: &str) -> Result<Vec<AppCredential>, BodyError> {
    let raw: RawApplication = crate::graph::json::from_body(body)?;
    if raw.password_credentials.is_none() && raw.key_credentials.is_none() {
        return Err(BodyError::Unusable(unusable(
            url,
            "it has neither passwordCredentials nor keyCredentials".into(),
        )));
    }
    let mut out = Vec::new();
    for (i, p) in raw
        .password_credentials
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        out.push(AppCredential {
            kind: AppCredentialKind::Password,
            key_id: non_empty(p.key_id)
                .ok_or_else(|| no_key_id(url, "passwordCredential", i + 1))?,
            display_name: non_empty(p.display_name),
            hint: non_empty(p.hint),
            end_date_time: non_empty(p.end_date_time),
        });
    }
    for (i, k) in raw
        .key_credentials
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        out.push(AppCredential {
            kind: AppCredentialKind::Certificate,
            key_id: non_empty(k.key_id).ok_or_else(|| no_key_id(url, "keyCredential", i + 1))?,
            display_name: non_empty(k.display_name),
            hint: None,
            end_date_time: non_empty(k.end_date_time),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_addresses_the_app_by_its_app_id() {
        assert_eq!(
            url(
                "https://graph.microsoft.com",
                "46e6adf4-a9cf-4b60-9390-0ba6fb00bf6b"
            ),
            "https://graph.microsoft.com/v1.0/applications(appId='46e6adf4-a9cf-4b60-9390-0ba6fb00bf6b')\
             ?$select=passwordCredentials,keyCredentials"
        );
        assert_eq!(
            url("https://g", "a'b c/d"),
            "https://g/v1.0/applications(appId='a%27%27b%20c%2Fd')?$select=passwordCredentials,keyCredentials"
        );
    }

    #[test]
    fn reads_secrets_then_certificates() {
        let body = br#"{
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#applications(passwordCredentials,keyCredentials)/$entity",
            "passwordCredentials": [{
                "customKeyIdentifier": null, "displayName": "nightly sync",
                "endDateTime": "2026-03-01T00:00:00Z", "hint": "Abc",
                "keyId": "0a1b2c3d-0000-4000-8000-000000000001", "secretText": null,
                "startDateTime": "2025-03-01T00:00:00Z"}],
            "keyCredentials": [{
                "customKeyIdentifier": "QUJDREVG", "displayName": "CN=m365sync",
                "endDateTime": "2027-01-01T00:00:00Z", "key": "TUlJQ...",
                "keyId": "0a1b2c3d-0000-4000-8000-000000000002",
                "startDateTime": "2025-01-01T00:00:00Z", "type": "AsymmetricX509Cert",
                "usage": "Verify"}]
        }"#;
        assert_eq!(
            parse(body, "u").unwrap(),
            vec![
                AppCredential {
                    kind: AppCredentialKind::Password,
                    key_id: "0a1b2c3d-0000-4000-8000-000000000001".into(),
                    display_name: Some("nightly sync".into()),
                    hint: Some("Abc".into()),
                    end_date_time: Some("2026-03-01T00:00:00Z".into()),
                },
                AppCredential {
                    kind: AppCredentialKind::Certificate,
                    key_id: "0a1b2c3d-0000-4000-8000-000000000002".into(),
                    display_name: Some("CN=m365sync".into()),
                    hint: None,
                    end_date_time: Some("2027-01-01T00:00:00Z".into()),
                },
            ]
        );
        // application-get.md's example: an app without credentials.
        assert!(
            parse(br#"{"keyCredentials": [], "passwordCredentials": []}"#, "u")
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            parse(br#"{"id": "x"}"#, "u"),
            Err(BodyError::Unusable(_))
        ));
        assert!(matches!(
            parse(br#"{"passwordCredentials": [{"hint": "abc"}]}"#, "u"),
            Err(BodyError::Unusable(_))
        ));
    }
}
