//! The listeners: state shared by both hosts, the accept loops (one hyper
//! HTTP/1.1 connection task per client, keep-alive on), request recording and
//! dispatch to the token endpoint or to Graph.

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::credentials::{ParsedCert, ParsedFederated, parse_certificate};
use crate::directory::Directory;
use crate::gdap::DelegatedAdminRelationship;
use crate::rng::{guid_from, mix64};
use crate::tenant::{Generator, Tenant};
use crate::util::{keyed_hash, split_query, unix_now};
use crate::{
    BatchedRequest, Fault, FaultKind, Host, RecordedRequest, SimConfig, Throttle, download, graph,
    token,
};

/// The keys access tokens are signed with: the current one, and those retired
/// by `Simulator::expire_tokens` (a token signed with one of them is
/// recognised, and rejected as expired).
#[derive(Debug)]
pub struct TokenKeys {
    pub current: u64,
    pub retired: Vec<u64>,
}

/// Run-time switchable schedules, each with the number of Graph requests
/// seen since it was set.
#[derive(Debug, Default)]
struct Schedules {
    throttle: Option<(Throttle, u64)>,
    fault: Option<(Fault, u64)>,
    /// Throttling of the requests inside `$batch` calls, counted one by one.
    batch_throttle: Option<(Throttle, u64)>,
    /// `FaultKind::PagingLoop`: the page every later next link points back to.
    loop_start: Option<String>,
}

/// Counts one request against a throttling schedule: the status and
/// `Retry-After` it gets instead of being served, if it is due.
fn throttle_due(schedule: &mut Option<(Throttle, u64)>) -> Option<(u16, Option<u32>)> {
    let (t, n) = schedule.as_mut()?;
    *n += 1;
    let nth = t.every_nth.is_some_and(|k| k > 0 && *n % k as u64 == 0);
    let burst = t.burst.is_some_and(|(start, count)| {
        let (start, count) = (start as u64, count as u64);
        *n >= start && *n < start.saturating_add(count)
    });
    (nth || burst).then_some((t.status, t.retry_after_secs))
}

/// What happens to a Graph request instead of (or on top of) serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intercept {
    Throttle {
        status: u16,
        retry_after_secs: Option<u32>,
    },
    Fault(FaultKind),
}

/// The `jti` values of accepted client assertions, until they expire, and how
/// many assertions reused one.
#[derive(Debug, Default)]
struct JtiLog {
    seen: HashMap<String, u64>,
    reuses: u64,
}

/// Everything the handlers need. The directory is behind a lock (mutators on
/// `Simulator`); everything else that changes at run time is atomic or
/// behind a small mutex.
pub struct Shared {
    pub config: SimConfig,
    /// The tenant's fixed facts (id, name, domains, SKUs…); `users` is empty:
    /// the users live in `dir`.
    pub tenant: Tenant,
    dir: RwLock<Directory>,
    pub login_url: String,
    pub graph_url: String,
    /// Where report downloads are served (`http://127.0.0.2:PORT`).
    pub download_url: String,
    /// Signs download URLs; new every run.
    pub download_key: u64,
    token_keys: Mutex<TokenKeys>,
    /// Roles put in tokens issued from now on.
    roles: RwLock<Vec<String>>,
    /// Signs skip tokens and delta state tokens; stable for a seed and tenant,
    /// like Graph's, which "will not expire" (a maintainer's answer in
    /// microsoftgraph/msgraph-sdk-javascript#1463).
    pub skip_key: u64,
    /// Identifies this run: delta tokens of another run need a resync.
    pub run_id: u64,
    /// Bumped by `Simulator::expire_delta_tokens`.
    delta_epoch: AtomicU64,
    id_nonce: u64,
    counter: AtomicU64,
    schedules: Mutex<Schedules>,
    log: Mutex<Vec<RecordedRequest>>,
    /// `$batch` calls answered with a `responses` list so far.
    batches: AtomicU64,
    /// The requests inside them.
    batched: Mutex<Vec<BatchedRequest>>,
    /// TCP connections accepted, per listener (login, Graph, download).
    accepted: [AtomicU64; 3],
    /// `SimConfig::certificates`, parsed (unparseable ones are left out;
    /// `Simulator::start` refuses them first).
    pub certificates: Vec<ParsedCert>,
    /// `SimConfig::federated_credentials` with their issuers' keys.
    pub federated: Vec<ParsedFederated>,
    /// Whether an administrator consented to the app in this tenant.
    consented: AtomicBool,
    jtis: Mutex<JtiLog>,
    /// The partner's delegated admin relationships (GDAP).
    gdap: RwLock<Vec<DelegatedAdminRelationship>>,
}

impl Shared {
    pub fn new(
        config: SimConfig,
        login_url: String,
        graph_url: String,
        download_url: String,
    ) -> Self {
        let mut generator = Generator::new(&config.tenant);
        let mut tenant = generator.run();
        let users = std::mem::take(&mut tenant.users);
        let groups = std::mem::take(&mut tenant.groups);
        let dir = Directory::new(users, groups, generator);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let start_nonce = mix64(nanos ^ (std::process::id() as u64).rotate_left(32));
        let certificates = config
            .certificates
            .iter()
            .filter_map(|pem| parse_certificate(pem).ok())
            .collect();
        let federated = config
            .federated_credentials
            .iter()
            .filter_map(|f| {
                Some(ParsedFederated {
                    credential: f.clone(),
                    issuer_key: parse_certificate(&f.issuer_certificate_pem).ok()?,
                })
            })
            .collect();
        Shared {
            certificates,
            federated,
            consented: AtomicBool::new(config.consented),
            jtis: Mutex::new(JtiLog::default()),
            gdap: RwLock::new(config.delegated_admin_relationships.clone()),
            token_keys: Mutex::new(TokenKeys {
                current: mix64(start_nonce ^ config.tenant.seed),
                retired: Vec::new(),
            }),
            roles: RwLock::new(config.roles.clone()),
            skip_key: keyed_hash(config.tenant.seed, tenant.id.as_bytes()),
            run_id: mix64(start_nonce.wrapping_add(2)),
            download_key: mix64(start_nonce.wrapping_add(3)),
            delta_epoch: AtomicU64::new(0),
            id_nonce: mix64(start_nonce.wrapping_add(1)),
            counter: AtomicU64::new(0),
            schedules: Mutex::new(Schedules::default()),
            log: Mutex::new(Vec::new()),
            batches: AtomicU64::new(0),
            batched: Mutex::new(Vec::new()),
            accepted: Default::default(),
            dir: RwLock::new(dir),
            config,
            tenant,
            login_url,
            graph_url,
            download_url,
        }
    }

    /// The directory, for reading. Never held across an `.await`.
    pub fn dir(&self) -> RwLockReadGuard<'_, Directory> {
        self.dir.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory, for changing.
    pub fn dir_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        self.dir.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of the tenant with its current (live) users and groups,
    /// and today's report refresh date.
    pub fn snapshot(&self) -> Tenant {
        let mut t = self.dir().snapshot(&self.tenant);
        t.report_refresh_date = crate::util::civil_date(crate::reports::refresh_day(
            self.now(),
            self.config.tenant.seed,
        ));
        t
    }

    /// The key new access tokens are signed with.
    pub fn token_key(&self) -> u64 {
        self.token_keys.lock().map(|k| k.current).unwrap_or(0)
    }

    /// Whether `check` accepts the current key (`Some(true)`), a retired one
    /// (`Some(false)`), or none (`None`).
    pub fn match_token_key(&self, check: impl Fn(u64) -> bool) -> Option<bool> {
        let keys = self.token_keys.lock().ok()?;
        if check(keys.current) {
            Some(true)
        } else if keys.retired.iter().any(|&k| check(k)) {
            Some(false)
        } else {
            None
        }
    }

    /// Retires the current token key: every token issued so far is expired.
    pub fn rotate_token_key(&self) {
        if let Ok(mut keys) = self.token_keys.lock() {
            let old = keys.current;
            keys.retired.push(old);
            keys.current = mix64(old ^ self.id_nonce ^ 0x00E7_5EED);
        }
    }

    pub fn roles(&self) -> Vec<String> {
        self.roles.read().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn set_roles(&self, roles: Vec<String>) {
        if let Ok(mut r) = self.roles.write() {
            *r = roles;
        }
    }

    pub fn is_consented(&self) -> bool {
        self.consented.load(Ordering::SeqCst)
    }

    pub fn set_consented(&self, consented: bool) {
        self.consented.store(consented, Ordering::SeqCst);
    }

    /// Records the `jti` of an accepted client assertion valid until `exp`,
    /// counting it as a reuse if an unexpired assertion already had it.
    pub fn note_assertion_jti(&self, jti: &str, exp: u64, now: u64) {
        if let Ok(mut log) = self.jtis.lock() {
            log.seen.retain(|_, until| *until > now);
            if log.seen.insert(jti.to_string(), exp).is_some() {
                log.reuses += 1;
            }
        }
    }

    pub fn assertion_jti_reuses(&self) -> usize {
        self.jtis.lock().map(|l| l.reuses as usize).unwrap_or(0)
    }

    pub fn delegated_admin_relationships(&self) -> Vec<DelegatedAdminRelationship> {
        self.gdap.read().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn set_delegated_admin_relationships(
        &self,
        relationships: Vec<DelegatedAdminRelationship>,
    ) {
        if let Ok(mut g) = self.gdap.write() {
            *g = relationships;
        }
    }

    pub fn delta_epoch(&self) -> u64 {
        self.delta_epoch.load(Ordering::SeqCst)
    }

    pub fn expire_delta_tokens(&self) {
        self.delta_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        if let Ok(mut s) = self.schedules.lock() {
            s.throttle = throttle.map(|t| (t, 0));
        }
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        if let Ok(mut s) = self.schedules.lock() {
            s.fault = fault.map(|f| (f, 0));
            s.loop_start = None;
        }
    }

    /// Counts one Graph request against both schedules and says what to do
    /// with it. A throttled request is not served; throttling wins over a
    /// fault due on the same request (both still count it).
    fn intercept(&self) -> Option<Intercept> {
        let mut s = self.schedules.lock().ok()?;
        let out =
            throttle_due(&mut s.throttle).map(|(status, retry_after_secs)| Intercept::Throttle {
                status,
                retry_after_secs,
            });
        if let Some((f, n)) = &mut s.fault {
            *n += 1;
            let after = f.after_graph_requests as u64;
            let due = *n > after && f.count.is_none_or(|c| *n <= after.saturating_add(c as u64));
            if due && out.is_none() {
                return Some(Intercept::Fault(f.kind));
            }
        }
        out
    }

    /// `FaultKind::PagingLoop`: the next link to put in the answer to
    /// `url`, which links to `next`: `next` itself for the loop's first page
    /// (the first `url` asked, remembered), that first page for any other, so
    /// the pages go A → B → A → B … and no page links to itself.
    fn loop_link(&self, url: &str, next: &str) -> String {
        let Ok(mut s) = self.schedules.lock() else {
            return next.to_string();
        };
        match &s.loop_start {
            Some(start) if start == url => next.to_string(),
            Some(start) => start.clone(),
            None => {
                s.loop_start = Some(url.to_string());
                next.to_string()
            }
        }
    }

    pub fn set_batch_throttle(&self, throttle: Option<Throttle>) {
        if let Ok(mut s) = self.schedules.lock() {
            s.batch_throttle = throttle.map(|t| (t, 0));
        }
    }

    /// Counts one request inside a `$batch` call against the batch throttling
    /// schedule: `Some((status, retry_after_secs))` when it is throttled.
    pub fn intercept_batched(&self) -> Option<(u16, Option<u32>)> {
        let mut s = self.schedules.lock().ok()?;
        throttle_due(&mut s.batch_throttle)
    }

    /// Numbers a `$batch` call (1, 2, ...) for the batch log.
    pub fn next_batch(&self) -> usize {
        self.batches.fetch_add(1, Ordering::SeqCst) as usize + 1
    }

    pub fn record_batched(&self, entries: Vec<BatchedRequest>) {
        if let Ok(mut log) = self.batched.lock() {
            log.extend(entries);
        }
    }

    pub fn batched_requests(&self) -> Vec<BatchedRequest> {
        self.batched.lock().map(|l| l.clone()).unwrap_or_default()
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

    fn accepted(&self, host: Host) -> &AtomicU64 {
        &self.accepted[match host {
            Host::Login => 0,
            Host::Graph => 1,
            Host::Download => 2,
        }]
    }

    /// TCP connections `host`'s listener has accepted so far.
    pub fn connections(&self, host: Host) -> usize {
        self.accepted(host).load(Ordering::SeqCst) as usize
    }
}

/// The error a connection's service returns to make hyper drop the
/// connection without answering (fault injection).
#[derive(Debug)]
struct ResetConnection;

impl fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl StdError for ResetConnection {}

/// A response body: a whole one, or (fault injection) one that sends part of
/// what its `Content-Length` promises and then fails, which makes hyper close
/// the connection.
pub enum SimBody {
    Full(Full<Bytes>),
    Truncated {
        data: Option<Bytes>,
        promised: u64,
        pause: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl From<Full<Bytes>> for SimBody {
    fn from(b: Full<Bytes>) -> Self {
        SimBody::Full(b)
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            SimBody::Full(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
            SimBody::Truncated { data, pause, .. } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                // Let hyper flush the partial body before the connection dies.
                let sleep = pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(25))));
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err("truncated body (fault injection)".into())))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(b) => b.is_end_stream(),
            SimBody::Truncated { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(b) => b.size_hint(),
            SimBody::Truncated { promised, .. } => SizeHint::with_exact(*promised),
        }
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
                    shared.accepted(host).fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { handle(shared, host, req).await }
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

async fn handle(
    shared: Arc<Shared>,
    host: Host,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, ResetConnection> {
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
    let intercept = match host {
        Host::Graph => shared.intercept(),
        Host::Login | Host::Download => None,
    };
    let result: Result<Response<SimBody>, ResetConnection> = match (host, intercept) {
        (Host::Login, _) => Ok(token::handle(&shared, req).await.map(SimBody::from)),
        (Host::Download, _) => Ok(download::handle(&shared, req).await.map(SimBody::from)),
        (Host::Graph, None) => match crate::reports::unserved(&shared.config, &path) {
            Some(e) => {
                let ids = graph::ids(&shared, &req);
                Ok(graph::error_response(&shared, &e, &ids).map(SimBody::from))
            }
            None => Ok(graph::handle(&shared, req).await.map(SimBody::from)),
        },
        (
            Host::Graph,
            Some(Intercept::Throttle {
                status,
                retry_after_secs,
            }),
        ) => Ok(graph::throttled(&shared, &req, status, retry_after_secs).map(SimBody::from)),
        (Host::Graph, Some(Intercept::Fault(kind))) => match kind {
            FaultKind::ServerError => Ok(graph::server_error(&shared, &req).map(SimBody::from)),
            FaultKind::ResetConnection => Err(ResetConnection),
            FaultKind::InvalidJson => Ok(graph::invalid_json(&shared, &req).map(SimBody::from)),
            FaultKind::TruncatedBody | FaultKind::LyingContentLength => {
                let served = graph::handle(&shared, req).await;
                let (mut parts, body) = served.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                parts.status = hyper::StatusCode::OK;
                parts.headers.remove(hyper::header::CONTENT_LENGTH);
                let (promised, sent) = if kind == FaultKind::TruncatedBody {
                    let promised = (bytes.len() as u64).max(2) + 64;
                    (promised, bytes.slice(..bytes.len() / 2))
                } else {
                    (LYING_CONTENT_LENGTH, bytes.slice(..bytes.len().min(12)))
                };
                Ok(Response::from_parts(
                    parts,
                    SimBody::Truncated {
                        data: Some(sent),
                        promised,
                        pause: None,
                    },
                ))
            }
            FaultKind::PagingLoop => {
                let url = format!(
                    "{}{}",
                    shared.graph_url,
                    req.uri()
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                );
                let served = graph::handle(&shared, req).await;
                Ok(paging_loop(&shared, &url, served).await)
            }
        },
    };
    shared.record(RecordedRequest {
        host,
        method,
        path,
        query: redact_query(&raw_query),
        status: result.as_ref().map_or(0, |r| r.status().as_u16()),
        authorization,
    });
    result
}

/// What `FaultKind::LyingContentLength` announces (255 MB) before it sends 12
/// bytes and closes the connection.
const LYING_CONTENT_LENGTH: u64 = 255_000_000;

/// `FaultKind::PagingLoop`: the answer `served` to `url` with its
/// `@odata.nextLink` pointing back to the loop's first page.
async fn paging_loop(
    shared: &Shared,
    url: &str,
    served: Response<Full<Bytes>>,
) -> Response<SimBody> {
    let (mut parts, body) = served.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut page: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, SimBody::from(Full::new(bytes))),
    };
    let Some(next) = page
        .get("@odata.nextLink")
        .and_then(|v| v.as_str())
        .map(str::to_string)
    else {
        return Response::from_parts(parts, SimBody::from(Full::new(bytes)));
    };
    page["@odata.nextLink"] = serde_json::Value::String(shared.loop_link(url, &next));
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&page).unwrap_or_default();
    Response::from_parts(parts, SimBody::from(Full::new(Bytes::from(body))))
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
