//! Opaque `$skiptoken` values for server-side paging.
//!
//! Graph's directory skip tokens look like `X'4453707402…'` (hex in an OData
//! binary literal; concepts/query-parameters.md shows
//! `$skiptoken=X%274453707402000100000017...`), and clients must treat them as
//! opaque and follow `@odata.nextLink` verbatim (concepts/paging.md). The
//! simulator's tokens have the same outer shape; inside is a magic ("DSpt"), a
//! version byte, the offset of the next page and a keyed checksum, so a
//! tampered or made-up token is rejected instead of silently paging from
//! somewhere else.

use crate::util::keyed_hash;

const MAGIC: &[u8; 4] = b"DSpt";
const VERSION: u8 = 1;

/// Encodes the offset of the next page as `X'<HEX>'` (not percent-encoded).
pub fn encode(key: u64, offset: usize) -> String {
    let mut bytes = Vec::with_capacity(21);
    bytes.extend_from_slice(MAGIC);
    bytes.push(VERSION);
    bytes.extend_from_slice(&(offset as u64).to_be_bytes());
    let tag = keyed_hash(key, &bytes);
    bytes.extend_from_slice(&tag.to_be_bytes());
    let mut s = String::with_capacity(bytes.len() * 2 + 3);
    s.push_str("X'");
    for b in bytes {
        s.push_str(&format!("{b:02X}"));
    }
    s.push('\'');
    s
}

/// The same token, percent-encoded for use in a URL (`'` → `%27`).
pub fn encode_for_url(key: u64, offset: usize) -> String {
    encode(key, offset).replace('\'', "%27")
}

/// Decodes a (percent-decoded) skip token; `None` if it is malformed or was
/// not issued with `key`.
pub fn decode(key: u64, token: &str) -> Option<usize> {
    let hex = token.strip_prefix("X'")?.strip_suffix('\'')?;
    if hex.len() != 42 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = Vec::with_capacity(21);
    for i in (0..hex.len()).step_by(2) {
        bytes.push(u8::from_str_radix(&hex[i..i + 2], 16).ok()?);
    }
    if &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return None;
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&bytes[5..13]);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&bytes[13..21]);
    if keyed_hash(key, &bytes[..13]) != u64::from_be_bytes(tag) {
        return None;
    }
    usize::try_from(u64::from_be_bytes(offset)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::percent_decode;

    #[test]
    fn round_trip() {
        for offset in [0usize, 1, 999, 1998, 100_000, usize::MAX >> 1] {
            let t = encode(77, offset);
            assert!(t.starts_with("X'44537074"), "{t}");
            assert_eq!(decode(77, &t), Some(offset));
            let url = encode_for_url(77, offset);
            assert!(url.starts_with("X%27") && url.ends_with("%27"));
            let back = percent_decode(&url, true).expect("decodes");
            assert_eq!(decode(77, &back), Some(offset));
        }
    }

    #[test]
    fn tampering_is_rejected() {
        let t = encode(5, 999);
        assert_eq!(decode(6, &t), None, "other key");
        // Flip each hex digit in turn: every change must be caught.
        let inner = &t[2..t.len() - 1];
        for i in 0..inner.len() {
            let mut chars: Vec<char> = inner.chars().collect();
            chars[i] = if chars[i] == '0' { '1' } else { '0' };
            let forged = format!("X'{}'", chars.into_iter().collect::<String>());
            if forged != t {
                assert_eq!(decode(5, &forged), None, "{forged}");
            }
        }
        assert_eq!(decode(5, ""), None);
        assert_eq!(decode(5, "X''"), None);
        assert_eq!(decode(5, "X'zz'"), None);
        assert_eq!(decode(5, &t[..t.len() - 1]), None);
        assert_eq!(decode(5, "RFNwdAIAAQAAACpVc2VyXzEx"), None);
        assert_eq!(decode(5, "X'4453707401ÿÿ'"), None);
    }
}
