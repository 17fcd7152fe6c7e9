//! Timestamps as the store writes them: RFC 3339 in UTC to the millisecond (jiff formats
//! them), and Unix seconds for heartbeats.

/// Now, RFC 3339 UTC (e.g. `2026-12-04T21:12:09.345Z`).
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// `at`, RFC 3339 UTC to the millisecond.
pub fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Now, Unix milliseconds (the host's clock: for what is shown, never for the queue's
/// rules, whose callers give the time).
pub fn unix_now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Now, Unix seconds.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc_to_the_millisecond() {
        let at: jiff::Timestamp = "2026-12-04T21:12:09.3456Z".parse().unwrap();
        assert_eq!(super::rfc3339(at), "2026-12-04T21:12:09.345Z");
        let epoch = jiff::Timestamp::UNIX_EPOCH;
        assert_eq!(super::rfc3339(epoch), "1970-01-01T00:00:00.000Z");
        let now = super::now_rfc3339();
        assert!(now.parse::<jiff::Timestamp>().is_ok(), "{now}");
    }
}
