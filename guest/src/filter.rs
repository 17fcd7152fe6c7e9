//! The customer's account filter (the WIT `account-filter`): which accounts a run imports.
//! [`Filter::compile`] checks the filter once per run and lower-cases its values;
//! [`decide`] then tests one person without allocating (unless a tested value is
//! non-ASCII) and names the filter that left the person out.
//!
//! Rules: domains empty or containing `*` take every account, including those without
//! mail; named domains take accounts whose mail domain is one of them (case-insensitive,
//! a trailing dot and a leading `@` ignored, `*` wildcards allowed). Licensed-only needs
//! at least one licence, enabled-only needs `accountEnabled`, guests (`userType` Guest)
//! only with include-guests. Attribute filters: all must hold; within one, the value must
//! match one of `include` (when not empty) and none of `exclude`; case-insensitive, `*`
//! matches any run of characters, a missing value counts as empty. Licences (product name,
//! SKU part number) and groups (display names of the groups an account is a direct member
//! of) are multi-valued: one matching value is enough, for include as for exclude. Their
//! data ([`FilterData`]) is read before the users, by `crate::sync::filter_data`.

use crate::ids::IdSet;
use crate::types::{AccountFilter, Attribute, Person, SyncError};

/// A filter ready to test people with.
#[derive(Debug, Clone)]
pub struct Filter {
    /// `None`: every account, with or without mail.
    domains: Option<Vec<Pattern>>,
    licensed_only: bool,
    enabled_only: bool,
    include_guests: bool,
    attributes: Vec<AttributeRule>,
    data: FilterData,
}

#[derive(Debug, Clone)]
struct AttributeRule {
    attribute: Attribute,
    reason: &'static str,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// A lower-cased value, possibly with `*` wildcards.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    wildcard: bool,
}

impl Pattern {
    fn new(raw: &str) -> Option<Pattern> {
        let text = raw.trim().to_lowercase();
        if text.is_empty() {
            return None;
        }
        let wildcard = text.contains('*');
        Some(Pattern { text, wildcard })
    }

    fn domain(raw: &str) -> Option<Pattern> {
        let t = raw.trim();
        let t = t.strip_prefix('@').unwrap_or(t);
        Pattern::new(t.trim_end_matches('.'))
    }

    /// Case-insensitive match of a (trimmed) value.
    fn matches(&self, value: &str) -> bool {
        if value.is_ascii() {
            self.matches_folded(value.as_bytes(), true)
        } else {
            self.matches_folded(value.to_lowercase().as_bytes(), false)
        }
    }

    fn matches_folded(&self, value: &[u8], fold_ascii: bool) -> bool {
        let p = self.text.as_bytes();
        if !self.wildcard {
            return p.len() == value.len()
                && p.iter().zip(value).all(|(&a, &b)| a == fold(b, fold_ascii));
        }
        glob(p, value, fold_ascii)
    }
}

fn fold(b: u8, fold_ascii: bool) -> u8 {
    if fold_ascii {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// `*`-only glob matching (iterative, with one backtrack point: linear-ish, no recursion).
/// Works on UTF-8 bytes: a literal run of valid UTF-8 can only match at a char boundary.
fn glob(p: &[u8], v: &[u8], fold_ascii: bool) -> bool {
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == fold(v[vi], fold_ascii) {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The reason code of an attribute filter, as the sync log counts it.
pub fn attribute_reason(a: Attribute) -> &'static str {
    match a {
        Attribute::ProductName => "attribute:product-name",
        Attribute::Sku => "attribute:sku",
        Attribute::Country => "attribute:country",
        Attribute::UsageLocation => "attribute:usage-location",
        Attribute::Department => "attribute:department",
        Attribute::JobTitle => "attribute:job-title",
        Attribute::Office => "attribute:office",
        Attribute::Company => "attribute:company",
        Attribute::Group => "attribute:group",
    }
}

/// The WIT name of an attribute.
pub fn attribute_name(a: Attribute) -> &'static str {
    &attribute_reason(a)["attribute:".len()..]
}

impl Filter {
    /// Checks and prepares a filter. `data` holds what the product-name, sku and group
    /// attributes test against (see [`needs`]); without it they match nothing but "".
    pub fn compile(f: &AccountFilter, data: FilterData) -> Result<Filter, SyncError> {
        let all_domains = f.domains.is_empty() || f.domains.iter().any(|d| d.trim() == "*");
        let domains = if all_domains {
            None
        } else {
            let named: Vec<Pattern> = f
                .domains
                .iter()
                .filter_map(|d| Pattern::domain(d))
                .collect();
            if named.is_empty() {
                return Err(SyncError::InvalidRequest(
                    "options.filter.domains: the list holds only empty names; leave it empty \
                     (or use \"*\") for every account"
                        .into(),
                ));
            }
            Some(named)
        };
        let mut attributes = Vec::with_capacity(f.attributes.len());
        for a in &f.attributes {
            attributes.push(AttributeRule {
                attribute: a.attribute,
                reason: attribute_reason(a.attribute),
                include: a.include.iter().filter_map(|v| Pattern::new(v)).collect(),
                exclude: a.exclude.iter().filter_map(|v| Pattern::new(v)).collect(),
            });
        }
        Ok(Filter {
            domains,
            licensed_only: f.licensed_only,
            enabled_only: f.enabled_only,
            include_guests: f.include_guests,
            attributes,
            data,
        })
    }

    /// A fingerprint of what the filter lets through: its rules and the data they test
    /// against (group members). A change means stored people must be filtered again.
    pub fn fingerprint(&self, f: &AccountFilter) -> String {
        let mut text = format!(
            "v1|{:?}|{}|{}|{}",
            f.domains, f.licensed_only, f.enabled_only, f.include_guests
        );
        for a in &f.attributes {
            text.push_str(&format!(
                "|{}:{:?}:{:?}",
                attribute_name(a.attribute),
                a.include,
                a.exclude
            ));
        }
        for (name, members) in &self.data.groups {
            text.push_str(&format!("|group {name}:{}", members.digest()));
        }
        format!("{:016x}", crate::merge::fnv(text.as_bytes()))
    }
}

/// What an account filter needs read before the users: the subscribed SKUs (product-name
/// and sku attributes), and the group name patterns of group attributes.
pub fn needs(f: &AccountFilter) -> (bool, Vec<String>) {
    let skus = f
        .attributes
        .iter()
        .any(|a| matches!(a.attribute, Attribute::ProductName | Attribute::Sku));
    let groups = f
        .attributes
        .iter()
        .filter(|a| a.attribute == Attribute::Group)
        .flat_map(|a| a.include.iter().chain(&a.exclude))
        .filter(|v| !v.trim().is_empty())
        .cloned()
        .collect();
    (skus, groups)
}

/// Does a group's display name match one of these filter values?
pub fn group_named(patterns: &[String], display_name: &str) -> bool {
    patterns
        .iter()
        .filter_map(|p| Pattern::new(p))
        .any(|p| p.matches(display_name.trim()))
}

/// Data from other data sets that attribute filters test against.
#[derive(Debug, Clone, Default)]
pub struct FilterData {
    /// The tenant's SKUs: (sku id, part number, product name).
    pub skus: Vec<(String, String, String)>,
    /// The groups a group filter names: (display name, member object ids).
    pub groups: Vec<(String, IdSet)>,
}

/// Is a person a guest account?
pub fn is_guest(p: &Person) -> bool {
    p.user_type.trim().eq_ignore_ascii_case("guest")
}

/// The domain of a mail address, without a trailing dot.
fn mail_domain(mail: &str) -> Option<&str> {
    let (_, domain) = mail.trim().rsplit_once('@')?;
    let d = domain.trim_end_matches('.');
    (!d.is_empty()).then_some(d)
}

/// The values of a multi-valued attribute (licences, groups); `None` for the others.
fn attribute_values<'a>(f: &'a Filter, p: &Person, a: Attribute) -> Option<Vec<&'a str>> {
    let values: Vec<&str> = match a {
        Attribute::Sku | Attribute::ProductName => p
            .licences
            .iter()
            .filter_map(|id| {
                f.data
                    .skus
                    .iter()
                    .find(|(sku, _, _)| sku.eq_ignore_ascii_case(id.trim()))
            })
            .map(|(_, part, name)| {
                if a == Attribute::Sku {
                    part.as_str()
                } else {
                    name.as_str()
                }
            })
            .collect(),
        Attribute::Group => f
            .data
            .groups
            .iter()
            .filter(|(_, members)| members.contains(&p.object_id))
            .map(|(name, _)| name.as_str())
            .collect(),
        _ => return None,
    };
    Some(if values.is_empty() { vec![""] } else { values })
}

fn attribute_value(p: &Person, a: Attribute) -> &str {
    let v = match a {
        Attribute::Country => &p.country,
        Attribute::UsageLocation => &p.usage_location,
        Attribute::Department => &p.department,
        Attribute::JobTitle => &p.job_title,
        Attribute::Office => &p.office_location,
        Attribute::Company => &p.company_name,
        // Multi-valued: see `attribute_values`.
        Attribute::ProductName | Attribute::Sku | Attribute::Group => &None,
    };
    v.as_deref().unwrap_or("").trim()
}

/// `Ok(())` when the filter takes the person, else the reason it leaves them out:
/// "enabled-only", "guest", "licensed-only", "domain" or "attribute:<name>".
pub fn decide(f: &Filter, p: &Person) -> Result<(), &'static str> {
    if f.enabled_only && !p.account_enabled {
        return Err("enabled-only");
    }
    if !f.include_guests && is_guest(p) {
        return Err("guest");
    }
    if f.licensed_only && p.licences.is_empty() {
        return Err("licensed-only");
    }
    if let Some(domains) = &f.domains {
        let ok = p
            .mail
            .as_deref()
            .and_then(mail_domain)
            .is_some_and(|d| domains.iter().any(|pat| pat.matches(d)));
        if !ok {
            return Err("domain");
        }
    }
    for rule in &f.attributes {
        // A multi-valued attribute matches when any of its values does.
        let hit = |pats: &[Pattern]| match attribute_values(f, p, rule.attribute) {
            Some(values) => values.iter().any(|v| pats.iter().any(|pat| pat.matches(v))),
            None => {
                let value = attribute_value(p, rule.attribute);
                pats.iter().any(|pat| pat.matches(value))
            }
        };
        if !rule.include.is_empty() && !hit(&rule.include) {
            return Err(rule.reason);
        }
        if hit(&rule.exclude) {
            return Err(rule.reason);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::person;
    use crate::types::AttributeFilter;

    fn filter(domains: &[&str]) -> AccountFilter {
        AccountFilter {
            domains: domains.iter().map(|s| s.to_string()).collect(),
            licensed_only: false,
            enabled_only: false,
            include_guests: true,
            attributes: vec![],
        }
    }

    fn attr(attribute: Attribute, include: &[&str], exclude: &[&str]) -> AttributeFilter {
        AttributeFilter {
            attribute,
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn with_mail(mail: Option<&str>) -> Person {
        let mut p = person(1);
        p.mail = mail.map(str::to_owned);
        p
    }

    fn check(f: &AccountFilter, p: &Person) -> Result<(), &'static str> {
        decide(&Filter::compile(f, FilterData::default()).unwrap(), p)
    }

    #[test]
    fn empty_or_star_domains_take_everyone_even_without_mail() {
        for d in [&[][..], &["*"], &["contoso.com", " * "]] {
            let f = filter(d);
            assert_eq!(check(&f, &with_mail(None)), Ok(()));
            assert_eq!(check(&f, &with_mail(Some("x@anything.example"))), Ok(()));
            assert_eq!(check(&f, &with_mail(Some("no-at-sign"))), Ok(()));
        }
    }

    #[test]
    fn named_domains_match_the_mail_domain() {
        let f = filter(&["Contoso.com.", "@fabrikam.com", "*.example.org"]);
        assert_eq!(check(&f, &with_mail(Some("a@contoso.com"))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some("A@CONTOSO.COM."))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some(" a@contoso.com "))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some("b@fabrikam.com"))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some("c@eu.example.org"))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some("c@example.org"))), Err("domain"));
        assert_eq!(
            check(&f, &with_mail(Some("a@sub.contoso.com"))),
            Err("domain")
        );
        assert_eq!(
            check(&f, &with_mail(Some("a@contoso.com.evil"))),
            Err("domain")
        );
        assert_eq!(check(&f, &with_mail(Some("contoso.com"))), Err("domain"));
        assert_eq!(check(&f, &with_mail(Some("a@"))), Err("domain"));
        assert_eq!(check(&f, &with_mail(Some(""))), Err("domain"));
        assert_eq!(check(&f, &with_mail(None)), Err("domain"));
        // The last @ decides ("quoted@local"@domain).
        assert_eq!(
            check(&f, &with_mail(Some("\"x@evil.com\"@contoso.com"))),
            Ok(())
        );
    }

    #[test]
    fn unicode_domains_compare_case_insensitively() {
        let f = filter(&["MÜNCHEN.de"]);
        assert_eq!(check(&f, &with_mail(Some("a@münchen.DE"))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some("a@München.de."))), Ok(()));
        assert_eq!(check(&f, &with_mail(Some("a@munchen.de"))), Err("domain"));
    }

    #[test]
    fn guests_use_the_mail_domain_not_the_ext_upn() {
        let mut g = with_mail(Some("john@partner.example"));
        g.user_principal_name = "john_partner.example#EXT#@contoso.onmicrosoft.com".into();
        g.user_type = "Guest".into();
        let mut f = filter(&["partner.example"]);
        assert_eq!(check(&f, &g), Ok(()));
        f.include_guests = false;
        assert_eq!(check(&f, &g), Err("guest"));
        f.domains = vec!["contoso.onmicrosoft.com".into()];
        f.include_guests = true;
        assert_eq!(check(&f, &g), Err("domain"));
        // An external *member* (#EXT# UPN, userType Member) is not a guest.
        let mut m = g.clone();
        m.user_type = "Member".into();
        let mut f = filter(&[]);
        f.include_guests = false;
        assert_eq!(check(&f, &m), Ok(()));
        m.user_type = "guest".into();
        assert_eq!(check(&f, &m), Err("guest"));
    }

    #[test]
    fn licensed_and_enabled_only() {
        let mut f = filter(&[]);
        f.licensed_only = true;
        f.enabled_only = true;
        let mut p = person(1);
        p.licences = vec!["sku".into()];
        assert_eq!(check(&f, &p), Ok(()));
        p.licences.clear();
        assert_eq!(check(&f, &p), Err("licensed-only"));
        p.account_enabled = false;
        assert_eq!(check(&f, &p), Err("enabled-only"));
    }

    #[test]
    fn attribute_include_exclude_and_wildcards() {
        let mut f = filter(&[]);
        f.attributes = vec![
            attr(
                Attribute::Department,
                &["Sales*", "*marketing*", "R&D"],
                &["*intern*"],
            ),
            attr(Attribute::Country, &[], &["France"]),
        ];
        let mut p = person(1);
        let dept = |p: &mut Person, v: Option<&str>| p.department = v.map(str::to_owned);
        for (v, want) in [
            (Some("Sales"), Ok(())),
            (Some("sales EMEA"), Ok(())),
            (Some("  SALES  "), Ok(())),
            (Some("Global Marketing Team"), Ok(())),
            (Some("marketing"), Ok(())),
            (Some("r&d"), Ok(())),
            (Some("R&D Labs"), Err("attribute:department")),
            (Some("Presales"), Err("attribute:department")),
            (Some("Sales interns"), Err("attribute:department")),
            (Some(""), Err("attribute:department")),
            (None, Err("attribute:department")),
        ] {
            dept(&mut p, v);
            assert_eq!(check(&f, &p), want, "{v:?}");
        }
        dept(&mut p, Some("Sales"));
        p.country = Some("france".into());
        assert_eq!(check(&f, &p), Err("attribute:country"));
        p.country = None;
        assert_eq!(check(&f, &p), Ok(()));
    }

    #[test]
    fn attribute_wildcards_and_unicode() {
        let mut f = filter(&[]);
        f.attributes = vec![attr(Attribute::Office, &["*"], &[])];
        let mut p = person(1);
        p.office_location = None;
        assert_eq!(check(&f, &p), Ok(()), "* matches even a missing value");
        f.attributes = vec![attr(Attribute::Office, &["ZÜRICH*", "a*b*c"], &[])];
        for (v, ok) in [
            ("Zürich HQ", true),
            ("zürich", true),
            ("Zurich", false),
            ("aXbYc", true),
            ("abc", true),
            ("ab", false),
            ("a*b*cd", false),
            ("東京", false),
        ] {
            p.office_location = Some(v.into());
            assert_eq!(check(&f, &p).is_ok(), ok, "{v}");
        }
        f.attributes = vec![attr(Attribute::JobTitle, &["*ö"], &[])];
        p.job_title = Some("Bö".into());
        assert_eq!(check(&f, &p), Ok(()));
        p.job_title = Some("BÖ".into());
        assert_eq!(check(&f, &p), Ok(()));
        p.job_title = Some("Bo".into());
        assert_eq!(check(&f, &p), Err("attribute:job-title"));
    }

    #[test]
    fn all_person_attributes_are_filterable() {
        for (a, set) in [
            (
                Attribute::Country,
                (|p: &mut Person| p.country = Some("X".into())) as fn(&mut Person),
            ),
            (Attribute::UsageLocation, |p| {
                p.usage_location = Some("X".into())
            }),
            (Attribute::Department, |p| p.department = Some("X".into())),
            (Attribute::JobTitle, |p| p.job_title = Some("X".into())),
            (Attribute::Office, |p| p.office_location = Some("X".into())),
            (Attribute::Company, |p| p.company_name = Some("X".into())),
        ] {
            let mut f = filter(&[]);
            f.attributes = vec![attr(a, &["x"], &[])];
            let mut p = person(1);
            p.country = None;
            p.usage_location = None;
            p.department = None;
            p.job_title = None;
            p.office_location = None;
            p.company_name = None;
            assert_eq!(check(&f, &p), Err(attribute_reason(a)));
            set(&mut p);
            assert_eq!(check(&f, &p), Ok(()), "{a:?}");
        }
    }

    fn data() -> FilterData {
        let mut sales = IdSet::default();
        sales.insert(&person(1).object_id);
        sales.insert(&person(2).object_id);
        let mut pilots = IdSet::default();
        pilots.insert(&person(2).object_id);
        FilterData {
            skus: vec![
                ("aaaa".into(), "SPE_E3".into(), "Microsoft 365 E3".into()),
                (
                    "BBBB".into(),
                    "FLOW_FREE".into(),
                    "Microsoft Power Automate Free".into(),
                ),
            ],
            groups: vec![("Sales".into(), sales), ("Teams Pilot".into(), pilots)],
        }
    }

    #[test]
    fn licence_attributes_match_any_assigned_sku() {
        let mut e3 = person(1);
        e3.licences = vec!["AAAA".into(), "bbbb".into()];
        let mut free = person(2);
        free.licences = vec!["bbbb".into()];
        let mut none = person(3);
        none.licences = vec![];
        let mut f = filter(&[]);
        f.attributes = vec![attr(Attribute::Sku, &["spe_*"], &[])];
        let c = Filter::compile(&f, data()).unwrap();
        assert_eq!(decide(&c, &e3), Ok(()));
        assert_eq!(decide(&c, &free), Err("attribute:sku"));
        assert_eq!(decide(&c, &none), Err("attribute:sku"));
        // Exclude wins when any licence matches it.
        f.attributes = vec![attr(Attribute::ProductName, &[], &["*power automate free"])];
        let c = Filter::compile(&f, data()).unwrap();
        assert_eq!(decide(&c, &e3), Err("attribute:product-name"));
        assert_eq!(decide(&c, &none), Ok(()));
    }

    #[test]
    fn group_attributes_test_membership_and_combine_with_and() {
        let mut f = filter(&[]);
        f.attributes = vec![
            attr(Attribute::Group, &["sales", "teams pilot"], &[]),
            attr(Attribute::Group, &[], &["Teams*"]),
        ];
        let c = Filter::compile(&f, data()).unwrap();
        assert_eq!(decide(&c, &person(1)), Ok(()));
        assert_eq!(decide(&c, &person(2)), Err("attribute:group"));
        assert_eq!(decide(&c, &person(3)), Err("attribute:group"));
        assert_eq!(
            needs(&f),
            (
                false,
                vec!["sales".to_string(), "teams pilot".into(), "Teams*".into()]
            )
        );
        assert!(group_named(&needs(&f).1, "TEAMS PILOT"));
        assert!(!group_named(&needs(&f).1, "Marketing"));
    }

    #[test]
    fn the_fingerprint_follows_rules_and_group_members() {
        let mut f = filter(&[]);
        f.attributes = vec![attr(Attribute::Group, &["sales"], &[])];
        let a = Filter::compile(&f, data()).unwrap().fingerprint(&f);
        assert_eq!(a, Filter::compile(&f, data()).unwrap().fingerprint(&f));
        let mut more = data();
        more.groups[0].1.insert("someone-new");
        assert_ne!(a, Filter::compile(&f, more).unwrap().fingerprint(&f));
        f.licensed_only = true;
        assert_ne!(a, Filter::compile(&f, data()).unwrap().fingerprint(&f));
        assert!(matches!(
            Filter::compile(&filter(&["", " "]), FilterData::default()),
            Err(SyncError::InvalidRequest(_))
        ));
    }

    #[test]
    fn empty_filter_values_are_ignored() {
        let mut f = filter(&[]);
        f.attributes = vec![attr(Attribute::Department, &["", "  "], &[""])];
        let mut p = person(1);
        p.department = None;
        assert_eq!(check(&f, &p), Ok(()));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob(b"", b"", true));
        assert!(!glob(b"", b"a", true));
        assert!(glob(b"**", b"", true));
        assert!(glob(b"a**b", b"aXXb", true));
        assert!(glob(b"*a*a*a*b", b"aaaaaaaaaaaaaaaaab", true));
        assert!(!glob(b"*a*a*a*b", b"aaaaaaaaaaaaaaaaaa", true));
        assert!(glob(b"abc", b"ABC", true));
        assert!(!glob(b"abc", b"ABC", false));
    }
}
