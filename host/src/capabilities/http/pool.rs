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
/// wasmtime's default for each timeout a request does not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One run's connections.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<Target, Vec<Idle>>>,
    opened: AtomicUsize,
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

/// The timeouts of one request, as `default_send_request` reads them.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn of(options: Option<RequestOptions>) -> Timeouts {
        let options = options.unwrap_or_default();
        Timeouts {
            connect: options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT),
            first_byte: options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT),
            between_bytes: options.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

impl Pool {
    pub fn new() -> Arc<Pool> {
        Arc::new(Pool::default())
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
        let timeouts = Timeouts::of(options);
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
            ResponseBody::new(incoming, timeouts.between_bytes, on_end).boxed_unsync()
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
