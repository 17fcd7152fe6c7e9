//! `m365sync serve`: the config's tenants synced unattended — on their schedules, when the
//! API asks ("sync now"), retried with backoff, several workers sharing one PostgreSQL
//! database (one process per SQLite file) — with the HTTP API, `/metrics`, `/healthz`, the
//! change feed and webhooks. SIGTERM or SIGINT stops it gracefully: no more claims, running
//! syncs stop at their next batch boundary (within `[serve] shutdown_grace_secs`) and go back
//! to the queue, recorded as interrupted; then it exits 0. A second signal exits at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;

use super::signals::Signals;
use super::{Failure, Output, ServeArgs};
use m365sync_config::{ConfigFile, is_loopback};
use m365sync_runtime::CancelToken;
use m365sync_server::ApiToken;
use m365sync_service::serve::{ServeError, ServeOptions, Service};
use m365sync_store::{StoreBackend, StoreError};

pub async fn run(args: ServeArgs, _output: Output) -> Result<(), Failure> {
    let config = ConfigFile::load(&args.config).map_err(Failure::usage)?;
    let settings = config.serve_settings();
    let listen: SocketAddr = args.listen.unwrap_or(settings.listen);
    let token = match &settings.api_token {
        Some(source) => {
            let value = m365sync_runtime::capabilities::secrets::read(source).map_err(|e| {
                Failure::usage(anyhow!("the API token {source:?} cannot be read: {e}"))
            })?;
            Some(
                ApiToken::new(&value)
                    .ok_or_else(|| Failure::usage(anyhow!("the API token {source:?} is empty")))?,
            )
        }
        None => None,
    };
    if token.is_none() && !is_loopback(&listen.ip().to_string()) {
        return Err(Failure::usage(anyhow!(
            "--listen {listen} is reachable from other machines, and no API token configured: \
             serve binds only to loopback; set [serve] api_token_env or api_token_file"
        )));
    }
    let runtime = Arc::new(super::sync::load_runtime(&config).await?);
    for tenant in &config.tenants {
        let run = config.resolve(tenant);
        super::sync::effective_field_map(&runtime, &args.config, tenant, &run).await?;
    }
    let location = super::store_location(args.db.as_deref(), Some(&config));
    let store: Arc<dyn StoreBackend> = super::open_store(&location).await?.into();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::run(anyhow!("cannot listen on {listen}: {e}")))?;
    let address = listener.local_addr().unwrap_or(listen);

    let mut options = ServeOptions::from_settings(&settings);
    if let Some(ms) = args.poll_ms {
        options.poll = Duration::from_millis(ms);
    }
    if let Some(ms) = args.schedule_tick_ms {
        options.schedule_tick = Duration::from_millis(ms);
    }
    options.listening = Some(address);
    let grace = options.shutdown_grace;
    let service = Service::start(runtime, store, &config, args.config.clone(), options)
        .await
        .map_err(|error| match error {
            ServeError::Store(error @ StoreError::Busy(_)) => Failure::run(error),
            other => Failure::run(other),
        })?;

    let signal = CancelToken::with_grace(grace);
    let signals = Signals::watch(signal.clone())
        .map_err(|e| Failure::run(anyhow!("cannot watch for SIGINT/SIGTERM: {e}")))?;
    eprintln!(
        "m365sync serve: {} tenant(s) from {}, store {location}, worker {}; API on http://{address}{}",
        config.tenants.len(),
        args.config.display(),
        service.worker().id,
        if token.is_some() {
            " (bearer token required)"
        } else {
            ""
        },
    );
    let router = m365sync_server::router(service.clone(), token);
    let stop = signal.clone();
    let served =
        m365sync_server::serve(listener, router, async move { stop.cancelled().await }).await;
    let reason = signal
        .reason()
        .unwrap_or_else(|| "the API server stopped".to_string());
    service.shutdown(&reason).await;
    served.map_err(|e| Failure::run(anyhow!("the API server failed: {e}")))?;
    if let Some(signal) = signals.received() {
        eprintln!("m365sync serve: stopped ({})", signal.name());
    }
    Ok(())
}
