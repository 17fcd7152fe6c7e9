//! A compact set of Graph object ids: GUIDs are kept as `u128` (16 bytes each instead of a
//! 36-byte string plus its allocation), anything else as a string. A full run keeps one of
//! these for the ids it saw, never the tenant's records.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A Graph object id (user, group, member, manager, `@removed` id, SKU id) as the engine
/// keeps and compares it: trimmed and in lower case. Object ids are GUIDs, which compare
/// case-insensitively, and Graph does not promise one case; every source reads ids through
/// this, so that an id sent in upper case by a later answer is the same object.
/// Takes the id as read, so that the common case (no padding) reuses its buffer: this
/// runs for every id of every page.
pub fn normalize(mut id: String) -> String {
    let trimmed = id.trim();
    if trimmed.len() != id.len() {
        id = trimmed.to_owned();
    }
    id.make_ascii_lowercase();
    id
}

/// Object ids seen in a run.
#[derive(Default, Clone, Debug)]
pub struct IdSet {
    guids: HashSet<u128, BuildHasherDefault<IdHasher>>,
    others: HashSet<String, BuildHasherDefault<IdHasher>>,
}

impl IdSet {
    /// Adds an id; false when it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
        match parse_guid(id) {
            Some(g) => self.guids.insert(g),
            None => self.others.insert(id.to_owned()),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        match parse_guid(id) {
            Some(g) => self.guids.contains(&g),
            None => self.others.contains(id),
        }
    }

    pub fn len(&self) -> usize {
        self.guids.len() + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A digest of the set that does not depend on insertion order (a wrapping sum of
    /// mixed element hashes), to tell whether a set changed between runs.
    pub fn digest(&self) -> u64 {
        let mix = |mut z: u64| {
            // splitmix64's finaliser
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let guids = self.guids.iter().fold(0u64, |a, g| {
            a.wrapping_add(mix((*g as u64) ^ mix((*g >> 64) as u64)))
        });
        let others = self.others.iter().fold(0u64, |a, s| {
            a.wrapping_add(mix(crate::merge::fnv(s.as_bytes())))
        });
        guids ^ others.rotate_left(1) ^ (self.len() as u64)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, any case) as a number.
pub fn parse_guid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    // Two 64-bit halves: wasm has no 128-bit arithmetic, so shifting a u128 per digit
    // costs several instructions (this ran once per user and showed in profiles).
    let high = hex_digits(&b[0..8])? << 32 | hex_digits(&b[9..13])? << 16 | hex_digits(&b[14..18])?;
    let low = hex_digits(&b[19..23])? << 48 | hex_digits(&b[24..36])?;
    Some(u128::from(high) << 64 | u128::from(low))
}

/// The value of up to 16 hex digits.
fn hex_digits(digits: &[u8]) -> Option<u64> {
    // Every digit is looked up, and one test at the end says whether any was not a digit:
    // no branch per digit (three GUID parses per user showed in profiles).
    let mut v = 0u64;
    let mut bad = 0u8;
    for &c in digits {
        let d = HEX_VALUE[usize::from(c)];
        bad |= d;
        v = v << 4 | u64::from(d & 0xf);
    }
    (bad & NOT_HEX == 0).then_some(v)
}

/// Marks a byte that is not a hex digit in [`HEX_VALUE`].
const NOT_HEX: u8 = 0x80;

/// The value of each byte as a hex digit (any case), or [`NOT_HEX`].
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A small, deterministic hasher: word-at-a-time over bytes (FxHash's step, see
/// [`hash_bytes`]), with a fast path for the `u128` of a GUID. Deterministic on purpose:
/// std's `RandomState` would make the component import `wasi:random` for no benefit (the
/// ids come from Graph, not from an attacker choosing collisions).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The multiply leaves the high bits best mixed; hash tables bucket by the low ones.
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(self.0, bytes);
    }

    fn write_u8(&mut self, v: u8) {
        self.0 = step(self.0, u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = step(self.0, v);
    }

    fn write_u128(&mut self, v: u128) {
        // murmur3's 64-bit finaliser: every input bit reaches the low bits that pick a bucket.
        let mut x = self.0 ^ (v as u64) ^ ((v >> 64) as u64).rotate_left(32);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        self.0 = x;
    }
}

/// One word into the hash (FxHash's step).
fn step(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// A fast, non-cryptographic hash of `bytes` from `seed`, eight bytes at a time (the
/// byte-wise FNV it replaced showed in profiles: wasm multiplies per byte). For in-memory
/// sets only; nothing stored depends on it.
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = step(h, u64::from_le_bytes(w));
    }
    let rest = words.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    step(step(h, u64::from_le_bytes(w)), bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_bytes_tells_apart_lengths_seeds_and_every_byte() {
        let base = hash_bytes(1, b"jane.doe@contoso.com");
        assert_ne!(base, hash_bytes(2, b"jane.doe@contoso.com"));
        assert_ne!(hash_bytes(1, b"a"), hash_bytes(1, b"a\0"));
        assert_ne!(hash_bytes(1, b""), hash_bytes(1, b"\0"));
        let mut text = b"jane.doe@contoso.com".to_vec();
        for i in 0..text.len() {
            text[i] ^= 1;
            assert_ne!(hash_bytes(1, &text), base, "byte {i}");
            text[i] ^= 1;
        }
    }

    #[test]
    fn ids_are_normalised_to_trimmed_lower_case() {
        assert_eq!(
            normalize(" 6EA91A8D-E32E-41A1-B7BD-D2D185EED0E0\n".into()),
            "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"
        );
        assert_eq!(normalize("Not-A-Guid".into()), "not-a-guid");
        assert_eq!(normalize(String::new()), "");
    }

    #[test]
    fn guids_parse_case_insensitively() {
        let a = parse_guid("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0").unwrap();
        let b = parse_guid("6EA91A8D-E32E-41A1-B7BD-D2D185EED0E0").unwrap();
        assert_eq!(a, b);
        assert_eq!(a >> 96, 0x6ea9_1a8d);
        assert!(parse_guid("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e").is_none());
        assert!(parse_guid("6ea91a8de-32e-41a1-b7bd-d2d185eed0e0").is_none());
        assert!(parse_guid("6ea91a8d-e32e-41a1-b7bd-d2d185eed0eg").is_none());
        assert!(parse_guid("").is_none());
        assert_eq!(
            parse_guid("01234567-89ab-cdef-0123-456789ABCDEF"),
            Some(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
        );
        assert_eq!(parse_guid("00000000-0000-0000-0000-000000000001"), Some(1));
    }

    #[test]
    fn set_holds_guids_and_other_ids() {
        let mut s = IdSet::default();
        assert!(s.insert("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"));
        assert!(!s.insert("6EA91A8D-E32E-41A1-B7BD-D2D185EED0E0"));
        assert!(s.insert("not-a-guid"));
        assert!(!s.insert("not-a-guid"));
        assert!(s.contains("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"));
        assert!(s.contains("not-a-guid"));
        assert!(!s.contains("other"));
        assert_eq!(s.len(), 2);
        for i in 0..10_000u32 {
            s.insert(&format!("{i:08x}-0000-0000-0000-000000000000"));
        }
        assert_eq!(s.len(), 10_002);
        assert!(s.contains("00000fff-0000-0000-0000-000000000000"));
    }
}
