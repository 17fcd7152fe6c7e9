//! Connections, counted by the simulator: with the pooled sender (the default) a run opens
//! one kept-alive connection per origin it talks to and closes them when it ends; with
//! wasmtime's default sender (`HttpSender::PerRequest`) every request opens its own. Either
//! way a refused host is never connected to, and failures read the same. (The HTTP layer
//! alone: these run on SQLite.)

use m365sync_e2e::{TestStore, full_run, full_simulator, simulator, sync, tenant_run};
use m365sync_service::config::{ConfigFile, base_url};
use m365sync_service::runtime::{HttpSender, RunLimits, Runtime};
use m365sync_service::wit::types::SyncError;
use m365sync_simulator::{Host, Simulator};

const HOSTS: [Host; 3] = [Host::Login, Host::Graph, Host::Download];

fn runtime(sender: HttpSender) -> Runtime {
    Runtime::new(RunLimits::default())
        .unwrap()
        .with_http_sender(sender)
}

/// Requests each listener answered.
fn requests_to(sim: &Simulator, host: Host) -> usize {
    sim.requests().iter().filter(|r| r.host == host).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_run_opens_one_connection_per_origin() {
    let sim = simulator(2500).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime(HttpSender::Pooled);
    assert_eq!(runtime.http_sender(), HttpSender::Pooled);
    let run = tenant_run(&sim);

    let report = sync(&runtime, &run, &db).await.unwrap();

    assert_eq!(report.requests, 4, "a token request and three pages");
    assert_eq!(sim.request_count(), 4);
    assert_eq!(sim.connections_to(Host::Login), 1);
    assert_eq!(
        sim.connections_to(Host::Graph),
        1,
        "three pages, one connection"
    );
    assert_eq!(sim.connections(), 2);

    // The next run has a pool of its own: one more connection per origin.
    sync(&runtime, &run, &db).await.unwrap();
    assert_eq!(sim.request_count(), 8);
    assert_eq!(sim.connections_to(Host::Login), 2);
    assert_eq!(sim.connections_to(Host::Graph), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_per_request_sender_opens_a_connection_per_request() {
    let sim = simulator(2500).await;
    let db = TestStore::sqlite().await;
    let runtime = runtime(HttpSender::PerRequest);
    let run = tenant_run(&sim);

    let report = sync(&runtime, &run, &db).await.unwrap();

    assert_eq!(report.requests, 4);
    assert_eq!(sim.connections_to(Host::Login), 1);
    assert_eq!(sim.connections_to(Host::Graph), 3);
    assert_eq!(sim.connections(), sim.request_count());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_data_set_and_report_download_over_one_connection_per_origin() {
    for sender in [HttpSender::Pooled, HttpSender::PerRequest] {
        let sim = full_simulator(600, |_| {}).await;
        let db = TestStore::sqlite().await;
        let runtime = runtime(sender);
        let run = full_run(&sim);

        let report = sync(&runtime, &run, &db).await.unwrap();

        assert!(
            requests_to(&sim, Host::Download) > 0,
            "the run downloads reports"
        );
        assert_eq!(report.requests as usize, sim.request_count());
        for host in HOSTS {
            let expected = match sender {
                HttpSender::Pooled => 1,
                HttpSender::PerRequest => requests_to(&sim, host),
            };
            assert_eq!(
                sim.connections_to(host),
                expected,
                "{sender:?}: connections to {host:?} for {} requests",
                requests_to(&sim, host)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_host_is_never_connected_to_with_either_sender() {
    for sender in [HttpSender::Pooled, HttpSender::PerRequest] {
        let sim = simulator(50).await;
        let db = TestStore::sqlite().await;
        let runtime = runtime(sender);
        let mut run = tenant_run(&sim);
        let graph = base_url(&sim.graph_url()).unwrap();
        run.allowlist
            .api
            .retain(|origin| *origin != graph.normalized);

        let error = sync(&runtime, &run, &db).await.unwrap_err();

        let Some(SyncError::HostDenied(host)) = error.engine_error() else {
            panic!("{sender:?}: expected host-denied, got {error}");
        };
        let authority = sim.graph_url().trim_start_matches("http://").to_string();
        assert_eq!(host, &authority, "{sender:?}: the error names the host");
        assert_eq!(sim.connections_to(Host::Graph), 0, "{sender:?}");
        assert_eq!(requests_to(&sim, Host::Graph), 0, "{sender:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_host_fails_alike_with_either_sender_and_names_the_url() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let unreachable = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut messages = Vec::new();
    for sender in [HttpSender::Pooled, HttpSender::PerRequest] {
        let sim = simulator(50).await;
        let db = TestStore::sqlite().await;
        let runtime = runtime(sender);
        let mut run = tenant_run(&sim);
        run.tenant.endpoints.graph = unreachable.clone();
        let origin = base_url(&unreachable).unwrap();
        run.allowlist.api.push(origin.normalized);

        let error = sync(&runtime, &run, &db).await.unwrap_err();

        let Some(SyncError::Http(failure)) = error.engine_error() else {
            panic!("{sender:?}: expected an http error, got {error}");
        };
        assert!(
            failure.url.starts_with(&unreachable),
            "{sender:?}: {}",
            failure.url
        );
        assert!(
            failure.message.contains("connection refused"),
            "{sender:?}: {}",
            failure.message
        );
        assert!(error.to_string().contains(&unreachable), "{error}");
        messages.push(failure.message.clone());
    }
    assert_eq!(
        messages[0], messages[1],
        "both senders fail with the same error"
    );
}

#[test]
fn the_host_config_chooses_the_sender() {
    let parse = |setting: &str| {
        let text = format!(
            r#"
[host]
{setting}

[[tenant]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "CONTOSO_CLIENT_SECRET"
"#
        );
        let config =
            ConfigFile::parse(&text, std::path::Path::new("m365sync.toml")).expect("config parses");
        m365sync_service::setup::http_sender(&config.host)
    };
    assert_eq!(parse(""), HttpSender::Pooled);
    assert_eq!(parse("http_keep_alive = true"), HttpSender::Pooled);
    assert_eq!(parse("http_keep_alive = false"), HttpSender::PerRequest);
}
