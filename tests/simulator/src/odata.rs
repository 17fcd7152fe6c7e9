//! OData query handling for the Graph host: splitting and percent-decoding the
//! query string, the system query options (`$select`, `$top`, `$skiptoken`,
//! `$count`, `$format`), and Graph's JSON error body.
//!
//! Query options and their encoding:
//! microsoftgraph/microsoft-graph-docs-contrib: concepts/query-parameters.md.
//! Error body: microsoftgraph/microsoft-graph-docs-contrib: concepts/errors.md.

use serde::Serialize;

use crate::util::{percent_decode, split_query};

/// A Graph error: HTTP status, `error.code` and `error.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// A `Location` header to send with the error (410 resync).
    pub location: Option<String>,
}

impl GraphError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            location: None,
        }
    }

    pub fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    /// 400 with a directory (`Request_BadRequest`) code.
    pub fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(400, "Request_BadRequest", message)
    }

    /// The body Graph sends:
    /// `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`
    /// (concepts/errors.md; `client-request-id` is echoed from the request header
    /// of that name, or set to the request id).
    pub fn body(&self, date: &str, request_id: &str, client_request_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Inner<'a> {
            date: &'a str,
            #[serde(rename = "request-id")]
            request_id: &'a str,
            #[serde(rename = "client-request-id")]
            client_request_id: &'a str,
        }
        #[derive(Serialize)]
        struct Error<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(rename = "innerError")]
            inner_error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            error: Error<'a>,
        }
        let body = Body {
            error: Error {
                code: self.code,
                message: &self.message,
                inner_error: Inner {
                    date,
                    request_id,
                    client_request_id,
                },
            },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// The system query options the simulator understands, after decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `$select` property names as sent (trimmed), in order.
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    pub skiptoken: Option<String>,
    pub deltatoken: Option<String>,
    pub count: Option<bool>,
    /// Custom (non-`$`) parameters, raw as received, carried into nextLinks
    /// ("The URL also contains all the other query parameters present in the
    /// original request", concepts/paging.md).
    pub passthrough: Vec<(String, String)>,
}

/// Which system query options an endpoint accepts.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub select: bool,
    pub top: bool,
    pub skiptoken: bool,
    pub count: bool,
    pub deltatoken: bool,
    /// `$top` is accepted and ignored (users/delta: "`$top` is not
    /// supported" for users and groups, concepts/delta-query-overview.md, and
    /// "will be silently ignored in delta for unsupported APIs", a docs
    /// maintainer in microsoftgraph/microsoft-graph-docs#17516).
    pub ignore_top: bool,
}

/// OData system query options that exist but that the simulator does not
/// implement; asked for, they get a 400 rather than being silently ignored.
const KNOWN_UNIMPLEMENTED: &[&str] = &[
    "$filter",
    "$orderby",
    "$search",
    "$expand",
    "$apply",
    "$compute",
    "$deltatoken",
    "$levels",
    "$index",
    "$schemaversion",
];

/// Parses a raw (percent-encoded) query string. Option names are matched
/// case-insensitively and may arrive encoded (`%24select`).
pub fn parse_query(raw: &str, allowed: Allowed) -> Result<Query, GraphError> {
    let mut q = Query::default();
    let mut seen: Vec<String> = Vec::new();
    for (raw_name, raw_value) in split_query(raw) {
        let name = percent_decode(raw_name, true).ok_or_else(|| malformed(raw_name))?;
        let value = percent_decode(raw_value, true).ok_or_else(|| malformed(raw_value))?;
        if !name.starts_with('$') {
            q.passthrough
                .push((raw_name.to_string(), raw_value.to_string()));
            continue;
        }
        let lname = name.to_ascii_lowercase();
        if seen.contains(&lname) {
            return Err(GraphError::new(
                400,
                "BadRequest",
                format!(
                    "Query option '{name}' was specified more than once, but it must be specified at most once."
                ),
            ));
        }
        seen.push(lname.clone());
        match lname.as_str() {
            "$select" if allowed.select => q.select = Some(parse_select(&value)?),
            "$top" if allowed.top => q.top = Some(parse_top(&value)?),
            "$skiptoken" if allowed.skiptoken => q.skiptoken = Some(value),
            "$deltatoken" if allowed.deltatoken => q.deltatoken = Some(value),
            "$top" if allowed.ignore_top => {}
            "$count" if allowed.count => {
                q.count = Some(match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(GraphError::new(
                            400,
                            "BadRequest",
                            format!("'{value}' is not a valid count option."),
                        ));
                    }
                })
            }
            "$format" => {
                if !value.eq_ignore_ascii_case("json")
                    && !value.to_ascii_lowercase().starts_with("application/json")
                {
                    return Err(GraphError::new(
                        406,
                        "Request_NotAcceptable",
                        format!("The format '{value}' is not supported; only JSON is."),
                    ));
                }
            }
            // "$skip isn't supported" for users (api-reference/v1.0/api/user-list.md).
            "$skip" => {
                return Err(GraphError::bad_request(
                    "'$skip' is not supported by the service.",
                ));
            }
            "$select" | "$top" | "$skiptoken" | "$count" => {
                return Err(GraphError::new(
                    400,
                    "Request_UnsupportedQuery",
                    format!("The query option '{name}' is not supported on this resource."),
                ));
            }
            other if KNOWN_UNIMPLEMENTED.contains(&other) => {
                return Err(GraphError::new(
                    400,
                    "Request_UnsupportedQuery",
                    format!(
                        "The query option '{name}' is not supported by this simulator (it models paging, $select and $top only)."
                    ),
                ));
            }
            _ => {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!("The query parameter '{name}' is not supported."),
                ));
            }
        }
    }
    Ok(q)
}

fn malformed(raw: &str) -> GraphError {
    GraphError::new(
        400,
        "BadRequest",
        format!("The query string contains a malformed percent-encoding: '{raw}'."),
    )
}

/// Splits a decoded `$select` value: a comma-separated list of property names.
pub fn parse_select(value: &str) -> Result<Vec<String>, GraphError> {
    let mut names = Vec::new();
    for (i, item) in value.split(',').enumerate() {
        let name = item.trim();
        let valid = name == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '/'));
        if !valid {
            return Err(GraphError::new(
                400,
                "BadRequest",
                format!("Syntax error in $select at item {}: '{name}'.", i + 1),
            ));
        }
        if !names.iter().any(|n: &String| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Smallest and largest `$top` for directory collections: observed Graph
/// behaviour is a 400 `Request_UnsupportedQuery` with "Invalid page size
/// specified: 'N'. Must be between 1 and 999 inclusive." (concepts/query-parameters.md
/// says the maximum "depends on the corresponding API").
pub const MAX_TOP: usize = 999;

pub fn parse_top(value: &str) -> Result<usize, GraphError> {
    let v = value.trim();
    let n: i64 = v.parse().map_err(|_| {
        GraphError::new(
            400,
            "BadRequest",
            format!(
                "Invalid value '{v}' for $top query option found. The $top query option requires a non-negative integer value."
            ),
        )
    })?;
    if n < 1 || n > MAX_TOP as i64 {
        return Err(GraphError::new(
            400,
            "Request_UnsupportedQuery",
            format!("Invalid page size specified: '{n}'. Must be between 1 and 999 inclusive."),
        ));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Allowed = Allowed {
        select: true,
        top: true,
        skiptoken: true,
        count: true,
        deltatoken: false,
        ignore_top: false,
    };

    #[test]
    fn select_percent_encoded() {
        let q = parse_query("%24select=displayName%2Cid%2C%20mail&%24top=5", ALL).expect("ok");
        assert_eq!(
            q.select,
            Some(vec![
                "displayName".to_string(),
                "id".to_string(),
                "mail".to_string()
            ])
        );
        assert_eq!(q.top, Some(5));
        let q = parse_query("$SELECT=ID,DisplayName,id", ALL).expect("ok");
        assert_eq!(
            q.select,
            Some(vec!["ID".to_string(), "DisplayName".to_string()])
        );
    }

    #[test]
    fn select_syntax_errors() {
        assert!(parse_query("$select=id,,mail", ALL).is_err());
        assert!(parse_query("$select=", ALL).is_err());
        assert!(parse_query("$select=id%28", ALL).is_err());
    }

    #[test]
    fn top_bounds() {
        assert_eq!(parse_top("1"), Ok(1));
        assert_eq!(parse_top("999"), Ok(999));
        let e = parse_top("1000").expect_err("too big");
        assert_eq!(e.status, 400);
        assert_eq!(e.code, "Request_UnsupportedQuery");
        assert!(parse_top("0").is_err());
        assert!(parse_top("-3").is_err());
        assert!(parse_top("ten").is_err());
    }

    #[test]
    fn options_and_passthrough() {
        let q = parse_query("foo=b%20r&$skiptoken=X%27AB%27", ALL).expect("ok");
        assert_eq!(q.skiptoken.as_deref(), Some("X'AB'"));
        assert_eq!(
            q.passthrough,
            vec![("foo".to_string(), "b%20r".to_string())]
        );
        assert!(parse_query("$top=1&%24top=2", ALL).is_err());
        assert!(parse_query("$skip=10", ALL).is_err());
        assert!(parse_query("$filter=x", ALL).is_err());
        assert!(parse_query("$bogus=1", ALL).is_err());
        assert!(parse_query("$select=%zz", ALL).is_err());
        let only_select = Allowed {
            select: true,
            top: false,
            skiptoken: false,
            count: false,
            deltatoken: false,
            ignore_top: false,
        };
        let delta = Allowed {
            select: true,
            top: false,
            skiptoken: true,
            count: false,
            deltatoken: true,
            ignore_top: true,
        };
        let q = parse_query("$deltatoken=abc&$top=5000", delta).expect("ok");
        assert_eq!(q.deltatoken.as_deref(), Some("abc"));
        assert_eq!(q.top, None);
        assert!(parse_query("$deltatoken=abc", ALL).is_err());
        assert!(parse_query("$top=5", only_select).is_err());
        assert!(parse_query("$format=json", only_select).is_ok());
    }

    #[test]
    fn error_body_shape() {
        let e = GraphError::bad_request("nope");
        let v: serde_json::Value =
            serde_json::from_slice(&e.body("2024-01-01T00:00:00", "r", "c")).expect("json");
        assert_eq!(v["error"]["code"], "Request_BadRequest");
        assert_eq!(v["error"]["message"], "nope");
        assert_eq!(v["error"]["innerError"]["request-id"], "r");
        assert_eq!(v["error"]["innerError"]["client-request-id"], "c");
        assert_eq!(v["error"]["innerError"]["date"], "2024-01-01T00:00:00");
    }
}
