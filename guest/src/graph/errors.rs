//! The client's failures as typed `sync-error`s, each shape built here once: Graph's
//! error answers (`{"error": {"code", "message"}}`, a 403 `Authorization_RequestDenied`
//! naming the permission, and the "resync" answers to a delta query told apart), transport
//! failures, an exhausted retry budget, answers that are not the JSON expected, and the
//! failures of a report download. URLs are shown through `display_url` (paging and delta
//! tokens hidden); a body that is not a Graph error is quoted masked by the run's
//! redactor.

use serde::Deserialize;

use super::client::Need;
use super::retry::RetryPolicy;
use crate::platform::{HttpResponse, Method, TransportError};
use crate::redact::Redactor;
use crate::types::{HttpFailure, PermissionDenied, SyncError};
use crate::url::display_url;

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

/// Graph's message in `body`, else an excerpt of the body, masked.
fn detail(message: Option<String>, body: &[u8], redactor: &Redactor) -> String {
    message.unwrap_or_else(|| redactor.excerpt(body, EXCERPT_CHARS))
}

/// `message`, then `(after N attempts)` when it took more than one.
fn with_attempts(mut message: String, attempts: u32) -> String {
    if attempts > 1 {
        message.push_str(&format!(" (after {attempts} attempts)"));
    }
    message
}

fn failure(
    url: String,
    status: Option<u16>,
    graph_code: Option<String>,
    message: String,
) -> HttpFailure {
    HttpFailure {
        url,
        status,
        graph_code,
        message,
    }
}

/// Graph's non-2xx answer `response` to `method url` after `attempts` attempts as a typed
/// error: a 403 `Authorization_RequestDenied` is the permission `need` names missing, any
/// other answer an HTTP error ([`status_failure`]).
pub(crate) fn answer(
    method: Method,
    url: &str,
    response: &HttpResponse,
    attempts: u32,
    need: Need,
    redactor: &Redactor,
) -> SyncError {
    let (code, message) = parse_graph_error(&response.body);
    if response.status == 403 && code.as_deref() == Some("Authorization_RequestDenied") {
        let detail = message.as_deref().unwrap_or("Insufficient privileges");
        return SyncError::Permission(PermissionDenied {
            permission: need.permission.into(),
            feature: need.feature.into(),
            message: format!(
                "Graph refused {} {} ({detail}). Feature {} needs the Microsoft Graph \
                 application permission {}: add it to the app registration (API permissions) \
                 and grant admin consent.",
                method.as_str(),
                display_url(url),
                need.feature,
                need.permission
            ),
        });
    }
    SyncError::Http(status_failure_of(
        method, url, response, attempts, code, message, redactor,
    ))
}

/// An HTTP status answer as a failure, with Graph's error code and message when the body
/// had them (a resync answer, a token endpoint's answer that is no sign-in error).
pub(super) fn status_failure(
    method: Method,
    url: &str,
    response: &HttpResponse,
    attempts: u32,
    redactor: &Redactor,
) -> HttpFailure {
    let (code, message) = parse_graph_error(&response.body);
    status_failure_of(method, url, response, attempts, code, message, redactor)
}

fn status_failure_of(
    method: Method,
    url: &str,
    response: &HttpResponse,
    attempts: u32,
    graph_code: Option<String>,
    graph_message: Option<String>,
    redactor: &Redactor,
) -> HttpFailure {
    let status = response.status;
    let detail = detail(graph_message, &response.body, redactor);
    let url = display_url(url);
    let mut message = format!("{} {url} answered HTTP {status}", method.as_str());
    if let Some(c) = &graph_code {
        message.push_str(&format!(" {c}"));
    }
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    failure(
        url,
        Some(status),
        graph_code,
        with_attempts(message, attempts),
    )
}

/// A transport failure (connect, timeout, reset) that outlasted its attempts.
pub(super) fn transport(method: Method, url: &str, e: &TransportError, attempts: u32) -> SyncError {
    let url = display_url(url);
    let message = with_attempts(format!("{} {url}: {e}", method.as_str()), attempts);
    SyncError::Http(failure(url, None, None, message))
}

/// A body too large to read, as the bad response it is, naming the URL and the size.
pub(super) fn too_large(method: Method, url: &str, e: &TransportError) -> SyncError {
    let url = display_url(url);
    let message = format!("{} {url}: {e}", method.as_str());
    SyncError::BadResponse(failure(url, None, None, message))
}

/// A request (`doing` says which, and what kept happening) given up after `attempts`, as
/// waiting another `delay_ms` would exceed the policy's wait budget.
pub(super) fn over_retry_budget(
    url: &str,
    doing: &str,
    attempts: u32,
    delay_ms: u64,
    policy: &RetryPolicy,
) -> SyncError {
    SyncError::Http(failure(
        display_url(url),
        None,
        None,
        format!(
            "{doing}: gave up after {attempts} attempts, as waiting another {} s would \
             exceed the {} s retry budget",
            delay_ms.div_ceil(1000),
            policy.total_wait_cap_ms / 1000
        ),
    ))
}

/// The 2xx answer to `method url` is not a valid `what` (`problem` says why) after
/// `attempts` reads.
pub(super) fn invalid_answer(
    method: Method,
    url: &str,
    what: &str,
    problem: &str,
    attempts: u32,
) -> SyncError {
    let url = display_url(url);
    let message = format!(
        "the answer to {} {url} is not a valid {what}: {problem}",
        method.as_str()
    );
    SyncError::BadResponse(failure(
        url,
        Some(200),
        None,
        with_attempts(message, attempts),
    ))
}

/// The answer at `url` was not the JSON expected: names the URL and where it went wrong.
pub fn bad_json(url: &str, what: &str, e: &serde_json::Error) -> SyncError {
    invalid_answer(Method::Get, url, what, &e.to_string(), 1)
}

/// Graph answered a report request with a redirect that names no download URL.
pub(super) fn no_report_location(url: &str, status: u16) -> SyncError {
    let url = display_url(url);
    let message =
        format!("GET {url} answered HTTP {status} without a Location to download the report from");
    SyncError::BadResponse(failure(url, Some(status), None, message))
}

/// The download URL of the `what` report (`shown` masked) is not usable.
pub(super) fn unusable_download_url(shown: &str, what: &str) -> SyncError {
    SyncError::BadResponse(failure(
        shown.to_owned(),
        None,
        None,
        format!("the download URL of the {what} report is not an absolute http(s) URL"),
    ))
}

/// The download of the `what` report from `shown` arrived unusable (`why`).
pub(super) fn download_cut_short(shown: &str, status: u16, what: &str, why: &str) -> SyncError {
    SyncError::BadResponse(failure(
        shown.to_owned(),
        Some(status),
        None,
        format!("the download of the {what} report from {shown} failed: {why}"),
    ))
}

/// The download of the `what` report was redirected more than `max` times.
pub(super) fn too_many_redirects(shown: &str, status: u16, what: &str, max: u32) -> SyncError {
    SyncError::BadResponse(failure(
        shown.to_owned(),
        Some(status),
        None,
        format!("the download of the {what} report was redirected more than {max} times"),
    ))
}

/// The download of the `what` report from `shown` answered `response`, not a 2xx.
pub(super) fn download_status(
    shown: &str,
    what: &str,
    response: &HttpResponse,
    redactor: &Redactor,
) -> SyncError {
    let (code, message) = parse_graph_error(&response.body);
    let detail = detail(message, &response.body, redactor);
    let mut text = format!(
        "the download of the {what} report from {shown} answered HTTP {}",
        response.status
    );
    if !detail.is_empty() {
        text.push_str(": ");
        text.push_str(&detail);
    }
    SyncError::Http(failure(shown.to_owned(), Some(response.status), code, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeClock, FakeHttp, json_response, token_response};
    use crate::graph::client::GraphClient;
    use crate::graph::client::tests::{NEED, creds};

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

    /// The error a run reports: masked by the run's redactor, as `sync` does.
    fn reported(c: &GraphClient<'_>, e: SyncError) -> String {
        format!("{:?}", c.redactor().error(e))
    }

    #[test]
    fn a_secret_echoed_across_the_cut_of_a_sign_in_error_is_masked_whole() {
        let crate::graph::token::Proof::Secret(secret) = creds().proof else {
            panic!()
        };
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
        let crate::graph::token::Proof::Secret(secret) = creds().proof else {
            panic!()
        };
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
}
