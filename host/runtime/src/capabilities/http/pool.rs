//! Kept-alive HTTP/1.1 connections of one run, keyed by origin (scheme, host, port): a
//! request reuses an idle connection to its origin, or opens one. A connection goes back to
//! the pool once its response body has been read to the end; one whose request or body
//! failed is closed. The pool holds connections only, never credentials: each request
//! carries its own headers, and the pool is dropped (closing its connections) with the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::timeout;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::body::ResponseBody;
use super::connect::{self, Target};

/// Idle connections kept per origin (a run sends one request at a time; more are opened
/// only for requests in flight together).
const MAX_IDLE_PER_ORIGIN: usize = 4;
/// An idle connection older than this is closed rather than reused: servers drop idle
/// connections after a while, and a request racing such a close would fail.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The host's timeouts for a request that sets none (wasmtime's default is 600 s each,
/// which let one silent server hold a run for ten minutes per attempt).
///
/// Connect (TCP and TLS handshakes): Microsoft's endpoints complete them in well under a
/// second; 10 s covers a slow network without waiting on a black-holed address.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First byte of the response: Graph answers a page in seconds; a `$batch` of twenty or a
/// usage report may take tens of seconds server-side. A server silent for a minute after
/// the request is treated as gone (the engine retries).
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two reads of a body: a stream stalled for 30 s is dead.
const DEFAULT_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// A whole response body may take this many first-byte timeouts (300 s by default): a
/// server trickling a byte every few seconds never trips the between-bytes timeout, and a
/// multi-MB usage report still downloads at a few hundred kB/s.
const BODY_DEADLINE_FACTOR: u32 = 5;

/// One run's connections.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Target, Vec<Idle>>>,
    opened: AtomicUsize,
    /// The end of the run's budget: no timeout of a request reaches past it.
    deadline: Option<Instant>,
}

struct Idle {
    sender: SendRequest<WasiBody>,
    since: Instant,
}

impl Idle {
    fn usable(&self) -> bool {
        !self.sender.is_closed() && self.since.elapsed() < IDLE_TIMEOUT
    }
}

/// The timeouts of one request: what it asked for, else the host's defaults, each clamped
/// to the time left of the run's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
    /// The whole response body, from the response's headers to its end.
    pub body: Duration,
}

impl Timeouts {
    pub fn of(options: Option<RequestOptions>, deadline: Option<Instant>) -> Timeouts {
        let options = options.unwrap_or_default();
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let clamp = |timeout: Duration| left.map_or(timeout, |left| timeout.min(left));
        let first_byte = options
            .first_byte_timeout
            .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);
        Timeouts {
            connect: clamp(options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
            first_byte: clamp(first_byte),
            between_bytes: clamp(
                options
                    .between_bytes_timeout
                    .unwrap_or(DEFAULT_BETWEEN_BYTES_TIMEOUT),
            ),
            body: clamp(first_byte.saturating_mul(BODY_DEADLINE_FACTOR)),
        }
    }

    /// As wasi:http request options (for wasmtime's sender, which has no body deadline).
    pub fn options(&self) -> RequestOptions {
        RequestOptions {
            connect_timeout: Some(self.connect),
            first_byte_timeout: Some(self.first_byte),
            between_bytes_timeout: Some(self.between_bytes),
        }
    }
}

impl Pool {
    /// A pool without a run deadline (the tests' pools).
    #[cfg(test)]
    pub fn new() -> Arc<Pool> {
        Pool::with_deadline(None)
    }

    /// A pool whose requests never wait past `deadline` (the end of the run's budget).
    pub fn with_deadline(deadline: Option<Instant>) -> Arc<Pool> {
        Arc::new(Pool {
            deadline,
            ..Pool::default()
        })
    }

    /// Connections this pool has opened so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sends `request` (absolute URI, `Host` header set) over a pooled connection to its
    /// origin. The response body streams; its connection returns to the pool at its end.
    pub async fn send(
        self: Arc<Self>,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let target = Target::of(request.uri())?;
        let timeouts = Timeouts::of(options, self.deadline);
        // On the wire the request line carries only the path (no proxy here).
        *request.uri_mut() = origin_form(request.uri());

        while let Some(mut sender) = self.checkout(&target) {
            // A connection is put back once its last response ended, so this resolves at
            // once: ready, or closed by the server meanwhile (then it is dropped).
            match timeout(timeouts.connect, sender.ready()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => continue,
            }
            let sent = timeout(timeouts.first_byte, sender.try_send_request(request)).await;
            match sent {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Ok(response)) => return Ok(self.respond(target, sender, response, timeouts)),
                Ok(Err(mut failed)) => match failed.take_message() {
                    // The connection closed before the request was written: nothing reached
                    // the server, so another connection may carry it.
                    Some(unsent) => request = unsent,
                    None => return Err(Error::from(failed.into_error())),
                },
            }
        }

        let mut sender = connect::open(&target, timeouts.connect).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let response = timeout(timeouts.first_byte, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        Ok(self.respond(target, sender, response, timeouts))
    }

    fn respond(
        self: &Arc<Self>,
        target: Target,
        sender: SendRequest<WasiBody>,
        response: http::Response<Incoming>,
        timeouts: Timeouts,
    ) -> http::Response<WasiBody> {
        let pool: Weak<Pool> = Arc::downgrade(self);
        let on_end = Box::new(move || {
            if let Some(pool) = pool.upgrade() {
                pool.checkin(target, sender);
            }
        });
        response.map(|incoming| {
            ResponseBody::new(incoming, timeouts.between_bytes, timeouts.body, on_end)
                .boxed_unsync()
        })
    }

    /// The most recently used idle connection to `target`, if any is still usable.
    fn checkout(&self, target: &Target) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(target)?;
        while let Some(entry) = list.pop() {
            if entry.usable() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn checkin(&self, target: Target, sender: SendRequest<WasiBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(target).or_default();
        list.retain(Idle::usable);
        if list.len() < MAX_IDLE_PER_ORIGIN {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// `/path?query` of an absolute URI (`/` when it has none).
fn origin_form(uri: &http::Uri) -> http::Uri {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    http::Uri::builder()
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| http::Uri::from_static("/"))
}

#[cfg(test)]
mod tests;
