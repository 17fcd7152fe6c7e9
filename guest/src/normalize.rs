//! Matching keys: the normalised forms by which the engine recognises the same person
//! (email address, userPrincipalName, a B2B guest's own address) or the same organization
//! (its name) on both sides of a sync. Pure functions.
//!
//! Every choice here errs towards a missed match rather than a wrong one: an admin can link
//! two records that were missed, but a wrong merge mixes two people's (or companies') data.

/// Zero-width characters that come along when an address is pasted from a document or a
/// web page. They are not Unicode White_Space, so `str::trim` alone would keep them.
fn is_padding(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// The matching key of an email address, or None when it is not an address.
///
/// - Surrounding whitespace (any Unicode White_Space, and zero-width padding) is trimmed,
///   and a `mailto:` prefix (any case) is removed.
/// - The whole address is lower-cased with full Unicode lowercase. RFC 5321 lets a server
///   treat local parts case-sensitively, but Exchange Online and Entra ID do not, and the
///   platforms we sync to compare addresses case-insensitively.
/// - One trailing dot on the domain (the DNS root, `example.com.`) is dropped.
/// - The domain is split off at the last `@` (a quoted local part may hold an `@`); an
///   empty local part or domain gives None.
/// - Plus-addressing is kept: `jane+lms@x.com` and `jane@x.com` are different keys. A `+`
///   is legal in a local part and not every mail system treats it as a sub-address, so
///   folding it away could merge two people, which is worse than missing one match.
/// - Internationalised domains are lower-cased as text; no IDNA (punycode) conversion, so
///   `bücher.example` and `xn--bcher-kva.example` are different keys.
pub fn email_key(raw: &str) -> Option<String> {
    address_key(raw)
}

/// The matching key of a userPrincipalName: the same normalisation as [`email_key`] (a UPN
/// has the form of an address; Entra ID compares UPNs case-insensitively).
pub fn upn_key(raw: &str) -> Option<String> {
    address_key(raw)
}

fn address_key(raw: &str) -> Option<String> {
    let mut s = raw.trim_matches(is_padding);
    if let Some(rest) = strip_prefix_ignore_ascii_case(s, "mailto:") {
        s = rest.trim_matches(is_padding);
    }
    // Nearly every address is ASCII: one allocation, no Unicode case tables.
    let mut folded = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    };
    let at = folded.rfind('@')?;
    // The last character is in the domain unless it is the `@` itself.
    if folded.len() > at + 1 && folded.ends_with('.') {
        folded.pop();
    }
    if at == 0 || folded.len() == at + 1 {
        return None;
    }
    Some(folded)
}

fn strip_prefix_ignore_ascii_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The marker Entra ID puts in the userPrincipalName of an external (B2B) user.
const EXTERNAL_MARKER: &str = "#EXT#";

/// For a B2B guest's userPrincipalName, the guest's own address as an [`email_key`]; None
/// for any other UPN.
///
/// Entra ID writes the UPN of a B2B user whose address is `alias@theirdomain` as
/// `alias_theirdomain#EXT#@yourdomain` (Microsoft Learn, "How Application Provisioning works
/// in Microsoft Entra ID", section "B2B (guest) users":
/// <https://learn.microsoft.com/en-us/entra/identity/app-provisioning/how-provisioning-works#b2b-guest-users>).
/// So `alice_contoso.com#EXT#@fabrikam.onmicrosoft.com` gives `alice@contoso.com`.
///
/// The marker is matched in any case and must end the part before the last `@`. The *last*
/// `_` before it separates alias and domain: a host name has no `_`, while an alias may
/// (`first_last_contoso.com#EXT#@…` is `first_last@contoso.com`). A "domain" without a dot
/// (seen for some personal Microsoft accounts, `user_example_com#EXT#@…`) gives None rather
/// than a guessed address.
pub fn guest_external_email(upn: &str) -> Option<String> {
    let upn = upn.trim_matches(is_padding);
    let (local, tenant_domain) = upn.rsplit_once('@')?;
    if tenant_domain.is_empty() {
        return None;
    }
    let cut = local.len().checked_sub(EXTERNAL_MARKER.len())?;
    let (prefix, marker) = (local.get(..cut)?, &local[cut..]);
    if !marker.eq_ignore_ascii_case(EXTERNAL_MARKER) {
        return None;
    }
    let (alias, domain) = prefix.rsplit_once('_')?;
    if alias.is_empty() || alias.contains(['@', '#']) || !is_plausible_domain(domain) {
        return None;
    }
    email_key(&format!("{alias}@{domain}"))
}

/// A dotted name with no empty label (one trailing root dot allowed) and nothing that
/// cannot be in a host name's text form.
fn is_plausible_domain(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && !domain.contains(|c: char| c == '@' || c == '#' || is_padding(c))
}

/// Legal-form words dropped from the end of an organization name, as tokens after
/// [`organization_name_key`]'s folding (so "S.A." is `sa`, "L.L.C." is `llc`). Only
/// legal forms: words such as "Group" or "Holdings" name different companies.
const LEGAL_SUFFIXES: &[&[&str]] = &[
    &["inc"],
    &["incorporated"],
    &["llc"],
    &["ltd"],
    &["ltda"],
    &["limited"],
    &["gmbh"],
    &["ag"],
    &["kg"],
    &["kgaa"],
    &["ohg"],
    &["gbr"],
    &["ev"],
    &["ug"],
    &["ug", "haftungsbeschränkt"],
    &["se"],
    &["sa"],
    &["sas"],
    &["sarl"],
    &["sa", "de", "cv"],
    &["sl"],
    &["slu"],
    &["srl"],
    &["spa"],
    &["sro"],
    &["sp", "zoo"],
    &["kft"],
    &["bv"],
    &["bvba"],
    &["nv"],
    &["pty"],
    &["pte"],
    &["pvt"],
    &["plc"],
    &["corp"],
    &["corporation"],
    &["co"],
    &["company"],
    &["llp"],
    &["lp"],
    &["oy"],
    &["oyj"],
    &["ab"],
    &["as"],
    &["asa"],
    &["aps"],
    &["kk"],
    &["kabushiki", "kaisha"],
    &["sdn"],
    &["bhd"],
];

/// The key for matching organizations by name: case-folded words, with legal forms and a
/// leading "the" dropped. "Contoso, Inc.", "CONTOSO INC" and "Contoso" share the key
/// `contoso`; "Fabrikam GmbH & Co. KG" has `fabrikam`.
///
/// - Full Unicode lowercase; `&` becomes the word `and`; apostrophes are removed
///   ("McDonald's" = "McDonalds"); any other character that is not a letter, digit or
///   combining mark separates words, and the words are joined by single spaces.
/// - Runs of single-character words are joined, so dotted initials and legal forms match
///   their plain spelling: "A.B.C." is `abc`, "L.L.C." is `llc`, "S.A." is `sa`.
/// - A leading "the" is dropped, then legal forms ([`LEGAL_SUFFIXES`]) are dropped from the
///   end repeatedly, each with an `and` before it ("& Co."). A name is never reduced to
///   nothing: "Company Ltd" is `company`, "Inc." is `inc`.
/// - No accent folding: "Müller" is `müller`, not `muller` (similarity still scores the
///   two close). Empty or punctuation-only input gives "".
pub fn organization_name_key(name: &str) -> String {
    let mut words = join_initials(split_words(&name.to_lowercase()));
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    while let Some(n) = LEGAL_SUFFIXES
        .iter()
        .filter(|suffix| suffix.len() < words.len() && ends_with(&words, suffix))
        .map(|suffix| suffix.len())
        .max()
    {
        words.truncate(words.len() - n);
        if words.len() > 1 && words.last().is_some_and(|w| w == "and") {
            words.pop();
        }
    }
    words.join(" ")
}

fn ends_with(words: &[String], suffix: &[&str]) -> bool {
    words.len() >= suffix.len()
        && words[words.len() - suffix.len()..]
            .iter()
            .zip(suffix)
            .all(|(w, s)| w == s)
}

fn split_words(folded: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in folded.chars() {
        match c {
            // Dropped, not a break: "McDonald's" is one word.
            '\'' | '\u{2019}' | '\u{02BC}' | '`' => {}
            '&' => {
                words.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
                words.push("and".to_owned());
            }
            // Combining marks stay in the word, so a decomposed "u\u{308}" does not split it.
            c if c.is_alphanumeric() || is_combining_mark(c) => word.push(c),
            _ => words.extend((!word.is_empty()).then(|| std::mem::take(&mut word))),
        }
    }
    words.extend((!word.is_empty()).then_some(word));
    words
}

/// The common combining-mark blocks (std has no general-category lookup).
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

fn join_initials(words: Vec<String>) -> Vec<String> {
    let single = |w: &str| w.chars().filter(|c| !is_combining_mark(*c)).count() == 1;
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut run = String::new();
    let mut run_len = 0;
    for word in words {
        if single(&word) {
            run.push_str(&word);
            run_len += 1;
        } else {
            // A lone initial stays a word of its own; only runs are joined.
            if run_len > 0 {
                out.push(std::mem::take(&mut run));
                run_len = 0;
            }
            out.push(word);
        }
    }
    if run_len > 0 {
        out.push(run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Option<String> {
        email_key(s)
    }

    #[test]
    fn email_key_folds_case_and_trims() {
        assert_eq!(
            key("Jane.Doe@Contoso.COM").as_deref(),
            Some("jane.doe@contoso.com")
        );
        assert_eq!(
            key("  jane@contoso.com\t\n").as_deref(),
            Some("jane@contoso.com")
        );
        // NBSP, ideographic space, zero-width space and BOM around a pasted address.
        assert_eq!(
            key("\u{00A0}\u{3000}\u{200B}\u{FEFF}jane@contoso.com\u{00A0}\u{2060}").as_deref(),
            Some("jane@contoso.com")
        );
    }

    #[test]
    fn email_key_full_unicode_lowercase() {
        assert_eq!(key("JÖRG@MÜLLER.DE").as_deref(), Some("jörg@müller.de"));
        assert_eq!(key("ΣΟΦΙΑ@EXAMPLE.GR").as_deref(), Some("σοφια@example.gr"));
        // Full mapping, not per-char ASCII: dotted capital I lower-cases to "i̇".
        assert_eq!(key("İ@x.tr").as_deref(), Some("i\u{307}@x.tr"));
    }

    #[test]
    fn email_key_idn_domain_is_text_not_punycode() {
        assert_eq!(
            key("info@BÜCHER.example").as_deref(),
            Some("info@bücher.example")
        );
        assert_ne!(
            key("info@bücher.example"),
            key("info@xn--bcher-kva.example")
        );
        assert_eq!(
            key("info@XN--BCHER-KVA.example").as_deref(),
            Some("info@xn--bcher-kva.example")
        );
    }

    #[test]
    fn email_key_drops_one_trailing_domain_dot() {
        assert_eq!(
            key("jane@contoso.com.").as_deref(),
            Some("jane@contoso.com")
        );
        assert_eq!(key("jane@contoso.com"), key("JANE@CONTOSO.COM."));
        assert_eq!(key("jane@."), None);
    }

    #[test]
    fn email_key_strips_mailto_in_any_case() {
        assert_eq!(
            key("mailto:jane@contoso.com").as_deref(),
            Some("jane@contoso.com")
        );
        assert_eq!(
            key(" MailTo: Jane@Contoso.com ").as_deref(),
            Some("jane@contoso.com")
        );
        assert_eq!(key("mailto:"), None);
        // Only a prefix: "mailto:" elsewhere is left alone.
        assert_eq!(key("x-mailto:a@b.c").as_deref(), Some("x-mailto:a@b.c"));
    }

    #[test]
    fn email_key_keeps_plus_addressing() {
        // A deliberate choice: two keys, so two people are never merged by a sub-address.
        assert_eq!(
            key("Jane+LMS@contoso.com").as_deref(),
            Some("jane+lms@contoso.com")
        );
        assert_ne!(key("jane+lms@contoso.com"), key("jane@contoso.com"));
    }

    #[test]
    fn email_key_rejects_non_addresses() {
        for raw in [
            "",
            "   ",
            "\u{00A0}\u{200B}",
            "jane",
            "jane.contoso.com",
            "@contoso.com",
            "jane@",
            " @ ",
            "mailto:@x.com",
        ] {
            assert_eq!(key(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn email_key_splits_at_the_last_at() {
        assert_eq!(
            key("\"a@b\"@Example.com").as_deref(),
            Some("\"a@b\"@example.com")
        );
    }

    #[test]
    fn upn_key_normalises_like_email() {
        assert_eq!(
            upn_key(" Jane@Contoso.OnMicrosoft.com ").as_deref(),
            Some("jane@contoso.onmicrosoft.com")
        );
        assert_eq!(
            upn_key("Alice_Contoso.com#EXT#@Fabrikam.onmicrosoft.com").as_deref(),
            Some("alice_contoso.com#ext#@fabrikam.onmicrosoft.com")
        );
        assert_eq!(upn_key("no-at-sign"), None);
        assert_eq!(upn_key(""), None);
    }

    #[test]
    fn guest_external_email_from_b2b_upn() {
        assert_eq!(
            guest_external_email("alice_contoso.com#EXT#@fabrikam.onmicrosoft.com").as_deref(),
            Some("alice@contoso.com")
        );
        // Marker in any case; the result is an email key.
        assert_eq!(
            guest_external_email(" Alice_Contoso.COM#ext#@fabrikam.onmicrosoft.com ").as_deref(),
            Some("alice@contoso.com")
        );
        assert_eq!(
            guest_external_email("bob_sub.example.co.uk#Ext#@fabrikam.com").as_deref(),
            Some("bob@sub.example.co.uk")
        );
    }

    #[test]
    fn guest_external_email_alias_with_underscores() {
        assert_eq!(
            guest_external_email("first_last_contoso.com#EXT#@fabrikam.onmicrosoft.com").as_deref(),
            Some("first_last@contoso.com")
        );
        assert_eq!(
            guest_external_email("_a__b_contoso.com#EXT#@f.com").as_deref(),
            Some("_a__b@contoso.com")
        );
        // Plus-addressing survives, like everywhere else.
        assert_eq!(
            guest_external_email("jane+x_contoso.com#EXT#@f.com").as_deref(),
            Some("jane+x@contoso.com")
        );
    }

    #[test]
    fn guest_external_email_none_for_other_upns() {
        for upn in [
            "",
            "alice@contoso.com",
            "alice_contoso.com@fabrikam.com",
            // Marker not right before the @.
            "alice_contoso.com#EXT#x@fabrikam.com",
            "#EXT#alice_contoso.com@fabrikam.com",
            // No tenant domain, or no @ at all.
            "alice_contoso.com#EXT#@",
            "alice_contoso.com#EXT#",
            // No "_" to split on, or an empty side.
            "alicecontoso.com#EXT#@fabrikam.com",
            "_contoso.com#EXT#@fabrikam.com",
            "alice_#EXT#@fabrikam.com",
            "#EXT#@fabrikam.com",
            // Not a dotted domain: no guessing.
            "user_example_com#EXT#@fabrikam.onmicrosoft.com",
            "alice_.com#EXT#@f.com",
            "alice_contoso..com#EXT#@f.com",
            // Nested markers.
            "a_b.com#EXT#_c.com#EXT#@f.com",
        ] {
            assert_eq!(guest_external_email(upn), None, "{upn:?}");
        }
    }

    #[test]
    fn guest_external_email_unicode_is_safe() {
        // Multi-byte characters right before the marker must not split a char.
        assert_eq!(guest_external_email("é#EXT#@f.com"), None);
        assert_eq!(guest_external_email("ü@x"), None);
        assert_eq!(
            guest_external_email("JÖRG_MÜLLER.DE#EXT#@f.com").as_deref(),
            Some("jörg@müller.de")
        );
    }

    fn org(s: &str) -> String {
        organization_name_key(s)
    }

    #[test]
    fn org_key_drops_legal_forms_and_punctuation() {
        assert_eq!(org("Contoso, Inc."), "contoso");
        assert_eq!(org("CONTOSO INC"), "contoso");
        assert_eq!(org("Contoso"), "contoso");
        assert_eq!(org("Contoso Incorporated"), "contoso");
        assert_eq!(org("Contoso L.L.C."), "contoso");
        assert_eq!(org("Contoso LLC"), "contoso");
        assert_eq!(org("Contoso Pty Ltd"), "contoso");
        assert_eq!(org("Contoso Pty. Limited"), "contoso");
        assert_eq!(org("Contoso S.A."), "contoso");
        assert_eq!(org("Contoso SAS"), "contoso");
        assert_eq!(org("Contoso B.V."), "contoso");
        assert_eq!(org("Contoso N.V."), "contoso");
        assert_eq!(org("Contoso PLC"), "contoso");
        assert_eq!(org("Contoso Corp."), "contoso");
        assert_eq!(org("Contoso Corporation"), "contoso");
        assert_eq!(org("Contoso Co."), "contoso");
        assert_eq!(org("Contoso Company"), "contoso");
        assert_eq!(org("Contoso LLP"), "contoso");
        assert_eq!(org("Contoso, L.P."), "contoso");
        assert_eq!(org("Contoso Oy"), "contoso");
        assert_eq!(org("Contoso AB"), "contoso");
        assert_eq!(org("Contoso AS"), "contoso");
        assert_eq!(org("Contoso ApS"), "contoso");
        assert_eq!(org("Contoso S.r.l."), "contoso");
        assert_eq!(org("Contoso S.p.A."), "contoso");
        assert_eq!(org("Contoso K.K."), "contoso");
        assert_eq!(org("Contoso Sp. z o.o."), "contoso");
        assert_eq!(org("Contoso S.A. de C.V."), "contoso");
        assert_eq!(org("Contoso UG (haftungsbeschränkt)"), "contoso");
        assert_eq!(org("Contoso Sdn. Bhd."), "contoso");
    }

    #[test]
    fn org_key_gmbh_and_co_kg() {
        assert_eq!(org("Fabrikam GmbH & Co. KG"), "fabrikam");
        assert_eq!(org("Fabrikam GmbH & Co. KG"), org("Fabrikam"));
        assert_eq!(org("Fabrikam and Company"), "fabrikam");
    }

    #[test]
    fn org_key_unicode() {
        assert_eq!(org("Müller AG"), "müller");
        assert_eq!(org("MÜLLER AG"), org("müller"));
        // A decomposed ü (u + combining diaeresis) stays one word.
        assert_eq!(org("Mu\u{308}ller AG"), "mu\u{308}ller");
        assert_eq!(org("Ōkami K.K."), "ōkami");
        assert_eq!(org("株式会社"), "株式会社");
    }

    #[test]
    fn org_key_initials_join() {
        assert_eq!(org("A.B.C. Ltd"), "abc");
        assert_eq!(org("A.B.C. Ltd"), org("ABC Limited"));
        assert_eq!(org("A B C"), "abc");
        // A lone initial stays a word.
        assert_eq!(org("Plan B Ltd"), "plan b");
        assert_eq!(org("AT&T Inc."), "at and t");
    }

    #[test]
    fn org_key_ampersand_apostrophes_whitespace() {
        assert_eq!(org("Marks & Spencer plc"), "marks and spencer");
        assert_eq!(org("Marks and Spencer"), org("Marks & Spencer"));
        assert_eq!(org("McDonald's"), "mcdonalds");
        assert_eq!(org("McDonald\u{2019}s Corp"), "mcdonalds");
        assert_eq!(org("  Tailspin \t Toys\n"), "tailspin toys");
        assert_eq!(org("Coca-Cola/Bottling"), "coca cola bottling");
    }

    #[test]
    fn org_key_leading_the() {
        assert_eq!(org("The Contoso Company"), "contoso");
        assert_eq!(org("THE Contoso"), org("Contoso"));
        assert_eq!(org("The"), "the");
        assert_eq!(org("Theater Ltd"), "theater");
    }

    #[test]
    fn org_key_never_empty_from_a_name() {
        assert_eq!(org("Company Ltd"), "company");
        assert_eq!(org("Inc."), "inc");
        assert_eq!(org("Ltd"), "ltd");
        assert_eq!(org("GmbH & Co. KG"), "gmbh");
        assert_eq!(org("Co and Co"), "co");
        assert_eq!(org("The Company"), "company");
    }

    #[test]
    fn org_key_empty_input() {
        assert_eq!(org(""), "");
        assert_eq!(org("   \t\n\u{00A0}"), "");
        assert_eq!(org("..., !!"), "");
        assert_eq!(org("&"), "and");
    }

    #[test]
    fn org_key_suffix_only_at_the_end() {
        assert_eq!(org("Limited Brands"), "limited brands");
        assert_eq!(org("Inc Magazine Inc"), "inc magazine");
    }
}
