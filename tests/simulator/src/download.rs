//! The download host: where report functions redirect to. It serves the CSV
//! behind a pre-authenticated URL ("If successful, this method returns a
//! `302 Found` response that redirects to a preauthenticated download URL for
//! the report … Preauthenticated download URLs are only valid for a short
//! period of time (a few minutes) and do not require an `Authorization`
//! header", every reportroot-get*.md page). Microsoft's examples redirect to
//! another host, `https://reports.office.com/data/download/JDFKdf2_eJXKS034dbc7e0t__XDe`;
//! the simulator's download host listens on another loopback address
//! (127.0.0.2) and serves `/data/download/{token}`.
//!
//! The token carries the report, the period and when it was issued, signed
//! with a key of this run: a tampered or unknown token is 404, one older than
//! [`LIFETIME_SECS`] is 403. The file is rendered when downloaded.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::reports::{self, ReportKind};
use crate::server::Shared;
use crate::util::{b64url_decode, b64url_encode, keyed_hash};

/// How long a download URL stays valid ("a few minutes").
pub const LIFETIME_SECS: u64 = 300;

const MAGIC: &[u8; 4] = b"RPdl";
const FORMAT: u8 = 1;

/// A fresh download URL for a report.
pub fn issue_url(shared: &Shared, kind: ReportKind, period: u16) -> String {
    let mut b = Vec::with_capacity(40);
    b.extend_from_slice(MAGIC);
    b.push(FORMAT);
    b.push(kind as u8);
    b.extend_from_slice(&period.to_be_bytes());
    b.extend_from_slice(&shared.now().to_be_bytes());
    b.extend_from_slice(&keyed_hash(shared.run_id, shared.next_guid().as_bytes()).to_be_bytes());
    let tag = keyed_hash(shared.download_key, &b);
    b.extend_from_slice(&tag.to_be_bytes());
    format!(
        "{}/data/download/{}",
        shared.download_url,
        b64url_encode(&b)
    )
}

/// (report, period, issued at) of a token this run signed.
fn decode(shared: &Shared, token: &str) -> Option<(ReportKind, u16, u64)> {
    let b = b64url_decode(token)?;
    if b64url_encode(&b) != token || b.len() != 4 + 1 + 1 + 2 + 8 + 8 + 8 {
        return None;
    }
    let (body, tag) = b.split_at(b.len() - 8);
    if &body[..4] != MAGIC || body[4] != FORMAT {
        return None;
    }
    if keyed_hash(shared.download_key, body) != u64::from_be_bytes(tag.try_into().ok()?) {
        return None;
    }
    let kind = ReportKind::from_code(body[5])?;
    let period = u16::from_be_bytes(body[6..8].try_into().ok()?);
    let issued = u64::from_be_bytes(body[8..16].try_into().ok()?);
    Some((kind, period, issued))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    // A bearer token sent here is a leak: the URL is pre-authenticated and
    // "do[es] not require an `Authorization` header", so a client that
    // forwards its Graph token to the redirect target hands it to a host that
    // is not Graph. The simulator refuses such requests with 400 (a malformed
    // request, not an authentication failure: a 401 would invite the client
    // to retry with a fresh token, which is the wrong fix), the way object
    // stores answer a pre-signed URL that also carries an Authorization
    // header. This is a test aid, not documented service behaviour.
    if let Some(v) = req.headers().get(AUTHORIZATION) {
        let bearer = v
            .to_str()
            .map(|v| v.len() >= 7 && v[..7].eq_ignore_ascii_case("bearer "))
            .unwrap_or(false);
        if bearer {
            return text(
                StatusCode::BAD_REQUEST,
                "This URL is pre-authenticated: send it without an Authorization header (the Graph access token must not leave Graph).",
            );
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let Some(token) = path.strip_prefix("/data/download/") else {
        return text(StatusCode::NOT_FOUND, "Not found.");
    };
    let Some((kind, period, issued)) = decode(shared, token) else {
        return text(StatusCode::NOT_FOUND, "The download link is not valid.");
    };
    let now = shared.now();
    if now.saturating_sub(issued) > LIFETIME_SECS || issued > now + 60 {
        return text(
            StatusCode::FORBIDDEN,
            "The download link has expired; request the report again.",
        );
    }
    let refresh = reports::refresh_day(now, shared.config.tenant.seed);
    let mut body = Vec::new();
    {
        let dir = shared.dir();
        reports::render_csv(
            &shared.tenant,
            dir.live_users(),
            kind,
            period,
            refresh,
            shared.config.concealed_reports,
            &mut body,
        );
    }
    let len = body.len();
    let head = req.method() == Method::HEAD;
    let mut r = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}{}.csv\"",
        kind.file_stem(),
        crate::util::civil_date(refresh)
    )) {
        h.insert("content-disposition", v);
    }
    if head {
        h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}
