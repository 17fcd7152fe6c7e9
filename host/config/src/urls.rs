//! Base URLs (the `[tenant.endpoints]` keys) and the allowlist a tenant's sandbox gets from
//! them. Plain `http` is refused except to a loopback host: the client secret and bearer
//! tokens travel on these connections.

use super::rules::{authority, ip_literal};
use m365sync_wit::types::Endpoints;

/// What sandboxes may reach: the origins of its endpoints, and its report download hosts
/// for credential-free GETs, each restricted to the operator's pinned `allowed_hosts` when
/// set. A URL `base_url` refuses is left out.
pub fn allowlist(
    endpoints: &Endpoints,
    downloads: &[String],
    pinned: Option<&[String]>,
) -> Allowlist {
    let permitted = |url: &String| {
        let origin = base_url(url).ok()?;
        match pinned {
            Some(pins) if !pins.iter().any(|pin| origin.matches_pin(pin)) => None,
            _ => Some(origin.normalized),
        }
    };
    let mut allowlist = Allowlist::default();
    for origin in [&endpoints.login, &endpoints.graph]
        .into_iter()
        .filter_map(permitted)
    {
        if !allowlist.api.contains(&origin) {
            allowlist.api.push(origin);
        }
    }
    for origin in downloads.iter().filter_map(permitted) {
        if !allowlist.downloads.contains(&origin) && !allowlist.api.contains(&origin) {
            allowlist.downloads.push(origin);
        }
    }
    allowlist
}

/// A parsed base URL's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub host: String,
    pub port: u16,
    /// `scheme://host:port`, lower case.
    pub normalized: String,
}

impl Origin {
    pub fn new(scheme: &str, host: &str, port: Option<u16>) -> Origin {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port = port.unwrap_or(if scheme == "http" { 80 } else { 443 });
        let normalized = format!("{scheme}://{host}:{port}");
        Origin {
            host,
            port,
            normalized,
        }
    }

    fn matches_pin(&self, pin: &str) -> bool {
        let pin = pin.to_ascii_lowercase();
        match pin.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => {
                host == self.host && port.parse::<u16>().ok() == Some(self.port)
            }
            _ => pin.trim_end_matches('.') == self.host,
        }
    }
}

/// True for a host on this machine: `localhost`, 127.0.0.0/8, ::1 (also IPv4-mapped).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match ip_literal(host) {
        Some(std::net::IpAddr::V4(ip)) => ip.is_loopback(),
        Some(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// Check that `url` is an absolute base URL: `https`, or `http` to a loopback host only (a
/// local simulator); a valid host and port (1..=65535); no user info; no path beyond "/"
/// and no query.
pub fn base_url(url: &str) -> Result<Origin, String> {
    let (origin, uri) = checked_origin(url, &shown(url, true))?;
    let path = uri.path();
    if !(path.is_empty() || path == "/") || uri.query().is_some() {
        return Err(format!(
            "{:?} must be a base URL without a path or query",
            shown(url, true)
        ));
    }
    Ok(origin)
}

/// Check that `url` is an absolute URL to send to: the rules of [`base_url`], but any path
/// and query are allowed. They may hold a credential (a receiver's key), so errors show the
/// URL's scheme and host only.
pub fn endpoint_url(url: &str) -> Result<Origin, String> {
    checked_origin(url, &shown(url, false)).map(|(origin, _)| origin)
}

/// The origin of `url` once its scheme, host and port pass; errors show `shown`.
fn checked_origin(url: &str, shown: &str) -> Result<(Origin, http::Uri), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|error| format!("{shown:?} is not a URL ({error})"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| format!("{shown:?} has no scheme"))?
        .to_ascii_lowercase();
    let authority_text = uri
        .authority()
        .map(|a| a.as_str())
        .ok_or_else(|| format!("{shown:?} has no host"))?;
    let (host, port) = authority(authority_text).map_err(|why| format!("{shown:?}: {why}"))?;
    match scheme.as_str() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(format!(
                "{shown:?} uses plain http to a host that is not loopback: secrets and tokens \
                 would cross the network unencrypted; use https (http only for a local \
                 simulator or receiver on localhost, 127.0.0.0/8 or ::1)"
            ));
        }
        _ => {
            return Err(format!(
                "{shown:?} must use https (or http to localhost for a local simulator)"
            ));
        }
    }
    let origin = Origin::new(&scheme, host, port);
    Ok((origin, uri))
}

/// `url` as errors may show it: user info (a credential) replaced by "…", and, unless
/// `with_path`, any path or query (which may hold one too) by "/…".
fn shown(url: &str, with_path: bool) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => authority.to_string(),
    };
    let tail = if with_path || tail.is_empty() || tail == "/" {
        tail
    } else {
        "/…"
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_reaches_loopback() {
        for ok in [
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/",
            "http://127.0.0.1:4000",
            "http://127.0.0.2:4003",
            "http://localhost:8080",
            "http://[::1]:9000",
        ] {
            assert!(base_url(ok).is_ok(), "{ok}: {:?}", base_url(ok));
        }
        let error = base_url("http://graph.microsoft.com").unwrap_err();
        assert!(error.contains("not loopback"), "{error}");
        assert!(base_url("http://10.0.0.1:80").is_err());
        assert!(base_url("http://localhost.example.com").is_err());
        assert!(base_url("ftp://x.example").is_err());
    }

    #[test]
    fn ports_user_info_and_paths_are_checked() {
        let port = base_url("http://127.0.0.1:99999").unwrap_err();
        assert!(
            port.contains("99999") && port.contains("1..=65535"),
            "{port}"
        );
        let user = base_url("https://admin:hunter2@graph.microsoft.com").unwrap_err();
        assert!(
            user.contains("user info") && !user.contains("hunter2"),
            "{user}"
        );
        assert!(base_url("https://graph.microsoft.com/v1.0").is_err());
        assert!(endpoint_url("https://hooks.example.com/v1/in?code=k3y").is_ok());
        let error = endpoint_url("http://hooks.example.com/services/s3cret?code=k3y").unwrap_err();
        assert!(
            error.contains("\"http://hooks.example.com/…\"") && error.contains("not loopback"),
            "{error}"
        );
        assert!(
            !error.contains("s3cret") && !error.contains("k3y"),
            "{error}"
        );
        let error = endpoint_url("https://me:pw@hooks.example.com:99999/s3cret").unwrap_err();
        assert!(
            !error.contains("pw") && !error.contains("s3cret"),
            "{error}"
        );
        assert!(
            endpoint_url("not a url/s3cret")
                .unwrap_err()
                .contains("not a URL")
        );
        assert!(
            !endpoint_url("not a url/s3cret")
                .unwrap_err()
                .contains("s3cret")
        );
        assert!(base_url("https://graph.microsoft.com?x=1").is_err());
        assert_eq!(
            base_url("https://Graph.Microsoft.com:8443")
                .unwrap()
                .normalized,
            "https://graph.microsoft.com:8443"
        );
    }
}

/// Where one tenant's sandbox may send requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Origins (`scheme://host:port`) of the sign-in and Graph endpoints: any request.
    pub api: Vec<String>,
    /// Origins of report download hosts: Graph redirects usage reports to pre-authenticated
    /// URLs there. Only a GET without credentials may go to them, so a bearer token can
    /// never leave for a download host.
    pub downloads: Vec<String>,
}
