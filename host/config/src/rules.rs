//! The rules one config value must follow: integer ranges, domain names, tenant ids,
//! filter values. They run as the file is deserialized (`deserialize_with`), so toml
//! reports each refusal at the value's span and the error names its line and key; the
//! message names the bad value and what is allowed.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The values an integer setting may take, said in its errors.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub min: i64,
    pub max: i64,
    /// What the number counts, e.g. "MiB".
    pub unit: &'static str,
}

impl Range {
    pub fn check(&self, value: i64) -> Result<i64, String> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "{value} is outside the allowed range {}..={} ({})",
                self.min, self.max, self.unit
            ))
        }
    }
}

/// `[host] memory_limit_mib`: the component needs a few MiB to start; wasm32 memories end
/// at 4 GiB (and a pool slot, runtime/pool.rs, is sized to this limit).
pub const MEMORY_LIMIT_MIB: Range = Range {
    min: 16,
    max: 4096,
    unit: "MiB",
};
/// `[host] run_timeout_secs`: at least a second, at most a day.
pub const RUN_TIMEOUT_SECS: Range = Range {
    min: 1,
    max: 86_400,
    unit: "seconds",
};
/// `[host] sandboxes`: 0 is on demand; each pooled slot reserves address space for its
/// memories up front (runtime/pool.rs), which 1024 slots still fit in.
pub const SANDBOXES: Range = Range {
    min: 0,
    max: 1024,
    unit: "sandboxes at once; 0 allocates each on demand",
};
/// `[tenant.sync] max_removal_percent`.
pub const MAX_REMOVAL_PERCENT: Range = Range {
    min: 0,
    max: 100,
    unit: "percent of the stored people",
};
/// `[tenant.sync] max_removals` (the engine's `removal-guard.max-count` is a u32).
pub const MAX_REMOVALS: Range = Range {
    min: 0,
    max: u32::MAX as i64,
    unit: "people",
};
/// Usage report periods Graph offers (D7, D30, D90, D180).
pub const USAGE_PERIODS: [u16; 4] = [7, 30, 90, 180];
/// The longest attribute filter value.
pub const MAX_FILTER_VALUE: usize = 256;

pub(crate) fn integer<'de, D: Deserializer<'de>>(
    deserializer: D,
    range: Range,
) -> Result<i64, D::Error> {
    let value = i64::deserialize(deserializer)?;
    range.check(value).map_err(D::Error::custom)
}

pub fn memory_limit_mib<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    integer(d, MEMORY_LIMIT_MIB).map(|v| Some(v as u64))
}

pub fn run_timeout_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    integer(d, RUN_TIMEOUT_SECS).map(|v| Some(v as u64))
}

pub fn sandboxes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    integer(d, SANDBOXES).map(|v| Some(v as u32))
}

pub fn max_removal_percent<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    integer(d, MAX_REMOVAL_PERCENT).map(|v| v as u8)
}

pub fn max_removals<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    integer(d, MAX_REMOVALS).map(|v| v as u32)
}

/// A rule for one string value.
pub trait Rule {
    fn check(value: &str) -> Result<(), String>;
}

/// A string that passed rule `R`.
struct Checked<R>(String, PhantomData<R>);

impl<'de, R: Rule> Deserialize<'de> for Checked<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        R::check(&value).map_err(D::Error::custom)?;
        Ok(Checked(value, PhantomData))
    }
}

/// A list of strings each passing rule `R`. toml spans a list's error as the whole list,
/// so the message says which item (1-based) is wrong.
fn list<'de, R: Rule, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<String>::deserialize(deserializer)?;
    for (index, value) in values.iter().enumerate() {
        R::check(value).map_err(|why| D::Error::custom(format!("item {}: {why}", index + 1)))?;
    }
    Ok(values)
}

/// A DNS name: labels of letters (any script, so internationalized names in their Unicode
/// form), digits and hyphens, separated by dots; no label empty, longer than 63 characters
/// or starting or ending with a hyphen; at most 253 characters; one trailing dot allowed.
/// `min_labels` 2 asks for a dot (a domain, not a single host name).
pub fn dns_name(name: &str, min_labels: usize) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("it is empty".into());
    }
    if bare.chars().count() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    let labels: Vec<&str> = bare.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)".into());
        }
        if let Some(c) = label.chars().find(|&c| !(c.is_alphanumeric() || c == '-')) {
            return Err(format!(
                "{c:?} is not a letter, digit or hyphen (the characters of a DNS name)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with a hyphen"));
        }
        if label.chars().count() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
    }
    if labels.len() < min_labels {
        return Err("it has no dot (e.g. contoso.com)".into());
    }
    Ok(())
}

/// A directory (tenant) id in the GUID form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn is_guid(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// An IP address literal, bracketed (`[::1]`) or not.
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// A host of a URL or an allowed authority: an IP literal or a DNS name.
pub fn host_name(host: &str) -> Result<(), String> {
    if ip_literal(host).is_some() {
        return Ok(());
    }
    dns_name(host, 1).map_err(|why| format!("host {host:?} is not a host name: {why}"))
}

/// `host` or `host:port` (`[v6]:port`), the port 1..=65535. Returns the host and the port.
pub fn authority(value: &str) -> Result<(&str, Option<u16>), String> {
    if value.contains('@') {
        // Not echoed: the part before '@' is a credential.
        return Err(
            "it has user info (user:password@): credentials do not belong in a URL".to_string(),
        );
    }
    let (host, port) = if value.starts_with('[') {
        match value.split_once(']') {
            Some((_, "")) => (value, None),
            Some((v6, rest)) => match rest.strip_prefix(':') {
                Some(port) => (&value[..v6.len() + 1], Some(port)),
                None => return Err(format!("{value:?} is not \"host\" or \"host:port\"")),
            },
            None => return Err(format!("{value:?} has an unclosed '['")),
        }
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    host_name(host)?;
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => {
                return Err(format!(
                    "port {port:?} of {value:?} is outside the allowed range 1..=65535"
                ));
            }
        },
    };
    Ok((host, port))
}

/// `tenant_id`: a directory id (GUID) or one of the tenant's verified domains.
pub struct TenantId;

impl Rule for TenantId {
    fn check(value: &str) -> Result<(), String> {
        let value = value.trim();
        if is_guid(value) {
            return Ok(());
        }
        dns_name(value, 2).map_err(|why| {
            format!(
                "{value:?} is neither a directory (tenant) id (a GUID) nor a domain name \
                 such as contoso.onmicrosoft.com: {why}"
            )
        })
    }
}

pub fn tenant_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Checked::<TenantId>::deserialize(d).map(|v| v.0)
}

/// One entry of `[tenant.filter] domains`: `"*"` alone (every account), or a domain name,
/// optionally with a leading `@` or a leading `*.` (any subdomain).
pub struct Domain;

impl Rule for Domain {
    fn check(raw: &str) -> Result<(), String> {
        let value = raw.trim();
        if value == "*" {
            return Ok(());
        }
        let name = value.strip_prefix('@').unwrap_or(value);
        let name = name.strip_prefix("*.").unwrap_or(name);
        if name.contains('*') {
            return Err(format!(
                "{raw:?}: a wildcard is allowed only as \"*\" alone (every account) or as a \
                 leading \"*.\" (any subdomain)"
            ));
        }
        dns_name(name, 2).map_err(|why| {
            format!("{raw:?} is not a domain (\"*\" or a domain name such as contoso.com): {why}")
        })
    }
}

pub fn domains<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let domains = list::<Domain, D>(d)?;
    if domains.len() > 1 && domains.iter().any(|d| d.trim() == "*") {
        return Err(D::Error::custom(
            "\"*\" takes every account, so the other domains would not filter: list the \
             domains, or \"*\" alone",
        ));
    }
    Ok(domains)
}

/// An attribute filter value: not empty, no control characters, at most
/// [`MAX_FILTER_VALUE`] characters; `*` matches any run of characters.
pub struct FilterValue;

impl Rule for FilterValue {
    fn check(raw: &str) -> Result<(), String> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(format!(
                "{raw:?}: an empty value matches nothing: remove it"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("{raw:?} holds a control character"));
        }
        if value.chars().count() > MAX_FILTER_VALUE {
            return Err(format!(
                "{raw:?} is longer than {MAX_FILTER_VALUE} characters"
            ));
        }
        Ok(())
    }
}

pub fn include_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list::<FilterValue, D>(d)
}

/// An exclude value: a filter value that does not exclude everyone (only wildcards would,
/// and with `removal = "delete"` remove every stored person).
pub struct ExcludeValue;

impl Rule for ExcludeValue {
    fn check(raw: &str) -> Result<(), String> {
        FilterValue::check(raw)?;
        if raw.trim().chars().all(|c| c == '*') {
            return Err(format!(
                "{raw:?} would exclude every account: list the values to leave out"
            ));
        }
        Ok(())
    }
}

pub fn exclude_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    list::<ExcludeValue, D>(d)
}

/// `[tenant.sync] usage_periods`: each one Graph offers, none twice.
pub fn usage_periods<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    let periods = Vec::<i64>::deserialize(d)?;
    let mut out: Vec<u16> = Vec::new();
    for period in periods {
        match USAGE_PERIODS.iter().find(|&&p| i64::from(p) == period) {
            Some(&p) if out.contains(&p) => {
                return Err(D::Error::custom(format!("{period} is listed twice")));
            }
            Some(&p) => out.push(p),
            None => {
                return Err(D::Error::custom(format!(
                    "{period} is not one of 7, 30, 90, 180 (days)"
                )));
            }
        }
    }
    Ok(out)
}

/// `[host] allowed_hosts`: each an authority, `host` or `host:port`.
pub struct AllowedHost;

impl Rule for AllowedHost {
    fn check(value: &str) -> Result<(), String> {
        authority(value).map(|_| ()).map_err(|why| {
            format!("{value:?} is not an authority (\"host\" or \"host:port\"): {why}")
        })
    }
}

pub fn allowed_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    list::<AllowedHost, D>(d).map(Some)
}

/// A URL-taking key: a base URL (see `urls::base_url`).
pub struct BaseUrl;

impl Rule for BaseUrl {
    fn check(value: &str) -> Result<(), String> {
        super::urls::base_url(value).map(|_| ())
    }
}

pub fn base_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Checked::<BaseUrl>::deserialize(d).map(|v| Some(v.0))
}

pub fn base_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    list::<BaseUrl, D>(d).map(Some)
}

/// `[store] url`: a `postgres://` / `postgresql://` URL with a host and a database, or a
/// SQLite file path (not empty).
pub struct StoreUrl;

impl Rule for StoreUrl {
    fn check(value: &str) -> Result<(), String> {
        let lower = value.trim().to_ascii_lowercase();
        let Some(rest) = lower
            .strip_prefix("postgres://")
            .or_else(|| lower.strip_prefix("postgresql://"))
        else {
            if lower.contains("://") {
                return Err(format!(
                    "{value:?} is neither a postgres:// URL nor a SQLite file path"
                ));
            }
            return if value.trim().is_empty() {
                Err("the store is empty: give a postgres:// URL or a SQLite file".to_string())
            } else {
                Ok(())
            };
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || database.split('?').next().unwrap_or_default().is_empty() {
            return Err("a PostgreSQL URL needs a host and a database: \
                        postgres://user@host:5432/database"
                .to_string());
        }
        Ok(())
    }
}

pub fn store_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Checked::<StoreUrl>::deserialize(d).map(|v| Some(v.0))
}

/// `[tenant.sync] features`: feature names (the WIT's `features` flags, by their names in
/// `m365sync_wit::names::FEATURES`); an unknown name is refused with the known ones.
pub fn features<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<m365sync_wit::types::Features, D::Error> {
    use m365sync_wit::names::{FEATURES, feature_from_name};
    let names = Vec::<String>::deserialize(deserializer)?;
    names
        .iter()
        .try_fold(
            m365sync_wit::types::Features::empty(),
            |all, name| match feature_from_name(name) {
                Some(flag) => Ok(all | flag),
                None => Err(D::Error::custom(format!(
                    "unknown feature {name:?}, expected one of: {}",
                    FEATURES
                        .iter()
                        .map(|(_, n)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
        )
}

/// A duration as the file writes it: a number and a unit (`90s`, `30m`, `1h`, `1d`), or
/// several (`1h30m`); jiff's "friendly" format, which also reads `2 hours` and ISO 8601's
/// `PT2H`. A day is 24 hours; months and years are refused (their length varies). The
/// result is within `min..=max`, which `range` says in the file's words (`1s..=1d`).
pub fn duration(text: &str, min: Duration, max: Duration, range: &str) -> Result<Duration, String> {
    let span: jiff::Span = text.trim().parse().map_err(|_| {
        format!(
            "{text:?} is not a duration: write a number and a unit (s, m, h, d), e.g. \"90s\", \
             \"30m\", \"1h\", \"1d\""
        )
    })?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| {
            format!("{text:?} counts months or years, whose length varies: write it in days")
        })?;
    Duration::try_from(signed)
        .ok()
        .filter(|duration| (min..=max).contains(duration))
        .ok_or_else(|| format!("{text:?} is outside the allowed range {range}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_postgres_urls_or_paths() {
        assert!(StoreUrl::check("postgres://me@db:5432/sync").is_ok());
        assert!(StoreUrl::check("./m365sync.db").is_ok());
        assert!(StoreUrl::check("postgres://me@db").is_err());
        assert!(StoreUrl::check("mysql://me@db/x").is_err());
        assert!(StoreUrl::check("").is_err());
    }

    #[test]
    fn domains_are_star_or_dns_names() {
        for ok in [
            "*",
            "contoso.com",
            "Contoso.COM.",
            "@contoso.com",
            "*.contoso.com",
            "münchen.de",
            "xn--mnchen-3ya.de",
            " a-b.c1 ",
        ] {
            assert!(Domain::check(ok).is_ok(), "{ok}: {:?}", Domain::check(ok));
        }
        for bad in [
            "not a domain!",
            "contoso",
            "",
            "con*so.com",
            "contoso..com",
            "-contoso.com",
            "contoso.com-",
            ".contoso.com",
        ] {
            let error = Domain::check(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
        assert!(dns_name(&format!("{}.com", "a".repeat(64)), 2).is_err());
    }

    #[test]
    fn tenant_ids_are_guids_or_domains() {
        for ok in [
            "11111111-2222-3333-4444-555555555555",
            "ABCDEF01-2222-3333-4444-555555555555",
            "contoso.onmicrosoft.com",
        ] {
            assert!(TenantId::check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "t",
            "11111111-2222-3333-4444-55555555555",
            "contoso onmicrosoft.com",
            "https://login.microsoftonline.com/x",
        ] {
            assert!(TenantId::check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorities_take_a_host_and_a_port_in_range() {
        assert_eq!(
            authority("graph.microsoft.com"),
            Ok(("graph.microsoft.com", None))
        );
        assert_eq!(authority("127.0.0.1:4000"), Ok(("127.0.0.1", Some(4000))));
        assert_eq!(authority("[::1]:80"), Ok(("[::1]", Some(80))));
        assert_eq!(authority("localhost"), Ok(("localhost", None)));
        for bad in [
            "",
            "a b",
            "h:99999",
            "h:0",
            "h:",
            "user:pw@h",
            "[::1",
            "a/b",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filter_values_are_printable_and_excludes_leave_someone() {
        assert!(FilterValue::check("Sales*").is_ok());
        assert!(FilterValue::check("*").is_ok());
        assert!(FilterValue::check(" ").is_err());
        assert!(FilterValue::check("a\u{7}b").is_err());
        assert!(FilterValue::check(&"x".repeat(MAX_FILTER_VALUE + 1)).is_err());
        assert!(ExcludeValue::check("**").is_err());
        assert!(ExcludeValue::check("Sales Ops").is_ok());
    }

    #[test]
    fn ranges_name_their_bounds() {
        assert_eq!(MEMORY_LIMIT_MIB.check(16), Ok(16));
        let error = MEMORY_LIMIT_MIB.check(0).unwrap_err();
        assert!(
            error.contains("16..=4096") && error.contains("MiB"),
            "{error}"
        );
        assert!(RUN_TIMEOUT_SECS.check(0).is_err());
        assert!(SANDBOXES.check(100_000).is_err());
        assert!(MAX_REMOVAL_PERCENT.check(101).is_err());
        assert!(MAX_REMOVALS.check(-1).is_err());
    }
}
