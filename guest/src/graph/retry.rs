//! The retry policy of every request the client sends, Graph's, the token endpoint's, a
//! `$batch` and a report download alike: throttled answers (429/503/504) are sent again
//! after their `Retry-After`, else after an exponential backoff with jitter; transport
//! failures (connect, timeout, reset) and bodies that arrived cut short or are not JSON
//! are tried again after a backoff; and all the waiting for one request stays within a
//! budget. Each retry and its wait are counted in the run's stats.

use super::client::GraphClient;
use super::errors;
use crate::platform::{HttpRequest, HttpResponse, TransportError};
use crate::types::SyncError;
use crate::url::display_url;

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

/// Is this a throttling answer, sent again after its `Retry-After`?
pub(super) fn is_throttled(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

/// The attempts made at one request and the time waited for it so far.
#[derive(Default)]
pub(super) struct Tries {
    attempts: u32,
    waited_ms: u64,
}

impl Tries {
    /// Counts one more attempt and returns how many there have been.
    pub(super) fn start(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }
}

/// The policy of a run and the source of its jitter.
pub(super) struct Retry {
    policy: RetryPolicy,
    rng: u64,
}

impl Retry {
    pub(super) fn new(policy: RetryPolicy, seed: u64) -> Self {
        Retry { policy, rng: seed }
    }

    pub(super) fn set_policy(&mut self, policy: RetryPolicy) {
        self.policy = policy;
    }

    pub(super) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Exponential backoff with "equal jitter": half the step, plus up to the other half.
    fn backoff(&mut self, attempt: u32) -> u64 {
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

    /// The wait before sending a throttled request again (`retry_after_ms`, the largest
    /// `Retry-After` given, else a backoff), or `None` when its attempts are used up.
    pub(super) fn after_throttling(
        &mut self,
        tries: &Tries,
        retry_after_ms: Option<u64>,
    ) -> Option<u64> {
        if tries.attempts >= self.policy.max_attempts {
            return None;
        }
        Some(match retry_after_ms {
            Some(ms) => ms,
            None => self.backoff(tries.attempts),
        })
    }

    /// The wait before sending again after a transport failure, or `None` when the
    /// attempts are used up.
    pub(super) fn after_transport_failure(&mut self, tries: &Tries) -> Option<u64> {
        if tries.attempts >= self.policy.max_transport_attempts {
            return None;
        }
        Some(self.backoff(tries.attempts))
    }

    /// The wait before reading again a body that was cut short or is not JSON (as many
    /// attempts as after a transport failure), or `None` when the attempts or the wait
    /// budget are used up.
    pub(super) fn before_reading_again(&mut self, tries: &Tries) -> Option<u64> {
        let delay = self.backoff(tries.attempts);
        (tries.attempts < self.policy.max_transport_attempts && self.within_budget(tries, delay))
            .then_some(delay)
    }

    /// Would waiting `delay_ms` more keep the request within the wait budget?
    pub(super) fn within_budget(&self, tries: &Tries, delay_ms: u64) -> bool {
        tries.waited_ms.saturating_add(delay_ms) <= self.policy.total_wait_cap_ms
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

/// A response and how many attempts it took.
pub(super) struct Sent {
    pub(super) response: HttpResponse,
    pub(super) attempts: u32,
}

impl GraphClient<'_> {
    /// Sends one request, retrying throttling (429/503/504) and transport failures. A
    /// request still throttled after its attempts comes back as the answer it got.
    pub(super) fn send_with_retry(&mut self, req: &HttpRequest) -> Result<Sent, SyncError> {
        let mut tries = Tries::default();
        loop {
            let attempts = tries.start();
            self.stats.requests = self.stats.requests.saturating_add(1);
            let delay = match self.http.send(req) {
                Err(TransportError::Denied { authority }) => {
                    return Err(SyncError::HostDenied(authority));
                }
                // Asking again would get the same body: refused at once.
                Err(e @ TransportError::TooLarge { .. }) => {
                    return Err(errors::too_large(req.method, &req.url, &e));
                }
                Err(e) => match self.retry.after_transport_failure(&tries) {
                    Some(delay) => delay,
                    None => return Err(errors::transport(req.method, &req.url, &e, attempts)),
                },
                Ok(response) if is_throttled(response.status) => {
                    match self
                        .retry
                        .after_throttling(&tries, retry_after_ms(&response))
                    {
                        Some(delay) => delay,
                        None => return Ok(Sent { response, attempts }),
                    }
                }
                Ok(response) => return Ok(Sent { response, attempts }),
            };
            if !self.retry.within_budget(&tries, delay) {
                // Waiting longer would exceed the budget: fail now with what we have.
                let doing = format!(
                    "{} {} kept failing or being throttled",
                    req.method.as_str(),
                    display_url(&req.url)
                );
                return Err(errors::over_retry_budget(
                    &req.url,
                    &doing,
                    attempts,
                    delay,
                    self.retry.policy(),
                ));
            }
            self.wait_to_retry(&mut tries, delay, 1);
        }
    }

    /// Waits `delay_ms` before trying again, counting `retries` retries (the requests sent
    /// again) and the wait in the run's stats, and the wait in `tries`.
    pub(super) fn wait_to_retry(&mut self, tries: &mut Tries, delay_ms: u64, retries: u32) {
        self.clock.sleep_ms(delay_ms);
        tries.waited_ms += delay_ms;
        self.stats.retries = self.stats.retries.saturating_add(retries);
        self.stats.retry_wait_ms = self.stats.retry_wait_ms.saturating_add(delay_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeClock, FakeHttp, json_response, token_response};
    use crate::graph::client::Stats;
    use crate::graph::client::tests::{NEED, creds};

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
