//! `[[webhook]]` through `ConfigFile::parse`: defaults, URL and event rules, tenants of the
//! file, and URLs that never show past their origin.

use std::path::Path;

use super::*;

const TENANTS: &str = r#"
[[tenant]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "CONTOSO_SECRET"

[[tenant]]
name = "fabrikam"
tenant_id = "fabrikam.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "FABRIKAM_SECRET"
"#;

/// `[[webhook]]` is line 14 of the file, its first key line 15.
fn with_webhook(webhook: &str) -> String {
    format!("{TENANTS}\n[[webhook]]\n{webhook}\n")
}

fn targets(webhook: &str) -> Vec<WebhookTarget> {
    ConfigFile::parse(&with_webhook(webhook), Path::new("/etc/m365sync/t.toml"))
        .unwrap()
        .webhooks()
}

fn error_of(webhook: &str) -> String {
    ConfigFile::parse(&with_webhook(webhook), Path::new("t.toml"))
        .unwrap_err()
        .to_string()
}

fn assert_names(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
}

const CRM: &str = "name = \"crm\"\nurl = \"https://crm.example.com/hooks/m365?code=s3cret\"\n\
                   secret_env = \"CRM_WEBHOOK_SECRET\"";

#[test]
fn a_webhook_takes_every_event_of_every_tenant_by_default() {
    let targets = targets(CRM);
    assert_eq!(targets.len(), 1);
    let crm = &targets[0];
    assert_eq!(crm.name, "crm");
    assert_eq!(
        crm.url.as_secret_str(),
        "https://crm.example.com/hooks/m365?code=s3cret"
    );
    assert_eq!(crm.url.origin().normalized, "https://crm.example.com:443");
    assert_eq!(crm.events, ChangeKind::ALL);
    assert_eq!(crm.tenants, None);
    assert!(crm.wants(ChangeKind::LicenceRemoved, "fabrikam"));
    // Debug output names the origin and the secret's source only.
    let debug = format!("{targets:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("/hooks"),
        "{debug}"
    );
    assert!(
        debug.contains("https://crm.example.com:443/…")
            && debug.contains("environment variable CRM_WEBHOOK_SECRET"),
        "{debug}"
    );
}

#[test]
fn events_and_tenants_narrow_what_a_webhook_takes() {
    let targets = targets(
        "name = \"lms\"\nurl = \"http://127.0.0.1:9000/in\"\nsecret_file = \"lms.secret\"\n\
         events = [\"person.created\", \"person.removed\"]\ntenants = [\"fabrikam\"]",
    );
    let lms = &targets[0];
    assert_eq!(
        lms.events,
        [ChangeKind::PersonCreated, ChangeKind::PersonRemoved]
    );
    assert!(lms.wants(ChangeKind::PersonCreated, "fabrikam"));
    assert!(!lms.wants(ChangeKind::PersonCreated, "contoso"));
    assert!(!lms.wants(ChangeKind::PersonUpdated, "fabrikam"));
    assert_eq!(format!("{:?}", lms.secret), "file /etc/m365sync/lms.secret");
}

#[test]
fn urls_follow_the_files_url_rule_and_never_show_their_path() {
    let error = error_of(&CRM.replace("https://crm", "http://crm"));
    assert_names(
        &error,
        &[
            "t.toml",
            "line 16",
            "webhook \"crm\".url",
            "not loopback",
            "http://crm.example.com/…",
        ],
    );
    assert!(!error.contains("s3cret"), "{error}");
    let error = error_of(&CRM.replace("https://crm", "https://user:pw@crm"));
    assert_names(&error, &["webhook \"crm\".url", "user info"]);
    assert!(
        !error.contains("pw@") && !error.contains("s3cret"),
        "{error}"
    );
    assert_names(
        &error_of(&CRM.replace("https://", "ftp://")),
        &["webhook \"crm\".url", "https"],
    );
    for loopback in [
        "http://localhost:8080/x",
        "http://[::1]:81",
        "http://127.0.0.2/a?b=c",
    ] {
        let targets =
            targets(&CRM.replace("https://crm.example.com/hooks/m365?code=s3cret", loopback));
        assert_eq!(targets[0].url.as_secret_str(), loopback);
    }
}

#[test]
fn events_are_the_feeds_names() {
    let error = error_of(&format!(
        "{CRM}\nevents = [\"person.created\", \"person.deleted\"]"
    ));
    assert_names(
        &error,
        &[
            "line 18",
            "webhook \"crm\".events",
            "item 2: unknown event \"person.deleted\"",
            "person.created, person.updated, person.linked, person.removed, \
             group.member-added, group.member-removed, licence.assigned, licence.removed",
        ],
    );
    assert_names(
        &error_of(&format!("{CRM}\nevents = []")),
        &["webhook \"crm\".events", "empty"],
    );
    assert_names(
        &error_of(&format!(
            "{CRM}\nevents = [\"person.created\", \"person.created\"]"
        )),
        &["webhook \"crm\".events", "item 2", "twice"],
    );
}

#[test]
fn tenants_must_be_tenants_of_the_file() {
    let error = error_of(&format!("{CRM}\ntenants = [\"contoso\", \"northwind\"]"));
    assert_names(
        &error,
        &[
            "t.toml",
            "line 18",
            "webhook \"crm\".tenants",
            "item 2: no tenant named \"northwind\"",
            "contoso, fabrikam",
        ],
    );
    assert_names(
        &error_of(&format!("{CRM}\ntenants = []")),
        &["webhook \"crm\".tenants", "empty"],
    );
}

#[test]
fn names_are_unique_and_secrets_have_exactly_one_source() {
    let text = format!("{}\n[[webhook]]\n{CRM}\n", with_webhook(CRM));
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert_names(
        &error,
        &["line 20", "webhook \"crm\".name", "used by another webhook"],
    );
    assert_names(
        &error_of(&CRM.replace("name = \"crm\"", "name = \" \"")),
        &["line 15", "webhook \"#1\".name", "empty"],
    );
    assert_names(
        &error_of(&CRM.replace("secret_env = \"CRM_WEBHOOK_SECRET\"", "")),
        &[
            "line 14",
            "webhook \"crm\"",
            "set secret_env or secret_file",
        ],
    );
    assert_names(
        &error_of(&format!("{CRM}\nsecret_file = \"x\"")),
        &["line 18", "webhook \"crm\".secret_file", "both set"],
    );
    assert_names(
        &error_of(&CRM.replace("url = ", "uri = ")),
        &["webhook \"crm\"", "uri"],
    );
}
