//! The Graph client of one run: signs in (and renews the token before it expires or once
//! after a 401), sends GETs with the bearer token, retries throttled and transiently
//! failed requests (429/503/504 honouring `Retry-After`, else exponential backoff with
//! jitter), re-reads a body that arrived cut short or is not JSON (a GET is idempotent),
//! counts requests, retries and waiting for the sync log, tells Graph's "resync" answers
//! to a delta query apart, and maps Graph's other error answers to typed `sync-error`s.
//! Usage reports: Graph's `302` to a pre-authenticated download URL is returned, not
//! followed ([`GraphClient::get_report`]); the download ([`GraphClient::download`]) goes
//! to whatever host it names WITHOUT the bearer token, and its URL is masked everywhere.

use serde::Deserialize;

use super::token::{self, AccessToken, Credentials};
use crate::platform::{Clock, Http, HttpRequest, HttpResponse, Method, TransportError};
use crate::redact::Redactor;
use crate::types::{HttpFailure, PermissionDenied, SyncError};
use crate::url::{AbsoluteUrl, Scheme, delta_token, display_url};

/// What a request needs, so that a refusal can name the permission and the feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    pub permission: &'static str,
    pub feature: &'static str,
}

/// Counters for the sync log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent, token requests and retries included.
    pub requests: u32,
    pub retries: u32,
    pub retry_wait_ms: u64,
}

/// When and how long to wait before trying again.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub cap_ms: u64,
    /// Attempts of one request after throttling (429/503/504), the first included.
    pub max_attempts: u32,
    /// Attempts of one request after a transport failure (connect, timeout, reset).
    pub max_transport_attempts: u32,
    /// Waiting for one request never adds up to more than this.
    pub total_wait_cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 1_000,
            cap_ms: 32_000,
            max_attempts: 6,
            max_transport_attempts: 3,
            total_wait_cap_ms: 120_000,
        }
    }
}

/// Redirects a report download may follow after Graph's own.
pub const MAX_DOWNLOAD_REDIRECTS: u32 = 3;

/// Graph's answer to a report request.
#[derive(Debug)]
pub enum ReportAnswer {
    /// The URL to download the report from (Graph's `302 Found`).
    Redirect(String),
    /// The report itself.
    Body(Vec<u8>),
}

/// `location` resolved against `base`: an absolute URL as it is, an absolute path on the
/// origin of `base`.
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with('/')
        && !location.starts_with("//")
        && let Ok(b) = AbsoluteUrl::parse(base)
    {
        let scheme = match b.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        return format!("{scheme}://{}{location}", b.authority);
    }
    location.to_owned()
}

/// A download URL as errors show it: its origin, and `/...` for the path and query.
pub fn origin_only(url: &str) -> String {
    match AbsoluteUrl::parse(url) {
        Ok(u) => format!(
            "{}://{}/...",
            match u.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
            },
            u.authority
        ),
        Err(_) => "(an unusable download URL)".to_owned(),
    }
}

/// Puts `shown` as the URL of an HTTP failure.
fn rename_url(e: SyncError, shown: &str) -> SyncError {
    match e {
        SyncError::Http(mut f) => {
            f.url = shown.to_owned();
            SyncError::Http(f)
        }
        SyncError::BadResponse(mut f) => {
            f.url = shown.to_owned();
            SyncError::BadResponse(f)
        }
        other => other,
    }
}

/// What a GET came to: the answer, or Graph's word that the delta (change-tracking) state
/// is gone and the round must start again from scratch.
#[derive(Debug)]
pub enum Reply<T> {
    Ok(T),
    Resync(HttpFailure),
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// serde_json's error. A syntax error or an early end means the body is not JSON or
    /// was cut short in transfer: it is fetched again. A data error (valid JSON of the
    /// wrong shape) is not.
    Json(serde_json::Error),
    /// Valid JSON that is not usable; not fetched again.
    Unusable(SyncError),
}

impl From<serde_json::Error> for BodyError {
    fn from(e: serde_json::Error) -> Self {
        BodyError::Json(e)
    }
}

/// A response and how many attempts it took.
struct Sent {
    response: HttpResponse,
    attempts: u32,
}

pub struct GraphClient<'e> {
    http: &'e mut dyn Http,
    clock: &'e mut dyn Clock,
    creds: Credentials,
    token: Option<AccessToken>,
    policy: RetryPolicy,
    rng: u64,
    redactor: Redactor,
    pub stats: Stats,
}

impl<'e> GraphClient<'e> {
    pub fn new(http: &'e mut dyn Http, clock: &'e mut dyn Clock, creds: Credentials) -> Self {
        let mut redactor = Redactor::default();
        redactor.add(&creds.secret);
        let rng = clock.now_ms() ^ 0x9e37_79b9_7f4a_7c15;
        GraphClient {
            http,
            clock,
            creds,
            token: None,
            policy: RetryPolicy::default(),
            rng,
            redactor,
            stats: Stats::default(),
        }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The Graph base URL (no trailing slash).
    pub fn graph(&self) -> &str {
        &self.creds.graph
    }

    /// Knows the secret, every token issued so far, and the delta tokens of the URLs read.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Signs in now (or reuses a still valid token) and returns the access token.
    pub fn sign_in(&mut self) -> Result<&str, SyncError> {
        let now = self.clock.now_ms();
        if !self.token.as_ref().is_some_and(|t| t.usable_at(now)) {
            self.fetch_token()?;
        }
        match &self.token {
            Some(t) => Ok(&t.value),
            None => Err(self.auth_internal()),
        }
    }

    fn auth_internal(&self) -> SyncError {
        SyncError::Auth(crate::types::AuthError {
            failure: crate::types::AuthFailure::Other,
            aadsts: None,
            message: "signing in produced no token".into(),
        })
    }

    fn fetch_token(&mut self) -> Result<(), SyncError> {
        self.token = None;
        let url = self.creds.token_url();
        let req = HttpRequest {
            method: Method::Post,
            url,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: Some(self.creds.form_body()),
        };
        let started = self.clock.now_ms();
        let sent = self.send_with_retry(&req)?;
        let r = &sent.response;
        if (200..300).contains(&r.status) {
            let t = token::parse_token_response(&r.body, &req.url, started)?;
            self.redactor.add(&t.value);
            self.token = Some(t);
            return Ok(());
        }
        if let Some(e) = token::map_token_failure(r.status, &r.body, &self.creds, &self.redactor) {
            return Err(e);
        }
        let (code, message) = parse_graph_error(&r.body);
        Err(status_error(&req, &sent, code, message, &self.redactor))
    }

    /// GETs a Graph URL (absolute, on the Graph endpoint) and returns the body of a 2xx.
    pub fn get(&mut self, url: &str, need: Need) -> Result<Vec<u8>, SyncError> {
        match self.fetch(url, need, &[])? {
            Reply::Ok(response) => Ok(response.body),
            Reply::Resync(f) => Err(SyncError::Http(f)),
        }
    }

    /// GETs a Graph URL with these extra headers and parses the 2xx body. A body that is
    /// cut short (shorter than its Content-Length) or is not JSON is fetched again, up to
    /// the transport attempt cap, since a GET is idempotent; then it fails as a
    /// `bad-response` naming the URL (tokens hidden) and `what` was expected.
    pub fn get_json<T>(
        &mut self,
        url: &str,
        need: Need,
        headers: &[(&str, &str)],
        what: &str,
        mut parse: impl FnMut(&[u8]) -> Result<T, BodyError>,
    ) -> Result<Reply<T>, SyncError> {
        let mut attempts = 0u32;
        let mut waited = 0u64;
        loop {
            attempts += 1;
            let response = match self.fetch(url, need, headers)? {
                Reply::Ok(response) => response,
                Reply::Resync(f) => return Ok(Reply::Resync(f)),
            };
            let problem = match cut_short(&response) {
                Some(why) => why,
                None => match parse(&response.body) {
                    Ok(value) => return Ok(Reply::Ok(value)),
                    Err(BodyError::Unusable(e)) => return Err(e),
                    Err(BodyError::Json(e)) if !retryable_json(&e) => {
                        return Err(bad_json(url, what, &e));
                    }
                    Err(BodyError::Json(e)) => e.to_string(),
                },
            };
            drop(response);
            let delay = self.backoff(attempts);
            if attempts >= self.policy.max_transport_attempts
                || waited.saturating_add(delay) > self.policy.total_wait_cap_ms
            {
                let mut message = format!(
                    "the answer to GET {} is not a valid {what}: {problem}",
                    display_url(url)
                );
                if attempts > 1 {
                    message.push_str(&format!(" (after {attempts} attempts)"));
                }
                return Err(SyncError::BadResponse(HttpFailure {
                    url: display_url(url),
                    status: Some(200),
                    graph_code: None,
                    message,
                }));
            }
            self.clock.sleep_ms(delay);
            waited += delay;
            self.stats.retries = self.stats.retries.saturating_add(1);
            self.stats.retry_wait_ms = self.stats.retry_wait_ms.saturating_add(delay);
        }
    }

    /// GETs a report function of Graph (api-reference/v1.0/api/reportroot-get*.md): Graph
    /// answers `302 Found` with the report's pre-authenticated download URL in `Location`
    /// (on another host, needing no Authorization header). A `200` with the report itself
    /// is taken as it is. The `Location` is never logged or shown: it is a capability.
    pub fn get_report(&mut self, url: &str, need: Need) -> Result<ReportAnswer, SyncError> {
        let response = match self.fetch_with(url, need, &[], true)? {
            Reply::Ok(response) => response,
            Reply::Resync(f) => return Err(SyncError::Http(f)),
        };
        if (200..300).contains(&response.status) {
            return Ok(ReportAnswer::Body(response.body));
        }
        match response.header("location").map(str::trim) {
            Some(location) if !location.is_empty() => {
                let location = resolve(url, location);
                self.hide_capability(&location);
                Ok(ReportAnswer::Redirect(location))
            }
            _ => Err(SyncError::BadResponse(HttpFailure {
                url: display_url(url),
                status: Some(response.status),
                graph_code: None,
                message: format!(
                    "GET {} answered HTTP {} without a Location to download the report from",
                    display_url(url),
                    response.status
                ),
            })),
        }
    }

    /// Downloads a report from its pre-authenticated URL (any http or https origin) with a
    /// plain GET that carries NO Authorization header: the bearer token is for Graph only.
    /// Throttling and transport failures are retried as for Graph; a further redirect is
    /// followed (at most [`MAX_DOWNLOAD_REDIRECTS`]), also without credentials. Errors name
    /// the download host only, never its path or query (they are the capability); `what`
    /// names the report.
    pub fn download(&mut self, url: &str, what: &str) -> Result<Vec<u8>, SyncError> {
        let mut current = url.to_owned();
        self.hide_capability(&current);
        let mut redirects = 0;
        loop {
            let shown = origin_only(&current);
            if AbsoluteUrl::parse(&current).is_err() {
                return Err(SyncError::BadResponse(HttpFailure {
                    url: shown.clone(),
                    status: None,
                    graph_code: None,
                    message: format!(
                        "the download URL of the {what} report is not an absolute http(s) URL"
                    ),
                }));
            }
            let req = HttpRequest {
                method: Method::Get,
                url: current.clone(),
                headers: vec![("Accept".to_owned(), "text/csv, */*".to_owned())],
                body: None,
            };
            let sent = self
                .send_with_retry(&req)
                .map_err(|e| rename_url(e, &shown))?;
            let r = &sent.response;
            if (200..300).contains(&r.status) {
                if let Some(why) = cut_short(r) {
                    return Err(SyncError::BadResponse(HttpFailure {
                        url: shown.clone(),
                        status: Some(r.status),
                        graph_code: None,
                        message: format!(
                            "the download of the {what} report from {shown} failed: {why}"
                        ),
                    }));
                }
                return Ok(sent.response.body);
            }
            let location = r.header("location").map(str::trim).unwrap_or("");
            if matches!(r.status, 301 | 302 | 303 | 307 | 308) && !location.is_empty() {
                redirects += 1;
                if redirects > MAX_DOWNLOAD_REDIRECTS {
                    return Err(SyncError::BadResponse(HttpFailure {
                        url: shown,
                        status: Some(r.status),
                        graph_code: None,
                        message: format!(
                            "the download of the {what} report was redirected more than \
                             {MAX_DOWNLOAD_REDIRECTS} times"
                        ),
                    }));
                }
                current = resolve(&current, location);
                self.hide_capability(&current);
                continue;
            }
            let (code, message) = parse_graph_error(&r.body);
            let detail = message.unwrap_or_else(|| self.redactor.excerpt(&r.body, EXCERPT_CHARS));
            let mut text = format!(
                "the download of the {what} report from {shown} answered HTTP {}",
                r.status
            );
            if !detail.is_empty() {
                text.push_str(": ");
                text.push_str(&detail);
            }
            return Err(SyncError::Http(HttpFailure {
                url: shown,
                status: Some(r.status),
                graph_code: code,
                message: text,
            }));
        }
    }

    /// Masks a download URL, its path and its query in every error and log line.
    fn hide_capability(&mut self, url: &str) {
        self.redactor.add(url);
        if let Ok(u) = AbsoluteUrl::parse(url) {
            self.redactor.add(u.path_and_query);
            if let Some((path, query)) = u.path_and_query.split_once('?') {
                self.redactor.add(path);
                self.redactor.add(query);
            }
        }
    }

    /// GETs `url` with the bearer token (signing in again, once, after a 401) and returns
    /// a 2xx response; a resync answer comes back as [`Reply::Resync`], any other
    /// non-2xx as a typed error.
    fn fetch(
        &mut self,
        url: &str,
        need: Need,
        extra: &[(&str, &str)],
    ) -> Result<Reply<HttpResponse>, SyncError> {
        self.fetch_with(url, need, extra, false)
    }

    /// [`Self::fetch`]; with `redirects`, a 3xx answer is returned as it is (not followed).
    fn fetch_with(
        &mut self,
        url: &str,
        need: Need,
        extra: &[(&str, &str)],
        redirects: bool,
    ) -> Result<Reply<HttpResponse>, SyncError> {
        // A delta token is a bearer capability for the tenant's change feed: Graph might
        // echo it in an error message, so it is masked like the access token.
        if let Some(t) = delta_token(url) {
            self.redactor.add(t);
        }
        let mut renewed = false;
        loop {
            let bearer = format!("Bearer {}", self.sign_in()?);
            let mut headers = Vec::with_capacity(2 + extra.len());
            headers.push(("Authorization".to_owned(), bearer));
            headers.push(("Accept".to_owned(), "application/json".to_owned()));
            headers.extend(
                extra
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            let req = HttpRequest {
                method: Method::Get,
                url: url.to_owned(),
                headers,
                body: None,
            };
            let sent = self.send_with_retry(&req)?;
            match sent.response.status {
                200..=299 => return Ok(Reply::Ok(sent.response)),
                301 | 302 | 303 | 307 | 308 if redirects => return Ok(Reply::Ok(sent.response)),
                401 if !renewed => {
                    // Expired or revoked early: sign in again, once.
                    renewed = true;
                    self.fetch_token()?;
                }
                status if is_resync(status, &sent.response.body) => {
                    let (code, message) = parse_graph_error(&sent.response.body);
                    let SyncError::Http(f) =
                        status_error(&req, &sent, code, message, &self.redactor)
                    else {
                        unreachable!("status_error makes an http error")
                    };
                    return Ok(Reply::Resync(f));
                }
                _ => return Err(graph_error(&req, &sent, need, &self.redactor)),
            }
        }
    }

    /// Sends one request, retrying throttling (429/503/504) and transport failures.
    fn send_with_retry(&mut self, req: &HttpRequest) -> Result<Sent, SyncError> {
        let mut attempts = 0u32;
        let mut waited = 0u64;
        loop {
            attempts += 1;
            self.stats.requests = self.stats.requests.saturating_add(1);
            let delay = match self.http.send(req) {
                Err(TransportError::Denied { authority }) => {
                    return Err(SyncError::HostDenied(authority));
                }
                // Asking again would get the same body: refused at once.
                Err(e @ TransportError::TooLarge { .. }) => {
                    return Err(too_large(req, &e));
                }
                Err(e) => {
                    if attempts >= self.policy.max_transport_attempts {
                        return Err(transport_error(req, &e, attempts));
                    }
                    self.backoff(attempts)
                }
                Ok(response) if matches!(response.status, 429 | 503 | 504) => {
                    if attempts >= self.policy.max_attempts {
                        return Ok(Sent { response, attempts });
                    }
                    match retry_after_ms(&response) {
                        Some(ms) => ms,
                        None => self.backoff(attempts),
                    }
                }
                Ok(response) => return Ok(Sent { response, attempts }),
            };
            if waited.saturating_add(delay) > self.policy.total_wait_cap_ms {
                // Waiting longer would exceed the budget: fail now with what we have.
                return Err(SyncError::Http(HttpFailure {
                    url: display_url(&req.url),
                    status: None,
                    graph_code: None,
                    message: format!(
                        "{} {} kept failing or being throttled: gave up after {attempts} \
                         attempts, as waiting another {} s would exceed the {} s retry budget",
                        req.method.as_str(),
                        display_url(&req.url),
                        delay.div_ceil(1000),
                        self.policy.total_wait_cap_ms / 1000
                    ),
                }));
            }
            self.clock.sleep_ms(delay);
            waited += delay;
            self.stats.retries = self.stats.retries.saturating_add(1);
            self.stats.retry_wait_ms = self.stats.retry_wait_ms.saturating_add(delay);
        }
    }

    /// The retry policy (for JSON batching, [`super::batch`]).
    pub(crate) fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Waits `delay_ms` before trying again, counting `retries` retries (the requests sent
    /// again) and the wait in the stats, as [`Self::send_with_retry`] does for one request.
    pub(crate) fn wait_to_retry(&mut self, delay_ms: u64, retries: u32) {
        self.clock.sleep_ms(delay_ms);
        self.stats.retries = self.stats.retries.saturating_add(retries);
        self.stats.retry_wait_ms = self.stats.retry_wait_ms.saturating_add(delay_ms);
    }

    /// POSTs a JSON body to a Graph URL with the bearer token (signing in again, once,
    /// after a 401), throttling and transport failures retried as for a GET; returns the
    /// response, whatever its status, and the attempts it took. Only JSON batches of GETs
    /// ([`super::batch`]) are POSTed: the engine changes nothing in the tenant.
    pub(crate) fn post_json(
        &mut self,
        url: &str,
        body: &[u8],
    ) -> Result<(HttpResponse, u32), SyncError> {
        let mut renewed = false;
        loop {
            let bearer = format!("Bearer {}", self.sign_in()?);
            let req = HttpRequest {
                method: Method::Post,
                url: url.to_owned(),
                headers: vec![
                    ("Authorization".to_owned(), bearer),
                    ("Accept".to_owned(), "application/json".to_owned()),
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                ],
                body: Some(body.to_vec()),
            };
            let sent = self.send_with_retry(&req)?;
            if sent.response.status == 401 && !renewed {
                renewed = true;
                self.fetch_token()?;
                continue;
            }
            return Ok((sent.response, sent.attempts));
        }
    }

    /// Exponential backoff with "equal jitter": half the step, plus up to the other half.
    pub(crate) fn backoff(&mut self, attempt: u32) -> u64 {
        let step = self
            .policy
            .base_ms
            .saturating_mul(1u64 << (attempt - 1).min(20))
            .min(self.policy.cap_ms);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        step / 2 + r % (step / 2 + 1)
    }
}

/// `Retry-After` in milliseconds, when given as (possibly fractional) seconds; an HTTP
/// date is ignored (the backoff applies).
pub(crate) fn retry_after_ms(r: &HttpResponse) -> Option<u64> {
    let v = r.header("retry-after")?.trim();
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let seconds: u64 = whole.parse().unwrap_or(u64::MAX);
    // Milliseconds from the first three fraction digits.
    let ms = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Some(seconds.saturating_mul(1000).saturating_add(ms))
}

fn transport_error(req: &HttpRequest, e: &TransportError, attempts: u32) -> SyncError {
    let url = display_url(&req.url);
    let mut message = format!("{} {url}: {e}", req.method.as_str());
    if attempts > 1 {
        message.push_str(&format!(" (after {attempts} attempts)"));
    }
    SyncError::Http(HttpFailure {
        url,
        status: None,
        graph_code: None,
        message,
    })
}

/// A body too large to read, as the bad response it is, naming the URL and the size.
fn too_large(req: &HttpRequest, e: &TransportError) -> SyncError {
    let url = display_url(&req.url);
    SyncError::BadResponse(HttpFailure {
        message: format!("{} {url}: {e}", req.method.as_str()),
        url,
        status: None,
        graph_code: None,
    })
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: Option<GraphErrorDetail>,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    code: Option<String>,
    message: Option<String>,
    /// More specific errors (errors.md spells it `innererror`; answers spell it
    /// `innerError`).
    #[serde(default, rename = "innererror", alias = "innerError")]
    inner: Option<Box<GraphErrorDetail>>,
}

/// Error codes that say a delta token is no longer usable and the client must start a new
/// round: `resyncRequired` ("The delta token is no longer valid, and the app must reset
/// the sync state") and `syncStateNotFound` ("The delta token is expired and data must be
/// synchronized again"), from the code table of
/// microsoft-graph-docs-contrib/concepts/errors.md.
const RESYNC_CODES: &[&str] = &["resyncRequired", "syncStateNotFound"];

/// Is this answer to a delta request Graph's "start over"?
/// - `410 Gone`, whatever the body: "Synchronization reset" in
///   concepts/delta-query-overview.md ("a response code of 410 (gone) and a Location header
///   containing a request URL with an empty $deltaToken (same as the initial query) ... the
///   application must restart with a full synchronization").
/// - Any other 4xx whose error code, or a code nested in its `innererror` chain (errors.md
///   says to loop over them), is one of [`RESYNC_CODES`]: "Token duration" in the same page
///   ("In case of an expired token, the service should respond with a 40X-series error with
///   error codes such as syncStateNotFound").
///
/// Only the status and the codes decide, never the message (errors.md: "You should only
/// code against error codes returned in code properties").
pub fn is_resync(status: u16, body: &[u8]) -> bool {
    if status == 410 {
        return true;
    }
    if !(400..500).contains(&status) {
        return false;
    }
    let Ok(GraphErrorBody {
        error: Some(detail),
    }) = serde_json::from_slice(body)
    else {
        return false;
    };
    let mut next = Some(&detail);
    while let Some(d) = next {
        if d.code
            .as_deref()
            .is_some_and(|c| RESYNC_CODES.iter().any(|r| r.eq_ignore_ascii_case(c)))
        {
            return true;
        }
        next = d.inner.as_deref();
    }
    false
}

/// Is this JSON error one a refetch may cure (not JSON at all, or cut short)?
pub(crate) fn retryable_json(e: &serde_json::Error) -> bool {
    use serde_json::error::Category;
    matches!(
        e.classify(),
        Category::Syntax | Category::Eof | Category::Io
    )
}

/// A body shorter or longer than its `Content-Length` was cut short (or padded) in transfer.
pub(crate) fn cut_short(r: &HttpResponse) -> Option<String> {
    let declared: usize = r.header("content-length")?.trim().parse().ok()?;
    (declared != r.body.len()).then(|| {
        format!(
            "the body was cut short in transfer ({} of the {declared} bytes its \
             Content-Length announced arrived)",
            r.body.len()
        )
    })
}

/// Graph's `{"error": {"code", "message"}}`, when the body is one.
fn parse_graph_error(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(GraphErrorBody { error: Some(d) }) => (d.code, d.message),
        _ => (None, None),
    }
}

/// Characters of a body that is not a Graph error (an HTML error page, a proxy's text)
/// an error quotes ([`Redactor::excerpt`]).
const EXCERPT_CHARS: usize = 200;

/// A non-2xx answer of Graph as a typed error.
fn graph_error(req: &HttpRequest, sent: &Sent, need: Need, redactor: &Redactor) -> SyncError {
    let (code, message) = parse_graph_error(&sent.response.body);
    if sent.response.status == 403 && code.as_deref() == Some("Authorization_RequestDenied") {
        let detail = message.as_deref().unwrap_or("Insufficient privileges");
        return SyncError::Permission(PermissionDenied {
            permission: need.permission.into(),
            feature: need.feature.into(),
            message: format!(
                "Graph refused {} {} ({detail}). Feature {} needs the Microsoft Graph \
                 application permission {}: add it to the app registration (API permissions) \
                 and grant admin consent.",
                req.method.as_str(),
                display_url(&req.url),
                need.feature,
                need.permission
            ),
        });
    }
    status_error(req, sent, code, message, redactor)
}

/// Graph's answer `response` to `method url` after `attempts` attempts as the typed error
/// a request of its own gets (for the requests of a JSON batch, [`super::batch`]).
pub(crate) fn answer_error(
    method: Method,
    url: &str,
    response: HttpResponse,
    attempts: u32,
    need: Need,
    redactor: &Redactor,
) -> SyncError {
    let req = HttpRequest {
        method,
        url: url.to_owned(),
        headers: Vec::new(),
        body: None,
    };
    graph_error(&req, &Sent { response, attempts }, need, redactor)
}

/// An HTTP status error, with Graph's error code and message when the body had them.
fn status_error(
    req: &HttpRequest,
    sent: &Sent,
    graph_code: Option<String>,
    graph_message: Option<String>,
    redactor: &Redactor,
) -> SyncError {
    let status = sent.response.status;
    let detail =
        graph_message.unwrap_or_else(|| redactor.excerpt(&sent.response.body, EXCERPT_CHARS));
    let url = display_url(&req.url);
    let mut message = format!("{} {url} answered HTTP {status}", req.method.as_str());
    if let Some(c) = &graph_code {
        message.push_str(&format!(" {c}"));
    }
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    if sent.attempts > 1 {
        message.push_str(&format!(" (after {} attempts)", sent.attempts));
    }
    SyncError::Http(HttpFailure {
        url,
        status: Some(status),
        graph_code,
        message,
    })
}

/// The answer at `url` was not the JSON expected: names the URL and where it went wrong.
pub fn bad_json(url: &str, what: &str, e: &serde_json::Error) -> SyncError {
    SyncError::BadResponse(HttpFailure {
        url: display_url(url),
        status: Some(200),
        graph_code: None,
        message: format!(
            "the answer to GET {} is not a valid {what}: {e}",
            display_url(url)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeClock, FakeHttp, fake_jwt, json_response, token_response};
    use crate::types::AuthFailure;

    const NEED: Need = Need {
        permission: "User.Read.All",
        feature: "users",
    };

    fn creds() -> Credentials {
        crate::fakes::credentials()
    }

    #[test]
    fn gets_with_bearer_token_and_caches_it() {
        let token = fake_jwt(&["User.Read.All"]);
        let mut http = FakeHttp::new();
        http.push_ok(
            "POST https://login.test/tenant-1/oauth2/v2.0/token",
            token_response(&token, 3600),
        );
        http.push_ok(
            "GET https://graph.test/v1.0/a",
            json_response(200, r#"{"x":1}"#),
        );
        http.push_ok(
            "GET https://graph.test/v1.0/b",
            json_response(200, r#"{"x":2}"#),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        assert_eq!(
            c.get("https://graph.test/v1.0/a", NEED).unwrap(),
            br#"{"x":1}"#
        );
        assert_eq!(
            c.get("https://graph.test/v1.0/b", NEED).unwrap(),
            br#"{"x":2}"#
        );
        assert_eq!(c.stats.requests, 3);
        drop(c);
        let sent = &http.sent;
        assert_eq!(sent.len(), 3);
        let auth = sent[1]
            .headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .unwrap();
        assert_eq!(auth.1, format!("Bearer {token}"));
        assert!(sent[1].body.is_none());
        http.assert_done();
    }

    #[test]
    fn renews_token_five_minutes_before_expiry() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(3_600_000 - RENEW_MARGIN_TEST);
        c.get("https://graph.test/a", NEED).unwrap();
        drop(c);
        http.assert_done();
        assert!(
            http.sent[3]
                .headers
                .iter()
                .any(|(_, v)| v == "Bearer tok-2")
        );
    }
    const RENEW_MARGIN_TEST: u64 = 5 * 60 * 1000 - 1;

    #[test]
    fn renews_once_after_401() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok("GET https://graph.test/a", json_response(401, r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired or is not yet valid."}}"#));
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        drop(c);
        http.assert_done();

        // A second 401 is an error, not a loop.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"nope"}}"#,
            ),
        );
        http.push_ok("POST https://login.test/", token_response("tok-2", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(
                401,
                r#"{"error":{"code":"InvalidAuthenticationToken","message":"nope"}}"#,
            ),
        );
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.get("https://graph.test/a", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(401));
        assert_eq!(f.graph_code.as_deref(), Some("InvalidAuthenticationToken"));
        drop(c);
        http.assert_done();
    }

    #[test]
    fn honours_retry_after_then_succeeds() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        let mut throttled = json_response(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
        );
        throttled.headers.push(("Retry-After".into(), "7".into()));
        http.push_ok("GET https://graph.test/a", throttled);
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(
            c.stats,
            Stats {
                requests: 3,
                retries: 1,
                retry_wait_ms: 7000
            }
        );
        drop(c);
        assert_eq!(clock.sleeps, vec![7000]);
    }

    #[test]
    fn backs_off_exponentially_with_jitter_and_gives_up() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        for _ in 0..6 {
            http.push_ok(
                "GET https://graph.test/a",
                json_response(503, "Service Unavailable"),
            );
        }
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.get("https://graph.test/a", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(503));
        assert!(f.message.contains("after 6 attempts"), "{}", f.message);
        assert!(f.message.contains("Service Unavailable"), "{}", f.message);
        assert_eq!(c.stats.retries, 5);
        drop(c);
        assert_eq!(clock.sleeps.len(), 5);
        for (i, &s) in clock.sleeps.iter().enumerate() {
            let step = (1000u64 << i).min(32_000);
            assert!((step / 2..=step).contains(&s), "sleep {i} = {s}");
        }
        http.assert_done();
    }

    #[test]
    fn retry_budget_is_capped() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        let mut throttled = json_response(429, "{}");
        throttled.headers.push(("retry-after".into(), "100".into()));
        http.push_ok("GET https://graph.test/a", throttled.clone());
        http.push_ok("GET https://graph.test/a", throttled);
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c
            .get("https://graph.test/a?$skiptoken=abc", NEED)
            .unwrap_err()
        else {
            panic!()
        };
        assert!(f.message.contains("retry budget"), "{}", f.message);
        assert_eq!(f.url, "https://graph.test/a?$skiptoken=...");
        drop(c);
        assert_eq!(clock.sleeps, vec![100_000]);
    }

    #[test]
    fn transport_failures_retry_then_fail_and_denials_do_not_retry() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_err(
            "GET https://graph.test/a",
            TransportError::Connect("reset".into()),
        );
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        http.push_err(
            "GET https://graph.test/b",
            TransportError::Denied {
                authority: "graph.test".into(),
            },
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(
            c.get("https://graph.test/b", NEED).unwrap_err(),
            SyncError::HostDenied("graph.test".into())
        );
        drop(c);
        http.assert_done();

        let mut http = FakeHttp::new();
        for _ in 0..3 {
            http.push_err(
                "POST https://login.test/",
                TransportError::Timeout("the response from login.test to begin".into()),
            );
        }
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.sign_in().unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, None);
        assert!(
            f.message
                .contains("timed out waiting for the response from login.test to begin"),
            "{}",
            f.message
        );
        assert!(f.message.contains("after 3 attempts"), "{}", f.message);
    }

    #[test]
    fn timeouts_are_retried_with_backoff_then_fail_naming_the_url_and_what_was_awaited() {
        // One timeout, then an answer: retried after a backoff.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_err(
            "GET https://graph.test/a",
            TransportError::Timeout("more of the response body from graph.test".into()),
        );
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        // Timeouts every time: bounded attempts, then a typed http error.
        for _ in 0..3 {
            http.push_err(
                "GET https://graph.test/b",
                TransportError::Timeout("the response from graph.test to begin".into()),
            );
        }
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(c.stats.retries, 1);
        let SyncError::Http(f) = c
            .get("https://graph.test/b?$skiptoken=T", NEED)
            .unwrap_err()
        else {
            panic!()
        };
        assert_eq!(f.url, "https://graph.test/b?$skiptoken=...");
        assert_eq!(f.status, None);
        assert!(
            f.message.starts_with(
                "GET https://graph.test/b?$skiptoken=...: timed out waiting for the response \
                 from graph.test to begin"
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("after 3 attempts"), "{}", f.message);
        assert_eq!(c.stats.retries, 3);
        drop(c);
        http.assert_done();
        assert_eq!(clock.sleeps.len(), 3, "a backoff before each retry");
    }

    #[test]
    fn a_short_read_is_retried_and_a_body_too_large_is_refused_at_once() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_err(
            "GET https://graph.test/a",
            TransportError::ShortRead("12 of the 7000 bytes".into()),
        );
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        http.push_err(
            "GET https://graph.test/big",
            TransportError::TooLarge {
                size: 255_000_000,
                limit: 128 << 20,
                announced: true,
            },
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(c.stats.retries, 1, "a short read is transient");
        let SyncError::BadResponse(f) = c.get("https://graph.test/big", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.url, "https://graph.test/big");
        assert!(
            f.message.contains("GET https://graph.test/big"),
            "{}",
            f.message
        );
        assert!(f.message.contains("255000000 bytes"), "{}", f.message);
        assert!(f.message.contains("announced"), "{}", f.message);
        assert_eq!(c.stats.retries, 1, "too large is not asked again");
        drop(c);
        http.assert_done();
    }

    #[test]
    fn maps_403_authorization_request_denied_to_permission() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok("GET https://graph.test/v1.0/users", json_response(403, r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2024-05-01T00:00:00","request-id":"r"}}}"#));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Permission(p) = c.get("https://graph.test/v1.0/users", NEED).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(p.permission, "User.Read.All");
        assert_eq!(p.feature, "users");
        assert!(
            p.message.contains("Insufficient privileges"),
            "{}",
            p.message
        );
        assert!(p.message.contains("User.Read.All"), "{}", p.message);
    }

    #[test]
    fn other_errors_carry_status_code_and_message() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok("GET https://graph.test/x", json_response(404, r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist."}}"#));
        http.push_ok(
            "GET https://graph.test/y",
            json_response(500, "<html><body>\n Internal \t error</body></html>"),
        );
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.get("https://graph.test/x", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(404));
        assert_eq!(f.graph_code.as_deref(), Some("Request_ResourceNotFound"));
        assert!(
            f.message.contains("Resource 'x' does not exist."),
            "{}",
            f.message
        );
        let SyncError::Http(f) = c.get("https://graph.test/y", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(500));
        assert_eq!(f.graph_code, None);
        assert!(f.message.contains("Internal"), "{}", f.message);
    }

    #[test]
    fn token_endpoint_errors() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", json_response(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Auth(a) = c.get("https://graph.test/x", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(a.failure, AuthFailure::InvalidSecret);
        drop(c);
        http.assert_done();
        // The token request carries the form, and nothing else does.
        assert!(
            String::from_utf8_lossy(http.sent[0].body.as_deref().unwrap())
                .contains("client_secret=the-client-secret")
        );

        let mut http = FakeHttp::new();
        http.push_ok(
            "POST https://login.test/",
            json_response(404, "<html>not here</html>"),
        );
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let SyncError::Http(f) = c.sign_in().unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(404));
        assert_eq!(f.url, "https://login.test/tenant-1/oauth2/v2.0/token");
    }

    fn parse_x(body: &[u8]) -> Result<u32, BodyError> {
        #[derive(Deserialize)]
        struct X {
            x: u32,
        }
        let v: X = serde_json::from_slice(body)?;
        if v.x == 0 {
            return Err(BodyError::Unusable(SyncError::Unsupported("zero".into())));
        }
        Ok(v.x)
    }

    #[test]
    fn a_body_that_is_not_json_or_cut_short_is_read_again() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        http.push_ok(
            "GET https://graph.test/a",
            json_response(200, "<html>proxy error</html>"),
        );
        let mut cut = json_response(200, r#"{"x":"#);
        cut.headers.push(("Content-Length".into(), "7".into()));
        http.push_ok("GET https://graph.test/a", cut);
        let mut whole = json_response(200, r#"{"x":7}"#);
        whole.headers.push(("content-length".into(), "7".into()));
        http.push_ok("GET https://graph.test/a", whole);
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let got = c
            .get_json(
                "https://graph.test/a",
                NEED,
                &[("Prefer", "p=1")],
                "thing",
                parse_x,
            )
            .unwrap();
        assert!(matches!(got, Reply::Ok(7)), "{got:?}");
        assert_eq!(c.stats.requests, 4);
        assert_eq!(c.stats.retries, 2);
        assert!(c.stats.retry_wait_ms > 0);
        drop(c);
        http.assert_done();
        assert_eq!(clock.sleeps.len(), 2);
        assert!(
            http.sent[1..]
                .iter()
                .all(|r| r.headers.iter().any(|(n, v)| n == "Prefer" && v == "p=1"))
        );
    }

    #[test]
    fn a_body_that_stays_bad_is_a_bad_response_and_wrong_shapes_are_not_retried() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        for _ in 0..3 {
            http.push_ok(
                "GET https://graph.test/a?$deltatoken=SECRETDT",
                json_response(200, "{\"x\": 1,"),
            );
        }
        // Valid JSON of the wrong type: read once.
        http.push_ok(
            "GET https://graph.test/b",
            json_response(200, r#"{"x":"one"}"#),
        );
        // Valid JSON the parser refuses: read once, its error as it is.
        http.push_ok("GET https://graph.test/c", json_response(200, r#"{"x":0}"#));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let e = c
            .get_json(
                "https://graph.test/a?$deltatoken=SECRETDT",
                NEED,
                &[],
                "thing",
                parse_x,
            )
            .unwrap_err();
        let SyncError::BadResponse(f) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(f.url, "https://graph.test/a?$deltatoken=...");
        assert!(f.message.contains("not a valid thing"), "{}", f.message);
        assert!(f.message.contains("EOF"), "{}", f.message);
        assert!(f.message.contains("after 3 attempts"), "{}", f.message);
        assert!(!f.message.contains("SECRETDT"), "{}", f.message);
        assert_eq!(c.stats.retries, 2);
        let SyncError::BadResponse(f) = c
            .get_json("https://graph.test/b", NEED, &[], "thing", parse_x)
            .unwrap_err()
        else {
            panic!()
        };
        assert!(f.message.contains("invalid type"), "{}", f.message);
        assert_eq!(
            c.get_json("https://graph.test/c", NEED, &[], "thing", parse_x)
                .unwrap_err(),
            SyncError::Unsupported("zero".into())
        );
        assert_eq!(c.stats.retries, 2);
        drop(c);
        http.assert_done();
    }

    #[test]
    fn resync_answers_are_told_apart_by_status_and_code() {
        // delta-query-overview.md "Synchronization reset": 410 Gone (with a Location).
        assert!(is_resync(410, b""));
        assert!(is_resync(
            410,
            br#"{"error":{"code":"resyncRequired","message":"x"}}"#
        ));
        // "Token duration": a 40X with codes such as syncStateNotFound (errors.md).
        assert!(is_resync(
            400,
            br#"{"error":{"code":"syncStateNotFound","message":"x"}}"#
        ));
        assert!(is_resync(
            404,
            br#"{"error":{"code":"ResyncRequired","message":"x"}}"#
        ));
        // A nested innererror code counts (errors.md: loop over the innererror objects).
        assert!(is_resync(
            400,
            br#"{"error":{"code":"invalidRequest","innerError":{"code":"syncStateNotFound"}}}"#
        ));
        assert!(is_resync(
            400,
            br#"{"error":{"code":"invalidRequest","innererror":{"code":"x","innererror":{"code":"resyncRequired"}}}}"#
        ));
        // Not by message, and not on other statuses.
        assert!(!is_resync(
            400,
            br#"{"error":{"code":"Request_BadRequest","message":"resyncRequired syncStateNotFound"}}"#
        ));
        assert!(!is_resync(
            500,
            br#"{"error":{"code":"syncStateNotFound"}}"#
        ));
        assert!(!is_resync(403, b"<html>"));
        assert!(!is_resync(200, b""));
    }

    #[test]
    fn a_resync_answer_is_a_reply_not_an_error() {
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 3600));
        let mut gone = json_response(
            410,
            r#"{"error":{"code":"resyncRequired","message":"Resync required."}}"#,
        );
        gone.headers.push((
            "Location".into(),
            "https://graph.test/v1.0/users/delta?$deltatoken=".into(),
        ));
        http.push_ok("GET https://graph.test/d", gone.clone());
        http.push_ok("GET https://graph.test/d", gone);
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let Reply::Resync(f) = c
            .get_json(
                "https://graph.test/d?$deltatoken=T",
                NEED,
                &[],
                "thing",
                parse_x,
            )
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(f.status, Some(410));
        assert_eq!(f.graph_code.as_deref(), Some("resyncRequired"));
        assert_eq!(f.url, "https://graph.test/d?$deltatoken=...");
        assert_eq!(c.stats.retries, 0, "a resync answer is not retried");
        // Plain `get` has no use for it: an http error.
        let SyncError::Http(f) = c.get("https://graph.test/d", NEED).unwrap_err() else {
            panic!()
        };
        assert_eq!(f.status, Some(410));
    }

    #[test]
    fn a_short_lived_token_is_renewed_with_a_quarter_of_its_life_left() {
        // 600 s: renewed when less than min(300 s, 150 s) = 150 s is left, i.e. at 450 s.
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok-1", 600));
        for _ in 0..3 {
            http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        }
        http.push_ok("POST https://login.test/", token_response("tok-2", 600));
        http.push_ok("GET https://graph.test/a", json_response(200, "{}"));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(300_000);
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(149_999);
        c.get("https://graph.test/a", NEED).unwrap();
        c.clock.sleep_ms(1);
        c.get("https://graph.test/a", NEED).unwrap();
        assert_eq!(c.stats.requests, 6, "two token requests for four GETs");
        drop(c);
        http.assert_done();
        let bearers: Vec<_> = http
            .sent
            .iter()
            .filter_map(|r| r.headers.iter().find(|(n, _)| n == "Authorization"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            bearers,
            vec![
                "Bearer tok-1",
                "Bearer tok-1",
                "Bearer tok-1",
                "Bearer tok-2"
            ]
        );
    }

    /// The error a run reports: masked by the run's redactor, as `sync` does.
    fn reported(c: &GraphClient<'_>, e: SyncError) -> String {
        format!("{:?}", c.redactor().error(e))
    }

    #[test]
    fn a_secret_echoed_across_the_cut_of_a_sign_in_error_is_masked_whole() {
        let secret = creds().secret;
        // "Sign-in failed ..." quotes at most 400 characters of the description: the
        // secret starts 5 characters before that cut.
        let lead = "AADSTS7000215: Invalid client secret provided. Echo: ";
        let pad = "x".repeat(395 - lead.len());
        let description = format!("{lead}{pad}{secret} tail\r\nTrace ID: t");
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": description,
            "error_codes": [7000215],
        })
        .to_string();
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", json_response(401, &body));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let e = c.sign_in().unwrap_err();
        let shown = reported(&c, e);
        assert!(shown.contains("Invalid client secret"), "{shown}");
        assert!(!shown.contains(&secret[..5]), "{shown}");
    }

    #[test]
    fn a_secret_echoed_across_the_cut_of_a_body_excerpt_is_masked_whole() {
        let secret = creds().secret;
        // A non-Graph error body is quoted up to 200 characters: the secret crosses it.
        let body = format!("<html>{}{secret}</html>", "y".repeat(190));
        let mut http = FakeHttp::new();
        http.push_ok("POST https://login.test/", token_response("tok", 3600));
        http.push_ok("GET https://graph.test/x", json_response(500, &body));
        let mut clock = FakeClock::default();
        let mut c = GraphClient::new(&mut http, &mut clock, creds());
        let e = c.get("https://graph.test/x", NEED).unwrap_err();
        let shown = reported(&c, e);
        assert!(shown.contains("yyyy"), "{shown}");
        assert!(!shown.contains(&secret[..4]), "{shown}");
    }

    #[test]
    fn retry_after_parsing() {
        let mut r = json_response(429, "");
        assert_eq!(retry_after_ms(&r), None);
        r.headers.push(("Retry-After".into(), " 3 ".into()));
        assert_eq!(retry_after_ms(&r), Some(3000));
        r.headers[1].1 = "1.5".into();
        assert_eq!(retry_after_ms(&r), Some(1500));
        r.headers[1].1 = "Wed, 21 Oct 2015 07:28:00 GMT".into();
        assert_eq!(retry_after_ms(&r), None);
        r.headers[1].1 = "-1".into();
        assert_eq!(retry_after_ms(&r), None);
        r.headers[1].1 = "0.0255".into();
        assert_eq!(retry_after_ms(&r), Some(25));
        r.headers[1].1 = "99999999999999999999999".into();
        assert_eq!(retry_after_ms(&r), Some(u64::MAX));
        r.headers[1].1 = "1e3".into();
        assert_eq!(retry_after_ms(&r), None);
    }
}
