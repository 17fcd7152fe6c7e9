//! The pool against small local servers: reuse, what is never reused, and failures that
//! match wasmtime's default sender error for error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::Pool;

/// An HTTP/1.1 server (keep-alive on) answering `body_len` bytes to any request, or the
/// length of the request body for a POST; `close` makes it answer `Connection: close`.
async fn server(body_len: usize, close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| async move {
                        let body = if request.method() == hyper::Method::POST {
                            let received = request.into_body().collect().await?.to_bytes();
                            Bytes::from(received.len().to_string())
                        } else {
                            Bytes::from(vec![b'x'; body_len])
                        };
                        let mut response = hyper::Response::new(Full::new(body));
                        if close {
                            response
                                .headers_mut()
                                .insert(hyper::header::CONNECTION, "close".parse().unwrap());
                        }
                        Ok::<_, hyper::Error>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, accepted)
}

/// A TCP server that writes `reply` to each connection and then holds it open.
async fn raw_server(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    address
}

fn request(method: &str, url: &str, body: &'static [u8]) -> http::Request<WasiBody> {
    let uri: http::Uri = url.parse().unwrap();
    let body = if body.is_empty() {
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        Full::new(Bytes::from_static(body))
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    http::Request::builder()
        .method(method)
        .header(http::header::HOST, uri.authority().unwrap().as_str())
        .uri(uri)
        .body(body)
        .unwrap()
}

async fn get(pool: &Arc<Pool>, url: &str) -> Bytes {
    let response = pool
        .clone()
        .send(request("GET", url, b""), None)
        .await
        .unwrap();
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn requests_one_after_another_share_one_connection() {
    let (address, accepted) = server(3 << 20, false).await;
    let pool = Pool::new();
    for _ in 0..5 {
        let body = get(&pool, &format!("http://{address}/v1.0/users")).await;
        assert_eq!(body.len(), 3 << 20, "the whole body streams through");
    }
    let response = pool
        .clone()
        .send(
            request("POST", &format!("http://{address}/token"), b"grant_type=x"),
            None,
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        b"12",
        "a POST body is sent on a reused connection"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.opened(), 1);
}

#[tokio::test]
async fn origins_get_connections_of_their_own() {
    let (first, first_accepted) = server(10, false).await;
    let (second, second_accepted) = server(10, false).await;
    let pool = Pool::new();
    for _ in 0..3 {
        get(&pool, &format!("http://{first}/")).await;
        get(&pool, &format!("http://{second}/")).await;
    }
    assert_eq!(first_accepted.load(Ordering::SeqCst), 1);
    assert_eq!(second_accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.opened(), 2);
}

#[tokio::test]
async fn requests_in_flight_together_use_two_connections_then_reuse_them() {
    let (address, accepted) = server(100_000, false).await;
    let url = format!("http://{address}/");
    let pool = Pool::new();
    let first = pool
        .clone()
        .send(request("GET", &url, b""), None)
        .await
        .unwrap();
    let second = pool
        .clone()
        .send(request("GET", &url, b""), None)
        .await
        .unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    first.into_body().collect().await.unwrap();
    second.into_body().collect().await.unwrap();
    get(&pool, &url).await;
    get(&pool, &url).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let (address, accepted) = server(1 << 20, false).await;
    let url = format!("http://{address}/");
    let pool = Pool::new();
    let response = pool
        .clone()
        .send(request("GET", &url, b""), None)
        .await
        .unwrap();
    drop(response);
    get(&pool, &url).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_server_closes_is_replaced() {
    let (address, accepted) = server(10, true).await;
    let url = format!("http://{address}/");
    let pool = Pool::new();
    for _ in 0..3 {
        assert_eq!(get(&pool, &url).await.len(), 10);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// An error's kind, comparable across the two senders.
fn kind(error: &Error) -> String {
    match error {
        Error::Connect(e) => format!("Connect({:?}: {e})", e.kind()),
        Error::Tls(_) => "Tls".to_string(),
        other => format!("{other:?}"),
    }
}

/// What each sender makes of `url`: the error sending it, or the error reading its body.
async fn both_fail(url: &str, options: RequestOptions) -> (String, String) {
    let pooled = match Pool::new()
        .send(request("GET", url, b""), Some(options))
        .await
    {
        Err(error) => kind(&error),
        Ok(response) => kind(&response.into_body().collect().await.unwrap_err()),
    };
    let default =
        match wasmtime_wasi_http::default_send_request(request("GET", url, b""), Some(options))
            .await
        {
            Err(error) => kind(&error),
            Ok((response, io)) => {
                tokio::spawn(io);
                kind(&response.into_body().collect().await.unwrap_err())
            }
        };
    (pooled, default)
}

#[tokio::test]
async fn failures_are_the_default_senders_errors() {
    let options = RequestOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        first_byte_timeout: Some(Duration::from_millis(200)),
        between_bytes_timeout: Some(Duration::from_millis(200)),
    };

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (pooled, default) = both_fail(&format!("http://127.0.0.1:{port}/"), options).await;
    assert!(pooled.starts_with("Connect(ConnectionRefused"), "{pooled}");
    assert_eq!(pooled, default);

    let silent = raw_server(b"").await;
    let (pooled, default) = both_fail(&format!("http://{silent}/"), options).await;
    assert_eq!(pooled, "ConnectionReadTimeout", "first-byte timeout");
    assert_eq!(pooled, default);

    let stalls = raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello").await;
    let (pooled, default) = both_fail(&format!("http://{stalls}/"), options).await;
    assert_eq!(pooled, "ConnectionReadTimeout", "between-bytes timeout");
    assert_eq!(pooled, default);

    let plain = raw_server(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
    let (pooled, default) = both_fail(&format!("https://{plain}/"), options).await;
    assert_eq!(pooled, "Tls", "TLS to a server that does not speak it");
    assert_eq!(pooled, default);

    let (pooled, default) = both_fail("http://no-such-host.invalid/", options).await;
    assert!(
        pooled.starts_with("Connect(") || pooled == "ConnectionTimeout",
        "{pooled}"
    );
    assert_eq!(pooled, default, "an unknown host name");
}

#[test]
fn requests_that_set_no_timeouts_get_the_hosts_defaults() {
    let timeouts = super::Timeouts::of(None, None);
    assert_eq!(timeouts.connect, Duration::from_secs(10));
    assert_eq!(timeouts.first_byte, Duration::from_secs(60));
    assert_eq!(timeouts.between_bytes, Duration::from_secs(30));
    assert_eq!(timeouts.body, Duration::from_secs(300));
    // What a request sets is kept; the body deadline follows its first-byte timeout.
    let asked = RequestOptions {
        connect_timeout: Some(Duration::from_secs(3)),
        first_byte_timeout: Some(Duration::from_secs(20)),
        between_bytes_timeout: None,
    };
    let timeouts = super::Timeouts::of(Some(asked), None);
    assert_eq!(timeouts.connect, Duration::from_secs(3));
    assert_eq!(timeouts.first_byte, Duration::from_secs(20));
    assert_eq!(timeouts.between_bytes, Duration::from_secs(30));
    assert_eq!(timeouts.body, Duration::from_secs(100));
}

#[test]
fn every_timeout_is_clamped_to_the_time_left_of_the_run() {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let timeouts = super::Timeouts::of(None, Some(deadline));
    for timeout in [
        timeouts.connect,
        timeouts.first_byte,
        timeouts.between_bytes,
        timeouts.body,
    ] {
        assert!(timeout <= Duration::from_secs(2), "{timeouts:?}");
    }
    let past = super::Timeouts::of(None, Some(std::time::Instant::now()));
    assert_eq!(past.first_byte, Duration::ZERO);
}

/// A TCP server that answers each connection with `head`, then trickles one byte of body
/// every `every` (for a minute at most).
async fn trickling_server(head: &'static [u8], every: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if stream.write_all(head).await.is_err() {
                    return;
                }
                let started = std::time::Instant::now();
                while started.elapsed() < Duration::from_secs(60) {
                    tokio::time::sleep(every).await;
                    if stream.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_body_trickling_a_byte_at_a_time_is_bounded_by_the_body_deadline() {
    // 1000 bytes at a byte every 50 ms would take 50 s; every byte arrives well within
    // the between-bytes timeout.
    let trickle = trickling_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
        Duration::from_millis(50),
    )
    .await;
    let options = RequestOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        first_byte_timeout: Some(Duration::from_millis(200)),
        between_bytes_timeout: Some(Duration::from_millis(500)),
    };
    let started = std::time::Instant::now();
    let response = Pool::new()
        .send(
            request("GET", &format!("http://{trickle}/"), b""),
            Some(options),
        )
        .await
        .expect("the headers arrive at once");
    let read = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the body deadline (5 × 200 ms) ends the read, not the test's 10 s");
    let error = read.expect_err("a trickled body fails");
    assert_eq!(kind(&error), "ConnectionReadTimeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_server_is_given_no_more_than_the_runs_remaining_budget() {
    let silent = raw_server(b"").await;
    let headers_then_silence =
        raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello").await;
    for (address, what) in [
        (silent, "no answer"),
        (headers_then_silence, "a stalled body"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        let pool = Pool::with_deadline(Some(deadline));
        // No options: the host's defaults (60 s first byte, 30 s between bytes) apply,
        // clamped to the 300 ms left.
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            match pool
                .send(request("GET", &format!("http://{address}/"), b""), None)
                .await
            {
                Err(error) => kind(&error),
                Ok(response) => kind(&response.into_body().collect().await.unwrap_err()),
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after 10 s"));
        assert_eq!(outcome, "ConnectionReadTimeout", "{what}");
    }
}
