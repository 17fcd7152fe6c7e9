//! Opening one HTTP/1.1 connection to an origin the way wasmtime-wasi-http's
//! `default_send_request` does: TCP within the connect timeout, TLS for `https` trusting
//! the compiled-in webpki roots only (tokio-rustls), then the hyper handshake. Failures are
//! the same `wasmtime_wasi_http::Error` values, so a guest sees the same `ErrorCode`s
//! (DNS error, connection refused, connection timeout, TLS error) whichever sender is used.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::InvalidDnsNameError, pki_types::ServerName};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, WasiBody};

/// Where a request goes: `host:port` (port made explicit, host lowercased) and whether the
/// connection speaks TLS. Connections are pooled by target, that is by origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub authority: String,
    pub tls: bool,
}

impl Target {
    /// The target of a request URI (absolute, as wasmtime hands it to the hooks).
    pub fn of(uri: &http::Uri) -> Result<Target, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let authority = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        Ok(Target {
            authority: authority.to_ascii_lowercase(),
            tls,
        })
    }
}

/// Opens a connection to `target` and spawns the task that drives it; the task ends when
/// the connection closes or every `SendRequest` of it is dropped.
pub async fn open(
    target: &Target,
    connect_timeout: Duration,
) -> Result<SendRequest<WasiBody>, Error> {
    let stream = match timeout(connect_timeout, TcpStream::connect(&target.authority)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    // Requests on a kept-alive connection are written in more than one segment (headers,
    // then a body): without this, Nagle's algorithm and delayed ACKs would add ~40 ms to
    // every request after the first.
    let _ = stream.set_nodelay(true);
    if !target.tls {
        return handshake(stream, connect_timeout).await;
    }
    let name = tls_server_name(&target.authority)?;
    let stream = match timeout(connect_timeout, tls_connector().connect(name, stream)).await {
        Ok(stream) => stream.map_err(Error::Tls)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    handshake(stream, connect_timeout).await
}

async fn handshake<T>(stream: T, connect_timeout: Duration) -> Result<SendRequest<WasiBody>, Error>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = timeout(
        connect_timeout,
        http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            // The request or body in flight gets this error from hyper too.
            tracing::debug!(%error, "an HTTP connection ended with an error");
        }
    });
    Ok(sender)
}

/// The TLS client configuration of wasmtime's default sender (webpki roots, no client
/// authentication), built once.
fn tls_connector() -> TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    TlsConnector::from(config.clone())
}

/// The name the server certificate must match, from `host:port` (an IP literal, bracketed
/// for IPv6, becomes an IP name), as wasmtime-wasi-http resolves it.
fn tls_server_name(authority: &str) -> Result<ServerName<'static>, InvalidDnsNameError> {
    if let Ok(address) = authority.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::from(address.ip()));
    }
    let host = authority
        .split_once(':')
        .map_or(authority, |(host, _)| host);
    Ok(ServerName::try_from(host)?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_make_the_port_explicit_and_ignore_case() {
        let target = |uri: &str| Target::of(&uri.parse().unwrap()).unwrap();
        assert_eq!(
            target("https://Graph.Microsoft.com/v1.0/users"),
            Target {
                authority: "graph.microsoft.com:443".into(),
                tls: true
            }
        );
        assert_eq!(
            target("http://127.0.0.1:8080/x"),
            Target {
                authority: "127.0.0.1:8080".into(),
                tls: false
            }
        );
        assert_eq!(target("http://example.com/").authority, "example.com:80");
        assert!(Target::of(&"/relative".parse().unwrap()).is_err());
    }

    #[test]
    fn server_names_drop_the_port() {
        assert_eq!(
            tls_server_name("graph.microsoft.com:443").unwrap(),
            ServerName::try_from("graph.microsoft.com").unwrap()
        );
        assert_eq!(
            tls_server_name("[::1]:443").unwrap(),
            ServerName::from(std::net::Ipv6Addr::LOCALHOST)
        );
        assert_eq!(
            tls_server_name("127.0.0.1:8443").unwrap(),
            ServerName::from(std::net::Ipv4Addr::LOCALHOST)
        );
    }
}
