//! `[serve]` through `ConfigFile::parse`: defaults, ranges, and the API token rule.

use std::path::Path;

use super::*;

const TENANT: &str = r#"
[[tenant]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "CONTOSO_SECRET"
"#;

fn settings(serve: &str) -> ServeSettings {
    let text = format!("[serve]\n{serve}\n{TENANT}");
    ConfigFile::parse(&text, Path::new("/etc/m365sync/t.toml"))
        .unwrap()
        .serve_settings()
}

fn error_of(serve: &str) -> String {
    let text = format!("[serve]\n{serve}\n{TENANT}");
    ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string()
}

fn assert_names(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
}

#[test]
fn a_file_without_serve_gets_the_documented_defaults() {
    let config = ConfigFile::parse(TENANT, Path::new("t.toml")).unwrap();
    let settings = config.serve_settings();
    assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
    assert!(settings.api_token.is_none());
    assert_eq!(
        (
            settings.workers,
            settings.per_app,
            settings.max_running,
            settings.failing_after
        ),
        (4, 8, None, 3)
    );
    assert_eq!(
        settings.retry_backoff,
        [60, 300, 1800].map(Duration::from_secs)
    );
    assert_eq!(settings.lease, Duration::from_secs(60));
    assert_eq!(settings.shutdown_grace, Duration::from_secs(30));
    assert_eq!(settings.timezone.name(), Zone::system().name());
    assert_eq!(
        ServeSettings::default().listen,
        config.serve_settings().listen
    );
}

#[test]
fn every_key_reaches_the_settings() {
    let settings = settings(
        "listen = \"0.0.0.0:9000\"\napi_token_file = \"secrets/api-token\"\nworkers = 16\n\
         per_app = 2\nmax_running = 40\nfailing_after = 5\nretry_backoff = [\"30s\", \"2m\", \"1h30m\", \"1d\"]\n\
         lease_secs = 120\nshutdown_grace_secs = 90\ntimezone = \"Europe/Paris\"",
    );
    assert_eq!(settings.listen.to_string(), "0.0.0.0:9000");
    let token = format!("{:?}", settings.api_token);
    assert_eq!(token, "Some(file /etc/m365sync/secrets/api-token)");
    assert_eq!(
        (
            settings.workers,
            settings.per_app,
            settings.max_running,
            settings.failing_after
        ),
        (16, 2, Some(40), 5)
    );
    assert_eq!(
        settings.retry_backoff,
        [30, 120, 5400, 86_400].map(Duration::from_secs)
    );
    assert_eq!(
        (settings.lease, settings.shutdown_grace),
        (Duration::from_secs(120), Duration::from_secs(90))
    );
    assert_eq!(settings.timezone.name(), "Europe/Paris");
    assert!(settings_allow_no_retries());
}

fn settings_allow_no_retries() -> bool {
    settings("retry_backoff = []").retry_backoff.is_empty()
}

#[test]
fn values_out_of_range_name_line_key_and_range() {
    for (line, key, expected) in [
        ("workers = 0", "serve.workers", "1..=64"),
        ("workers = 65", "serve.workers", "1..=64"),
        ("per_app = 1001", "serve.per_app", "1..=1000"),
        ("max_running = 0", "serve.max_running", "1..=100000"),
        ("failing_after = 101", "serve.failing_after", "1..=100"),
        ("lease_secs = 5", "serve.lease_secs", "10..=3600"),
        (
            "shutdown_grace_secs = 601",
            "serve.shutdown_grace_secs",
            "1..=600",
        ),
        (
            "retry_backoff = [\"1m\", \"2d\"]",
            "serve.retry_backoff",
            "item 2: \"2d\" is outside the allowed range 1s..=1d",
        ),
        (
            "retry_backoff = [\"1m\", \"soon\"]",
            "serve.retry_backoff",
            "item 2: \"soon\" is not a duration",
        ),
        (
            "retry_backoff = [\"1s\",\"1s\",\"1s\",\"1s\",\"1s\",\"1s\",\"1s\",\"1s\",\"1s\",\"1s\",\"1s\"]",
            "serve.retry_backoff",
            "at most 10",
        ),
        (
            "listen = \"localhost:8080\"",
            "serve.listen",
            "not a socket address",
        ),
        ("listen = \"127.0.0.1\"", "serve.listen", "ip:port"),
        ("timezone = \"Mars/Olympus\"", "serve.timezone", "IANA"),
        (
            "api_token_env = \"A=B\"",
            "serve.api_token_env",
            "not an environment",
        ),
        ("colour = \"blue\"", "serve", "colour"),
    ] {
        assert_names(&error_of(line), &["t.toml", "line 2", key, expected]);
    }
}

#[test]
fn a_listen_address_beyond_loopback_needs_an_api_token() {
    let error = error_of("workers = 2\nlisten = \"0.0.0.0:8080\"");
    assert_names(
        &error,
        &[
            "t.toml",
            "line 3",
            "serve.listen",
            "no API token configured: serve binds only to loopback; set api_token_env or \
             api_token_file",
        ],
    );
    assert_names(
        &error_of("listen = \"[::]:8080\""),
        &["line 2", "serve.listen"],
    );
    for loopback in ["127.0.0.1:9000", "127.1.2.3:80", "[::1]:8080"] {
        let listen = settings(&format!("listen = \"{loopback}\"")).listen;
        assert_eq!(listen.to_string(), loopback);
    }
    let with_token = settings("listen = \"0.0.0.0:8080\"\napi_token_env = \"M365SYNC_API_TOKEN\"");
    assert_eq!(
        format!("{:?}", with_token.api_token),
        "Some(environment variable M365SYNC_API_TOKEN)"
    );
    assert_names(
        &error_of("api_token_env = \"T\"\napi_token_file = \"t\""),
        &["line 3", "serve.api_token_file", "both set"],
    );
}
