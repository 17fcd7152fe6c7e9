//! Reading a JSON body. serde_json's byte-slice reader checks UTF-8 string by string (a
//! users page holds some 36 strings per user, keys included, and the per-string check was
//! 7 % of a full sync's instructions); its `&str` reader checks nothing, so a body is
//! checked once, whole, and read as text. A body that is not UTF-8 is read as bytes, so
//! that its error is serde_json's own, at the same line and column as before.

use serde::Deserialize;

/// Deserializes `body` (what `serde_json::from_slice` gives, faster).
pub fn from_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_values_and_errors_as_from_slice() {
        let bodies: [&[u8]; 6] = [
            br#"{"a": ["x", "J\u00e9r\u00f4me", "\ud83d\ude00"], "b": null}"#,
            "{\"a\": [\"Håkon\"]}".as_bytes(),
            b"{\"a\": [\"\xff\"]}",
            b"{\"a\": [\"x\",,]}",
            b"{\"a\": [\"x\"",
            b"{\"a\": 5}",
        ];
        type Shape = std::collections::BTreeMap<String, Option<Vec<String>>>;
        for body in bodies {
            let slice = serde_json::from_slice::<Shape>(body).map_err(|e| e.to_string());
            let ours = from_body::<Shape>(body).map_err(|e| e.to_string());
            assert_eq!(ours, slice, "{:?}", String::from_utf8_lossy(body));
        }
    }
}
