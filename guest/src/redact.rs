//! The last line of defence for "secrets appear in no log, report or error": every error
//! and log line leaving a run passes through a [`Redactor`] that knows the run's client
//! secret and access tokens and blanks them out wherever they turn up (an identity
//! platform or proxy could echo them back in a body we quote).

use crate::types::{HttpFailure, SyncError};

const MASK: &str = "[redacted]";
/// Values shorter than this are not treated as secrets (masking "a" everywhere would make
/// every message unreadable, and such a value is no secret anyway).
const MIN_LEN: usize = 6;

/// The values to hide in this run.
#[derive(Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    pub fn add(&mut self, value: &str) {
        if value.len() >= MIN_LEN && !self.values.iter().any(|v| v == value) {
            self.values.push(value.to_owned());
            // Longest first, so a secret containing another is masked whole.
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// The text with every known value (and its form-urlencoded spelling) masked.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        self.clean(&mut out);
        out
    }

    pub fn clean(&self, text: &mut String) {
        for v in &self.values {
            if text.contains(v.as_str()) {
                *text = text.replace(v.as_str(), MASK);
            }
            let mut encoded = String::new();
            crate::url::form_encode(&mut encoded, v);
            if encoded != *v && text.contains(encoded.as_str()) {
                *text = text.replace(encoded.as_str(), MASK);
            }
        }
    }

    pub fn error(&self, mut e: SyncError) -> SyncError {
        if self.values.is_empty() {
            return e;
        }
        let clean_failure = |f: &mut HttpFailure| {
            self.clean(&mut f.url);
            self.clean(&mut f.message);
            if let Some(c) = f.graph_code.as_mut() {
                self.clean(c);
            }
        };
        match &mut e {
            SyncError::Auth(a) => self.clean(&mut a.message),
            SyncError::Permission(p) => self.clean(&mut p.message),
            SyncError::Http(f) | SyncError::BadResponse(f) => clean_failure(f),
            SyncError::HostDenied(s)
            | SyncError::Secret(s)
            | SyncError::Storage(s)
            | SyncError::InvalidRequest(s)
            | SyncError::Unsupported(s) => self.clean(s),
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_and_their_encodings() {
        let mut r = Redactor::default();
        r.add("s3cr3t value+/=");
        r.add("abc"); // too short to be treated as a secret
        assert_eq!(
            r.text("got s3cr3t value+/= and s3cr3t+value%2B%2F%3D, abc"),
            "got [redacted] and [redacted], abc"
        );
        let e = r.error(SyncError::Http(HttpFailure {
            url: "https://x/?k=s3cr3t value+/=".into(),
            status: Some(500),
            graph_code: None,
            message: "echo s3cr3t value+/=".into(),
        }));
        let SyncError::Http(f) = e else { panic!() };
        assert_eq!(f.url, "https://x/?k=[redacted]");
        assert_eq!(f.message, "echo [redacted]");
    }
}
