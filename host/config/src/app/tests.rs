//! `[[app]]`, credentials and the least privileged app, through `parse`.

use std::path::{Path, PathBuf};

use m365sync_wit::types::{CredentialKind, Features};

use crate::{AppChoice, ConfigFile, Credential};

const APPS: &str = r#"
[[app]]
name = "everything"
client_id = "aaaaaaaa-0000-0000-0000-000000000001"
features = ["users", "licences", "groups", "mailboxes"]
client_secret_env = "EVERYTHING_SECRET"
client_secret_expires = "2027-05-01"

[[app]]
name = "users-licences"
client_id = "aaaaaaaa-0000-0000-0000-000000000002"
features = ["users", "licences"]
certificate_file = "certs/app.cert.pem"
certificate_key_file = "/keys/app.key.pem"

[[app]]
name = "users"
client_id = "aaaaaaaa-0000-0000-0000-000000000003"
features = ["users"]
federated_token_file = "/var/run/secrets/token"
"#;

fn parse(text: &str) -> Result<ConfigFile, String> {
    ConfigFile::parse(text, Path::new("/etc/m365sync/t.toml")).map_err(|e| e.to_string())
}

fn tenant(name: &str, body: &str) -> String {
    format!("[[tenant]]\nname = \"{name}\"\ntenant_id = \"{name}.onmicrosoft.com\"\n{body}\n")
}

#[test]
fn a_tenant_without_an_app_gets_the_least_privileged_app_covering_its_features() {
    let text = format!(
        "{APPS}{}{}{}",
        tenant("a", "[tenant.sync]\nfeatures = [\"users\"]"),
        tenant("b", "[tenant.sync]\nfeatures = [\"users\", \"licences\"]"),
        tenant("c", "[tenant.sync]\nfeatures = [\"users\", \"groups\"]"),
    );
    let config = parse(&text).unwrap();
    let chosen: Vec<Option<String>> = config
        .tenants
        .iter()
        .map(|t| config.resolve(t).app)
        .collect();
    assert_eq!(
        chosen,
        [Some("users"), Some("users-licences"), Some("everything")].map(|a| a.map(String::from))
    );
    let AppChoice::LeastPrivileged { considered, .. } = config.app_choice(&config.tenants[1])
    else {
        panic!("chosen by features");
    };
    let covering: Vec<&str> = considered
        .iter()
        .filter(|(_, _, covers)| *covers)
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert_eq!(covering, ["everything", "users-licences"]);
}

#[test]
fn each_credential_resolves_with_its_kind_and_paths_relative_to_the_file() {
    let text = format!("{APPS}{}", tenant("t", "app = \"users-licences\""));
    let config = parse(&text).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(run.tenant.client_id, "aaaaaaaa-0000-0000-0000-000000000002");
    assert_eq!(run.tenant.credential, CredentialKind::ClientAssertion);
    match &run.credential {
        Credential::Certificate {
            certificate_file,
            key_file,
        } => {
            assert_eq!(
                certificate_file,
                &PathBuf::from("/etc/m365sync/certs/app.cert.pem")
            );
            assert_eq!(key_file, &PathBuf::from("/keys/app.key.pem"));
        }
        other => panic!("a certificate: {other:?}"),
    }
    let everything = config.app("everything").unwrap().credential();
    assert_eq!(everything.kind(), CredentialKind::ClientSecret);
    let Credential::ClientSecret { expires, .. } = everything else {
        panic!("a secret")
    };
    assert_eq!(expires, Some(jiff::civil::date(2027, 5, 1)));
    assert!(matches!(
        config.app("users").unwrap().credential(),
        Credential::Federated { .. }
    ));
}

#[test]
fn a_tenant_may_keep_its_own_client_id_with_a_certificate_or_a_token_file() {
    let text = tenant(
        "own",
        "client_id = \"11111111-2222-3333-4444-555555555555\"\nfederated_token_file = \"token\"",
    );
    let config = parse(&text).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(config.app_choice(&config.tenants[0]), AppChoice::Own);
    assert_eq!(run.app, None);
    assert_eq!(run.tenant.credential, CredentialKind::ClientAssertion);
    assert!(
        matches!(&run.credential, Credential::Federated { token_file } if token_file == Path::new("/etc/m365sync/token"))
    );
}

#[test]
fn wrong_app_and_credential_settings_are_named() {
    let cases = [
        (
            format!("{APPS}{}", tenant("t", "app = \"nope\"")),
            ["app", "no [[app]] is named \"nope\""],
        ),
        (
            format!(
                "{APPS}{}",
                tenant(
                    "t",
                    "app = \"users\"\n[tenant.sync]\nfeatures = [\"users\", \"licences\"]"
                )
            ),
            [
                "app",
                "covers users, and the tenant enables users, licences",
            ],
        ),
        (
            format!(
                "{APPS}{}",
                tenant(
                    "t",
                    "[tenant.sync]\nfeatures = [\"users\", \"usage-reports\"]"
                )
            ),
            ["tenant \"t\"", "no [[app]] covers the tenant's features"],
        ),
        (
            tenant("t", "client_id = \"x\""),
            ["tenant \"t\"", "no credential"],
        ),
        (
            tenant("t", ""),
            ["tenant \"t\"", "no app: set client_id and a credential"],
        ),
        (
            tenant(
                "t",
                "client_id = \"x\"\nclient_secret_env = \"S\"\nfederated_token_file = \"f\"",
            ),
            ["federated_token_file", "more than one credential"],
        ),
        (
            tenant("t", "client_id = \"x\"\ncertificate_file = \"c.pem\""),
            ["certificate_file", "certificate_key_file is missing"],
        ),
        (
            tenant(
                "t",
                "client_id = \"x\"\nfederated_token_file = \"f\"\nclient_secret_expires = \"2027-01-01\"",
            ),
            ["client_secret_expires", "applies to a client secret"],
        ),
        (
            tenant(
                "t",
                "client_id = \"x\"\nclient_secret_env = \"S\"\nclient_secret_expires = \"next may\"",
            ),
            ["client_secret_expires", "YYYY-MM-DD"],
        ),
        (
            format!(
                "{APPS}{}",
                tenant("t", "app = \"users\"\nclient_id = \"x\"")
            ),
            ["client_id", "client_id and app are both set"],
        ),
        (
            format!(
                "{APPS}{}",
                tenant("t", "app = \"users\"\nclient_secret_env = \"S\"")
            ),
            ["app", "a credential and app are both set"],
        ),
        (
            format!(
                "{APPS}[[app]]\nname = \"users\"\nclient_id = \"y\"\nclient_secret_env = \"S\"\n{}",
                tenant("t", "app = \"users\"")
            ),
            ["app \"users\"", "name is used by another [[app]]"],
        ),
        (
            format!(
                "[[app]]\nname = \"bare\"\nclient_id = \"y\"\n{}",
                tenant("t", "app = \"bare\"")
            ),
            ["app \"bare\"", "no credential"],
        ),
    ];
    for (text, expected) in cases {
        let error = parse(&text).expect_err(&text);
        for part in expected {
            assert!(error.contains(part), "{part:?} not in: {error}\n{text}");
        }
    }
}

#[test]
fn an_app_covers_users_alone_by_default() {
    let text = format!(
        "[[app]]\nname = \"a\"\nclient_id = \"y\"\nclient_secret_file = \"s\"\n{}",
        tenant("t", "")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.apps[0].features, Features::USERS);
    assert_eq!(config.resolve(&config.tenants[0]).app.as_deref(), Some("a"));
}
