//! The listeners: state shared by both hosts, the accept loops (one hyper
//! HTTP/1.1 connection task per client, keep-alive on), request recording and
//! dispatch to the token endpoint or to Graph.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::rng::{guid_from, mix64};
use crate::tenant::Tenant;
use crate::util::{keyed_hash, split_query, unix_now};
use crate::{Host, RecordedRequest, SimConfig, graph, token};

/// Everything the handlers need; immutable after start apart from the log
/// and the id counter.
pub struct Shared {
    pub config: SimConfig,
    pub tenant: Tenant,
    pub login_url: String,
    pub graph_url: String,
    /// Signs access tokens; new per start, so tokens from an earlier run fail.
    pub token_key: u64,
    /// Signs skip tokens; stable for a seed and tenant, like Graph's, which
    /// "will not expire" (a maintainer's answer in microsoftgraph/msgraph-sdk-javascript#1463).
    pub skip_key: u64,
    /// Lower-cased user id and UPN → index into `tenant.users`.
    pub user_index: HashMap<String, usize>,
    id_nonce: u64,
    counter: AtomicU64,
    log: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    pub fn new(config: SimConfig, login_url: String, graph_url: String) -> Self {
        let tenant = Tenant::generate(&config.tenant);
        let mut user_index = HashMap::with_capacity(tenant.users.len() * 2);
        for (i, u) in tenant.users.iter().enumerate() {
            user_index.insert(u.id.to_ascii_lowercase(), i);
            user_index.insert(u.user_principal_name.to_ascii_lowercase(), i);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let start_nonce = mix64(nanos ^ (std::process::id() as u64).rotate_left(32));
        Shared {
            token_key: mix64(start_nonce ^ config.tenant.seed),
            skip_key: keyed_hash(config.tenant.seed, tenant.id.as_bytes()),
            id_nonce: mix64(start_nonce.wrapping_add(1)),
            counter: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            user_index,
            config,
            tenant,
            login_url,
            graph_url,
        }
    }

    /// A fresh GUID for request ids, trace ids and token ids.
    pub fn next_guid(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let a = mix64(self.id_nonce ^ n);
        let b = mix64(a ^ self.id_nonce.rotate_left(29));
        guid_from(a, b)
    }

    pub fn now(&self) -> u64 {
        unix_now()
    }

    fn record(&self, r: RecordedRequest) {
        if let Ok(mut log) = self.log.lock() {
            log.push(r);
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn request_count(&self) -> usize {
        self.log.lock().map(|l| l.len()).unwrap_or(0)
    }
}

/// Starts the accept loop for one listener. It stops when `stop` turns true
/// (or its sender is dropped); dropping the loop's `JoinSet` then closes every
/// open connection.
pub fn spawn(
    listener: TcpListener,
    host: Host,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(handle(shared, host, req).await) }
                        });
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.shutdown().await;
    })
}

async fn handle(shared: Arc<Shared>, host: Host, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") && !v[7..].trim().is_empty()
        });
    let response = match host {
        Host::Login => token::handle(&shared, req).await,
        Host::Graph => graph::handle(&shared, req).await,
    };
    shared.record(RecordedRequest {
        host,
        method,
        path,
        query: redact_query(&raw_query),
        status: response.status().as_u16(),
        authorization,
    });
    response
}

/// Replaces the value of any `client_secret` (or `client_assertion`) query
/// parameter: the simulator never records a secret.
fn redact_query(raw: &str) -> String {
    if !raw.to_ascii_lowercase().contains("client") {
        return raw.to_string();
    }
    split_query(raw)
        .map(|(k, v)| {
            let name = crate::util::percent_decode(k, true).unwrap_or_default();
            if name.eq_ignore_ascii_case("client_secret")
                || name.eq_ignore_ascii_case("client_assertion")
            {
                format!("{k}=<redacted>")
            } else if v.is_empty() && !raw.contains(&format!("{k}=")) {
                k.to_string()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(redact_query("$top=5"), "$top=5");
        assert_eq!(
            redact_query("client_id=a&client_secret=s3cr3t&x=1"),
            "client_id=a&client_secret=<redacted>&x=1"
        );
        assert_eq!(
            redact_query("client%5Fsecret=s3cr3t"),
            "client%5Fsecret=<redacted>"
        );
    }
}
