//! Matching accounts to platform records when no record is linked to the account's
//! object id yet: by normalised email, then by user principal name (or the other way
//! round, per the tenant's match key). A record of an account that is gone (or never
//! linked) is taken over (a link); a record another active account holds, or one several
//! new accounts claim at once, is a conflict: nobody is merged into it and nothing is
//! created beside it, so a platform never ends up with two records for one person.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::BuildHasherDefault;

use crate::ids::IdHasher;

use crate::normalize::{email_key, guest_external_email, upn_key};
use crate::types::{
    MatchConflict, MatchKey, Person, PersonKey, PersonStatus, PersonUpsert, StoredPerson,
};

/// What becomes of one unlinked account.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// No record matches: a new one.
    Create,
    /// This record (of a gone or unlinked account) becomes the account's.
    Link(Box<StoredPerson>),
    /// Left out; the conflict names the accounts involved.
    Conflict(MatchConflict),
}

/// An account's normalised match keys: exactly what its `person-key.email` and
/// `person-key.user-principal-name` lookups use, and what every upsert of it carries for
/// the store to index ([`MatchKeys::upsert_fields`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchKeys {
    /// Of `mail`, or else of a B2B guest's own address.
    pub email: Option<String>,
    /// None when the userPrincipalName is not of the form of an address.
    pub upn: Option<String>,
}

impl MatchKeys {
    pub fn of(p: &Person) -> Self {
        Self {
            email: p
                .mail
                .as_deref()
                .and_then(email_key)
                .or_else(|| guest_external_email(&p.user_principal_name)),
            upn: upn_key(&p.user_principal_name),
        }
    }

    /// The lookup keys, in the order the match key tries them.
    pub fn lookups(&self, key: MatchKey) -> Vec<PersonKey> {
        let email = self.email.clone().map(PersonKey::Email);
        let upn = self.upn.clone().map(PersonKey::UserPrincipalName);
        match key {
            MatchKey::Email => email.into_iter().chain(upn).collect(),
            MatchKey::UserPrincipalName => upn.into_iter().chain(email).collect(),
        }
    }

    /// The keys as [`tagged`] pairs them.
    pub fn tagged(&self) -> impl Iterator<Item = (u8, &str)> {
        let email = self.email.as_deref().map(|k| (EMAIL_TAG, k));
        let upn = self.upn.as_deref().map(|k| (UPN_TAG, k));
        email.into_iter().chain(upn)
    }

    /// `person-upsert.email-key` and `upn-key`. The WIT's `upn-key` is a plain string: a
    /// UPN without a key (not of the form of an address; Entra ID never issues one) gives
    /// "", which no lookup asks for, so the record is found by object id and email only.
    pub fn upsert_fields(self) -> (Option<String>, String) {
        (self.email, self.upn.unwrap_or_default())
    }

    /// The keys an upsert carries (the inverse of [`MatchKeys::upsert_fields`]).
    pub fn carried(u: &PersonUpsert) -> Self {
        Self {
            email: u.email_key.clone(),
            upn: (!u.upn_key.is_empty()).then(|| u.upn_key.clone()),
        }
    }
}

/// The normalised keys of an account, in the order the match key tries them: email
/// (`mail`, or a guest's external address) and user principal name.
pub fn keys(p: &Person, key: MatchKey) -> Vec<PersonKey> {
    MatchKeys::of(p).lookups(key)
}

/// The text of a key, for messages and conflicts.
pub fn key_text(k: &PersonKey) -> &str {
    match k {
        PersonKey::ObjectId(s) | PersonKey::Email(s) | PersonKey::UserPrincipalName(s) => s,
    }
}

/// Accounts by what they claim (deterministic hashing: no `wasi:random` import).
type Index<K> = HashMap<K, Claimants, BuildHasherDefault<IdHasher>>;

/// The accounts (by position) that claim one record or key, in order. Nearly always one:
/// a list holds the others only when there are some, so that indexing a page costs no
/// allocation per account.
struct Claimants {
    first: usize,
    more: Vec<usize>,
}

impl Claimants {
    /// Adds account `i` to the claimants of `key`.
    fn add<K: Eq + std::hash::Hash>(index: &mut Index<K>, key: K, i: usize) {
        match index.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().more.push(i),
            Entry::Vacant(e) => {
                e.insert(Claimants {
                    first: i,
                    more: Vec::new(),
                });
            }
        }
    }

    /// The claimants other than account `i`.
    fn others(&self, i: usize) -> Vec<usize> {
        std::iter::once(self.first)
            .chain(self.more.iter().copied())
            .filter(|&o| o != i)
            .collect()
    }
}

/// The tags [`tagged`] gives object ids, emails and user principal names.
const OBJECT_ID_TAG: u8 = 0;
const EMAIL_TAG: u8 = 1;
const UPN_TAG: u8 = 2;

/// An object id as [`tagged`] pairs it (without building a [`PersonKey`]).
pub fn tagged_id(id: &str) -> (u8, &str) {
    (OBJECT_ID_TAG, id)
}

/// A key as a hashable pair: its kind and its text.
pub fn tagged(k: &PersonKey) -> (u8, &str) {
    let tag = match k {
        PersonKey::ObjectId(_) => OBJECT_ID_TAG,
        PersonKey::Email(_) => EMAIL_TAG,
        PersonKey::UserPrincipalName(_) => UPN_TAG,
    };
    (tag, key_text(k))
}

/// The key a [`tagged`] pair stands for.
pub fn untagged((tag, text): (u8, &str)) -> PersonKey {
    let text = text.to_owned();
    match tag {
        EMAIL_TAG => PersonKey::Email(text),
        UPN_TAG => PersonKey::UserPrincipalName(text),
        // OBJECT_ID_TAG, the only other tag `tagged` gives.
        _ => PersonKey::ObjectId(text),
    }
}

/// Where an account's keys lead.
enum Target {
    /// The first key that finds a record of another account: that record, by that key.
    Record(Box<StoredPerson>, usize),
    New,
}

/// Decides every unlinked account of a page at once. `keys[i]` are account i's keys (from
/// [`keys`]); `found[i][j]` is the record the store found for `keys[i][j]`.
pub fn resolve(
    accounts: &[&Person],
    keys: &[Vec<PersonKey>],
    found: Vec<Vec<Option<StoredPerson>>>,
) -> Vec<Claim> {
    let targets: Vec<Target> = accounts
        .iter()
        .zip(found)
        .map(|(a, found)| {
            found
                .into_iter()
                .enumerate()
                .find_map(|(j, r)| {
                    r.filter(|r| r.person.object_id != a.object_id)
                        .map(|r| Target::Record(Box::new(r), j))
                })
                .unwrap_or(Target::New)
        })
        .collect();

    // Who claims each record, and which new accounts carry each key: rivals are looked up,
    // not searched for (a page holds up to 999 accounts).
    let mut by_record: Index<&str> = Index::default();
    let mut by_new_key: Index<(u8, &str)> =
        Index::with_capacity_and_hasher(2 * accounts.len(), Default::default());
    for (i, target) in targets.iter().enumerate() {
        match target {
            Target::Record(r, _) => Claimants::add(&mut by_record, r.person.object_id.as_str(), i),
            Target::New => {
                for k in &keys[i] {
                    Claimants::add(&mut by_new_key, tagged(k), i);
                }
            }
        }
    }
    let others = |list: Option<&Claimants>, i: usize| -> Vec<usize> {
        list.map(|l| l.others(i)).unwrap_or_default()
    };

    let mut claims = Vec::with_capacity(accounts.len());
    for (i, target) in targets.iter().enumerate() {
        let me = accounts[i];
        let claim = match target {
            &Target::Record(ref record, j) => {
                let key = key_text(&keys[i][j]).to_owned();
                let rivals = others(by_record.get(record.person.object_id.as_str()), i);
                if !rivals.is_empty() {
                    let mut ids = vec![me.object_id.clone()];
                    ids.extend(rivals.iter().map(|&o| accounts[o].object_id.clone()));
                    Claim::Conflict(MatchConflict {
                        message: format!(
                            "{} accounts ({}) match the record of {} by {key}; none was \
                             linked to it. Give all but one of them another email and user \
                             principal name in Entra ID.",
                            ids.len(),
                            names(std::iter::once(me).chain(rivals.iter().map(|&o| accounts[o]))),
                            record_name(record)
                        ),
                        key,
                        object_ids: ids,
                    })
                } else if record.status == PersonStatus::Active
                    && !record.person.object_id.is_empty()
                {
                    Claim::Conflict(MatchConflict {
                        message: format!(
                            "{} and the active account {} both claim {key}; the platform \
                             record stays with {} and {} was not imported. Give one of them \
                             another address in Entra ID (or, when {} was deleted, the next \
                             sync links its record to {}).",
                            me.user_principal_name,
                            record.person.user_principal_name,
                            record.person.user_principal_name,
                            me.user_principal_name,
                            record.person.user_principal_name,
                            me.user_principal_name
                        ),
                        key,
                        object_ids: vec![record.person.object_id.clone(), me.object_id.clone()],
                    })
                } else {
                    Claim::Link(record.clone())
                }
            }
            Target::New => {
                // New accounts sharing a key with each other: neither is created.
                let shared = keys[i].iter().find_map(|k| {
                    let rivals = others(by_new_key.get(&tagged(k)), i);
                    (!rivals.is_empty()).then_some((k, rivals))
                });
                match shared {
                    Some((k, rivals)) => {
                        let mut ids = vec![me.object_id.clone()];
                        ids.extend(rivals.iter().map(|&o| accounts[o].object_id.clone()));
                        Claim::Conflict(MatchConflict {
                            message: format!(
                                "{} new accounts ({}) share {}; none was imported, so that \
                                 no person gets two records. Give all but one of them \
                                 another address in Entra ID.",
                                ids.len(),
                                names(
                                    std::iter::once(me).chain(rivals.iter().map(|&o| accounts[o]))
                                ),
                                key_text(k)
                            ),
                            key: key_text(k).to_owned(),
                            object_ids: ids,
                        })
                    }
                    None => Claim::Create,
                }
            }
        };
        claims.push(claim);
    }
    claims
}

fn names<'a>(people: impl Iterator<Item = &'a Person>) -> String {
    people
        .map(|p| p.user_principal_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn record_name(r: &StoredPerson) -> String {
    if r.person.object_id.is_empty() {
        format!(
            "an unlinked platform record ({})",
            r.person.user_principal_name
        )
    } else {
        format!("the removed account {}", r.person.user_principal_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::person;

    fn stored(p: Person, status: PersonStatus) -> StoredPerson {
        StoredPerson {
            person: p,
            status,
            fingerprint: String::new(),
        }
    }

    fn account(n: u32, mail: Option<&str>, upn: &str) -> Person {
        let mut p = person(n);
        p.mail = mail.map(str::to_owned);
        p.user_principal_name = upn.into();
        p
    }

    #[test]
    fn a_tagged_key_stands_for_its_key() {
        for k in [
            PersonKey::ObjectId("id-1".into()),
            PersonKey::Email("a@contoso.com".into()),
            PersonKey::UserPrincipalName("a@contoso.com".into()),
        ] {
            assert_eq!(untagged(tagged(&k)), k);
        }
    }

    #[test]
    fn keys_follow_the_match_key_and_are_normalised() {
        let a = account(1, Some(" Jane.Doe@Contoso.COM. "), "JDoe@contoso.com");
        assert_eq!(
            keys(&a, MatchKey::Email),
            [
                PersonKey::Email("jane.doe@contoso.com".into()),
                PersonKey::UserPrincipalName("jdoe@contoso.com".into())
            ]
        );
        assert_eq!(
            keys(&a, MatchKey::UserPrincipalName)[0],
            PersonKey::UserPrincipalName("jdoe@contoso.com".into())
        );
        // A guest without mail is matched by its external address.
        let g = account(2, None, "ann_fabrikam.com#EXT#@contoso.onmicrosoft.com");
        assert_eq!(
            keys(&g, MatchKey::Email)[0],
            PersonKey::Email("ann@fabrikam.com".into())
        );
    }

    #[test]
    fn unmatched_accounts_are_created_and_gone_records_linked() {
        let a = account(1, Some("a@x.com"), "a@x.com");
        let b = account(2, Some("b@x.com"), "b@x.com");
        let old = stored(
            account(9, Some("b@x.com"), "old-b@x.com"),
            PersonStatus::Removed,
        );
        let ka = keys(&a, MatchKey::Email);
        let kb = keys(&b, MatchKey::Email);
        let claims = resolve(
            &[&a, &b],
            &[ka, kb],
            vec![vec![None, None], vec![Some(old.clone()), None]],
        );
        assert_eq!(claims, [Claim::Create, Claim::Link(Box::new(old))]);
    }

    #[test]
    fn an_active_record_of_another_account_is_a_conflict() {
        let a = account(1, Some("same@x.com"), "a@x.com");
        let other = stored(
            account(7, Some("same@x.com"), "o@x.com"),
            PersonStatus::Active,
        );
        let claims = resolve(
            &[&a],
            &[keys(&a, MatchKey::Email)],
            vec![vec![Some(other), None]],
        );
        let [Claim::Conflict(c)] = &claims[..] else {
            panic!("{claims:?}")
        };
        assert_eq!(c.key, "same@x.com");
        assert_eq!(c.object_ids, [person(7).object_id, person(1).object_id]);
        assert!(c.message.contains("o@x.com") && c.message.contains("a@x.com"));
    }

    #[test]
    fn a_record_two_accounts_match_links_neither() {
        let old = stored(
            account(9, Some("e@x.com"), "u@x.com"),
            PersonStatus::Flagged,
        );
        let b = account(2, Some("e@x.com"), "b@x.com");
        let c = account(3, None, "U@X.com");
        let claims = resolve(
            &[&b, &c],
            &[keys(&b, MatchKey::Email), keys(&c, MatchKey::Email)],
            vec![vec![Some(old.clone()), None], vec![Some(old)]],
        );
        assert!(
            claims
                .iter()
                .all(|c| matches!(c, Claim::Conflict(m) if m.object_ids.len() == 2))
        );
    }

    #[test]
    fn new_accounts_sharing_an_email_are_both_left_out() {
        let a = account(1, Some("Dup@x.com"), "a@x.com");
        let b = account(2, Some("dup@X.com"), "b@x.com");
        let c = account(3, Some("c@x.com"), "c@x.com");
        let claims = resolve(
            &[&a, &b, &c],
            &[
                keys(&a, MatchKey::Email),
                keys(&b, MatchKey::Email),
                keys(&c, MatchKey::Email),
            ],
            vec![vec![None, None], vec![None, None], vec![None, None]],
        );
        assert!(matches!(&claims[0], Claim::Conflict(m) if m.key == "dup@x.com"));
        assert!(matches!(&claims[1], Claim::Conflict(_)));
        assert_eq!(claims[2], Claim::Create);
    }

    #[test]
    fn plus_addresses_are_distinct_people() {
        let a = account(1, Some("jane+lms@x.com"), "a@x.com");
        let b = account(2, Some("jane@x.com"), "b@x.com");
        let claims = resolve(
            &[&a, &b],
            &[keys(&a, MatchKey::Email), keys(&b, MatchKey::Email)],
            vec![vec![None, None], vec![None, None]],
        );
        assert_eq!(claims, [Claim::Create, Claim::Create]);
    }
}
