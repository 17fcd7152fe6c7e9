//! `wasi:http/outgoing-handler` with an allowlist: the sandbox reaches only the authorities
//! derived from its tenant's endpoints. A request to any other authority is refused before
//! a connection is opened (`HttpRequestDenied`); the component turns that into an error
//! that names the host. Requests the allowlist lets through go out with the run's
//! [`HttpSender`]: kept-alive connections pooled per origin, or wasmtime's default sender.

mod body;
mod connect;
mod pool;

use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use m365sync_config::{Allowlist, Origin};
use pool::{Pool, Timeouts};

/// How a sandbox sends the requests its allowlist lets through.
///
/// Both send HTTP/1.1, over TLS for `https` trusting the compiled-in webpki roots only,
/// honour the request's connect, first-byte and between-bytes timeouts (the host's defaults
/// when unset: 10 s, 60 s, 30 s; each clamped to the run's remaining budget), stream
/// response bodies, and fail with the same `wasi:http` error codes. The pooled sender also
/// bounds a whole response body (a server trickling a byte at a time cannot hold a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpSender {
    /// Kept-alive connections, pooled per run and keyed by origin: a run opens one
    /// connection per host it talks to (more only for requests in flight together), and
    /// closes them when it ends. Runs never share a connection.
    #[default]
    Pooled,
    /// wasmtime-wasi-http's `default_send_request`: a new TCP connection (and TLS
    /// handshake) for every request. Kept to measure against.
    PerRequest,
}

/// The sender of one run: what [`HttpSender`] chose, with the run's own pool.
#[derive(Clone)]
enum RunSender {
    Pooled(Arc<Pool>),
    PerRequest,
}

impl RunSender {
    fn new(sender: HttpSender, deadline: Option<Instant>) -> Self {
        match sender {
            HttpSender::Pooled => RunSender::Pooled(Pool::with_deadline(deadline)),
            HttpSender::PerRequest => RunSender::PerRequest,
        }
    }
}

/// Why a request may not be sent under `allowlist`, or None when it may.
fn refusal(
    allowlist: &Allowlist,
    method: &http::Method,
    uri: &http::Uri,
    has_credentials: bool,
) -> Option<String> {
    let scheme = uri.scheme_str().unwrap_or("https");
    let Some(host) = uri.host() else {
        return Some("(no host)".to_string());
    };
    let origin = Origin::new(scheme, host, uri.port_u16());
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or(origin.host.clone());
    if allowlist.api.contains(&origin.normalized) {
        return None;
    }
    if allowlist.downloads.contains(&origin.normalized) {
        if method != http::Method::GET {
            return Some(format!(
                "{authority} (a report download host takes only GET)"
            ));
        }
        if has_credentials {
            return Some(format!(
                "{authority} (a report download host is never sent credentials)"
            ));
        }
        return None;
    }
    Some(authority)
}

/// Allowlist enforcement and the sender of one run.
#[derive(Clone)]
pub struct AllowlistHooks {
    allowlist: Arc<Allowlist>,
    sender: RunSender,
    kind: HttpSender,
    /// When the run's budget ends: no request waits past it.
    deadline: Option<Instant>,
}

impl Default for AllowlistHooks {
    fn default() -> Self {
        AllowlistHooks::new(Allowlist::default())
    }
}

impl AllowlistHooks {
    /// Hooks sending over a fresh pool of kept-alive connections.
    pub fn new(allowlist: Allowlist) -> Self {
        AllowlistHooks::with_sender(allowlist, HttpSender::default())
    }

    /// Hooks sending with `sender` (a pooled sender gets a fresh pool of its own).
    pub fn with_sender(allowlist: Allowlist, sender: HttpSender) -> Self {
        AllowlistHooks {
            allowlist: Arc::new(allowlist),
            sender: RunSender::new(sender, None),
            kind: sender,
            deadline: None,
        }
    }

    /// These hooks for a run whose budget ends at `deadline`: every timeout of a request is
    /// clamped to the time left (a fresh pool, for a run that has sent nothing yet).
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self.sender = RunSender::new(self.kind, self.deadline);
        self
    }

    /// Connections opened so far by this run's pool (0 for the per-request sender, which
    /// does not count them).
    pub fn connections_opened(&self) -> usize {
        match &self.sender {
            RunSender::Pooled(pool) => pool.opened(),
            RunSender::PerRequest => 0,
        }
    }
}

impl WasiHttpHooks for AllowlistHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        let has_credentials = request.headers().contains_key(http::header::AUTHORIZATION)
            || request.headers().contains_key(http::header::COOKIE);
        let verdict = refusal(
            &self.allowlist,
            request.method(),
            request.uri(),
            has_credentials,
        );
        let sender = self.sender.clone();
        let deadline = self.deadline;
        Box::new(async move {
            // Checked before anything connects: a refused request opens no connection.
            if let Some(refused) = verdict {
                tracing::warn!(%refused, "refused a request the allowlist does not permit");
                return Err(Error::HttpRequestDenied);
            }
            match sender {
                RunSender::Pooled(pool) => {
                    let response = pool.send(request, options).await?;
                    // The pool drives its connections itself: no I/O task for wasmtime.
                    Ok((
                        response,
                        Box::new(async { Ok(()) })
                            as Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ))
                }
                RunSender::PerRequest => {
                    // wasmtime's sender with the host's defaults and the run's budget.
                    let options = Timeouts::of(options, deadline).options();
                    let (response, io) =
                        wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                    Ok((
                        response.map(BodyExt::boxed_unsync),
                        Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(list: &Allowlist, method: &str, url: &str, credentials: bool) -> Option<String> {
        super::refusal(
            list,
            &method.parse().unwrap(),
            &url.parse().unwrap(),
            credentials,
        )
    }

    #[test]
    fn permits_only_listed_origins_with_default_ports() {
        let list = Allowlist {
            api: vec![
                "https://graph.microsoft.com:443".into(),
                "http://127.0.0.1:8080".into(),
            ],
            downloads: Vec::new(),
        };
        assert_eq!(
            refusal(&list, "GET", "https://graph.microsoft.com/v1.0/users", true),
            None
        );
        assert_eq!(
            refusal(&list, "GET", "https://GRAPH.microsoft.com:443/x", true),
            None
        );
        assert_eq!(
            refusal(&list, "POST", "http://127.0.0.1:8080/x", false),
            None
        );
        assert_eq!(
            refusal(&list, "GET", "http://127.0.0.1:8081/x", false).as_deref(),
            Some("127.0.0.1:8081")
        );
        assert!(refusal(&list, "GET", "http://graph.microsoft.com/x", true).is_some());
        assert!(refusal(&list, "GET", "https://evil.example/x", false).is_some());
    }

    #[test]
    fn download_hosts_take_only_credential_free_gets() {
        let list = Allowlist {
            api: vec!["https://graph.microsoft.com:443".into()],
            downloads: vec!["https://reports.office.com:443".into()],
        };
        assert_eq!(
            refusal(
                &list,
                "GET",
                "https://reports.office.com/data/download/x",
                false
            ),
            None
        );
        let with_token = refusal(
            &list,
            "GET",
            "https://reports.office.com/data/download/x",
            true,
        );
        assert!(with_token.unwrap().contains("never sent credentials"));
        let post = refusal(&list, "POST", "https://reports.office.com/x", false);
        assert!(post.unwrap().contains("only GET"));
    }
}
