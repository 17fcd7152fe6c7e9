//! The world as the sync logic sees it: HTTP, secrets, client assertions, storage, logging
//! and clocks as traits, so that the logic runs unchanged in the component (backed by the WIT imports)
//! and in native unit tests (backed by scripted fakes).

use crate::bindings::m365sync::engine::credentials::CredentialError;
use crate::bindings::m365sync::engine::log::Level;
use crate::bindings::m365sync::engine::secrets::SecretError;
use crate::bindings::m365sync::engine::storage::StorageError;
use crate::types::{Batch, DataSet, MatchDecision, PersonKey, PlatformOrganization, StoredPerson};

/// HTTP methods the engine uses: GET for Graph, POST for the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One outgoing request, with an absolute URL.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// One complete response.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The host refused to send the request (the authority is not on its allowlist).
    #[error("the host denied the request to {authority}")]
    Denied { authority: String },
    #[error("could not connect: {0}")]
    Connect(String),
    /// A deadline passed; the text says what was awaited ("the response from … to begin").
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The body ended before all the bytes its `Content-Length` announced arrived (a
    /// transfer cut short: worth another try).
    #[error("short read: {0}")]
    ShortRead(String),
    /// The body is, or its `Content-Length` announces it to be, larger than the engine
    /// reads into memory: refused before it is read (not worth another try).
    #[error(
        "the response is too large: {size} bytes {}, more than the {limit} bytes the engine \
         reads",
        if *.announced { "announced by its Content-Length" } else { "arrived" }
    )]
    TooLarge {
        size: u64,
        limit: u64,
        announced: bool,
    },
}

/// Outgoing HTTP.
pub trait Http {
    fn send(&mut self, req: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The tenant's secrets, by name.
pub trait Secrets {
    fn get(&mut self, name: &str) -> Result<String, SecretError>;
}

/// The tenant app's client assertions, made by the host (`credentials.client-assertion`):
/// one for each token request, for the token endpoint `audience`.
pub trait Assertions {
    fn client_assertion(&mut self, audience: &str) -> Result<String, CredentialError>;
}

/// The host's storage, as the WIT `storage` interface defines it.
pub trait Store {
    fn get_checkpoint(&mut self, key: &str) -> Result<Option<String>, StorageError>;
    fn find_people(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<StoredPerson>>, StorageError>;
    fn list_people_ids(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StorageError>;
    fn find_direct_reports(&mut self, manager_id: &str) -> Result<Vec<StoredPerson>, StorageError>;
    fn commit(&mut self, batch: &Batch) -> Result<(), StorageError>;
    fn list_organizations(&mut self) -> Result<Vec<PlatformOrganization>, StorageError>;
    fn create_organization(&mut self, name: &str) -> Result<PlatformOrganization, StorageError>;
    fn get_decision(&mut self, tenant_key: &str) -> Result<Option<MatchDecision>, StorageError>;
    fn put_decision(&mut self, decision: &MatchDecision) -> Result<(), StorageError>;
}

/// Log lines and progress events for the host to show.
pub trait Log {
    fn log(&mut self, level: Level, message: &str);
    fn progress(&mut self, phase: DataSet, done: u64, total: Option<u64>);
}

/// Time.
pub trait Clock {
    /// Monotonic milliseconds (for durations and token expiry).
    fn now_ms(&self) -> u64;
    /// The wall clock as RFC 3339 UTC.
    fn wall_rfc3339(&self) -> String;
    /// Block for `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
}

/// Everything a run may touch.
pub struct Env<'a> {
    pub http: &'a mut dyn Http,
    pub secrets: &'a mut dyn Secrets,
    pub credentials: &'a mut dyn Assertions,
    pub store: &'a mut dyn Store,
    pub log: &'a mut dyn Log,
    pub clock: &'a mut dyn Clock,
}

/// Formats a Unix time as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:34:56.789Z`.
pub fn rfc3339_utc(unix_seconds: u64, nanos: u32) -> String {
    let days = unix_seconds / 86_400;
    let rem = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        (nanos / 1_000_000).min(999)
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(1_714_566_896, 789_000_000),
            "2024-05-01T12:34:56.789Z"
        );
        // A leap day.
        assert_eq!(rfc3339_utc(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(4_102_444_799, 999_999_999),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn header_lookup_is_case_insensitive() {
        let r = HttpResponse {
            status: 429,
            headers: vec![("retry-after".into(), "7".into())],
            body: vec![],
        };
        assert_eq!(r.header("Retry-After"), Some("7"));
        assert_eq!(r.header("x"), None);
    }
}
