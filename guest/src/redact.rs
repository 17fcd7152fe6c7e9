//! The last line of defence for "secrets appear in no log, report or error": every error
//! and log line leaving a run passes through a [`Redactor`] that knows the run's client
//! secret, the client assertions the host made for it, and its access tokens, and blanks
//! them out wherever they turn up (an identity platform or proxy could echo them back in a
//! body we quote).

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

    /// At most `max_chars` characters of `text`, masked BEFORE it is cut: cutting first
    /// could split a secret at the cut and leave its first characters unmasked.
    pub fn truncated(&self, text: &str, max_chars: usize) -> String {
        first_chars(self.text(text), max_chars)
    }

    /// The beginning of a body that is not a Graph error (an HTML error page, a proxy's
    /// text) on one line: at most `max_chars` characters, masked before they are cut.
    /// Only the first bytes are read; a value the end of those bytes cuts in two is not
    /// recognised, so of a body read in part only what comes before its last
    /// [`Self::unsafe_tail`] characters is quoted.
    pub fn excerpt(&self, body: &[u8], max_chars: usize) -> String {
        let tail = self.unsafe_tail();
        // UTF-8 takes up to 4 bytes a character; room for the tail, and for as much again
        // that masked copies of a value may have taken out of the text.
        let window = max_chars
            .saturating_mul(4)
            .saturating_add(tail.saturating_mul(3));
        let read = &body[..body.len().min(window)];
        let one_line: String = String::from_utf8_lossy(read)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let masked = self.text(&one_line);
        let quotable = if read.len() == body.len() {
            max_chars
        } else {
            max_chars.min(masked.chars().count().saturating_sub(2 * tail))
        };
        first_chars(masked, quotable).trim().to_owned()
    }

    /// Bytes at the end of a cut text that may hold the beginning of a value, in its
    /// form-encoded spelling (up to 3 bytes a byte). Masking can make them longer (a
    /// value of [`MIN_LEN`] bytes becomes the 10 of [`MASK`]): twice this many
    /// characters cover them.
    fn unsafe_tail(&self) -> usize {
        self.values.first().map_or(0, |v| v.len().saturating_mul(3))
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
            SyncError::MassRemoval(m) => self.clean(&mut m.message),
            SyncError::Http(f) | SyncError::BadResponse(f) => clean_failure(f),
            SyncError::HostDenied(s)
            | SyncError::Secret(s)
            | SyncError::Storage(s)
            | SyncError::InvalidRequest(s)
            | SyncError::Unsupported(s)
            | SyncError::TenantMismatch(s)
            | SyncError::Cancelled(s) => self.clean(s),
        }
        e
    }
}

/// The first `max_chars` characters of `text`.
fn first_chars(mut text: String, max_chars: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max_chars) {
        text.truncate(at);
    }
    text
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

    #[test]
    fn masks_before_cutting_a_value_that_straddles_the_cut() {
        let secret = "0123456789secret-value";
        let mut r = Redactor::default();
        r.add(secret);
        // The secret starts 5 characters before the cut at 20.
        let text = format!("{}{secret} and more", "x".repeat(15));
        let cut = r.truncated(&text, 20);
        assert!(!cut.contains("01234"), "{cut}");
        assert_eq!(cut, format!("{}[reda", "x".repeat(15)));
        assert_eq!(r.truncated("short", 20), "short");

        // The same across an excerpt's byte window, in the form-encoded spelling too.
        let mut r = Redactor::default();
        r.add("a secret+value/with=odd");
        let body = format!("{}a+secret%2Bvalue%2Fwith%3Dodd\n tail", "y".repeat(195));
        let shown = r.excerpt(body.as_bytes(), 200);
        assert!(!shown.contains("a+sec"), "{shown}");
        assert!(shown.starts_with(&"y".repeat(195)), "{shown}");
        assert!(!r.excerpt(b"line one\nline two", 200).contains('\n'));
    }

    #[test]
    fn an_excerpt_never_ends_in_a_value_cut_by_its_byte_window() {
        // A body echoing the value again and again: each copy masked shrinks the text, so
        // the excerpt's characters come from further into the body, up to where the bytes
        // read stop, in the middle of a copy that is then no longer recognised.
        let secret = "S".repeat(50) + &"t".repeat(50);
        let mut r = Redactor::default();
        r.add(&secret);
        let body = format!("ab{}", secret.repeat(40));
        let shown = r.excerpt(body.as_bytes(), 200);
        assert!(!shown.contains("SSSSSS"), "{shown}");
        // An ordinary long page still gives its full excerpt.
        let page = format!("<html>{}</html>", "z".repeat(20_000));
        assert_eq!(r.excerpt(page.as_bytes(), 200).chars().count(), 200);
    }
}
