//! The mutable directory behind Graph: every user ever seen (live, soft
//! deleted or permanently deleted), a monotonically increasing change counter,
//! per-user and per-field change versions, and an index from version to user
//! so that delta rounds read only what changed.
//!
//! Deletion semantics follow microsoftgraph/microsoft-graph-docs-contrib:
//! concepts/delta-query-overview.md ("Resource representation in the delta
//! query response"): a user deleted to the directory's deleted items can be
//! restored (`@removed.reason = "changed"`), a permanently deleted one cannot
//! (`"deleted"`); concepts/delta-query-users.md: "When the user is created, or
//! restored from the deleted items container, there's no annotation."

use std::collections::{BTreeMap, HashMap};

use crate::tenant::{Generator, Sku, Tenant, User};
use crate::util::iso8601;

/// The user fields the simulator models, one bit each (see [`User`]).
pub mod field {
    pub const ID: u32 = 1 << 0;
    pub const UPN: u32 = 1 << 1;
    pub const MAIL: u32 = 1 << 2;
    pub const GIVEN_NAME: u32 = 1 << 3;
    pub const SURNAME: u32 = 1 << 4;
    pub const DISPLAY_NAME: u32 = 1 << 5;
    pub const DEPARTMENT: u32 = 1 << 6;
    pub const JOB_TITLE: u32 = 1 << 7;
    pub const COUNTRY: u32 = 1 << 8;
    pub const USAGE_LOCATION: u32 = 1 << 9;
    pub const OFFICE_LOCATION: u32 = 1 << 10;
    pub const ACCOUNT_ENABLED: u32 = 1 << 11;
    pub const USER_TYPE: u32 = 1 << 12;
    pub const LICENSES: u32 = 1 << 13;
    pub const CREATED: u32 = 1 << 14;
    pub const CITY: u32 = 1 << 15;
    pub const BUSINESS_PHONES: u32 = 1 << 16;
    pub const MOBILE_PHONE: u32 = 1 << 17;
    pub const PREFERRED_LANGUAGE: u32 = 1 << 18;
    /// How many fields there are.
    pub const COUNT: usize = 19;
    /// Every field.
    pub const ALL: u32 = (1 << COUNT) - 1;
}

/// The fields that differ between two versions of a user.
pub fn diff(a: &User, b: &User) -> u32 {
    use field::*;
    let mut m = 0;
    let mut set = |differs: bool, bit: u32| {
        if differs {
            m |= bit;
        }
    };
    set(a.id != b.id, ID);
    set(a.user_principal_name != b.user_principal_name, UPN);
    set(a.mail != b.mail, MAIL);
    set(a.given_name != b.given_name, GIVEN_NAME);
    set(a.surname != b.surname, SURNAME);
    set(a.display_name != b.display_name, DISPLAY_NAME);
    set(a.department != b.department, DEPARTMENT);
    set(a.job_title != b.job_title, JOB_TITLE);
    set(a.country != b.country, COUNTRY);
    set(a.usage_location != b.usage_location, USAGE_LOCATION);
    set(a.office_location != b.office_location, OFFICE_LOCATION);
    set(a.account_enabled != b.account_enabled, ACCOUNT_ENABLED);
    set(a.user_type != b.user_type, USER_TYPE);
    set(a.assigned_licenses != b.assigned_licenses, LICENSES);
    set(a.created_date_time != b.created_date_time, CREATED);
    set(a.city != b.city, CITY);
    set(a.business_phones != b.business_phones, BUSINESS_PHONES);
    set(a.mobile_phone != b.mobile_phone, MOBILE_PHONE);
    set(
        a.preferred_language != b.preferred_language,
        PREFERRED_LANGUAGE,
    );
    m
}

/// Where a user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Live,
    /// In the directory's deleted items: restorable.
    SoftDeleted,
    /// Permanently deleted: a tombstone only.
    HardDeleted,
}

/// One user and its change history.
#[derive(Debug, Clone)]
pub struct Record {
    pub user: User,
    pub presence: Presence,
    /// The version of the last change of any kind (create, update, delete, restore).
    pub version: u64,
    /// The version at which the user was created or last restored.
    pub appeared: u64,
    /// Per-field versions of the last change; `None` while every field is
    /// still as it was at `appeared`.
    fields: Option<Box<[u64; field::COUNT]>>,
}

impl Record {
    fn new(user: User, version: u64) -> Record {
        Record {
            user,
            presence: Presence::Live,
            version,
            appeared: version,
            fields: None,
        }
    }

    pub fn is_live(&self) -> bool {
        self.presence == Presence::Live
    }

    /// The fields changed after version `since` (0 if none, or if the user
    /// appeared after it: then everything is new).
    pub fn changed_since(&self, since: u64) -> u32 {
        let Some(fields) = &self.fields else {
            return 0;
        };
        fields
            .iter()
            .enumerate()
            .filter(|&(_, &v)| v > since)
            .fold(0, |m, (i, _)| m | (1 << i))
    }

    fn touch_fields(&mut self, mask: u32, version: u64) {
        let appeared = self.appeared;
        let fields = self
            .fields
            .get_or_insert_with(|| Box::new([appeared; field::COUNT]));
        for (i, v) in fields.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *v = version;
            }
        }
    }
}

/// The whole directory.
pub struct Directory {
    pub records: Vec<Record>,
    /// Lower-cased id and UPN → index into `records` (ids stay after a
    /// permanent deletion, UPNs are released).
    pub index: HashMap<String, usize>,
    /// The current version of every record → its index (one entry per record).
    pub by_version: BTreeMap<u64, usize>,
    /// The latest version handed out.
    pub version: u64,
    /// How many records are live.
    pub live: usize,
    generator: Generator,
}

impl Directory {
    /// Takes the generated users (each gets its own version, 1..=n) and the
    /// generator that made them (for users created later).
    pub fn new(users: Vec<User>, generator: Generator) -> Directory {
        let mut d = Directory {
            records: Vec::with_capacity(users.len()),
            index: HashMap::with_capacity(users.len() * 2),
            by_version: BTreeMap::new(),
            version: 0,
            live: 0,
            generator,
        };
        for u in users {
            d.push(u);
        }
        d
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn push(&mut self, user: User) -> usize {
        let v = self.next_version();
        let i = self.records.len();
        self.index.insert(user.id.to_ascii_lowercase(), i);
        self.index
            .insert(user.user_principal_name.to_ascii_lowercase(), i);
        self.records.push(Record::new(user, v));
        self.by_version.insert(v, i);
        self.live += 1;
        i
    }

    fn bump(&mut self, i: usize) -> u64 {
        let v = self.next_version();
        let old = self.records[i].version;
        self.by_version.remove(&old);
        self.by_version.insert(v, i);
        self.records[i].version = v;
        v
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.index.get(&key.to_ascii_lowercase()).copied()
    }

    /// A live user by id or UPN.
    pub fn live_user(&self, key: &str) -> Option<&User> {
        self.find(key)
            .map(|i| &self.records[i])
            .filter(|r| r.is_live())
            .map(|r| &r.user)
    }

    /// Generates `n` users created at `now` (Unix seconds); returns their ids.
    pub fn create(&mut self, n: usize, now: u64) -> Vec<String> {
        let created = iso8601(now);
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let batch = self.generator.more(n - ids.len(), &created);
            for u in batch {
                // The generator keeps its addresses unique, and addresses set
                // at run time are reserved with it (see `update`); the index
                // check is a cheap safety net.
                let clash = self.index.contains_key(&u.id.to_ascii_lowercase())
                    || self
                        .index
                        .contains_key(&u.user_principal_name.to_ascii_lowercase());
                if clash {
                    continue;
                }
                ids.push(u.id.clone());
                self.push(u);
            }
        }
        ids
    }

    /// Applies `change` to each live user named (unknown or deleted ids are
    /// ignored). The id cannot change. Users whose fields all stay the same
    /// keep their version.
    pub fn update(&mut self, ids: &[String], change: &dyn Fn(&mut User)) {
        for id in ids {
            let Some(i) = self.find(id).filter(|&i| self.records[i].is_live()) else {
                continue;
            };
            let before = self.records[i].user.clone();
            let mut after = before.clone();
            change(&mut after);
            after.id = before.id.clone();
            let mask = diff(&before, &after);
            if mask == 0 {
                continue;
            }
            if mask & field::UPN != 0 {
                self.index
                    .remove(&before.user_principal_name.to_ascii_lowercase());
                self.index
                    .insert(after.user_principal_name.to_ascii_lowercase(), i);
                self.generator.reserve_address(&after.user_principal_name);
            }
            if mask & field::MAIL != 0
                && let Some(m) = &after.mail
            {
                self.generator.reserve_address(m);
            }
            self.records[i].user = after;
            let v = self.bump(i);
            self.records[i].touch_fields(mask, v);
        }
    }

    /// Soft deletes (restorable) or permanently deletes the users named. A
    /// soft-deleted user can then be deleted permanently; anything else that
    /// does not change the user's state is ignored.
    pub fn delete(&mut self, ids: &[String], permanently: bool) {
        for id in ids {
            let Some(i) = self.find(id) else { continue };
            let next = match (self.records[i].presence, permanently) {
                (Presence::Live, false) => Presence::SoftDeleted,
                (Presence::Live | Presence::SoftDeleted, true) => Presence::HardDeleted,
                _ => continue,
            };
            if self.records[i].is_live() {
                self.live -= 1;
            }
            if next == Presence::HardDeleted {
                let upn = self.records[i]
                    .user
                    .user_principal_name
                    .to_ascii_lowercase();
                if self.index.get(&upn) == Some(&i) {
                    self.index.remove(&upn);
                }
            }
            self.records[i].presence = next;
            self.bump(i);
        }
    }

    /// Brings soft-deleted users back; others are ignored.
    pub fn restore(&mut self, ids: &[String]) {
        for id in ids {
            let Some(i) = self.find(id) else { continue };
            if self.records[i].presence != Presence::SoftDeleted {
                continue;
            }
            self.records[i].presence = Presence::Live;
            self.live += 1;
            let v = self.bump(i);
            let r = &mut self.records[i];
            r.appeared = v;
            r.fields = None;
        }
    }

    /// The live users, in creation order.
    pub fn live_users(&self) -> impl Iterator<Item = &User> {
        self.records.iter().filter(|r| r.is_live()).map(|r| &r.user)
    }

    /// The SKUs with `consumedUnits` counted from the live users' assignments.
    pub fn skus(&self, skus: &[Sku]) -> Vec<Sku> {
        let mut out = skus.to_vec();
        for s in &mut out {
            s.consumed_units = 0;
        }
        for u in self.live_users() {
            for l in &u.assigned_licenses {
                if let Some(s) = out.iter_mut().find(|s| &s.sku_id == l) {
                    s.consumed_units += 1;
                }
            }
        }
        out
    }

    /// A snapshot: `meta` (a tenant without users) plus the live users.
    pub fn snapshot(&self, meta: &Tenant) -> Tenant {
        let mut t = meta.clone();
        t.users = self.live_users().cloned().collect();
        t.skus = self.skus(&meta.skus);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantSpec;

    fn dir(n: usize) -> Directory {
        let mut g = Generator::new(&TenantSpec::new(9, n));
        let t = g.run();
        Directory::new(t.users, g)
    }

    #[test]
    fn versions_and_changes() {
        let mut d = dir(50);
        assert_eq!(d.version, 50);
        assert_eq!(d.by_version.len(), 50);
        let ids = d.create(3, 1_700_000_000);
        assert_eq!(ids.len(), 3);
        assert_eq!(d.live, 53);
        assert_eq!(d.version, 53);
        let a = d.records[1].user.id.clone();
        d.update(std::slice::from_ref(&a), &|u| {
            u.job_title = Some("Chief Tester".into());
            u.id = "nope".into();
        });
        assert_eq!(d.version, 54);
        assert_eq!(d.records[1].user.id, a);
        assert_eq!(d.records[1].changed_since(53), field::JOB_TITLE);
        assert_eq!(d.records[1].changed_since(54), 0);
        // A no-op change keeps the version.
        d.update(std::slice::from_ref(&a), &|_| {});
        assert_eq!(d.version, 54);
        d.delete(std::slice::from_ref(&a), false);
        assert_eq!(d.records[1].presence, Presence::SoftDeleted);
        assert!(d.live_user(&a).is_none());
        d.restore(std::slice::from_ref(&a));
        assert!(d.live_user(&a).is_some());
        assert_eq!(d.records[1].appeared, d.version);
        d.delete(std::slice::from_ref(&a), true);
        assert_eq!(d.records[1].presence, Presence::HardDeleted);
        d.restore(std::slice::from_ref(&a));
        assert_eq!(d.records[1].presence, Presence::HardDeleted);
        assert_eq!(d.by_version.len(), d.records.len());
        assert_eq!(d.live, 52);
        assert_eq!(d.live_users().count(), 52);
    }

    #[test]
    fn created_users_are_unique() {
        let mut d = dir(300);
        let ids = d.create(500, 1_700_000_000);
        let mut upns = std::collections::HashSet::new();
        let mut mails = std::collections::HashSet::new();
        for u in d.live_users() {
            assert!(upns.insert(u.user_principal_name.to_lowercase()));
            if let Some(m) = &u.mail {
                assert!(mails.insert(m.to_lowercase()), "{m}");
            }
        }
        assert_eq!(ids.len(), 500);
        let last = d.live_user(&ids[499]).expect("created");
        assert_eq!(last.created_date_time, "2023-11-14T22:13:20Z");
    }
}
