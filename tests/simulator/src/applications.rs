//! The app registration as Graph shows it: `GET /v1.0/applications/{id}` and
//! `GET /v1.0/applications(appId='{appId}')`, with its client secrets
//! (`passwordCredentials`) and certificates (`keyCredentials`), so a client
//! can see when its own credentials expire. The simulated tenant is the one
//! the app is registered in.
//!
//! Pages relied on (microsoftgraph/microsoft-graph-docs-contrib):
//! - api-reference/v1.0/api/application-get.md: both addresses ("You can
//!   address the application using either its **id** or **appId**"),
//!   `$select`, "By default, this API doesn't return the public key value of
//!   the **key** in the **keyCredential** property unless **keyCredentials**
//!   is specified in a `$select` query", and Example 1's response, whose
//!   properties the default answer is a subset of.
//! - api-reference/v1.0/includes/permissions/application-get-permissions.md:
//!   "Application | Application.Read.All | Application.ReadWrite.OwnedBy,
//!   Application.ReadWrite.All".
//! - resources/passwordcredential.md and resources/keycredential.md (see
//!   `credentials.rs`).
//!
//! An unknown id answers 404 `Request_ResourceNotFound` with the directory's
//! message for a missing object, as for users (graph.rs).

use serde_json::{Map, Value, json};

use crate::credentials::PasswordCredential;
use crate::graph::{Reply, SELECT_ONLY, Set, authorize, resolve_keys};
use crate::odata::{GraphError, parse_query};
use crate::rng::Rng;
use crate::server::Shared;

/// application-get-permissions.md, "Application" row.
const ROLES: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.OwnedBy",
    "Application.ReadWrite.All",
];

/// The application object's id (not its appId), derived from the seed.
pub(crate) fn object_id(shared: &Shared) -> String {
    Rng::derived(shared.config.tenant.seed, 0x00A9_9A99).guid()
}

/// The entry of `passwordCredentials` that stands for `SimConfig::client_secret`:
/// the one whose hint is the secret's first three characters.
fn is_the_secret(shared: &Shared, c: &PasswordCredential) -> bool {
    let secret = &shared.config.client_secret;
    secret.get(..3).is_some_and(|h| h == c.hint)
}

/// The client secrets Graph lists now: `SimConfig::password_credentials`,
/// without the secret's own entry when no secret is registered
/// (`SimConfig::secret_registered`), and with that entry's end in the past
/// when the secret has expired (`SimConfig::secret_expired`).
pub(crate) fn password_credentials(shared: &Shared) -> Vec<PasswordCredential> {
    let now = shared.now();
    shared
        .config
        .password_credentials
        .iter()
        .filter(|c| shared.config.secret_registered || !is_the_secret(shared, c))
        .map(|c| {
            let mut c = c.clone();
            if shared.config.secret_expired && is_the_secret(shared, &c) && c.end > now {
                c.end = now.saturating_sub(86_400);
                c.start = c.start.min(c.end.saturating_sub(86_400));
            }
            c
        })
        .collect()
}

/// Whether `SimConfig::client_secret` has expired: `secret_expired`, or its
/// passwordCredential's end has passed.
pub(crate) fn secret_expired(shared: &Shared) -> bool {
    let now = shared.now();
    shared.config.secret_expired
        || shared
            .config
            .password_credentials
            .iter()
            .any(|c| is_the_secret(shared, c) && c.end <= now)
}

/// `/v1.0/applications…` (segments percent-decoded, `v1.0` first).
pub(crate) fn serve<B>(
    shared: &Shared,
    req: &hyper::Request<B>,
    segments: &[String],
) -> Result<Reply, GraphError> {
    let first = &segments[1];
    let (by_app_id, key, rest) = match first.find('(') {
        Some(open) => (true, Some(alternate_key(&first[open..])?), &segments[2..]),
        None => (
            false,
            segments.get(2).cloned(),
            segments.get(3..).unwrap_or(&[]),
        ),
    };
    let Some(key) = key else {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            "The simulator serves GET /applications/{id} and /applications(appId='{appId}') only.",
        ));
    };
    if let Some(extra) = rest.first() {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            format!("The simulator does not serve '{extra}' of an application."),
        ));
    }
    authorize(shared, req, ROLES)?;
    let q = parse_query(req.uri().query().unwrap_or(""), SELECT_ONLY)?;
    let found = if by_app_id {
        key.eq_ignore_ascii_case(&shared.config.client_id)
    } else {
        key.eq_ignore_ascii_case(&object_id(shared))
    };
    if !found {
        return Err(GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            ),
        ));
    }
    let selected = q
        .select
        .as_ref()
        .map(|names| resolve_keys(&application(shared, false), names, Set::Applications))
        .transpose()?;
    let with_key = selected
        .as_ref()
        .is_some_and(|keys| keys.iter().any(|k| k == "keyCredentials"));
    let full = application(shared, with_key);
    let mut out = Map::new();
    let mut context = format!("{}/v1.0/$metadata#applications", shared.graph_url);
    if let Some(keys) = &selected {
        context.push('(');
        context.push_str(&keys.join(","));
        context.push(')');
    }
    context.push_str("/$entity");
    out.insert("@odata.context".into(), Value::String(context));
    match (&selected, full) {
        (Some(keys), Value::Object(obj)) => {
            for k in keys {
                out.insert(k.clone(), obj.get(k).cloned().unwrap_or(Value::Null));
            }
        }
        (_, Value::Object(mut obj)) => out.append(&mut obj),
        _ => {}
    }
    serde_json::to_vec(&Value::Object(out))
        .map(Reply::Json)
        .map_err(|e| GraphError::new(500, "generalException", e.to_string()))
}

/// `(appId='…')` → the app id.
fn alternate_key(parens: &str) -> Result<String, GraphError> {
    let bad = || {
        GraphError::new(
            400,
            "BadRequest",
            format!(
                "Bad Request - Error in query syntax: the key '{parens}' is not appId='{{appId}}'."
            ),
        )
    };
    let inner = parens
        .strip_prefix('(')
        .and_then(|p| p.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (name, value) = inner.split_once('=').ok_or_else(bad)?;
    if !name.trim().eq_ignore_ascii_case("appId") {
        return Err(bad());
    }
    let value = value.trim();
    // A quote inside an OData string literal is doubled
    // (OData ABNF: `SQUOTE-in-string = SQUOTE SQUOTE`).
    value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map(|v| v.replace("''", "'"))
        .ok_or_else(bad)
}

/// The application object: a subset of application-get.md's Example 1.
fn application(shared: &Shared, with_key: bool) -> Value {
    let config = &shared.config;
    json!({
        "id": object_id(shared),
        "deletedDateTime": null,
        "appId": config.client_id,
        "applicationTemplateId": null,
        "identifierUris": [],
        "createdDateTime": shared.tenant.created_date_time,
        "displayName": "m365sync",
        "publisherDomain": shared.tenant.initial_domain(),
        // A multi-tenant app: it is consented to in customers' tenants.
        "signInAudience": "AzureADMultipleOrgs",
        "tags": [],
        "keyCredentials": shared.certificates.iter()
            .map(|c| c.key_credential(with_key))
            .collect::<Vec<_>>(),
        "passwordCredentials": password_credentials(shared).iter()
            .map(PasswordCredential::to_json)
            .collect::<Vec<_>>(),
        "requiredResourceAccess": [],
        "web": {
            "redirectUris": config.redirect_uris,
            "homePageUrl": null,
            "logoutUrl": null,
            "implicitGrantSettings": {
                "enableIdTokenIssuance": false,
                "enableAccessTokenIssuance": false,
            },
        },
        "publicClient": {"redirectUris": []},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_keys() {
        assert_eq!(alternate_key("(appId='abc')"), Ok("abc".to_string()));
        assert_eq!(alternate_key("(appid = 'abc' )"), Ok("abc".to_string()));
        assert_eq!(
            alternate_key("(appId='a''b c/d')"),
            Ok("a'b c/d".to_string())
        );
        for bad in [
            "(appId=abc)",
            "(id='abc')",
            "appId='abc'",
            "(appId='abc'",
            "()",
        ] {
            assert!(alternate_key(bad).is_err(), "{bad}");
        }
    }
}
