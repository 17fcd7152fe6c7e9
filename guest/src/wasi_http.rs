//! [`Http`] over standard `wasi:http/outgoing-handler`, in blocking style (no async
//! runtime): build the request, write a POST body before `handle` (a GET never takes its
//! body: on wasmtime the stream is already closed), wait on the response future, read the
//! body until the stream closes. A host denial (`HTTP-request-denied`) can come from
//! `handle` itself (jco) or from the response future (wasmtime); both name the authority.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme as WasiScheme,
};
use wasi::io::streams::StreamError;

use crate::platform::{Http, HttpRequest, HttpResponse, Method, TransportError};
use crate::url::{AbsoluteUrl, Scheme};

const SECOND_NS: u64 = 1_000_000_000;
/// Request bodies are written before `handle`, so they must fit the host's body buffer.
const MAX_REQUEST_BODY: usize = 1 << 20;
/// Responses larger than this are refused rather than exhausting the instance's memory.
const MAX_RESPONSE_BODY: usize = 256 << 20;
const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: u64 = 64 * 1024;

/// Outgoing HTTP through the host's `wasi:http`.
pub struct WasiHttp;

impl Http for WasiHttp {
    fn send(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = AbsoluteUrl::parse(&req.url)
            .map_err(|e| TransportError::Protocol(format!("cannot send to this URL: {e}")))?;
        let authority = url.authority;

        let entries: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&entries).map_err(|e| {
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
        // Hosts that do not support an option refuse it: the defaults then apply.
        let _ = options.set_connect_timeout(Some(30 * SECOND_NS));
        let _ = options.set_first_byte_timeout(Some(120 * SECOND_NS));
        let _ = options.set_between_bytes_timeout(Some(60 * SECOND_NS));

        let future = outgoing_handler::handle(request, Some(options))
            .map_err(|e| map_error_code(&e, authority))?;
        if let Some(outgoing) = body {
            OutgoingBody::finish(outgoing, None).map_err(|e| map_error_code(&e, authority))?;
        }

        let pollable = future.subscribe();
        pollable.block();
        drop(pollable);
        let response = match future.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => return Err(map_error_code(&e, authority)),
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
        let capacity = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_RESPONSE_BODY);

        let incoming = response
            .consume()
            .map_err(|()| TransportError::Protocol("the response body was already taken".into()))?;
        let stream = incoming.stream().map_err(|()| {
            TransportError::Protocol("the response body stream was already taken".into())
        })?;
        let mut body = Vec::with_capacity(capacity);
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BODY {
                        return Err(TransportError::Protocol(format!(
                            "the response from {authority} is larger than {} MiB",
                            MAX_RESPONSE_BODY >> 20
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    let detail = match wasi::http::types::http_error_code(&e) {
                        Some(code) => describe(&code),
                        None => e.to_debug_string(),
                    };
                    return Err(TransportError::Protocol(format!(
                        "reading the response from {authority} failed: {detail}"
                    )));
                }
            }
        }
        drop(stream);
        drop(IncomingBody::finish(incoming));
        drop(response);
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
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

/// A WASI HTTP error as a transport error.
fn map_error_code(e: &ErrorCode, authority: &str) -> TransportError {
    let detail = format!("{authority}: {}", describe(e));
    match e {
        ErrorCode::HttpRequestDenied => TransportError::Denied {
            authority: authority.to_owned(),
        },
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => TransportError::Timeout(detail),
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
