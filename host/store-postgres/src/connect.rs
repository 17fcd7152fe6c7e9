//! Reaching the server: the connection URL (libpq's forms), what the store shows of it
//! (never a password), TLS, and the connection pool with its timeouts.
//!
//! TLS follows the URL's `sslmode`: `disable` and `prefer` connect without TLS (`prefer`
//! does not try it: a server that demands TLS refuses, and the error says so), `require`
//! connects over rustls and verifies the server's certificate and host name against
//! Mozilla's roots (`webpki-roots`): stricter than libpq's `require`, which encrypts without
//! verifying, because a certificate nobody checks does not stop a man in the middle.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use m365sync_store::StoreError;
use tokio_postgres::config::{Host, SslMode};

/// How long connecting (TCP and the server's greeting) and waiting for a pooled
/// connection may take, unless the URL's `connect_timeout` (seconds, as libpq's) says: a
/// server that does not answer fails the command quickly.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections one store opens: a sync holds one for its tenant (its open
/// transaction), the lock's heartbeat borrows one now and then, and the read side takes one
/// per call.
pub const POOL_SIZE: usize = 16;

/// A parsed URL and what may be shown of it.
#[derive(Clone)]
pub(crate) struct Target {
    pub config: tokio_postgres::Config,
    /// The URL without its password, for errors.
    pub shown_url: String,
    /// "PostgreSQL database DB on HOST:PORT".
    pub described: String,
    /// How long connecting, or waiting for a pooled connection, may take.
    pub timeout: Duration,
}

impl Target {
    /// Parse a libpq URL (`postgres://user[:password]@host[:port]/db?options=...`) or
    /// key/value string (`host=... dbname=...`).
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let shown_url = without_password(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            // The parser's causes name a key or the encoding, never a value.
            StoreError::Open(format!(
                "invalid PostgreSQL URL {shown_url}: {}",
                crate::error::message(&e)
            ))
        })?;
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT);
        config.connect_timeout(timeout);
        let described = describe(&config);
        Ok(Target {
            config,
            shown_url,
            described,
            timeout,
        })
    }

    /// A pool of connections to the target (none is opened yet).
    pub fn pool(&self) -> Result<Pool, StoreError> {
        let manager_config = ManagerConfig {
            // A connection handed back is checked to be open; the store never hands back
            // one in an unknown state (see `tenant.rs`).
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match self.config.get_ssl_mode() {
            SslMode::Require => Manager::from_config(self.config.clone(), tls()?, manager_config),
            // `disable`, `prefer` (and any mode added later) connect without TLS.
            _ => Manager::from_config(self.config.clone(), tokio_postgres::NoTls, manager_config),
        };
        Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.timeout))
            .create_timeout(Some(self.timeout))
            .recycle_timeout(Some(self.timeout))
            .build()
            .map_err(|e| StoreError::Open(format!("cannot reach {}: {e}", self.shown_url)))
    }
}

/// rustls with ring (the provider the workspace builds) and Mozilla's roots.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Open(format!("cannot set up TLS for PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// "PostgreSQL database DB on HOST:PORT" (libpq's defaults: the database is named after
/// the user, the port is 5432).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "localhost".to_string()),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("PostgreSQL database {database} on {host}:{port}")
}

/// `url` without its password: the password of a URL's user information, and any
/// `password` parameter (of a URL's query or a key/value string), are left out.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return key_values_without_password(url);
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{user}@{hosts}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                    !key.eq_ignore_ascii_case("password")
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A key/value connection string (`host=h password='x y' dbname=d`) without its password.
fn key_values_without_password(text: &str) -> String {
    let mut kept = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut pair = String::new();
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        pair.push_str(&key);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_some() {
            pair.push('=');
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next_if_eq(&'\'').is_some() {
                // A quoted value: up to the closing quote, `\` escaping the next character.
                pair.push('\'');
                while let Some(c) = chars.next() {
                    pair.push(c);
                    match c {
                        '\\' => pair.extend(chars.next()),
                        '\'' => break,
                        _ => {}
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    pair.push(c);
                }
            }
        }
        if !key.eq_ignore_ascii_case("password") {
            kept.push(pair);
        }
    }
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            without_password("postgres://app:s3cr%40t@db.example:6432/sync?sslmode=require"),
            "postgres://app@db.example:6432/sync?sslmode=require"
        );
        assert_eq!(
            without_password("postgresql://app@h/db?password=s3cret&application_name=x"),
            "postgresql://app@h/db?application_name=x"
        );
        assert_eq!(
            without_password("postgres://a:b@h?password=c"),
            "postgres://a@h"
        );
        assert_eq!(without_password("postgres://h"), "postgres://h");
        assert_eq!(
            without_password("host=h password='s3 cr\\'et' dbname=d"),
            "host=h dbname=d"
        );
        assert_eq!(
            without_password("host=h password = x user=u"),
            "host=h user=u"
        );
    }

    #[test]
    fn a_target_is_described_without_its_password() {
        let target = Target::parse("postgres://app:s3cret@db.example:6432/sync").unwrap();
        assert_eq!(
            target.described,
            "PostgreSQL database sync on db.example:6432"
        );
        assert_eq!(target.shown_url, "postgres://app@db.example:6432/sync");
        let target = Target::parse("postgres://app@db.example").unwrap();
        assert_eq!(
            target.described,
            "PostgreSQL database app on db.example:5432"
        );
        let error = Target::parse("postgres://app:s3cret@h/db?sslmode=sometimes")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("postgres://app@h/db"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
