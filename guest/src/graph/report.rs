//! Usage reports: Graph's `302` to a pre-authenticated download URL is returned, not
//! followed ([`GraphClient::get_report`]); the download ([`GraphClient::download`]) goes
//! to whatever host it names WITHOUT the bearer token, and its URL (a capability) is
//! masked everywhere: errors show its origin only, and the redactor knows it.

use super::client::{GraphClient, Need, Reply};
use super::errors;
use super::retry;
use crate::platform::{HttpRequest, Method};
use crate::types::SyncError;
use crate::url::{AbsoluteUrl, Scheme};

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

/// Is this a redirect status (one that a `Location` goes with)?
pub(super) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
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

impl GraphClient<'_> {
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
            _ => Err(errors::no_report_location(url, response.status)),
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
                return Err(errors::unusable_download_url(&shown, what));
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
                if let Some(why) = retry::cut_short(r) {
                    return Err(errors::download_cut_short(&shown, r.status, what, &why));
                }
                return Ok(sent.response.body);
            }
            let location = r.header("location").map(str::trim).unwrap_or("");
            if is_redirect(r.status) && !location.is_empty() {
                redirects += 1;
                if redirects > MAX_DOWNLOAD_REDIRECTS {
                    return Err(errors::too_many_redirects(
                        &shown,
                        r.status,
                        what,
                        MAX_DOWNLOAD_REDIRECTS,
                    ));
                }
                current = resolve(&current, location);
                self.hide_capability(&current);
                continue;
            }
            return Err(errors::download_status(&shown, what, r, &self.redactor));
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
}
