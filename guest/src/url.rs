//! Just enough URL handling for the engine: split an absolute http(s) URL into scheme,
//! authority and path-with-query, compare origins, form-urlencode, and print a URL for an
//! error message without its paging or delta tokens.

/// The two schemes the engine speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// An absolute `http` or `https` URL, borrowed from its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbsoluteUrl<'a> {
    pub scheme: Scheme,
    /// `host` or `host:port`, as written (no user info).
    pub authority: &'a str,
    /// Starts with `/` (or is `/` when the URL had no path); the query included, no fragment.
    pub path_and_query: &'a str,
}

/// Why a string is not a URL the engine can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it is not an absolute http:// or https:// URL")]
    Scheme,
    #[error("it has no host")]
    NoHost,
    #[error("it carries user information (user@host), which is not allowed")]
    UserInfo,
    #[error("it contains whitespace or control characters")]
    BadCharacter,
    #[error("its port is not a number between 1 and 65535")]
    BadPort,
}

impl<'a> AbsoluteUrl<'a> {
    pub fn parse(text: &'a str) -> Result<Self, UrlError> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter);
        }
        let (scheme, rest) = if let Some(rest) = strip_prefix_ci(text, "https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = strip_prefix_ci(text, "http://") {
            (Scheme::Http, rest)
        } else {
            return Err(UrlError::Scheme);
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let host = host_of(authority);
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        port_of(authority)?;
        let tail = &rest[end..];
        let tail = tail.split('#').next().unwrap_or("");
        let path_and_query = if tail.is_empty() { "/" } else { tail };
        Ok(AbsoluteUrl {
            scheme,
            authority,
            path_and_query,
        })
    }

    /// The explicit port, or the scheme's default.
    pub fn port(&self) -> u16 {
        port_of(self.authority)
            .ok()
            .flatten()
            .unwrap_or(self.scheme.default_port())
    }

    pub fn host(&self) -> &'a str {
        host_of(self.authority)
    }

    /// Same scheme, host (case-insensitive) and effective port.
    pub fn same_origin(&self, other: &AbsoluteUrl<'_>) -> bool {
        self.scheme == other.scheme
            && self.host().eq_ignore_ascii_case(other.host())
            && self.port() == other.port()
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The host part of an authority: `[v6]` literals keep their brackets.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => &authority[..=i],
            None => authority,
        }
    } else {
        authority.split(':').next().unwrap_or("")
    }
}

fn port_of(authority: &str) -> Result<Option<u16>, UrlError> {
    let after_host = &authority[host_of(authority).len()..];
    match after_host.strip_prefix(':') {
        None if after_host.is_empty() => Ok(None),
        None => Err(UrlError::BadPort),
        Some("") => Ok(None),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(UrlError::BadPort),
            Ok(port) => Ok(Some(port)),
        },
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub fn form_encode(out: &mut String, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => push_pct(out, b),
        }
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are).
pub fn path_segment_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => push_pct(&mut out, b),
        }
    }
    out
}

fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Query parameters whose values are opaque paging or change-tracking tokens: they are
/// long, useless to an admin, and act as bearer capabilities for the result set.
const OPAQUE_PARAMS: &[&str] = &["$skiptoken", "$deltatoken", "%24skiptoken", "%24deltatoken"];

/// The value of a URL's `$deltatoken` query parameter, if it has one: the long-lived
/// change-tracking capability of a delta link.
pub fn delta_token(url: &str) -> Option<&str> {
    let query = url.split('#').next()?.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name.eq_ignore_ascii_case("$deltatoken") || name.eq_ignore_ascii_case("%24deltatoken"))
            .then_some(value)
            .filter(|v| !v.is_empty())
    })
}

/// The URL as it may appear in an error or log: no fragment, and the values of
/// `$skiptoken` / `$deltatoken` replaced by `...`.
pub fn display_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or("");
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len().min(512));
    out.push_str(base);
    for (i, pair) in query.split('&').enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        let name = pair.split('=').next().unwrap_or("");
        if OPAQUE_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            out.push_str(name);
            out.push_str("=...");
        } else {
            out.push_str(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_absolute_urls() {
        let u = AbsoluteUrl::parse("https://graph.microsoft.com/v1.0/users?$top=999").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.authority, "graph.microsoft.com");
        assert_eq!(u.path_and_query, "/v1.0/users?$top=999");
        assert_eq!(u.port(), 443);

        let u = AbsoluteUrl::parse("HTTP://127.0.0.1:8080").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.path_and_query, "/");
        assert_eq!(u.port(), 8080);

        let u = AbsoluteUrl::parse("http://[::1]:9000?x=1#frag").unwrap();
        assert_eq!(u.host(), "[::1]");
        assert_eq!(u.port(), 9000);
        assert_eq!(u.path_and_query, "?x=1");
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!(AbsoluteUrl::parse("ftp://x"), Err(UrlError::Scheme));
        assert_eq!(
            AbsoluteUrl::parse("graph.microsoft.com"),
            Err(UrlError::Scheme)
        );
        assert_eq!(AbsoluteUrl::parse("https:///v1.0"), Err(UrlError::NoHost));
        assert_eq!(
            AbsoluteUrl::parse("https://a:b@x/"),
            Err(UrlError::UserInfo)
        );
        assert_eq!(
            AbsoluteUrl::parse("https://x:99999/"),
            Err(UrlError::BadPort)
        );
        assert_eq!(AbsoluteUrl::parse("https://x:0/"), Err(UrlError::BadPort));
        assert_eq!(
            AbsoluteUrl::parse("https://x y/"),
            Err(UrlError::BadCharacter)
        );
        assert_eq!(AbsoluteUrl::parse(""), Err(UrlError::Scheme));
        assert_eq!(
            AbsoluteUrl::parse("https://é"),
            Ok(AbsoluteUrl {
                scheme: Scheme::Https,
                authority: "é",
                path_and_query: "/"
            })
        );
    }

    #[test]
    fn origins_compare_scheme_host_and_effective_port() {
        let a = AbsoluteUrl::parse("https://graph.microsoft.com").unwrap();
        let b = AbsoluteUrl::parse("https://GRAPH.microsoft.com:443/v1.0/users").unwrap();
        let c = AbsoluteUrl::parse("http://graph.microsoft.com").unwrap();
        let d = AbsoluteUrl::parse("https://graph.microsoft.com.evil.example").unwrap();
        let e = AbsoluteUrl::parse("https://graph.microsoft.com:8443").unwrap();
        assert!(a.same_origin(&b));
        assert!(!a.same_origin(&c));
        assert!(!a.same_origin(&d));
        assert!(!a.same_origin(&e));
    }

    #[test]
    fn form_encoding() {
        let mut s = String::new();
        form_encode(&mut s, "a b&c=d/é~*");
        assert_eq!(s, "a+b%26c%3Dd%2F%C3%A9%7E*");
        assert_eq!(
            path_segment_encode("contoso.com/x y"),
            "contoso.com%2Fx%20y"
        );
    }

    #[test]
    fn display_url_hides_paging_tokens() {
        assert_eq!(
            display_url("https://g/v1.0/users?$top=999&$skiptoken=RFNwdAIAAQAAAD&x=1#f"),
            "https://g/v1.0/users?$top=999&$skiptoken=...&x=1"
        );
        assert_eq!(
            display_url("https://g/v1.0/users/delta?%24deltatoken=abc"),
            "https://g/v1.0/users/delta?%24deltatoken=..."
        );
        assert_eq!(display_url("https://g/v1.0/users"), "https://g/v1.0/users");
    }

    #[test]
    fn finds_the_delta_token() {
        assert_eq!(
            delta_token("https://g/v1.0/users/delta?$deltatoken=abc&x=1"),
            Some("abc")
        );
        assert_eq!(
            delta_token("https://g/v1.0/users/delta?x=1&%24DeltaToken=abc#f"),
            Some("abc")
        );
        assert_eq!(delta_token("https://g/v1.0/users/delta?$deltatoken="), None);
        assert_eq!(delta_token("https://g/v1.0/users/delta?$skiptoken=a"), None);
        assert_eq!(delta_token("https://g/v1.0/users/delta"), None);
    }
}
