//! Small self-contained helpers: base64url and base64, PEM, percent-decoding
//! and form encoding, HTML escaping, UTC date formatting and a keyed 64-bit
//! hash used to sign tokens and skip tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::rng::mix64;

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5), as used by JWTs.
pub fn b64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            2 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8,
            _ => (chunk[0] as u32) << 16,
        };
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3F;
            out.push(B64URL[idx as usize] as char);
        }
    }
    out
}

/// Standard base64 with `=` padding (RFC 4648 §4), as Graph renders `Edm.Binary`
/// values of credentials ("The certificate's raw data in byte array converted
/// to Base64 string", resources/keycredential.md).
pub fn b64_encode(data: &[u8]) -> String {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(STD[((n >> (18 - 6 * i)) & 0x3F) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The DER bytes of the first PEM block labelled `label` (RFC 7468), e.g.
/// "CERTIFICATE" or "PRIVATE KEY"; `None` if there is none or it is not base64.
pub fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = b64url_decode(&body)?;
    (!der.is_empty()).then_some(der)
}

/// Upper-case hexadecimal, as the identity platform prints thumbprints.
pub fn hex_upper(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' | b'+' => 62,
        b'_' | b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64url (also accepts the standard alphabet and `=` padding).
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= b64_value(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// Percent-decodes one query-string component; `+` means a space, as in
/// `application/x-www-form-urlencoded` and in Graph's own examples
/// (microsoftgraph/microsoft-graph-docs-contrib: concepts/query-parameters.md, "Encoding query parameters").
/// Returns `None` on a malformed escape or invalid UTF-8.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = (*b.get(i + 1)? as char).to_digit(16)?;
                let lo = (*b.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a raw query string into raw (still encoded) `(name, value)` pairs.
pub fn split_query(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Decoded `(name, value)` pairs of an `application/x-www-form-urlencoded` body
/// or query string; `None` if any component is malformed.
pub fn parse_form(raw: &str) -> Option<Vec<(String, String)>> {
    split_query(raw)
        .map(|(k, v)| Some((percent_decode(k, true)?, percent_decode(v, true)?)))
        .collect()
}

/// `application/x-www-form-urlencoded` encoding of one component (the WHATWG
/// URL standard's form serializer: space becomes `+`, `*-._` and
/// alphanumerics stay, everything else is percent-encoded), as the identity
/// platform encodes redirect parameters (v2-admin-consent.md, "Error
/// response": `error_description=AADSTS65004%3a+The+resource+owner…`).
pub fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encodes a URL query component: RFC 3986 unreserved characters
/// stay, everything else (space included, as `%20`) is escaped.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parts(unix: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, (secs / 60) % 60, secs % 60)
}

/// `2021-03-04`: the date of a day number (days since 1970-01-01), as usage
/// reports write dates.
pub fn civil_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Writes [`civil_date`] into `out` without allocating.
pub fn push_civil_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (d / 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
}

/// Day number of a `YYYY-MM-DD` date; `None` if malformed.
pub fn parse_civil_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// `2021-03-04T10:11:12Z`: Graph's DateTimeOffset rendering for createdDateTime.
pub fn iso8601(unix: u64) -> String {
    let (y, m, d, h, mi, s) = parts(unix);
    let mut out = String::with_capacity(20);
    let mut digits = |v: u64, width: usize, sep: char| {
        let mut buf = [b'0'; 4];
        let mut v = v;
        for i in (0..width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        for &b in &buf[..width] {
            out.push(b as char);
        }
        out.push(sep);
    };
    digits(y.clamp(0, 9999) as u64, 4, '-');
    digits(m as u64, 2, '-');
    digits(d as u64, 2, 'T');
    digits(h, 2, ':');
    digits(mi, 2, ':');
    digits(s, 2, 'Z');
    out
}

/// `2021-03-04T10:11:12`: the `date` inside a Graph error's innerError
/// (microsoftgraph/microsoft-graph-docs-contrib: concepts/errors.md).
pub fn graph_error_date(unix: u64) -> String {
    let (y, m, d, h, mi, s) = parts(unix);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// `2016-01-09 02:02:12Z`: the identity platform's error `timestamp`
/// (MicrosoftDocs/entra-docs: docs/identity-platform/reference-error-codes.md).
pub fn sts_timestamp(unix: u64) -> String {
    let (y, m, d, h, mi, s) = parts(unix);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

/// `2023-12-11T23:52:19.0000000Z`: how AADSTS700024 prints times ("Current
/// time: 2023-12-11T23:52:19.6223401Z, assertion valid from …", the response
/// captured in AzureAD/microsoft-authentication-library-for-dotnet:
/// tests/Microsoft.Identity.Test.Common/Core/Mocks/MockHelpers.cs).
pub fn sts_time_7(unix: u64) -> String {
    let (y, m, d, h, mi, s) = parts(unix);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.0000000Z")
}

/// `01/22/2018 09:13:33`: how AADSTS700027 prints a registered key's validity
/// ("Found key 'Start=01/22/2018 09:13:33, End=01/23/2021 09:13:33'").
pub fn us_date_time(unix: u64) -> String {
    let (y, m, d, h, mi, s) = parts(unix);
    format!("{m:02}/{d:02}/{y:04} {h:02}:{mi:02}:{s:02}")
}

/// A keyed 64-bit hash of `data` (not cryptographic: it only has to make
/// accidental or casual tampering of tokens detectable in tests).
pub fn keyed_hash(key: u64, data: &[u8]) -> u64 {
    let mut h = mix64(key ^ 0x005E_ED0F_5151_u64 ^ data.len() as u64);
    for chunk in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix64(h ^ u64::from_le_bytes(w)).rotate_left(23) ^ key;
    }
    mix64(h ^ key.rotate_left(17))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = b64url_encode(&data);
            assert!(!enc.contains('='));
            assert_eq!(b64url_decode(&enc).as_deref(), Some(&data[..]));
        }
        assert_eq!(b64url_encode(b"hello"), "aGVsbG8");
        assert!(b64url_decode("a").is_none());
        assert!(b64url_decode("ab*d").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_614_852_672), "2021-03-04T10:11:12Z");
        assert_eq!(sts_timestamp(1_452_304_932), "2016-01-09 02:02:12Z");
        assert_eq!(days_from_civil(2021, 3, 4) * 86_400 + 36_672, 1_614_852_672);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        let d = days_from_civil(2024, 2, 29);
        assert_eq!(civil_date(d), "2024-02-29");
        assert_eq!(parse_civil_date("2024-02-29"), Some(d));
        assert_eq!(parse_civil_date("2023-02-29"), None);
        assert_eq!(parse_civil_date("2024-2-29"), None);
        let mut out = Vec::new();
        push_civil_date(&mut out, d);
        assert_eq!(out, b"2024-02-29");
    }

    #[test]
    fn percent() {
        assert_eq!(
            percent_decode("%24select", true).as_deref(),
            Some("$select")
        );
        assert_eq!(percent_decode("a%2Cb+c", true).as_deref(), Some("a,b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("Z%C3%B6e", true).as_deref(), Some("Zöe"));
        assert!(percent_decode("%2", true).is_none());
        assert!(percent_decode("%zz", true).is_none());
        assert!(percent_decode("%FF", true).is_none());
    }

    #[test]
    fn standard_base64_pem_and_encodings() {
        assert_eq!(b64_encode(b""), "");
        assert_eq!(b64_encode(b"f"), "Zg==");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_encode(b"foo"), "Zm9v");
        assert_eq!(b64_encode(&[0xfb, 0xff]), "+/8=");
        let pem = "junk\n-----BEGIN THING-----\nZm9v\nYmFy\n-----END THING-----\n";
        assert_eq!(pem_decode(pem, "THING").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(pem_decode(pem, "OTHER"), None);
        assert_eq!(
            pem_decode("-----BEGIN X-----\n*\n-----END X-----", "X"),
            None
        );
        assert_eq!(hex_upper(&[0x0a, 0xff]), "0AFF");
        assert_eq!(percent_encode("status eq 'a~b'"), "status%20eq%20%27a~b%27");
        assert_eq!(
            form_urlencode("AADSTS65004: a b\r\n&x=é"),
            "AADSTS65004%3A+a+b%0D%0A%26x%3D%C3%A9"
        );
        assert_eq!(
            html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(sts_time_7(1_614_852_672), "2021-03-04T10:11:12.0000000Z");
        assert_eq!(us_date_time(1_614_852_672), "03/04/2021 10:11:12");
    }

    #[test]
    fn keyed_hash_depends_on_key_and_data() {
        assert_ne!(keyed_hash(1, b"abc"), keyed_hash(2, b"abc"));
        assert_ne!(keyed_hash(1, b"abc"), keyed_hash(1, b"abd"));
        assert_eq!(keyed_hash(9, b"abc"), keyed_hash(9, b"abc"));
    }
}
