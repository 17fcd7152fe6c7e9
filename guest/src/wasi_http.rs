//! [`Http`] over standard `wasi:http/outgoing-handler`, in blocking style (no async
//! runtime): build the request, write a POST body before `handle` (a GET never takes its
//! body: on wasmtime the stream is already closed), wait on the response future, read the
//! body until the stream closes. A host denial (`HTTP-request-denied`) can come from
//! `handle` itself (jco) or from the response future (wasmtime); both name the authority.
//!
//! Every request carries timeouts ([`CONNECT_TIMEOUT_NS`], [`FIRST_BYTE_TIMEOUT_NS`],
//! [`BETWEEN_BYTES_TIMEOUT_NS`]) and a body must keep a minimum pace ([`body_allowance_ms`]);
//! a timeout is a [`TransportError::Timeout`] saying what was awaited, which the Graph
//! client retries like any transport failure. A POST body is sent with its
//! `Content-Length` (never chunked). A response body is refused before it is read when its
//! `Content-Length` announces more than [`MAX_RESPONSE_BODY`], and a body that ends before
//! the bytes it announced is a [`TransportError::ShortRead`].

// The plain functions below are also built natively, for their unit tests.
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme as WasiScheme,
};
use wasi::io::streams::StreamError;

use crate::platform::{Http, HttpRequest, HttpResponse, Method, TransportError};
use crate::url::{AbsoluteUrl, Scheme};

const SECOND_NS: u64 = 1_000_000_000;

/// Connecting (TCP, and TLS for https) may take this long. The sign-in and Graph hosts
/// answer a connect in well under a second from anywhere; ten seconds of nothing means the
/// host is unreachable or dropping packets, and the attempt is better retried.
pub const CONNECT_TIMEOUT_NS: u64 = 10 * SECOND_NS;
/// The first byte of the answer may take this long after the request was sent. Graph
/// answers a page of 999 users, a report redirect or a `$batch` in seconds; a minute
/// leaves room for a slow tenant, and gives up on a server that never answers in a bounded
/// time (three attempts: about three minutes at worst, not the run's whole budget).
pub const FIRST_BYTE_TIMEOUT_NS: u64 = 60 * SECOND_NS;
/// The body may pause this long between two reads. A transfer in progress never pauses
/// that long; a server that sent its headers and went silent is given up on.
pub const BETWEEN_BYTES_TIMEOUT_NS: u64 = 30 * SECOND_NS;
/// A body may take this long before it must keep [`BODY_MIN_BYTES_PER_S`]: the
/// between-bytes timeout alone does not stop a server that trickles a byte every few
/// seconds (issue 13: a byte every 5 s held a run for more than 200 s).
pub const BODY_GRACE_MS: u64 = 30_000;
/// The slowest pace a body may keep after [`BODY_GRACE_MS`]: 8 KiB/s (64 kbit/s) is
/// tens of thousands of times a trickle's pace, and below any healthy link, so a large
/// report over a slow line (40 MB at 256 kbit/s: about 21 minutes) is read whole; a
/// download that is slow but steady is bounded by the run's budget, not cut off here.
pub const BODY_MIN_BYTES_PER_S: u64 = 8 * 1024;
/// Request bodies are written before `handle`, so they must fit the host's body buffer.
const MAX_REQUEST_BODY: usize = 1 << 20;
/// Responses larger than this are refused rather than exhausting the instance's memory
/// (256 MiB by default): the largest answer we read is a usage report of about 400 bytes a
/// user, some 40 MB for 100,000 users, so 128 MiB leaves room while a body that size can
/// still be read and parsed.
pub const MAX_RESPONSE_BODY: usize = 128 << 20;
/// At most this much is reserved up front for a body, whatever its `Content-Length` says
/// (a lying header must not make the instance allocate 255 MB for 12 bytes); a larger body
/// grows the buffer as it arrives.
const MAX_PREALLOCATION: usize = 4 << 20;
const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: u64 = 64 * 1024;

/// Outgoing HTTP through the host's `wasi:http`.
pub struct WasiHttp;

impl Http for WasiHttp {
    fn send(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = AbsoluteUrl::parse(&req.url)
            .map_err(|e| TransportError::Protocol(format!("cannot send to this URL: {e}")))?;
        let authority = url.authority;

        let headers = Fields::from_list(&wire_headers(req)).map_err(|e| {
            TransportError::Protocol(format!("the host refused the request headers: {e:?}"))
        })?;
        let request = OutgoingRequest::new(headers);
        let method = match req.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
        };
        let scheme = match url.scheme {
            Scheme::Http => WasiScheme::Http,
            Scheme::Https => WasiScheme::Https,
        };
        let refused =
            |what: &str| TransportError::Protocol(format!("the host refused the request {what}"));
        request
            .set_method(&method)
            .map_err(|()| refused("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| refused("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| refused("authority"))?;
        request
            .set_path_with_query(Some(url.path_and_query))
            .map_err(|()| refused("path"))?;

        // Only a request with a body takes and writes it, before `handle`.
        let body = match (&req.method, &req.body) {
            (Method::Post, body) => {
                let data = body.as_deref().unwrap_or(&[]);
                if data.len() > MAX_REQUEST_BODY {
                    return Err(TransportError::Protocol(format!(
                        "request body of {} bytes is larger than {MAX_REQUEST_BODY}",
                        data.len()
                    )));
                }
                let outgoing = request.body().map_err(|()| refused("body"))?;
                write_body(&outgoing, data)?;
                Some(outgoing)
            }
            (Method::Get, _) => None,
        };

        let options = RequestOptions::new();
        // A host that does not support an option refuses it: its own defaults then apply.
        let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
        let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_NS));
        let _ = options.set_between_bytes_timeout(Some(BETWEEN_BYTES_TIMEOUT_NS));

        let future = outgoing_handler::handle(request, Some(options))
            .map_err(|e| map_error_code(&e, authority, Phase::Answer))?;
        if let Some(outgoing) = body {
            OutgoingBody::finish(outgoing, None)
                .map_err(|e| map_error_code(&e, authority, Phase::Answer))?;
        }

        let pollable = future.subscribe();
        pollable.block();
        drop(pollable);
        let response = match future.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => return Err(map_error_code(&e, authority, Phase::Answer)),
            Some(Err(())) => {
                return Err(TransportError::Protocol(
                    "the response was already taken".into(),
                ));
            }
            None => {
                return Err(TransportError::Protocol(
                    "the response never arrived".into(),
                ));
            }
        };
        drop(future);

        let status = response.status();
        let fields = response.headers();
        let headers: Vec<(String, String)> = fields
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        drop(fields);
        let declared = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        let mut reader = BodyReader::new(authority, declared, now_ms())?;

        let incoming = response
            .consume()
            .map_err(|()| TransportError::Protocol("the response body was already taken".into()))?;
        let stream = incoming.stream().map_err(|()| {
            TransportError::Protocol("the response body stream was already taken".into())
        })?;
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => reader.push(&chunk, now_ms())?,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    let code = wasi::http::types::http_error_code(&e);
                    return Err(reader.failed(code.as_ref(), || e.to_debug_string()));
                }
            }
        }
        drop(stream);
        drop(IncomingBody::finish(incoming));
        drop(response);
        Ok(HttpResponse {
            status,
            headers,
            body: reader.finish()?,
        })
    }
}

/// Monotonic milliseconds.
fn now_ms() -> u64 {
    wasi::clocks::monotonic_clock::now() / 1_000_000
}

/// The request's headers as sent: a POST carries `Content-Length` with its body's size
/// (all our bodies are of known size), so that it is never sent chunked: a server or proxy
/// that reads only Content-Length bodies would see an empty one (the token endpoint then
/// answers AADSTS900144 "must contain grant_type" and nobody can sign in). A caller's own
/// `Content-Length` is replaced, so the header always tells the truth.
fn wire_headers(req: &HttpRequest) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
        .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
        .collect();
    if req.method == Method::Post {
        let size = req.body.as_ref().map_or(0, Vec::len);
        out.push(("content-length".into(), size.to_string().into_bytes()));
    }
    out
}

/// The most time a body of `received` bytes may have taken: [`BODY_GRACE_MS`], plus what
/// those bytes take at [`BODY_MIN_BYTES_PER_S`].
pub fn body_allowance_ms(received: usize) -> u64 {
    BODY_GRACE_MS.saturating_add((received as u64).saturating_mul(1000) / BODY_MIN_BYTES_PER_S)
}

/// A response body as it arrives: refused when it is (or announces to be) too large,
/// when it is slower than [`body_allowance_ms`], or when it ends short of its
/// `Content-Length`.
struct BodyReader<'a> {
    authority: &'a str,
    declared: Option<u64>,
    started_ms: u64,
    body: Vec<u8>,
}

impl<'a> BodyReader<'a> {
    fn new(
        authority: &'a str,
        declared: Option<u64>,
        started_ms: u64,
    ) -> Result<Self, TransportError> {
        if let Some(size) = declared
            && size > MAX_RESPONSE_BODY as u64
        {
            return Err(TransportError::TooLarge {
                size,
                limit: MAX_RESPONSE_BODY as u64,
                announced: true,
            });
        }
        let reserve = declared.map_or(0, |n| n.min(MAX_PREALLOCATION as u64) as usize);
        Ok(BodyReader {
            authority,
            declared,
            started_ms,
            body: Vec::with_capacity(reserve),
        })
    }

    /// Takes the next chunk, read at `now_ms`.
    fn push(&mut self, chunk: &[u8], now_ms: u64) -> Result<(), TransportError> {
        let size = self.body.len() + chunk.len();
        if size > MAX_RESPONSE_BODY {
            return Err(TransportError::TooLarge {
                size: size as u64,
                limit: MAX_RESPONSE_BODY as u64,
                announced: false,
            });
        }
        // A body that outgrows the preallocation has proven to be large: it grows to its
        // announced size at once (one copy), not by doubling (a copy at each step, and up
        // to twice its size in memory while the last one is made).
        if let Some(announced) = self.declared.map(|d| d as usize)
            && size > self.body.capacity()
            && announced >= size
        {
            self.body.reserve_exact(announced - self.body.len());
        }
        self.body.extend_from_slice(chunk);
        let elapsed = now_ms.saturating_sub(self.started_ms);
        if elapsed > body_allowance_ms(self.body.len()) {
            return Err(TransportError::Timeout(format!(
                "the response body from {}: {} bytes arrived in {} s, slower than the {} KiB/s \
                 a body must keep after its first {} s",
                self.authority,
                self.body.len(),
                elapsed / 1000,
                BODY_MIN_BYTES_PER_S / 1024,
                BODY_GRACE_MS / 1000
            )));
        }
        Ok(())
    }

    /// The bytes announced and not received, when the body is short of its header.
    fn short_of(&self) -> Option<u64> {
        self.declared.filter(|&d| (self.body.len() as u64) < d)
    }

    /// Reading the body failed with `code` (or an I/O error described by `detail`).
    fn failed(&self, code: Option<&ErrorCode>, detail: impl FnOnce() -> String) -> TransportError {
        if let Some(code) = code
            && let e @ TransportError::Timeout(_) =
                map_error_code(code, self.authority, Phase::Body)
        {
            return e;
        }
        let detail = code.map_or_else(detail, describe);
        match self.short_of() {
            Some(declared) => TransportError::ShortRead(format!(
                "the response from {} broke off after {} of the {declared} bytes its \
                 Content-Length announced ({detail})",
                self.authority,
                self.body.len()
            )),
            None => TransportError::Protocol(format!(
                "reading the response from {} failed after {} bytes: {detail}",
                self.authority,
                self.body.len()
            )),
        }
    }

    /// The whole body, once the stream has closed.
    fn finish(self) -> Result<Vec<u8>, TransportError> {
        if let Some(declared) = self.short_of() {
            return Err(TransportError::ShortRead(format!(
                "the response from {} ended after {} of the {declared} bytes its \
                 Content-Length announced",
                self.authority,
                self.body.len()
            )));
        }
        Ok(self.body)
    }
}

/// Writes all of `data` in chunks the stream accepts, then flushes and drops the stream.
fn write_body(body: &OutgoingBody, data: &[u8]) -> Result<(), TransportError> {
    let stream = body.write().map_err(|()| {
        TransportError::Protocol("the request body stream was already taken".into())
    })?;
    for chunk in data.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk).map_err(|e| {
            TransportError::Protocol(format!(
                "writing the request body failed: {}",
                stream_error(e)
            ))
        })?;
    }
    drop(stream);
    Ok(())
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the stream was closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// Where a request was when an error code came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sending it and waiting for the response's head.
    Answer,
    /// Reading the response body.
    Body,
}

/// A WASI HTTP error as a transport error. A timeout says what was awaited, in words that
/// follow "timed out waiting for".
fn map_error_code(e: &ErrorCode, authority: &str, phase: Phase) -> TransportError {
    let waited = |what: String| TransportError::Timeout(what);
    let detail = format!("{authority}: {}", describe(e));
    match e {
        ErrorCode::HttpRequestDenied => TransportError::Denied {
            authority: authority.to_owned(),
        },
        ErrorCode::DnsTimeout => waited(format!("the DNS lookup of {authority}")),
        ErrorCode::ConnectionTimeout => waited(format!(
            "a connection to {authority} (connect timeout {} s)",
            CONNECT_TIMEOUT_NS / SECOND_NS
        )),
        ErrorCode::ConnectionWriteTimeout => waited(format!("{authority} to take the request")),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => match phase {
            Phase::Answer => waited(format!(
                "the response from {authority} to begin (first-byte timeout {} s)",
                FIRST_BYTE_TIMEOUT_NS / SECOND_NS
            )),
            Phase::Body => waited(format!(
                "more of the response body from {authority} (between-bytes timeout {} s)",
                BETWEEN_BYTES_TIMEOUT_NS / SECOND_NS
            )),
        },
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => TransportError::Connect(detail),
        _ => TransportError::Protocol(detail),
    }
}

fn describe(e: &ErrorCode) -> String {
    match e {
        ErrorCode::DnsTimeout => "DNS lookup timed out".into(),
        ErrorCode::DnsError(p) => format!(
            "DNS lookup failed ({})",
            p.rcode.as_deref().unwrap_or("no answer")
        ),
        ErrorCode::DestinationNotFound => "host not found".into(),
        ErrorCode::DestinationUnavailable => "host unavailable".into(),
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::ConnectionTerminated => "connection closed by the server".into(),
        ErrorCode::ConnectionTimeout => "connecting timed out".into(),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "no answer in time".into()
        }
        ErrorCode::TlsCertificateError => "TLS certificate not trusted".into(),
        ErrorCode::TlsProtocolError => "TLS handshake failed".into(),
        ErrorCode::TlsAlertReceived(p) => format!(
            "TLS alert from the server ({})",
            p.alert_message.as_deref().unwrap_or("no message")
        ),
        ErrorCode::HttpRequestDenied => "the host denied the request".into(),
        ErrorCode::InternalError(Some(m)) => format!("host error: {m}"),
        other => code_name(other).into(),
    }
}

/// The WIT name of an error code (a `Debug` of the whole type would cost more code).
fn code_name(e: &ErrorCode) -> &'static str {
    match e {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(_) => "internal-error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: Option<&[u8]>, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: "https://login.test/t/oauth2/v2.0/token".into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
        }
    }

    fn content_length(headers: &[(String, Vec<u8>)]) -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    #[test]
    fn a_post_carries_the_content_length_of_its_body() {
        let body = b"grant_type=client_credentials&client_id=x";
        let h = wire_headers(&post(
            Some(body),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        ));
        assert_eq!(content_length(&h), vec![body.len().to_string().as_bytes()]);
        assert!(h.iter().any(|(n, _)| n == "Content-Type"));
        // An empty body says so; a wrong header of the caller's is replaced.
        assert_eq!(content_length(&wire_headers(&post(None, &[]))), vec![b"0"]);
        let h = wire_headers(&post(Some(b"abc"), &[("Content-Length", "99")]));
        assert_eq!(content_length(&h), vec![b"3"]);
        // A GET has no body and no Content-Length.
        let get = HttpRequest {
            method: Method::Get,
            body: None,
            ..post(None, &[("Accept", "application/json")])
        };
        assert!(content_length(&wire_headers(&get)).is_empty());
    }

    fn timeout_text(e: TransportError) -> String {
        match e {
            TransportError::Timeout(what) => what,
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn timeout_codes_are_timeouts_saying_what_was_awaited() {
        let a = "graph.test";
        let text = |e, phase| timeout_text(map_error_code(&e, a, phase));
        assert_eq!(
            text(ErrorCode::ConnectionTimeout, Phase::Answer),
            "a connection to graph.test (connect timeout 10 s)"
        );
        assert_eq!(
            text(ErrorCode::ConnectionReadTimeout, Phase::Answer),
            "the response from graph.test to begin (first-byte timeout 60 s)"
        );
        assert_eq!(
            text(ErrorCode::HttpResponseTimeout, Phase::Answer),
            "the response from graph.test to begin (first-byte timeout 60 s)"
        );
        assert_eq!(
            text(ErrorCode::ConnectionReadTimeout, Phase::Body),
            "more of the response body from graph.test (between-bytes timeout 30 s)"
        );
        assert_eq!(
            text(ErrorCode::DnsTimeout, Phase::Answer),
            "the DNS lookup of graph.test"
        );
        assert_eq!(
            text(ErrorCode::ConnectionWriteTimeout, Phase::Answer),
            "graph.test to take the request"
        );
        let shown = TransportError::Timeout(text(ErrorCode::ConnectionTimeout, Phase::Answer));
        assert!(
            shown
                .to_string()
                .starts_with("timed out waiting for a connection"),
            "{shown}"
        );
        // Other codes keep their kinds.
        assert!(matches!(
            map_error_code(&ErrorCode::ConnectionRefused, a, Phase::Answer),
            TransportError::Connect(_)
        ));
        assert_eq!(
            map_error_code(&ErrorCode::HttpRequestDenied, a, Phase::Answer),
            TransportError::Denied {
                authority: a.into()
            }
        );
        assert!(matches!(
            map_error_code(&ErrorCode::HttpProtocolError, a, Phase::Body),
            TransportError::Protocol(_)
        ));
    }

    #[test]
    fn a_body_announced_larger_than_the_cap_is_refused_before_anything_is_allocated() {
        let Err(e) = BodyReader::new("graph.test", Some(255_000_000), 0) else {
            panic!("accepted")
        };
        assert_eq!(
            e,
            TransportError::TooLarge {
                size: 255_000_000,
                limit: MAX_RESPONSE_BODY as u64,
                announced: true
            }
        );
        assert!(e.to_string().contains("255000000 bytes announced"), "{e}");
        // Under the cap, a lying header still reserves no more than the preallocation cap.
        let r = BodyReader::new("graph.test", Some(100 << 20), 0).unwrap();
        assert!(
            r.body.capacity() <= MAX_PREALLOCATION,
            "{}",
            r.body.capacity()
        );
        let r = BodyReader::new("graph.test", Some(12), 0).unwrap();
        assert!(r.body.capacity() >= 12);
    }

    #[test]
    fn a_large_body_grows_once_to_its_announced_size() {
        const SIZE: usize = 10 << 20;
        let mut r = BodyReader::new("graph.test", Some(SIZE as u64), 0).unwrap();
        let chunk = vec![b'x'; READ_CHUNK as usize];
        while r.body.len() < SIZE {
            r.push(&chunk, 0).unwrap();
        }
        assert_eq!(r.body.capacity(), SIZE, "not doubled past its size");
        // A body longer than announced still grows (and ends as it ends).
        r.push(b"more", 0).unwrap();
        assert_eq!(r.finish().unwrap().len(), SIZE + 4);
    }

    #[test]
    fn a_body_growing_past_the_cap_is_refused() {
        let mut r = BodyReader::new("graph.test", None, 0).unwrap();
        let chunk = vec![b'x'; 16 << 20];
        for _ in 0..MAX_RESPONSE_BODY / chunk.len() {
            r.push(&chunk, 0).unwrap();
        }
        let e = r.push(b"!", 0).unwrap_err();
        assert!(
            matches!(e, TransportError::TooLarge { announced: false, size, .. }
                if size == MAX_RESPONSE_BODY as u64 + 1),
            "{e:?}"
        );
    }

    #[test]
    fn a_body_short_of_its_content_length_is_a_short_read() {
        let mut r = BodyReader::new("graph.test", Some(255), 0).unwrap();
        r.push(b"twelve bytes", 10).unwrap();
        let TransportError::ShortRead(why) = r.finish().unwrap_err() else {
            panic!()
        };
        assert!(why.contains("graph.test"), "{why}");
        assert!(why.contains("12 of the 255 bytes"), "{why}");

        // A connection that breaks off mid-body, likewise.
        let mut r = BodyReader::new("graph.test", Some(255), 0).unwrap();
        r.push(b"twelve bytes", 10).unwrap();
        let e = r.failed(Some(&ErrorCode::HttpResponseIncomplete), || "io".into());
        assert!(
            matches!(&e, TransportError::ShortRead(w) if w.contains("12 of the 255")),
            "{e:?}"
        );
        // A timeout mid-body stays a timeout; a failure without a length is a protocol error.
        let e = r.failed(Some(&ErrorCode::ConnectionReadTimeout), || "io".into());
        assert!(timeout_text(e).starts_with("more of the response body"));
        let mut r = BodyReader::new("graph.test", None, 0).unwrap();
        r.push(b"abc", 1).unwrap();
        assert!(matches!(
            r.failed(None, || "broken pipe".into()),
            TransportError::Protocol(w) if w.contains("after 3 bytes: broken pipe")
        ));
        // Exactly the announced bytes: the body.
        let mut r = BodyReader::new("graph.test", Some(3), 0).unwrap();
        r.push(b"abc", 1).unwrap();
        assert_eq!(r.finish().unwrap(), b"abc");
    }

    #[test]
    fn a_trickling_body_times_out_and_a_steady_one_does_not() {
        // A byte every 5 s: past the grace period it is too slow.
        let mut r = BodyReader::new("graph.test", Some(1000), 1_000).unwrap();
        let mut failed = None;
        for i in 1..=100u64 {
            if let Err(e) = r.push(b"x", 1_000 + i * 5_000) {
                failed = Some((i, e));
                break;
            }
        }
        let (i, e) = failed.expect("the trickle timed out");
        assert_eq!(i * 5_000, 35_000, "just past the {BODY_GRACE_MS} ms grace");
        let what = timeout_text(e);
        assert!(
            what.starts_with("the response body from graph.test"),
            "{what}"
        );
        // 10 MB at 1 MB/s: well within the allowance.
        let mut r = BodyReader::new("graph.test", None, 0).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for s in 1..=10u64 {
            r.push(&chunk, s * 1_000).unwrap();
        }
        assert_eq!(
            body_allowance_ms(BODY_MIN_BYTES_PER_S as usize * 60),
            BODY_GRACE_MS + 60_000
        );
    }

    #[test]
    fn a_large_report_over_a_slow_but_steady_link_is_read_whole() {
        // A usage report of 100,000 users (about 40 MB) over a 256 kbit/s link (32 KiB
        // a second, steadily): slow, but healthy; only the run's budget may stop it.
        const SIZE: usize = 40_000_000;
        let mut r = BodyReader::new("reports.test", Some(SIZE as u64), 0).unwrap();
        let chunk = vec![0u8; 32 * 1024];
        let mut ms = 0;
        while r.body.len() < SIZE {
            ms += 1_000;
            let n = chunk.len().min(SIZE - r.body.len());
            if let Err(e) = r.push(&chunk[..n], ms) {
                panic!("cut off after {} s: {e}", ms / 1000);
            }
        }
        assert_eq!(r.finish().unwrap().len(), SIZE);
    }
}
