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

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::rng::Rng;
use crate::tenant::{Generator, Group, GroupKind, Sku, Tenant, User};
use crate::util::{iso8601, keyed_hash};

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
    pub const EMPLOYEE_HIRE_DATE: u32 = 1 << 19;
    pub const PROXY_ADDRESSES: u32 = 1 << 20;
    /// The manager relationship (a navigation property).
    pub const MANAGER: u32 = 1 << 21;
    pub const COMPANY_NAME: u32 = 1 << 22;
    /// signInActivity: not a property delta tracks.
    pub const LAST_SIGN_IN: u32 = 1 << 23;
    /// How many fields there are.
    pub const COUNT: usize = 24;
    /// Every field.
    pub const ALL: u32 = (1 << COUNT) - 1;
    /// What users/delta tracks without `$select`: "all properties"
    /// (delta-query-users.md) — not the manager, a navigation property
    /// ("Navigation properties are not supported", delta-query-overview.md,
    /// unless selected), nor signInActivity, which delta does not serve.
    pub const TRACKED_BY_DEFAULT: u32 = ALL & !(MANAGER | LAST_SIGN_IN);
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
    set(
        a.employee_hire_date != b.employee_hire_date,
        EMPLOYEE_HIRE_DATE,
    );
    set(a.proxy_addresses != b.proxy_addresses, PROXY_ADDRESSES);
    set(a.manager_id != b.manager_id, MANAGER);
    set(a.company_name != b.company_name, COMPANY_NAME);
    set(a.last_sign_in != b.last_sign_in, LAST_SIGN_IN);
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
    /// The manager the user had before its last manager change (for the
    /// `@removed` entry of `manager@delta`).
    pub prev_manager: Option<String>,
    /// Groups the user was removed from when it was soft deleted; a restore
    /// puts it back.
    suspended_groups: Vec<u32>,
}

impl Record {
    fn new(user: User, version: u64) -> Record {
        Record {
            user,
            presence: Presence::Live,
            version,
            appeared: version,
            fields: None,
            prev_manager: None,
            suspended_groups: Vec::new(),
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
    /// Every group ever seen (live or deleted).
    pub groups: Vec<GroupRecord>,
    /// Lower-cased group id → index into `groups`.
    pub group_index: HashMap<String, usize>,
    /// Every version at which a group changed → that group (a group appears
    /// once per change; see `GroupRecord::changes`).
    pub group_changes: BTreeMap<u64, usize>,
    /// Per user record: the groups it is a member of.
    user_groups: Vec<Vec<u32>>,
    generator: Generator,
}

/// One group and its history.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    /// The group's properties (`members` is left empty: see `members`).
    pub group: Group,
    /// Current members: user record indices, in the order they were added.
    pub members: Vec<u32>,
    /// Membership changes after the group appeared: (version, user record
    /// index, member afterwards).
    pub member_log: Vec<(u64, u32, bool)>,
    pub presence: Presence,
    /// The version at which the group was created.
    pub appeared: u64,
    /// The version at which it was deleted, if it was.
    pub deleted: Option<u64>,
    /// Every version at which the group changed, ascending.
    pub changes: Vec<u64>,
}

impl GroupRecord {
    pub fn is_live(&self) -> bool {
        self.presence == Presence::Live
    }

    /// The latest change at or before `upper`.
    pub fn last_change_upto(&self, upper: u64) -> Option<u64> {
        let i = self.changes.partition_point(|&v| v <= upper);
        i.checked_sub(1).map(|i| self.changes[i])
    }

    /// Membership changes in `(base, upper]`, one per user (its last), in
    /// the order they happened.
    pub fn member_changes(&self, base: u64, upper: u64) -> Vec<(u32, bool)> {
        let start = self.member_log.partition_point(|&(v, _, _)| v <= base);
        let end = self.member_log.partition_point(|&(v, _, _)| v <= upper);
        let slice = &self.member_log[start..end];
        let mut seen = HashSet::new();
        let mut out: Vec<(u32, bool)> = slice
            .iter()
            .rev()
            .filter(|(_, u, _)| seen.insert(*u))
            .map(|&(_, u, present)| (u, present))
            .collect();
        out.reverse();
        out
    }
}

impl Directory {
    /// Takes the generated users (each gets its own version, 1..=n), the
    /// generated groups (members as user ids; versions n+1…) and the
    /// generator that made them (for users created later).
    pub fn new(users: Vec<User>, groups: Vec<Group>, generator: Generator) -> Directory {
        let mut d = Directory {
            records: Vec::with_capacity(users.len()),
            index: HashMap::with_capacity(users.len() * 2),
            by_version: BTreeMap::new(),
            version: 0,
            live: 0,
            groups: Vec::with_capacity(groups.len()),
            group_index: HashMap::with_capacity(groups.len()),
            group_changes: BTreeMap::new(),
            user_groups: Vec::with_capacity(users.len()),
            generator,
        };
        for u in users {
            d.push(u);
        }
        let by_id: HashMap<&str, u32> = d
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.user.id.as_str(), i as u32))
            .collect();
        let resolved: Vec<(Group, Vec<u32>)> = groups
            .into_iter()
            .map(|mut g| {
                let members = std::mem::take(&mut g.members)
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()).copied())
                    .collect();
                (g, members)
            })
            .collect();
        drop(by_id);
        for (g, members) in resolved {
            d.push_group(g, members);
        }
        d
    }

    fn push_group(&mut self, group: Group, members: Vec<u32>) -> usize {
        let v = self.next_version();
        let gi = self.groups.len();
        for &m in &members {
            self.user_groups[m as usize].push(gi as u32);
        }
        self.group_index.insert(group.id.to_ascii_lowercase(), gi);
        self.groups.push(GroupRecord {
            group,
            members,
            member_log: Vec::new(),
            presence: Presence::Live,
            appeared: v,
            deleted: None,
            changes: vec![v],
        });
        self.group_changes.insert(v, gi);
        gi
    }

    /// Records a change of group `gi` at a new version.
    fn touch_group(&mut self, gi: usize) -> u64 {
        let v = self.next_version();
        self.groups[gi].changes.push(v);
        self.group_changes.insert(v, gi);
        v
    }

    /// A live group by id.
    pub fn live_group(&self, id: &str) -> Option<usize> {
        self.group_index
            .get(&id.to_ascii_lowercase())
            .copied()
            .filter(|&i| self.groups[i].is_live())
    }

    /// Live user record indices among `ids` (id or UPN), deduplicated.
    fn live_indices(&self, ids: &[String]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for id in ids {
            if let Some(i) = self.find(id).filter(|&i| self.records[i].is_live())
                && !out.contains(&(i as u32))
            {
                out.push(i as u32);
            }
        }
        out
    }

    /// Creates a group with the live users named as members; returns its id.
    pub fn create_group(
        &mut self,
        name: &str,
        kind: GroupKind,
        members: &[String],
        now: u64,
    ) -> String {
        let mut r = Rng::derived(keyed_hash(self.version, name.as_bytes()), now);
        let id = loop {
            let id = r.guid();
            if !self.group_index.contains_key(&id) {
                break id;
            }
        };
        let slug: String = name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(crate::names::ascii_fold)
            .collect::<Vec<_>>()
            .join("-");
        let slug = if slug.is_empty() {
            "group".to_string()
        } else {
            slug
        };
        let (nick, mail) = self.generator.group_address(&slug, kind);
        let members = self.live_indices(members);
        let group = Group {
            id: id.clone(),
            display_name: name.to_string(),
            mail,
            kind,
            members: Vec::new(),
            mail_nickname: nick,
            description: None,
            created_date_time: iso8601(now),
        };
        self.push_group(group, members);
        id
    }

    /// Adds live users to a live group (users already in it are skipped).
    pub fn add_group_members(&mut self, group: &str, users: &[String]) {
        let Some(gi) = self.live_group(group) else {
            return;
        };
        let new: Vec<u32> = self
            .live_indices(users)
            .into_iter()
            .filter(|u| !self.groups[gi].members.contains(u))
            .collect();
        if new.is_empty() {
            return;
        }
        let v = self.touch_group(gi);
        for u in new {
            self.groups[gi].members.push(u);
            self.groups[gi].member_log.push((v, u, true));
            self.user_groups[u as usize].push(gi as u32);
        }
    }

    /// Removes users (live or not) from a live group.
    pub fn remove_group_members(&mut self, group: &str, users: &[String]) {
        let Some(gi) = self.live_group(group) else {
            return;
        };
        let gone: Vec<u32> = users
            .iter()
            .filter_map(|id| self.find(id))
            .map(|i| i as u32)
            .filter(|u| self.groups[gi].members.contains(u))
            .collect();
        if gone.is_empty() {
            return;
        }
        let v = self.touch_group(gi);
        for u in gone {
            self.unlink(gi, u, v);
        }
    }

    fn unlink(&mut self, gi: usize, u: u32, v: u64) {
        let g = &mut self.groups[gi];
        g.members.retain(|&m| m != u);
        g.member_log.push((v, u, false));
        self.user_groups[u as usize].retain(|&x| x as usize != gi);
    }

    /// Deletes a live group: a Microsoft 365 group goes to the deleted items
    /// (restorable: delta's `"reason": "changed"`), any other kind is deleted
    /// permanently (`"deleted"`).
    pub fn delete_group(&mut self, group: &str) {
        let Some(gi) = self.live_group(group) else {
            return;
        };
        let v = self.touch_group(gi);
        let members = std::mem::take(&mut self.groups[gi].members);
        for u in members {
            self.user_groups[u as usize].retain(|&x| x as usize != gi);
        }
        let g = &mut self.groups[gi];
        g.presence = if g.group.kind.restorable() {
            Presence::SoftDeleted
        } else {
            Presence::HardDeleted
        };
        g.deleted = Some(v);
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
        self.user_groups.push(Vec::new());
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
                let mut u = u;
                if u.is_person() {
                    u.manager_id = self.pick_manager(&u.id);
                }
                ids.push(u.id.clone());
                self.push(u);
            }
        }
        ids
    }

    /// A live person to manage a new hire (deterministic from its id).
    fn pick_manager(&self, id: &str) -> Option<String> {
        if self.records.is_empty() {
            return None;
        }
        let mut r = Rng::new(keyed_hash(0x0A9A_6E25, id.as_bytes()));
        (0..32)
            .map(|_| &self.records[r.index(self.records.len())])
            .find(|rec| rec.is_live() && rec.user.is_person())
            .map(|rec| rec.user.id.clone())
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
            if mask & field::MANAGER != 0 {
                self.records[i].prev_manager = before.manager_id.clone();
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
        let mut gone: HashSet<String> = HashSet::new();
        for id in ids {
            let Some(i) = self.find(id) else { continue };
            let next = match (self.records[i].presence, permanently) {
                (Presence::Live, false) => Presence::SoftDeleted,
                (Presence::Live | Presence::SoftDeleted, true) => Presence::HardDeleted,
                _ => continue,
            };
            if self.records[i].is_live() {
                self.live -= 1;
                gone.insert(self.records[i].user.id.clone());
                // "removed from the group - either by removing the membership
                // or by deleting the user object itself"
                // (concepts/delta-query-groups.md).
                let groups = std::mem::take(&mut self.user_groups[i]);
                for &gi in &groups {
                    let v = self.touch_group(gi as usize);
                    let g = &mut self.groups[gi as usize];
                    g.members.retain(|&m| m as usize != i);
                    g.member_log.push((v, i as u32, false));
                }
                self.records[i].suspended_groups = groups;
            }
            if next == Presence::HardDeleted {
                self.records[i].suspended_groups.clear();
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
        if !gone.is_empty() {
            // Reports of a deleted manager lose their manager.
            let orphans: Vec<String> = self
                .records
                .iter()
                .filter(|r| r.is_live())
                .filter(|r| r.user.manager_id.as_ref().is_some_and(|m| gone.contains(m)))
                .map(|r| r.user.id.clone())
                .collect();
            self.update(&orphans, &|u| u.manager_id = None);
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
            // Memberships come back with the user.
            let groups = std::mem::take(&mut r.suspended_groups);
            for gi in groups {
                if !self.groups[gi as usize].is_live() {
                    continue;
                }
                let v = self.touch_group(gi as usize);
                let g = &mut self.groups[gi as usize];
                g.members.push(i as u32);
                g.member_log.push((v, i as u32, true));
                self.user_groups[i].push(gi);
            }
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

    /// The live groups with their members' ids.
    pub fn live_groups(&self) -> Vec<Group> {
        self.groups
            .iter()
            .filter(|g| g.is_live())
            .map(|g| {
                let mut group = g.group.clone();
                group.members = g
                    .members
                    .iter()
                    .map(|&m| self.records[m as usize].user.id.clone())
                    .collect();
                group
            })
            .collect()
    }

    /// A snapshot: `meta` (a tenant without users or groups) plus the live
    /// users and groups.
    pub fn snapshot(&self, meta: &Tenant) -> Tenant {
        let mut t = meta.clone();
        t.users = self.live_users().cloned().collect();
        t.groups = self.live_groups();
        t.skus = self.skus(&meta.skus);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{GroupKind, TenantSpec};

    fn dir(n: usize) -> Directory {
        let mut g = Generator::new(&TenantSpec::new(9, n));
        let t = g.run();
        Directory::new(t.users, t.groups, g)
    }

    #[test]
    fn versions_and_changes() {
        let mut d = dir(50);
        let groups = d.groups.len() as u64;
        assert_eq!(groups, 5);
        assert_eq!(d.version, 50 + groups);
        assert_eq!(d.by_version.len(), 50);
        let ids = d.create(3, 1_700_000_000);
        assert_eq!(ids.len(), 3);
        assert_eq!(d.live, 53);
        assert_eq!(d.version, 53 + groups);
        let a = d.records[1].user.id.clone();
        d.update(std::slice::from_ref(&a), &|u| {
            u.job_title = Some("Chief Tester".into());
            u.id = "nope".into();
        });
        assert_eq!(d.version, 54 + groups);
        assert_eq!(d.records[1].user.id, a);
        assert_eq!(d.records[1].changed_since(53 + groups), field::JOB_TITLE);
        assert_eq!(d.records[1].changed_since(54 + groups), 0);
        // A no-op change keeps the version.
        d.update(std::slice::from_ref(&a), &|_| {});
        assert_eq!(d.version, 54 + groups);
        let member_of = d.user_groups[1].len();
        assert!(member_of >= 1, "everyone is in All Company");
        d.delete(std::slice::from_ref(&a), false);
        assert_eq!(d.records[1].presence, Presence::SoftDeleted);
        assert!(d.live_user(&a).is_none());
        assert!(d.user_groups[1].is_empty());
        assert!(d.groups.iter().all(|g| !g.members.contains(&1)));
        d.restore(std::slice::from_ref(&a));
        assert!(d.live_user(&a).is_some());
        assert_eq!(d.records[1].appeared, d.version - member_of as u64);
        assert_eq!(d.user_groups[1].len(), member_of);
        d.delete(std::slice::from_ref(&a), true);
        assert_eq!(d.records[1].presence, Presence::HardDeleted);
        d.restore(std::slice::from_ref(&a));
        assert_eq!(d.records[1].presence, Presence::HardDeleted);
        assert_eq!(d.by_version.len(), d.records.len());
        assert_eq!(d.live, 52);
        assert_eq!(d.live_users().count(), 52);
    }

    #[test]
    fn groups_and_memberships() {
        let mut d = dir(200);
        let users: Vec<String> = d.records[1..4].iter().map(|r| r.user.id.clone()).collect();
        let gid = d.create_group("Project X", GroupKind::Security, &users[..2], 1_700_000_000);
        let gi = d.live_group(&gid).expect("created");
        assert_eq!(d.groups[gi].members.len(), 2);
        assert!(d.groups[gi].group.mail.is_none());
        let before = d.version;
        d.add_group_members(&gid, &users);
        assert_eq!(d.version, before + 1, "one change for the call");
        assert_eq!(d.groups[gi].members.len(), 3);
        d.add_group_members(&gid, &users);
        assert_eq!(d.version, before + 1, "nothing new: no change");
        d.remove_group_members(&gid, &users[..1]);
        let changes = d.groups[gi].member_changes(before, d.version);
        assert_eq!(changes.len(), 2);
        assert!(changes.contains(&(1, false)));
        assert!(changes.contains(&(3, true)));
        assert_eq!(
            d.groups[gi].last_change_upto(before),
            Some(d.groups[gi].appeared)
        );
        d.delete_group(&gid);
        assert!(d.live_group(&gid).is_none());
        assert_eq!(d.groups[gi].presence, Presence::HardDeleted);
        let m365 = d.create_group("Team Y", GroupKind::Microsoft365, &users, 1_700_000_000);
        let gi = d.live_group(&m365).expect("created");
        assert!(
            d.groups[gi]
                .group
                .mail
                .as_deref()
                .is_some_and(|m| m.starts_with("team-y@"))
        );
        d.delete_group(&m365);
        assert_eq!(d.groups[gi].presence, Presence::SoftDeleted);
        assert!(d.live_groups().iter().all(|g| g.id != m365));
    }

    #[test]
    fn deleting_a_manager_clears_reports() {
        let mut d = dir(300);
        let manager = d
            .records
            .iter()
            .find_map(|r| r.user.manager_id.clone())
            .expect("someone has a manager");
        let reports: Vec<usize> = (0..d.records.len())
            .filter(|&i| d.records[i].user.manager_id.as_deref() == Some(&manager))
            .collect();
        assert!(!reports.is_empty());
        let before = d.version;
        d.delete(std::slice::from_ref(&manager), false);
        for &i in &reports {
            assert_eq!(d.records[i].user.manager_id, None);
            assert_eq!(d.records[i].prev_manager.as_deref(), Some(manager.as_str()));
            assert_eq!(d.records[i].changed_since(before), field::MANAGER);
        }
        let hired = d.create(5, 1_700_000_000);
        for id in &hired {
            let u = d.live_user(id).expect("hired");
            if u.is_person() {
                assert!(u.manager_id.is_some());
                assert!(u.employee_hire_date.is_some());
                assert!(u.last_sign_in.is_none());
            }
        }
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
