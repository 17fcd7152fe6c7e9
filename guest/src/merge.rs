//! Create / update / unchanged decisions for people read from Graph against what the
//! store holds, by a stable fingerprint of every synced field, and the changes a
//! removal policy makes to people who are gone (or no longer pass the filter).

use crate::matching::MatchKeys;
use crate::types::{
    Change, Domain, Group, Mailbox, Organization, Person, PersonStatus, PersonUpsert,
    RemovalPolicy, StoredPerson, Subscription, UpsertKind, Usage,
};
use std::collections::BTreeMap;

/// What to do with one person read from Graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Create,
    Update,
    Unchanged,
}

/// 64-bit FNV-1a, streaming.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Length-prefixed, so that adjacent fields cannot run together.
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    /// A length as its eight little-endian bytes. Hashing a zero byte only multiplies by
    /// the prime, so the seven zero bytes of a length under 256 (nearly every field) are one
    /// multiply by the prime's seventh power: the same hash, with a fraction of the work
    /// (a fingerprint hashes a length per field of every person read).
    fn len(&mut self, n: usize) {
        let n = n as u64;
        if n < 256 {
            self.bytes(&[n as u8]);
            self.0 = self.0.wrapping_mul(Self::PRIME_POW7);
        } else {
            self.bytes(&n.to_le_bytes());
        }
    }

    const PRIME_POW7: u64 = {
        let mut p = 1u64;
        let mut i = 0;
        while i < 7 {
            p = p.wrapping_mul(Self::PRIME);
            i += 1;
        }
        p
    };

    fn opt(&mut self, s: &Option<String>) {
        self.opt_str(s.as_deref());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.bytes(&[0]),
            Some(v) => {
                self.bytes(&[1]);
                self.str(v);
            }
        }
    }

    fn list(&mut self, l: &[String]) {
        self.len(l.len());
        for s in l {
            self.str(s);
        }
    }
}

/// 64-bit FNV-1a of some bytes.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.bytes(data);
    h.0
}

/// A stable hash (16 lower-case hex digits) of every synced field of a person. The
/// encoding is versioned: changing it changes every fingerprint once.
pub fn fingerprint(p: &Person) -> String {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-person-v1");
    h.str(&p.object_id);
    h.str(&p.user_principal_name);
    h.opt(&p.mail);
    h.opt(&p.given_name);
    h.opt(&p.surname);
    h.opt(&p.display_name);
    h.opt(&p.department);
    h.opt(&p.job_title);
    h.opt(&p.company_name);
    h.opt(&p.country);
    h.opt(&p.usage_location);
    h.opt(&p.office_location);
    h.bytes(&[u8::from(p.account_enabled)]);
    h.str(&p.user_type);
    h.list(&p.licences);
    h.opt(&p.created_at);
    h.opt(&p.manager_id);
    h.opt(&p.hire_date);
    h.list(&p.proxy_addresses);
    h.opt(&p.last_sign_in);
    hex16(h.0)
}

/// How a record read from Graph compares with what the last committed run stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// The fingerprints of a data set whose stored rows the engine cannot read back through
/// the storage interface (groups, subscriptions, mailboxes, usage): a map from the hash of
/// a record's key (its object id or SKU id) to the hash of its fields, kept in a checkpoint
/// committed with the batch that writes the records, so that the next run tells created
/// (not seen before), updated (hash differs) and unchanged (equal: not written again)
/// apart. 16 bytes a record, 32 hex digits in the checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprints {
    map: BTreeMap<u64, u64>,
}

const FINGERPRINTS_V1: &str = "v1:";

impl Fingerprints {
    /// Reads a checkpoint value. `None` (never saved, cleared, or not readable): what is
    /// stored is not known.
    pub fn parse(value: Option<&str>) -> Option<Fingerprints> {
        let hex = value?.strip_prefix(FINGERPRINTS_V1)?;
        if !hex.len().is_multiple_of(32) || !hex.is_ascii() {
            return None;
        }
        let mut map = BTreeMap::new();
        for i in (0..hex.len()).step_by(32) {
            let key = u64::from_str_radix(&hex[i..i + 16], 16).ok()?;
            let value = u64::from_str_radix(&hex[i + 16..i + 32], 16).ok()?;
            map.insert(key, value);
        }
        Some(Fingerprints { map })
    }

    /// The checkpoint value.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(FINGERPRINTS_V1.len() + self.map.len() * 32);
        out.push_str(FINGERPRINTS_V1);
        for (k, v) in &self.map {
            out.push_str(&hex16(*k));
            out.push_str(&hex16(*v));
        }
        out
    }

    fn key(id: &str) -> u64 {
        fnv(id.as_bytes())
    }

    /// How the record `id` with fields hashed to `hash` compares with this map.
    pub fn outcome(&self, id: &str, hash: u64) -> Outcome {
        match self.map.get(&Self::key(id)) {
            None => Outcome::Created,
            Some(h) if *h == hash => Outcome::Unchanged,
            Some(_) => Outcome::Updated,
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.map.contains_key(&Self::key(id))
    }

    /// Records `id` with `hash`; false when it was there already (with any hash).
    pub fn insert(&mut self, id: &str, hash: u64) -> bool {
        self.map.insert(Self::key(id), hash).is_none()
    }

    /// Forgets `id`; false when it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        self.map.remove(&Self::key(id)).is_some()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds the records of `before` that `self` lacks (kept as they were).
    pub fn keep_missing(&mut self, before: &Fingerprints) {
        for (k, v) in &before.map {
            self.map.entry(*k).or_insert(*v);
        }
    }

    /// How many records of `self` are not in `now` (gone since).
    pub fn missing_from(&self, now: &Fingerprints) -> usize {
        self.map.keys().filter(|k| !now.map.contains_key(k)).count()
    }
}

/// The hash of a group's stored fields.
pub fn group_hash(g: &Group) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-group-v1");
    h.str(&g.object_id);
    h.str(&g.display_name);
    h.opt(&g.mail);
    h.str(&g.kind);
    h.0
}

/// The hash of the organization record's stored fields.
pub fn organization_hash(o: &Organization) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-organization-v1");
    h.str(&o.tenant_id);
    h.str(&o.display_name);
    h.opt(&o.country);
    h.opt(&o.default_domain);
    h.list(&o.verified_domains);
    h.0
}

/// The hash of a domain's stored fields.
pub fn domain_hash(d: &Domain) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-domain-v1");
    h.str(&d.name);
    h.bytes(&[
        u8::from(d.is_default),
        u8::from(d.is_initial),
        u8::from(d.is_verified),
    ]);
    h.0
}

/// The hash of a subscribed SKU's stored fields.
pub fn subscription_hash(s: &Subscription) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-subscription-v1");
    h.str(&s.sku_id);
    h.str(&s.sku_part_number);
    h.str(&s.product_name);
    for units in [
        s.enabled_units,
        s.suspended_units,
        s.warning_units,
        s.consumed_units,
    ] {
        h.bytes(&units.to_le_bytes());
    }
    h.list(&s.service_plans);
    h.0
}

/// The hash of a mailbox row's stored fields.
pub fn mailbox_hash(m: &Mailbox) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-mailbox-v1");
    h.str(&m.object_id);
    h.bytes(&m.storage_used_bytes.to_le_bytes());
    h.bytes(&m.item_count.to_le_bytes());
    h.str(&m.quota_status);
    h.opt(&m.last_activity);
    h.str(&m.report_refreshed);
    h.0
}

/// The hash of a usage row's stored fields.
pub fn usage_hash(u: &Usage) -> u64 {
    usage_fields_hash(
        &u.object_id,
        &u.workload,
        u.period_days,
        u.last_activity.as_deref(),
        u.counts.iter().map(|(name, n)| (name.as_str(), *n)),
        &u.report_refreshed,
    )
}

/// [`usage_hash`] of a usage row's fields given one by one: a report's rows are hashed
/// where they are read, without building the record (a first pass over every report row
/// only compares; at 100k users that is ~600k rows of up to 35 counts).
pub fn usage_fields_hash<'a>(
    object_id: &str,
    workload: &str,
    period_days: u16,
    last_activity: Option<&str>,
    counts: impl ExactSizeIterator<Item = (&'a str, u64)>,
    report_refreshed: &str,
) -> u64 {
    let mut h = Fnv(Fnv::OFFSET);
    h.str("m365sync-usage-v1");
    h.str(object_id);
    h.str(workload);
    h.bytes(&period_days.to_le_bytes());
    h.opt_str(last_activity);
    h.len(counts.len());
    for (name, n) in counts {
        h.str(name);
        h.bytes(&n.to_le_bytes());
    }
    h.str(report_refreshed);
    h.0
}

/// `format!("{:016x}", v)` without the formatting machinery (once per person read).
fn hex16(v: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((v >> (shift * 4)) & 0xf) as usize]));
    }
    out
}

/// Create when not stored; update when the fingerprint differs or the stored person is not
/// active (it is back); else unchanged.
pub fn decide(stored: Option<&StoredPerson>, fingerprint: &str) -> Decision {
    match stored {
        None => Decision::Create,
        Some(s) if s.fingerprint != fingerprint || s.status != PersonStatus::Active => {
            Decision::Update
        }
        Some(_) => Decision::Unchanged,
    }
}

/// The licences `after` has and `before` had not (in `after`'s order), and those `before`
/// had and `after` has not: what a write of `after` over `before` assigns and takes away.
pub fn licence_changes(before: Option<&Person>, after: &Person) -> (Vec<String>, Vec<String>) {
    let had = |sku: &String| before.is_some_and(|b| b.licences.contains(sku));
    let assigned = after
        .licences
        .iter()
        .filter(|sku| !had(sku))
        .cloned()
        .collect();
    let removed = before
        .map(|b| {
            b.licences
                .iter()
                .filter(|sku| !after.licences.contains(sku))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (assigned, removed)
}

/// The upsert of an active person: created, updated (with the fields that changed) or
/// linked to a record stored under `previous` (another object id, or a platform key);
/// `before` is the record it replaces (None for a create). `keys` are the person's
/// ([`MatchKeys::of`]), computed once by the caller that matched.
pub fn upsert(
    person: Person,
    fingerprint: String,
    kind: UpsertKind,
    changed_fields: Vec<String>,
    previous: Option<String>,
    before: Option<&Person>,
    keys: MatchKeys,
) -> Change {
    let (email_key, upn_key) = keys.upsert_fields();
    let (licences_assigned, licences_removed) = licence_changes(before, &person);
    Change::UpsertPerson(PersonUpsert {
        stored: StoredPerson {
            person,
            status: PersonStatus::Active,
            fingerprint,
        },
        kind,
        changed_fields,
        previous_object_id: previous,
        email_key,
        upn_key,
        licences_assigned,
        licences_removed,
    })
}

/// A stored person written back with `person`'s fields (the sign-in pass, a deleted
/// manager cleared): the fingerprint computed again, the status kept.
pub fn rewrite_person(stored: StoredPerson, person: Person, changed_fields: Vec<String>) -> Change {
    let licences = licence_changes(Some(&stored.person), &person);
    rewritten(
        StoredPerson {
            fingerprint: fingerprint(&person),
            person,
            status: stored.status,
        },
        changed_fields,
        licences,
    )
}

/// A stored person written back as it is (a status change), status and fingerprint as given.
pub fn rewrite(stored: StoredPerson, changed_fields: Vec<String>) -> Change {
    rewritten(stored, changed_fields, (Vec::new(), Vec::new()))
}

/// The update writing `stored` back, with the licences it assigns and takes away.
fn rewritten(
    stored: StoredPerson,
    changed_fields: Vec<String>,
    (licences_assigned, licences_removed): (Vec<String>, Vec<String>),
) -> Change {
    let (email_key, upn_key) = MatchKeys::of(&stored.person).upsert_fields();
    Change::UpsertPerson(PersonUpsert {
        stored,
        kind: UpsertKind::Update,
        changed_fields,
        previous_object_id: None,
        email_key,
        upn_key,
        licences_assigned,
        licences_removed,
    })
}

/// The change the removal policy makes to a stored person who is gone, or `None` when the
/// person already is as the policy leaves them. The record is kept as it was stored.
pub fn removal(stored: StoredPerson, policy: RemovalPolicy) -> Option<Change> {
    removal_of(stored, policy, false)
}

/// Like [`removal`], for a person Graph reports as removed. A `restorable` one (delta
/// `@removed` reason `changed`: deleted, but restorable from deletedItems) is never
/// deleted: under policy delete it is marked removed instead, so that a restore finds it.
pub fn removal_of(stored: StoredPerson, policy: RemovalPolicy, restorable: bool) -> Option<Change> {
    let target = match policy {
        RemovalPolicy::Delete if restorable => PersonStatus::Removed,
        RemovalPolicy::Delete => return Some(Change::DeletePerson(stored.person.object_id)),
        RemovalPolicy::Keep => PersonStatus::Removed,
        RemovalPolicy::Flag => PersonStatus::Flagged,
        RemovalPolicy::Deactivate => PersonStatus::Inactive,
    };
    if stored.status == target {
        return None;
    }
    Some(rewrite(
        StoredPerson {
            status: target,
            ..stored
        },
        vec!["status".into()],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::person;

    #[test]
    fn a_length_hashes_as_its_eight_bytes() {
        for n in [0usize, 1, 7, 255, 256, 1000, 70_000] {
            let mut short = Fnv(Fnv::OFFSET);
            short.len(n);
            let mut long = Fnv(Fnv::OFFSET);
            long.bytes(&(n as u64).to_le_bytes());
            assert_eq!(short.0, long.0, "{n}");
        }
    }

    fn stored(p: &Person, status: PersonStatus) -> StoredPerson {
        StoredPerson {
            person: p.clone(),
            status,
            fingerprint: fingerprint(p),
        }
    }

    #[test]
    fn fingerprint_is_stable_and_hex() {
        let p = person(1);
        let f = fingerprint(&p);
        assert_eq!(f.len(), 16);
        assert!(
            f.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(f, fingerprint(&p.clone()));
        // Pinned: the fingerprint must not drift between builds.
        let mut q = person(0);
        q.object_id = "id".into();
        q.user_principal_name = "upn".into();
        q.mail = None;
        q.given_name = None;
        q.surname = None;
        q.display_name = None;
        q.department = None;
        q.job_title = None;
        q.company_name = None;
        q.country = None;
        q.usage_location = None;
        q.office_location = None;
        q.licences = vec![];
        q.created_at = None;
        assert_eq!(fingerprint(&q), fingerprint(&q.clone()));
        assert_eq!(fingerprint(&q), "e933a120302fd8be", "pinned value changed");
    }

    #[test]
    fn every_field_changes_the_fingerprint() {
        let base = person(1);
        let f0 = fingerprint(&base);
        let edits: Vec<fn(&mut Person)> = vec![
            |p| p.object_id.push('x'),
            |p| p.user_principal_name.push('x'),
            |p| p.mail = None,
            |p| p.given_name = Some("Other".into()),
            |p| p.surname = Some("Other".into()),
            |p| p.display_name = None,
            |p| p.department = Some("Other".into()),
            |p| p.job_title = Some("Other".into()),
            |p| p.company_name = Some("Other".into()),
            |p| p.country = Some("Other".into()),
            |p| p.usage_location = Some("XX".into()),
            |p| p.office_location = Some("Other".into()),
            |p| p.account_enabled = !p.account_enabled,
            |p| p.user_type = "Guest".into(),
            |p| p.licences.push("x".into()),
            |p| p.created_at = None,
            |p| p.manager_id = Some("m".into()),
            |p| p.hire_date = Some("2020-01-01T00:00:00Z".into()),
            |p| p.proxy_addresses.push("smtp:x@y".into()),
            |p| p.last_sign_in = Some("2020-01-01T00:00:00Z".into()),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut p = base.clone();
            edit(&mut p);
            assert_ne!(fingerprint(&p), f0, "edit {i}");
        }
    }

    #[test]
    fn fields_cannot_run_together() {
        let mut a = person(1);
        let mut b = person(1);
        a.given_name = Some("ab".into());
        a.surname = Some("c".into());
        b.given_name = Some("a".into());
        b.surname = Some("bc".into());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        a.given_name = None;
        b.given_name = Some(String::new());
        a.surname = None;
        b.surname = None;
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn fingerprints_round_trip_and_tell_outcomes_apart() {
        let mut f = Fingerprints::default();
        assert!(f.insert("g1", 1));
        assert!(f.insert("g2", 2));
        assert!(!f.insert("g2", 3));
        let back = Fingerprints::parse(Some(&f.encode())).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.outcome("g1", 1), Outcome::Unchanged);
        assert_eq!(back.outcome("g2", 2), Outcome::Updated);
        assert_eq!(back.outcome("g9", 1), Outcome::Created);
        let mut now = back.clone();
        assert!(now.remove("g1"));
        assert!(!now.remove("g1"));
        assert_eq!(back.missing_from(&now), 1);
        assert_eq!(
            Fingerprints::parse(Some("v1:")),
            Some(Fingerprints::default())
        );
        for bad in ["", "v1:abc", "v2:", "v1:zzzzzzzzzzzzzzzz0000000000000000"] {
            assert_eq!(Fingerprints::parse(Some(bad)), None, "{bad}");
        }
        assert_eq!(Fingerprints::parse(None), None);
    }

    #[test]
    fn decisions() {
        let p = person(1);
        let f = fingerprint(&p);
        assert_eq!(decide(None, &f), Decision::Create);
        assert_eq!(
            decide(Some(&stored(&p, PersonStatus::Active)), &f),
            Decision::Unchanged
        );
        assert_eq!(
            decide(Some(&stored(&p, PersonStatus::Removed)), &f),
            Decision::Update
        );
        let mut s = stored(&p, PersonStatus::Active);
        s.fingerprint = "0000000000000000".into();
        assert_eq!(decide(Some(&s), &f), Decision::Update);
    }

    /// Rewrites and removals carry the keys of the person as written, like upserts.
    #[test]
    fn every_person_upsert_carries_the_persons_match_keys() {
        let mut p = person(1);
        p.mail = Some(" MAILTO:Jane@Contoso.com. ".into());
        p.user_principal_name = "\u{200B}JDoe@Contoso.com".into();
        let carried = |c: Option<Change>| match c {
            Some(Change::UpsertPerson(u)) => (u.email_key, u.upn_key),
            other => panic!("{other:?}"),
        };
        let want = (
            Some("jane@contoso.com".to_owned()),
            "jdoe@contoso.com".to_owned(),
        );
        let created = upsert(
            p.clone(),
            fingerprint(&p),
            UpsertKind::Create,
            Vec::new(),
            None,
            None,
            MatchKeys::of(&p),
        );
        assert_eq!(carried(Some(created)), want);
        let active = stored(&p, PersonStatus::Active);
        assert_eq!(carried(removal(active.clone(), RemovalPolicy::Keep)), want);
        // A rewrite with other fields: the keys of the person as written now.
        let mut q = p.clone();
        q.mail = None;
        assert_eq!(
            carried(Some(rewrite_person(active, q, Vec::new()))),
            (None, want.1)
        );
    }

    #[test]
    fn upserts_say_which_licences_they_assign_and_take_away() {
        let sku = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut before = person(1);
        before.licences = sku(&["e3", "visio"]);
        let mut after = before.clone();
        after.licences = sku(&["project", "e3"]);
        let licences = |change: Change| match change {
            Change::UpsertPerson(u) => (u.licences_assigned, u.licences_removed),
            other => panic!("{other:?}"),
        };
        let keys = MatchKeys::of(&after);
        let fp = fingerprint(&after);
        // A create assigns every licence; an update and a link the difference.
        let created = upsert(
            after.clone(),
            fp.clone(),
            UpsertKind::Create,
            vec![],
            None,
            None,
            keys.clone(),
        );
        assert_eq!(licences(created), (sku(&["project", "e3"]), vec![]));
        for (kind, previous) in [
            (UpsertKind::Update, None),
            (UpsertKind::Link, Some("old".to_string())),
        ] {
            let change = upsert(
                after.clone(),
                fp.clone(),
                kind,
                vec![],
                previous,
                Some(&before),
                keys.clone(),
            );
            assert_eq!(licences(change), (sku(&["project"]), sku(&["visio"])));
        }
        // A rewrite with the same licences (a status change) changes none.
        let stored_before = stored(&before, PersonStatus::Active);
        let removed = removal(stored_before.clone(), RemovalPolicy::Keep).unwrap();
        assert_eq!(licences(removed), (vec![], vec![]));
        assert_eq!(
            licences(rewrite_person(stored_before, after, vec![])),
            (sku(&["project"]), sku(&["visio"]))
        );
    }

    #[test]
    fn removal_policies() {
        let p = person(1);
        let active = stored(&p, PersonStatus::Active);
        assert_eq!(
            removal(active.clone(), RemovalPolicy::Delete),
            Some(Change::DeletePerson(p.object_id.clone()))
        );
        for (policy, status) in [
            (RemovalPolicy::Keep, PersonStatus::Removed),
            (RemovalPolicy::Flag, PersonStatus::Flagged),
            (RemovalPolicy::Deactivate, PersonStatus::Inactive),
        ] {
            let Some(Change::UpsertPerson(PersonUpsert { stored: s, .. })) =
                removal(active.clone(), policy)
            else {
                panic!()
            };
            assert_eq!(s.status, status);
            assert_eq!(s.person, p);
            assert_eq!(s.fingerprint, active.fingerprint);
            assert_eq!(
                removal(stored(&p, status), policy),
                None,
                "{policy:?} twice"
            );
        }
        // A policy change moves a removed person to the new status.
        assert!(removal(stored(&p, PersonStatus::Removed), RemovalPolicy::Flag).is_some());

        // A restorable removal is never a delete.
        let Some(Change::UpsertPerson(PersonUpsert { stored: s, .. })) =
            removal_of(active.clone(), RemovalPolicy::Delete, true)
        else {
            panic!()
        };
        assert_eq!(s.status, PersonStatus::Removed);
        assert_eq!(
            removal_of(
                stored(&p, PersonStatus::Removed),
                RemovalPolicy::Delete,
                true
            ),
            None
        );
        assert_eq!(
            removal_of(active.clone(), RemovalPolicy::Delete, false),
            Some(Change::DeletePerson(p.object_id.clone()))
        );
        for policy in [
            RemovalPolicy::Keep,
            RemovalPolicy::Flag,
            RemovalPolicy::Deactivate,
        ] {
            assert_eq!(
                removal_of(active.clone(), policy, true),
                removal(active.clone(), policy)
            );
        }
    }
}
