//! The config's tests: schema, rules, validation errors and resolution, through `parse`.

use super::*;
use m365sync_wit::types::{Endpoints, Features, MatchKey, RemovalPolicy};

const MINIMAL: &str = r#"
[[tenant]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "CONTOSO_SECRET"
"#;

#[test]
fn minimal_config_resolves_to_global_cloud() {
    let config = ConfigFile::parse(MINIMAL, Path::new("t.toml")).unwrap();
    let run = config.resolve(config.tenant(None).unwrap());
    assert_eq!(run.tenant.endpoints.graph, "https://graph.microsoft.com");
    assert_eq!(
        run.allowlist.api,
        vec![
            "https://login.microsoftonline.com:443",
            "https://graph.microsoft.com:443"
        ]
    );
    assert!(!run.allowlist.downloads.is_empty());
    assert_eq!(run.options.features, Features::USERS);
}

#[test]
fn sandboxes_pick_the_pool_size_or_on_demand() {
    let with = |line: &str| {
        let text = format!("[host]\n{line}\n{MINIMAL}");
        ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap()
            .host
            .sandboxes
    };
    assert_eq!(with(""), None);
    assert_eq!(with("sandboxes = 8"), Some(8));
    assert_eq!(with("sandboxes = 0"), Some(0));
    let error = ConfigFile::parse(
        &format!("[host]\nsandboxes = -1\n{MINIMAL}"),
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("sandboxes"), "{error}");
}

#[test]
fn unknown_field_is_named() {
    let text = format!("{MINIMAL}colour = \"blue\"\n");
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("colour"), "{error}");
    assert!(error.contains("t.toml"), "{error}");
}

#[test]
fn missing_secret_source_is_named() {
    let text = MINIMAL.replace("client_secret_env = \"CONTOSO_SECRET\"", "");
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("contoso") && error.contains("client_secret_env"),
        "{error}"
    );
}

#[test]
fn bad_endpoint_is_named() {
    let text = format!("{MINIMAL}[tenant.endpoints]\ngraph = \"ftp://x\"\n");
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("endpoints.graph"), "{error}");
}

#[test]
fn bad_enum_value_names_the_tenant_and_key() {
    let text = format!("{MINIMAL}[tenant.sync]\nremoval = \"shred\"\n");
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("t.toml")
            && error.contains("\"contoso\"")
            && error.contains("sync.removal")
            && error.contains("shred"),
        "{error}"
    );
    let text = format!("{MINIMAL}[tenant.sync]\nmatch_key = \"phone\"\n");
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sync.match_key") && error.contains("phone"),
        "{error}"
    );
}

#[test]
fn match_key_removal_and_field_map_reach_the_options() {
    let text = format!(
        "{MINIMAL}[tenant.sync]\nmatch_key = \"user-principal-name\"\nremoval = \"flag\"\n\
         [tenant.field_map]\njobTitle = \"title\"\nofficeLocation = \"\"\n"
    );
    let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(run.options.match_key, MatchKey::UserPrincipalName);
    assert_eq!(run.options.removal, RemovalPolicy::Flag);
    let map: Vec<(&str, &str)> = run
        .options
        .field_map
        .iter()
        .map(|m| (m.graph_property.as_str(), m.platform_field.as_str()))
        .collect();
    assert_eq!(map, [("jobTitle", "title"), ("officeLocation", "")]);
}

#[test]
fn bad_field_maps_are_named() {
    for (map, expected) in [
        ("\"job title\" = \"title\"", "field_map"),
        (
            "jobTitle = \"title\"\ndepartment = \"title\"",
            "already fed by",
        ),
        ("jobTitle = \"a\\u0007b\"", "field_map.jobTitle"),
    ] {
        let text = format!("{MINIMAL}[tenant.field_map]\n{map}\n");
        let error = ConfigFile::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("t.toml") && error.contains("contoso") && error.contains(expected),
            "{map}: {error}"
        );
    }
    let text = format!(
        "{MINIMAL}[tenant.sync.field_map]\njobTitle = \"t\"\n[tenant.field_map]\nsurname = \"s\"\n"
    );
    let error = ConfigFile::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("both set"), "{error}");
    let error = ConfigFile::parse(
        &format!("{MINIMAL}[tenant.field_map]\njobTitle = 3\n"),
        Path::new("t.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("contoso") && error.contains("field_map.jobTitle"),
        "{error}"
    );
}

#[test]
fn the_example_config_parses_with_and_without_its_commented_options() {
    let example = include_str!("../../../examples/tenant.toml");
    let config = ConfigFile::parse(example, Path::new("examples/tenant.toml")).unwrap();
    assert!(config.tenants[0].field_map().is_empty());
    let uncommented: String = example
        .lines()
        .map(|line| {
            for option in [
                "# match_key =",
                "# [tenant.field_map]",
                "# jobTitle =",
                "# companyName =",
                "# officeLocation =",
                "# max_removal_percent =",
                "# max_removals =",
                "# client_secret_expires =",
                "# public_url =",
            ] {
                if line.starts_with(option) {
                    return line.trim_start_matches("# ").to_string() + "\n";
                }
            }
            line.to_string() + "\n"
        })
        .collect();
    let config = ConfigFile::parse(&uncommented, Path::new("examples/tenant.toml")).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(run.options.match_key, MatchKey::Email);
    assert_eq!(run.options.field_map.len(), 3);
    assert_eq!(
        (
            run.options.removal_guard.max_percent,
            run.options.removal_guard.max_count
        ),
        (10, 500)
    );
}

#[test]
fn pinned_hosts_restrict_the_allowlist() {
    let endpoints = Endpoints {
        login: "http://127.0.0.1:4000".into(),
        graph: "http://127.0.0.1:5000".into(),
    };
    let downloads = vec!["http://127.0.0.2:6000".to_string()];
    let pins = vec!["127.0.0.1:4000".to_string()];
    let pinned = allowlist(&endpoints, &downloads, Some(&pins));
    assert_eq!(pinned.api, vec!["http://127.0.0.1:4000"]);
    assert!(pinned.downloads.is_empty());
    let open = allowlist(&endpoints, &downloads, None);
    assert_eq!(open.api.len(), 2);
    assert_eq!(open.downloads, vec!["http://127.0.0.2:6000"]);
}

#[test]
fn cloud_selects_documented_hosts() {
    let text = MINIMAL.replace(
        "client_secret_env",
        "cloud = \"us-gov-dod\"\nclient_secret_env",
    );
    let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(run.tenant.endpoints.graph, "https://dod-graph.microsoft.us");
    assert_eq!(
        run.tenant.endpoints.login,
        "https://login.microsoftonline.us"
    );
}

/// The error of `text`, as the CLI prints it.
fn error_of(text: &str) -> String {
    ConfigFile::parse(text, Path::new("t.toml"))
        .unwrap_err()
        .to_string()
}

fn assert_names(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
}

#[test]
fn invalid_domains_are_refused_naming_file_line_tenant_key_and_value() {
    let text =
        format!("{MINIMAL}[tenant.filter]\ndomains = [\"contoso.com\", \"not a domain!\"]\n");
    let error = error_of(&text);
    assert_names(
        &error,
        &[
            "t.toml",
            "line 8",
            "tenant \"contoso\"",
            "filter.domains: item 2",
            "\"not a domain!\"",
        ],
    );
    for bad in ["contoso", "", "con*so.com", "a..b"] {
        let text = format!("{MINIMAL}[tenant.filter]\ndomains = [\"{bad}\"]\n");
        assert_names(&error_of(&text), &["filter.domains: item 1"]);
    }
    let mixed = format!("{MINIMAL}[tenant.filter]\ndomains = [\"*\", \"contoso.com\"]\n");
    assert_names(&error_of(&mixed), &["filter.domains", "alone"]);
    let fine = format!(
        "{MINIMAL}[tenant.filter]\ndomains = [\"contoso.com\", \"*.fabrikam.com\", \"münchen.de\"]\n"
    );
    let config = ConfigFile::parse(&fine, Path::new("t.toml")).unwrap();
    assert_eq!(
        config
            .resolve(&config.tenants[0])
            .options
            .filter
            .domains
            .len(),
        3
    );
}

#[test]
fn attribute_filter_values_are_checked() {
    let with = |rule: &str| {
        format!("{MINIMAL}[[tenant.filter.attributes]]\nattribute = \"department\"\n{rule}\n")
    };
    for (rule, key) in [
        (
            "include = [\"Sales\", \"\"]",
            "filter.attributes[0].include: item 2",
        ),
        (
            "include = [\"a\\u0001b\"]",
            "filter.attributes[0].include: item 1",
        ),
        ("exclude = [\"*\"]", "filter.attributes[0].exclude: item 1"),
        ("", "filter.attributes[0]"),
    ] {
        let error = error_of(&with(rule));
        assert_names(&error, &["t.toml", "line ", "tenant \"contoso\"", key]);
    }
    let config = ConfigFile::parse(
        &with("include = [\"Sales*\"]\nexclude = [\"Sales Ops\"]"),
        Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(config.tenants[0].filter.attributes[0].include, ["Sales*"]);
}

#[test]
fn usage_periods_are_graphs_periods() {
    let text = format!("{MINIMAL}[tenant.sync]\nusage_periods = [30, 31]\n");
    assert_names(
        &error_of(&text),
        &["line 8", "sync.usage_periods", "31", "7, 30, 90, 180"],
    );
    let text = format!("{MINIMAL}[tenant.sync]\nusage_periods = [30, 30]\n");
    assert_names(&error_of(&text), &["sync.usage_periods", "twice"]);
}

#[test]
fn removal_guard_keys_reach_the_options_and_are_range_checked() {
    let config = ConfigFile::parse(MINIMAL, Path::new("t.toml")).unwrap();
    let guard = config.resolve(&config.tenants[0]).options.removal_guard;
    assert_eq!(
        (guard.max_percent, guard.max_count, guard.allow),
        (10, 500, false)
    );
    let text = format!("{MINIMAL}[tenant.sync]\nmax_removal_percent = 25\nmax_removals = 0\n");
    let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
    let mut run = config.resolve(&config.tenants[0]);
    let guard = run.options.removal_guard;
    assert_eq!(
        (guard.max_percent, guard.max_count, guard.allow),
        (25, 0, false)
    );
    run.allow_mass_removal(true);
    assert!(run.options.removal_guard.allow);
    for (line, range) in [
        ("max_removal_percent = 101", "0..=100"),
        ("max_removal_percent = -1", "0..=100"),
        ("max_removals = -5", "0..=4294967295"),
        ("max_removals = 4294967296", "0..=4294967295"),
    ] {
        let text = format!("{MINIMAL}[tenant.sync]\n{line}\n");
        let key = line.split(' ').next().unwrap();
        assert_names(&error_of(&text), &["line 8", &format!("sync.{key}"), range]);
    }
}

#[test]
fn plain_http_is_refused_except_to_loopback_for_every_url_key() {
    for (key, value) in [
        ("graph", "\"http://graph.microsoft.com\""),
        ("login", "\"http://login.microsoftonline.com\""),
        ("reports", "[\"http://reports.office.com\"]"),
    ] {
        let text = format!("{MINIMAL}[tenant.endpoints]\n{key} = {value}\n");
        assert_names(
            &error_of(&text),
            &[
                "t.toml",
                "line 8",
                &format!("endpoints.{key}"),
                "not loopback",
            ],
        );
    }
    let text = format!(
        "{MINIMAL}[tenant.endpoints]\nlogin = \"http://127.0.0.1:4001\"\n\
         graph = \"http://localhost:4002\"\nreports = [\"http://[::1]:4003\"]\n"
    );
    let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
    let run = config.resolve(&config.tenants[0]);
    assert_eq!(run.tenant.endpoints.login, "http://127.0.0.1:4001");
    assert_eq!(run.allowlist.downloads, ["http://[::1]:4003"]);
}

#[test]
fn ports_and_user_info_in_urls_are_refused_at_load() {
    let text = format!("{MINIMAL}[tenant.endpoints]\ngraph = \"http://127.0.0.1:99999\"\n");
    assert_names(
        &error_of(&text),
        &["line 8", "endpoints.graph", "99999", "1..=65535"],
    );
    let text = format!(
        "{MINIMAL}[tenant.endpoints]\nlogin = \"https://admin:hunter2@login.microsoftonline.com\"\n"
    );
    let error = error_of(&text);
    assert_names(&error, &["endpoints.login", "user info"]);
    assert!(!error.contains("hunter2"), "{error}");
    let text = format!("[host]\nallowed_hosts = [\"graph.microsoft.com:99999\"]\n{MINIMAL}");
    assert_names(
        &error_of(&text),
        &["line 2", "host.allowed_hosts: item 1", "1..=65535"],
    );
}

#[test]
fn host_limits_out_of_range_name_line_key_and_range() {
    for (line, key, range) in [
        ("memory_limit_mib = 0", "host.memory_limit_mib", "16..=4096"),
        ("memory_limit_mib = 1", "host.memory_limit_mib", "16..=4096"),
        (
            "memory_limit_mib = 17592186044416",
            "host.memory_limit_mib",
            "16..=4096",
        ),
        (
            "memory_limit_mib = 1000000",
            "host.memory_limit_mib",
            "16..=4096",
        ),
        ("sandboxes = 100000", "host.sandboxes", "0..=1024"),
        ("run_timeout_secs = 0", "host.run_timeout_secs", "1..=86400"),
    ] {
        let text = format!("[host]\n{line}\n{MINIMAL}");
        assert_names(&error_of(&text), &["t.toml", "line 2", key, range]);
    }
    let text = format!("[host]\nmemory_limit_mib = 4096\nrun_timeout_secs = 1\n{MINIMAL}");
    let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
    assert_eq!(config.host.memory_limit_mib, Some(4096));
}

#[test]
fn tenant_ids_must_be_guids_or_domains() {
    let text = MINIMAL.replace("contoso.onmicrosoft.com", "not a tenant");
    assert_names(
        &error_of(&text),
        &["line 4", "tenant \"contoso\"", "tenant_id", "GUID"],
    );
    let text = MINIMAL.replace(
        "contoso.onmicrosoft.com",
        "11111111-2222-3333-4444-555555555555",
    );
    assert!(ConfigFile::parse(&text, Path::new("t.toml")).is_ok());
}

#[test]
fn a_missing_field_names_its_tenant_not_the_section_above() {
    let text = "[host]\nmemory_limit_mib = 256\n\n[[tenant]]\nname = \"a\"\ntenant_id = \"contoso.com\"\n\
                client_secret_env = \"X\"\n";
    let error = error_of(text);
    assert_names(&error, &["t.toml", "line 4", "tenant \"a\"", "client_id"]);
    assert!(!error.contains("host"), "{error}");
    // A syntax error names its line too.
    assert_names(
        &error_of("[[tenant]\nname = 1\n"),
        &["t.toml", "line 1", "TOML"],
    );
}

#[test]
fn an_unreadable_config_says_the_os_error_once() {
    let error = ConfigFile::load(Path::new("/nonexistent/x.toml")).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(chain.contains("/nonexistent/x.toml"), "{chain}");
    assert_eq!(chain.matches("os error").count(), 1, "{chain}");
}
