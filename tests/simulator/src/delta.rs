//! users/delta state tokens and the `Prefer` request header.
//!
//! State tokens (concepts/delta-query-overview.md, "State tokens"): "These
//! tokens are opaque to the client", "Each token reflects the state and
//! represents a snapshot of the resource in that round of change tracking",
//! and "The state tokens also encode and include other query parameters (such
//! as `$select`) specified in the initial delta query request". Graph's tokens
//! are base64url text (the docs' examples, e.g. `$deltatoken=oEcOySpF_hWY…`);
//! the simulator's carry a magic, the token's kind, the simulator run and
//! delta epoch it was issued in, the round's versions and position, the
//! `$select` codes, and a keyed checksum so that a tampered or made-up token
//! is rejected. A token names the collection it tracks (users or groups), so
//! one is not accepted for the other.

use crate::groups;
use crate::userprops;
use crate::util::{b64url_decode, b64url_encode, keyed_hash};

const MAGIC: &[u8; 4] = b"MSdq";
const FORMAT: u8 = 2;

/// The collection a delta token tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Users,
    Groups,
}

/// What a state token continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `$skiptoken` inside an initial round: `pos` is the next record index,
    /// `stop` the number of records when the round began.
    InitialSkip,
    /// `$skiptoken` inside a replay round: `pos` is the last version examined.
    ReplaySkip,
    /// `$deltatoken`: a finished round; `base` is the version it covers.
    Delta,
}

/// A decoded state token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub collection: Collection,
    pub kind: Kind,
    /// The simulator run that issued it.
    pub run: u64,
    /// The delta epoch it was issued in (see `Simulator::expire_delta_tokens`).
    pub epoch: u64,
    /// The version the client is up to date with (replays and delta tokens).
    pub base: u64,
    /// The version the round reads up to.
    pub upper: u64,
    pub pos: u64,
    pub stop: u64,
    /// Groups: how many `members@delta` entries of the group at `pos` earlier
    /// pages already carried (a large group spans pages).
    pub sub: u64,
    /// `$select` items of the initial request (catalogue codes), or `None`
    /// for the default property set.
    pub select: Option<Vec<u8>>,
}

impl State {
    pub fn encode(&self, key: u64) -> String {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(MAGIC);
        b.push(FORMAT);
        b.push(
            match self.kind {
                Kind::InitialSkip => 0,
                Kind::ReplaySkip => 1,
                Kind::Delta => 2,
            } | match self.collection {
                Collection::Users => 0,
                Collection::Groups => 0x10,
            },
        );
        for n in [
            self.run, self.epoch, self.base, self.upper, self.pos, self.stop, self.sub,
        ] {
            b.extend_from_slice(&n.to_be_bytes());
        }
        match &self.select {
            None => b.push(0xFF),
            Some(codes) => {
                b.push(codes.len().min(0xFE) as u8);
                b.extend(codes.iter().take(0xFE));
            }
        }
        let tag = keyed_hash(key, &b);
        b.extend_from_slice(&tag.to_be_bytes());
        b64url_encode(&b)
    }

    /// `None` if the token is malformed or its checksum does not match.
    pub fn decode(key: u64, token: &str) -> Option<State> {
        let token = token.trim();
        let b = b64url_decode(token)?;
        // Canonical spelling only (no padding, no spare bits set).
        if b64url_encode(&b) != token {
            return None;
        }
        if b.len() < 4 + 2 + 56 + 1 + 8 || &b[..4] != MAGIC || b[4] != FORMAT {
            return None;
        }
        let (body, tag) = b.split_at(b.len() - 8);
        if keyed_hash(key, body) != u64::from_be_bytes(tag.try_into().ok()?) {
            return None;
        }
        let collection = match body[5] & 0xF0 {
            0 => Collection::Users,
            0x10 => Collection::Groups,
            _ => return None,
        };
        let kind = match body[5] & 0x0F {
            0 => Kind::InitialSkip,
            1 => Kind::ReplaySkip,
            2 => Kind::Delta,
            _ => return None,
        };
        let n = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(
                body.get(6 + i * 8..14 + i * 8)?.try_into().ok()?,
            ))
        };
        let nsel = body[62];
        let select = if nsel == 0xFF {
            if body.len() != 63 {
                return None;
            }
            None
        } else {
            let codes = body.get(63..)?;
            if codes.len() != nsel as usize {
                return None;
            }
            Some(codes.to_vec())
        };
        Some(State {
            collection,
            kind,
            run: n(0)?,
            epoch: n(1)?,
            base: n(2)?,
            upper: n(3)?,
            pos: n(4)?,
            stop: n(5)?,
            sub: n(6)?,
            select,
        })
    }
}

/// `$select` names → token codes (names must already be resolved, so every
/// one is in the collection's catalogue).
/// `$select` beside a `$skiptoken`: the token already carries the round's `$select`
/// (user-delta.md: query parameters other than the state tokens go in the initial request
/// only), so Graph refuses a second one.
pub fn select_with_skiptoken() -> crate::odata::GraphError {
    crate::odata::GraphError::new(
        400,
        "Request_UnsupportedQuery",
        "$select cannot be combined with $skiptoken; it is encoded in the token.",
    )
}

pub fn select_codes(collection: Collection, names: &[String]) -> Vec<u8> {
    names
        .iter()
        .filter_map(|n| match collection {
            Collection::Users => userprops::select_code(n),
            Collection::Groups => groups::select_code(n),
        })
        .collect()
}

/// Token codes → `$select` names.
pub fn select_names(collection: Collection, codes: &[u8]) -> Option<Vec<String>> {
    codes
        .iter()
        .map(|&c| {
            match collection {
                Collection::Users => userprops::select_name(c),
                Collection::Groups => groups::select_name(c),
            }
            .map(str::to_string)
        })
        .collect()
}

/// The preferences the simulator honours on users/delta.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `odata.maxpagesize=N` (N ≥ 1).
    pub max_page_size: Option<usize>,
    /// `return=minimal`.
    pub minimal: bool,
}

/// Parses every `Prefer` header value: comma-separated preferences, names
/// case-insensitive (RFC 7240 §2; OData 4.01 Part 1 §8.2.8, where
/// `maxpagesize` may also carry the `odata.` prefix). Unknown or malformed
/// preferences are ignored, as RFC 7240 allows.
pub fn parse_prefer<'a>(values: impl Iterator<Item = &'a str>) -> Prefer {
    let mut p = Prefer::default();
    for value in values {
        for pref in value.split(',') {
            let pref = pref.split(';').next().unwrap_or("").trim();
            let (name, val) = pref.split_once('=').unwrap_or((pref, ""));
            let name = name.trim().to_ascii_lowercase();
            let val = val.trim().trim_matches('"');
            match name.as_str() {
                "odata.maxpagesize" | "maxpagesize" => {
                    if let Ok(n) = val.parse::<usize>()
                        && n >= 1
                    {
                        p.max_page_size = Some(n);
                    }
                }
                "return" if val.eq_ignore_ascii_case("minimal") => p.minimal = true,
                _ => {}
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(select: Option<Vec<u8>>) -> State {
        State {
            collection: Collection::Groups,
            kind: Kind::ReplaySkip,
            run: 7,
            epoch: 2,
            base: 100,
            upper: 250,
            pos: 180,
            stop: u64::MAX,
            sub: 17,
            select,
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        for sel in [None, Some(vec![]), Some(vec![0, 5, 255])] {
            let s = state(sel);
            let t = s.encode(99);
            assert!(
                t.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
            assert_eq!(State::decode(99, &t), Some(s.clone()));
            assert_eq!(State::decode(98, &t), None);
            let mut chars: Vec<char> = t.chars().collect();
            for i in 0..chars.len() {
                let orig = chars[i];
                chars[i] = if orig == 'A' { 'B' } else { 'A' };
                let forged: String = chars.iter().collect();
                assert_eq!(State::decode(99, &forged), None, "{forged}");
                chars[i] = orig;
            }
        }
        assert_eq!(State::decode(99, ""), None);
        assert_eq!(State::decode(99, "latest"), None);
        assert_eq!(State::decode(99, "!!"), None);
    }

    #[test]
    fn prefer_header() {
        let p = parse_prefer(["odata.maxpagesize=999, return=minimal"].into_iter());
        assert_eq!(p.max_page_size, Some(999));
        assert!(p.minimal);
        let p = parse_prefer(["Return=Minimal", "ODATA.MAXPAGESIZE=\"5\""].into_iter());
        assert_eq!(p.max_page_size, Some(5));
        assert!(p.minimal);
        let p = parse_prefer(["odata.maxpagesize=0, return=representation, foo"].into_iter());
        assert_eq!(p, Prefer::default());
    }
}
