//! `m365sync serve`'s HTTP API from outside, with the real binary: the bearer token guards
//! every `/v1` route and `/metrics` (401 without it or with another; from an environment
//! variable or a file), `/healthz` is open and checks the store and a sandbox, the OpenAPI
//! document served is the server crate's and lists (and the server serves) every route,
//! errors are JSON with their status; and what `serve` refuses at start: a non-loopback
//! address without a token, an unreadable or empty token, a second process on one SQLite
//! file (naming the first).

mod cli_process;
mod serve_process;

use std::collections::BTreeSet;
use std::time::Duration;

use serve_process::{Backend, Fleet, Server, TenantOptions, http, run_with_deadline};

const TOKEN: &str = "e2e-api-token-7d1f0c9a";
const TOKEN_VAR: &str = "M365SYNC_E2E_API_TOKEN";

/// Every route of the API, as the OpenAPI document names them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{name}"),
    ("post", "/v1/tenants/{name}/sync"),
    ("post", "/v1/tenants/{name}/pause"),
    ("post", "/v1/tenants/{name}/resume"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("get", "/v1/jobs"),
    ("get", "/v1/changes"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/connect"),
    ("get", "/connect/callback"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
];

fn error_code(reply: &serve_process::Reply) -> String {
    reply.json()["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body: {}", reply.text()))
        .to_string()
}

#[test]
fn the_api_is_guarded_by_its_token_and_serves_its_openapi_document() {
    let Some(mut fleet) = Fleet::new(Backend::Sqlite) else {
        return;
    };
    fleet.add("contoso", 10, |_| {}, TenantOptions::default());
    let config = fleet.config(
        "api.toml",
        &format!("api_token_env = \"{TOKEN_VAR}\"\nlease_secs = 10"),
        "",
    );
    // With a token, serve may listen on every interface.
    let server = fleet
        .serve(&config, &["--listen", "0.0.0.0:0"], &[(TOKEN_VAR, TOKEN)])
        .with_token(TOKEN);
    assert!(
        server.stderr().contains("(bearer token required)"),
        "{}",
        server.stderr()
    );
    server.wait_tenant("contoso", "synced", Duration::from_secs(120), |t| {
        t["last_run"]["ok"] == true
    });

    // No token, another token, another scheme: 401, saying how to authenticate.
    let address = server.address;
    for (path, token) in [
        ("/v1/tenants", None),
        ("/v1/tenants", Some("e2e-api-token-7d1f0c9")),
        ("/v1/tenants", Some("e2e-api-token-7d1f0c9a0")),
        ("/v1/tenants/contoso", None),
        ("/v1/changes", None),
        ("/metrics", None),
        ("/v1/openapi.json", Some("wrong")),
    ] {
        let reply = http(address, "GET", path, token);
        assert_eq!(
            reply.status,
            401,
            "GET {path} with {token:?}: {}",
            reply.text()
        );
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{path}");
        assert_eq!(error_code(&reply), "unauthorized");
    }
    for path in ["/v1/tenants/contoso/sync", "/v1/tenants/contoso/pause"] {
        let reply = http(address, "POST", path, None);
        assert_eq!(reply.status, 401, "POST {path}: {}", reply.text());
    }
    assert_eq!(
        server.tenant("contoso")["paused"],
        false,
        "the refused pause changed nothing"
    );
    let tenants = server.get("/v1/tenants");
    assert_eq!(tenants.status, 200, "{}", tenants.text());
    assert_eq!(tenants.json()[0]["name"], "contoso");
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        metrics.headers
    );
    assert!(metrics.text().ends_with("# EOF\n"), "{}", metrics.text());

    // /healthz needs no token.
    let health = http(address, "GET", "/healthz", None);
    assert_eq!(health.status, 200, "{}", health.text());
    let health = health.json();
    assert_eq!(health["ok"], true, "{health}");
    assert_eq!(health["store"], "ok", "{health}");
    assert_eq!(health["sandbox"], "ok", "{health}");
    assert!(
        health["worker"]
            .as_str()
            .unwrap()
            .contains(&format!(":{}:", server.pid())),
        "{health}"
    );

    // The OpenAPI document is the server crate's, and names every route.
    let served = server.get_json("/v1/openapi.json");
    let document = serde_json::to_value(m365sync_server::openapi::document()).unwrap();
    assert_eq!(
        served, document,
        "GET /v1/openapi.json = openapi::document()"
    );
    let documented: BTreeSet<(String, String)> = served["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "the document lists every route, no other"
    );
    // ... and the server serves each route the document names (none falls through to
    // the fallback's "no such route").
    let run_id = server.runs_of("contoso")[0]["id"].as_i64().unwrap();
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &run_id.to_string()).replace(
            "{name}",
            if method == "post" {
                "nobody"
            } else {
                "contoso"
            },
        );
        let reply = server.request(&method.to_uppercase(), &concrete);
        assert!(
            !reply.text().contains("no such route") && reply.status != 405,
            "{method} {concrete}: {} {}",
            reply.status,
            reply.text()
        );
        // A connect request without its body, and a consent callback without a state of
        // ours, are refused; the tenants' actions on "nobody" find no such tenant.
        let want = match path.as_str() {
            "/v1/connect" => 415,
            "/connect/callback" => 400,
            _ if method == "post" => 404,
            _ => 200,
        };
        assert_eq!(reply.status, want, "{method} {concrete}: {}", reply.text());
    }

    // Errors: JSON with their status and a code.
    for (path, status, code) in [
        ("/v1/jobs?state=bogus", 400, "bad-request"),
        ("/v1/jobs?limit=0", 400, "bad-request"),
        ("/v1/runs?limit=1001", 400, "bad-request"),
        ("/v1/runs?limit=ten", 400, "bad-request"),
        ("/v1/changes?after=-1", 400, "bad-request"),
        ("/v1/runs/999999", 404, "not-found"),
        ("/v1/tenants/nobody", 404, "not-found"),
        ("/v1/nothing-here", 404, "not-found"),
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, status, "GET {path}: {}", reply.text());
        assert_eq!(error_code(&reply), code, "GET {path}");
    }
    let reply = server.get("/v1/jobs?state=bogus");
    assert!(
        reply.text().contains("queued"),
        "names what is allowed: {}",
        reply.text()
    );

    // A second serve on the same SQLite file is refused, naming the first.
    let second = fleet.serve_command(&config, &["--listen", "127.0.0.1:0"], &[(TOKEN_VAR, TOKEN)]);
    let output = run_with_deadline(second, Duration::from_secs(120));
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        cli_process::text(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "is served by m365sync serve (pid {} on",
            server.pid()
        )) && stderr.contains("one process serves a SQLite store"),
        "{stderr}"
    );
    // The first is undisturbed.
    assert_eq!(server.get("/v1/tenants").status, 200);

    // The token appears nowhere the server writes; SIGINT stops it cleanly.
    assert!(!server.stderr().contains(TOKEN));
    let status = server.stop("INT", Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(
        server.stderr().contains("stopped (SIGINT)"),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_token_from_a_file_guards_the_api() {
    let Some(mut fleet) = Fleet::new(Backend::Sqlite) else {
        return;
    };
    fleet.add("contoso", 10, |_| {}, TenantOptions::default());
    // Relative to the config file; its trailing newline is not part of the token.
    std::fs::write(fleet.dir.path().join("api-token"), format!("{TOKEN}\n")).unwrap();
    let config = fleet.config("file.toml", "api_token_file = \"api-token\"", "");
    let server: Server = fleet.serve(&config, &[], &[]);
    assert_eq!(server.get("/v1/tenants").status, 401);
    let server = server.with_token(TOKEN);
    assert_eq!(server.get("/v1/tenants").status, 200);
    assert_eq!(http(server.address, "GET", "/healthz", None).status, 200);
}

/// `serve` with `config` and `args`, expected to refuse to start: its output.
fn refused(fleet: &Fleet, config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let command = fleet.serve_command(config, args, env);
    let output = run_with_deadline(command, Duration::from_secs(120));
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        cli_process::text(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_refuses_to_start_unguarded_on_other_interfaces_or_with_a_bad_token() {
    let Some(mut fleet) = Fleet::new(Backend::Sqlite) else {
        return;
    };
    fleet.add("contoso", 10, |_| {}, TenantOptions::default());

    // No token: any address but loopback is refused, from the command line ...
    let open = fleet.config("open.toml", "lease_secs = 10", "");
    let stderr = refused(&fleet, &open, &["--listen", "0.0.0.0:0"], &[]);
    assert!(
        stderr.contains(
            "--listen 0.0.0.0:0 is reachable from other machines, and no API token configured"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("api_token_env or api_token_file"),
        "{stderr}"
    );
    // ... or from the config, naming the file, the line and the key.
    let listed = fleet.config("listed.toml", "listen = \"0.0.0.0:18080\"", "");
    let stderr = refused(&fleet, &listed, &["--listen", "127.0.0.1:0"], &[]);
    assert!(
        stderr.contains("listed.toml") && stderr.contains("listen") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is reachable from other machines"),
        "{stderr}"
    );

    // A token that cannot be read, or is empty.
    let guarded = fleet.config(
        "guarded.toml",
        &format!("api_token_env = \"{TOKEN_VAR}\""),
        "",
    );
    let stderr = refused(&fleet, &guarded, &[], &[]);
    assert!(
        stderr.contains("the API token") && stderr.contains(TOKEN_VAR),
        "{stderr}"
    );
    let stderr = refused(&fleet, &guarded, &[], &[(TOKEN_VAR, " \n")]);
    assert!(stderr.contains("is empty"), "{stderr}");

    // Nothing was served, nothing synced.
    let runs = fleet.block_on(m365sync_e2e::runs(fleet.store(), "contoso"));
    assert!(runs.is_empty(), "{runs:?}");
}
