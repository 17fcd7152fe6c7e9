//! `wasi:http/outgoing-handler` with an allowlist: the sandbox reaches only the authorities
//! derived from its tenant's endpoints. A request to any other authority is refused before
//! a connection is opened (`HttpRequestDenied`); the component turns that into an error
//! that names the host.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::Origin;

/// Allowlist enforcement for one run, plus a record of what was refused.
#[derive(Clone, Default)]
pub struct AllowlistHooks {
    allowed: Arc<Vec<String>>,
    denied: Arc<Mutex<Vec<String>>>,
}

impl AllowlistHooks {
    /// `allowed` holds normalised origins (`scheme://host:port`).
    pub fn new(allowed: Vec<String>) -> Self {
        AllowlistHooks {
            allowed: Arc::new(allowed),
            denied: Default::default(),
        }
    }

    /// Authorities the run tried to reach and was refused, in order.
    pub fn denied(&self) -> Vec<String> {
        self.denied.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn permits(&self, uri: &http::Uri) -> Result<(), String> {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return Err("(no host)".to_string());
        };
        let origin = Origin::new(scheme, host, uri.port_u16());
        if self.allowed.contains(&origin.normalized) {
            Ok(())
        } else {
            Err(uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or(origin.host))
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
        let verdict = self.permits(request.uri());
        let denied = self.denied.clone();
        Box::new(async move {
            if let Err(authority) = verdict {
                tracing::warn!(%authority, "refused a request to a host not on the allowlist");
                if let Ok(mut denied) = denied.lock() {
                    denied.push(authority);
                }
                return Err(Error::HttpRequestDenied);
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_only_listed_origins_with_default_ports() {
        let hooks = AllowlistHooks::new(vec![
            "https://graph.microsoft.com:443".into(),
            "http://127.0.0.1:8080".into(),
        ]);
        assert!(
            hooks
                .permits(&"https://graph.microsoft.com/v1.0/users".parse().unwrap())
                .is_ok()
        );
        assert!(
            hooks
                .permits(&"https://GRAPH.microsoft.com:443/x".parse().unwrap())
                .is_ok()
        );
        assert!(
            hooks
                .permits(&"http://127.0.0.1:8080/x".parse().unwrap())
                .is_ok()
        );
        assert_eq!(
            hooks
                .permits(&"http://127.0.0.1:8081/x".parse().unwrap())
                .unwrap_err(),
            "127.0.0.1:8081"
        );
        assert!(
            hooks
                .permits(&"http://graph.microsoft.com/x".parse().unwrap())
                .is_err()
        );
        assert!(
            hooks
                .permits(&"https://evil.example/x".parse().unwrap())
                .is_err()
        );
    }
}
