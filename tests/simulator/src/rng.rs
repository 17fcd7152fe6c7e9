//! Deterministic pseudo-random numbers for the tenant generator and the ids the
//! servers hand out (request ids, token ids).
//!
//! SplitMix64 is tiny, fast and good enough for synthetic test data; it is not
//! meant to be cryptographically secure and nothing here relies on that.

/// SplitMix64 generator (Steele, Lea & Flood, 2014).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

/// One SplitMix64 finalisation step: a good 64-bit mixing function.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// A generator for an independent stream derived from `seed` and a label.
    pub fn derived(seed: u64, stream: u64) -> Self {
        Rng::new(mix64(seed ^ mix64(stream)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), using Lemire's multiply-shift reduction.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform index into a slice of length `len` (len > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille as u64
    }

    /// Picks one element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// A random (version 4 shaped) GUID in Graph's lowercase 8-4-4-4-12 form.
    pub fn guid(&mut self) -> String {
        guid_from(self.next_u64(), self.next_u64())
    }
}

/// Formats two 64-bit words as a lowercase version-4 GUID.
pub fn guid_from(a: u64, b: u64) -> String {
    // Version nibble 4 and RFC 4122 variant bits, like the ids Entra ID issues.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    let mut out = String::with_capacity(36);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        let word = if i < 16 { a } else { b };
        out.push(HEX[((word >> (60 - 4 * (i % 16))) & 0xF) as usize] as char);
    }
    out
}

/// True if `s` has the 8-4-4-4-12 hexadecimal GUID shape (any case).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        let mut r = Rng::new(1);
        for _ in 0..100 {
            let g = r.guid();
            assert!(is_guid(&g), "{g}");
            assert_eq!(g, g.to_lowercase());
            assert_eq!(&g[14..15], "4");
        }
        assert!(!is_guid("not-a-guid"));
    }

    #[test]
    fn guid_layout() {
        assert_eq!(
            guid_from(0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdef),
            "01234567-89ab-4def-8123-456789abcdef"
        );
    }

    #[test]
    fn below_in_range() {
        let mut r = Rng::new(7);
        for n in 1..50u64 {
            for _ in 0..20 {
                assert!(r.below(n) < n);
            }
        }
    }
}
