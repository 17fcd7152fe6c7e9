//! One tenant's rows in the memory store, their indexes, and the batch writer that can undo
//! what it applied: a memory store commits each batch at once, and a batch that fails
//! midway is rolled back change by change, so it leaves nothing of itself behind.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use m365sync_wit::StorageError;
use m365sync_wit::types::{
    Batch, Change, Domain, Group, Mailbox, MatchDecision, Organization, PersonKey, PersonUpsert,
    ReportScope, StoredPerson, Subscription, UpsertKind, Usage,
};

use crate::model::{change_error, mailbox_counts};

/// A stored person with the engine's keys it was handed with (stored as given: the store
/// never normalises a key).
pub(super) struct PersonRow {
    pub stored: StoredPerson,
    pub email_key: Option<String>,
    pub upn_key: String,
}

/// A mailbox row, its counts as every back end holds them (see [`mailbox_counts`]).
pub(super) struct MailboxRow {
    pub storage_used_bytes: i64,
    pub item_count: i64,
    pub quota_status: String,
    pub last_activity: Option<String>,
    pub report_refreshed: String,
}

impl MailboxRow {
    /// The row of a mailbox, its counts checked ([`mailbox_counts`]).
    fn new(m: Mailbox, (storage_used_bytes, item_count): (i64, i64)) -> MailboxRow {
        MailboxRow {
            storage_used_bytes,
            item_count,
            quota_status: m.quota_status,
            last_activity: m.last_activity,
            report_refreshed: m.report_refreshed,
        }
    }
}

/// A usage row's key: the person, the workload, the period.
pub(super) type UsageKey = (String, String, u16);

/// An index from a key to the object ids of the people that have it.
type Index = HashMap<String, BTreeSet<String>>;

fn index_add(index: &mut Index, key: &str, id: &str) {
    index
        .entry(key.to_string())
        .or_default()
        .insert(id.to_string());
}

fn index_remove(index: &mut Index, key: &str, id: &str) {
    if let Some(ids) = index.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

/// Put `value` under `key` (None removes it); what was there.
fn put<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) -> Option<V> {
    match value {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    }
}

/// Everything the store holds for one tenant. People are indexed by object id (ordered,
/// for paging), by the engine's email and UPN keys and by manager, so a 100k-person
/// tenant is looked up as fast as a database would.
#[derive(Default)]
pub(super) struct TenantRows {
    pub people: BTreeMap<String, PersonRow>,
    by_email: Index,
    by_upn: Index,
    by_manager: Index,
    pub checkpoints: BTreeMap<String, String>,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub groups: BTreeMap<String, Group>,
    /// Memberships: group id → member ids.
    pub members: BTreeMap<String, BTreeSet<String>>,
    pub organization: Option<Organization>,
    pub domains: BTreeMap<String, Domain>,
    pub mailboxes: BTreeMap<String, MailboxRow>,
    pub usage: BTreeMap<UsageKey, Usage>,
    pub decision: Option<MatchDecision>,
}

impl TenantRows {
    /// Put a person under `id` (None deletes), keeping the indexes; what was there.
    fn put_person(&mut self, id: &str, row: Option<PersonRow>) -> Option<PersonRow> {
        let old = self.people.remove(id);
        if let Some(old) = &old {
            if let Some(key) = &old.email_key {
                index_remove(&mut self.by_email, key, id);
            }
            index_remove(&mut self.by_upn, &old.upn_key, id);
            if let Some(manager) = &old.stored.person.manager_id {
                index_remove(&mut self.by_manager, manager, id);
            }
        }
        if let Some(row) = row {
            if let Some(key) = &row.email_key {
                index_add(&mut self.by_email, key, id);
            }
            index_add(&mut self.by_upn, &row.upn_key, id);
            if let Some(manager) = &row.stored.person.manager_id {
                index_add(&mut self.by_manager, manager, id);
            }
            self.people.insert(id.to_string(), row);
        }
        old
    }

    /// Make `member` a member of `group` or not; whether it was.
    fn put_member(&mut self, group: &str, member: &str, present: bool) -> bool {
        let members = self.members.entry(group.to_string()).or_default();
        let was = if present {
            !members.insert(member.to_string())
        } else {
            members.remove(member)
        };
        if members.is_empty() {
            self.members.remove(group);
        }
        was
    }

    /// The person a key finds. Several people may share an email or UPN key (the contract
    /// does not say which one answers): the first by object id does.
    pub fn find(&self, key: &PersonKey) -> Option<&StoredPerson> {
        let id = match key {
            PersonKey::ObjectId(id) => Some(id),
            PersonKey::Email(key) => self.by_email.get(key).and_then(|ids| ids.first()),
            PersonKey::UserPrincipalName(key) => self.by_upn.get(key).and_then(|ids| ids.first()),
        };
        id.and_then(|id| self.people.get(id)).map(|row| &row.stored)
    }

    /// The people whose manager is `manager_id`, by object id.
    pub fn direct_reports(&self, manager_id: &str) -> impl Iterator<Item = &StoredPerson> {
        self.by_manager
            .get(manager_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.people.get(id))
            .map(|row| &row.stored)
    }

    /// How many rows the tenant holds of each kind, named and ordered as the SQL back
    /// ends' tables (what a reset reports deleting).
    pub fn counts(&self) -> Vec<(String, u64)> {
        let memberships: usize = self.members.values().map(BTreeSet::len).sum();
        [
            ("checkpoints", self.checkpoints.len()),
            ("domains", self.domains.len()),
            ("group_members", memberships),
            ("groups", self.groups.len()),
            ("mailboxes", self.mailboxes.len()),
            ("match_decisions", usize::from(self.decision.is_some())),
            ("organizations", usize::from(self.organization.is_some())),
            ("people", self.people.len()),
            ("subscriptions", self.subscriptions.len()),
            ("usage", self.usage.len()),
        ]
        .into_iter()
        .map(|(table, n)| (table.to_string(), u64::try_from(n).unwrap_or(u64::MAX)))
        .collect()
    }

    /// Apply a batch's changes and checkpoints, all or nothing: on a failure, what the
    /// batch applied is undone and the error names the change.
    pub fn apply(&mut self, batch: Batch) -> Result<(), StorageError> {
        let mut writer = Writer {
            rows: self,
            undo: Vec::new(),
        };
        match writer.apply(batch) {
            Ok(()) => Ok(()),
            Err(error) => {
                writer.rollback();
                Err(error)
            }
        }
    }
}

/// How to put back one value a batch changed.
enum Undo {
    /// Boxed: a person is far larger than any other row.
    Person(String, Option<Box<PersonRow>>),
    Checkpoint(String, Option<String>),
    Subscription(String, Option<Subscription>),
    Group(String, Option<Group>),
    Member(String, String, bool),
    Organization(Option<Organization>),
    Domain(String, Option<Domain>),
    Mailbox(String, Option<MailboxRow>),
    Usage(UsageKey, Option<Usage>),
}

/// Writes a batch into a tenant's rows, noting how to undo each write.
struct Writer<'a> {
    rows: &'a mut TenantRows,
    undo: Vec<Undo>,
}

impl Writer<'_> {
    fn apply(&mut self, batch: Batch) -> Result<(), StorageError> {
        for change in batch.changes {
            self.change(change)?;
        }
        for checkpoint in batch.checkpoints {
            let old = put(
                &mut self.rows.checkpoints,
                checkpoint.key.clone(),
                checkpoint.value,
            );
            self.undo.push(Undo::Checkpoint(checkpoint.key, old));
        }
        Ok(())
    }

    /// Put back every value the batch changed, newest first.
    fn rollback(self) {
        let rows = self.rows;
        for undo in self.undo.into_iter().rev() {
            match undo {
                Undo::Person(id, old) => drop(rows.put_person(&id, old.map(|row| *row))),
                Undo::Checkpoint(key, old) => drop(put(&mut rows.checkpoints, key, old)),
                Undo::Subscription(id, old) => drop(put(&mut rows.subscriptions, id, old)),
                Undo::Group(id, old) => drop(put(&mut rows.groups, id, old)),
                Undo::Member(group, member, was) => drop(rows.put_member(&group, &member, was)),
                Undo::Organization(old) => rows.organization = old,
                Undo::Domain(name, old) => drop(put(&mut rows.domains, name, old)),
                Undo::Mailbox(id, old) => drop(put(&mut rows.mailboxes, id, old)),
                Undo::Usage(key, old) => drop(put(&mut rows.usage, key, old)),
            }
        }
    }

    fn person(&mut self, id: &str, row: Option<PersonRow>) {
        let old = self.rows.put_person(id, row);
        self.undo
            .push(Undo::Person(id.to_string(), old.map(Box::new)));
    }

    fn member(&mut self, group: &str, member: &str, present: bool) {
        let was = self.rows.put_member(group, member, present);
        self.undo
            .push(Undo::Member(group.to_string(), member.to_string(), was));
    }

    fn mailbox(&mut self, id: &str, row: Option<MailboxRow>) {
        let old = put(&mut self.rows.mailboxes, id.to_string(), row);
        self.undo.push(Undo::Mailbox(id.to_string(), old));
    }

    fn usage(&mut self, key: UsageKey, row: Option<Usage>) {
        let old = put(&mut self.rows.usage, key.clone(), row);
        self.undo.push(Undo::Usage(key, old));
    }

    /// Delete the usage rows `which` selects.
    fn delete_usage(&mut self, which: impl Fn(&UsageKey) -> bool) {
        let keys: Vec<UsageKey> = self
            .rows
            .usage
            .keys()
            .filter(|k| which(k))
            .cloned()
            .collect();
        for key in keys {
            self.usage(key, None);
        }
    }

    fn change(&mut self, change: Change) -> Result<(), StorageError> {
        match change {
            Change::UpsertPerson(upsert) => self.upsert_person(upsert),
            // A deleted person takes everything stored about them along.
            Change::DeletePerson(id) => {
                self.person(&id, None);
                self.mailbox(&id, None);
                self.delete_usage(|(person, _, _)| *person == id);
                let groups: Vec<String> = (self.rows.members.iter())
                    .filter(|(_, members)| members.contains(&id))
                    .map(|(group, _)| group.clone())
                    .collect();
                for group in groups {
                    self.member(&group, &id, false);
                }
            }
            Change::UpsertSubscription(s) => {
                let id = s.sku_id.clone();
                let old = put(&mut self.rows.subscriptions, id.clone(), Some(s));
                self.undo.push(Undo::Subscription(id, old));
            }
            Change::UpsertGroup(g) => {
                let id = g.object_id.clone();
                let old = put(&mut self.rows.groups, id.clone(), Some(g));
                self.undo.push(Undo::Group(id, old));
            }
            Change::DeleteGroup(id) => {
                let members: Vec<String> = (self.rows.members.get(&id).into_iter().flatten())
                    .cloned()
                    .collect();
                for member in members {
                    self.member(&id, &member, false);
                }
                let old = put(&mut self.rows.groups, id.clone(), None);
                self.undo.push(Undo::Group(id, old));
            }
            Change::GroupMembers(m) => {
                for member in &m.added {
                    self.member(&m.group_id, member, true);
                }
                for member in &m.removed {
                    self.member(&m.group_id, member, false);
                }
            }
            Change::UpsertOrganization(o) => {
                let old = self.rows.organization.replace(o);
                self.undo.push(Undo::Organization(old));
            }
            Change::UpsertDomain(d) => {
                let name = d.name.clone();
                let old = put(&mut self.rows.domains, name.clone(), Some(d));
                self.undo.push(Undo::Domain(name, old));
            }
            Change::UpsertMailbox(m) => {
                let counts = match mailbox_counts(&m) {
                    Ok(counts) => counts,
                    Err(error) => return Err(change_error(&Change::UpsertMailbox(m), error)),
                };
                let id = m.object_id.clone();
                self.mailbox(&id, Some(MailboxRow::new(m, counts)));
            }
            Change::UpsertUsage(u) => {
                let key = (u.object_id.clone(), u.workload.clone(), u.period_days);
                self.usage(key, Some(u));
            }
            Change::ReplaceReport(ReportScope::Mailboxes) => {
                let ids: Vec<String> = self.rows.mailboxes.keys().cloned().collect();
                for id in ids {
                    self.mailbox(&id, None);
                }
            }
            Change::ReplaceReport(ReportScope::Usage(scope)) => {
                self.delete_usage(|(_, workload, period)| {
                    *workload == scope.workload && *period == scope.period_days
                });
            }
        }
        Ok(())
    }

    /// Write a person; a link re-keys the record stored under its previous object id
    /// first (a record already under the new id gives way to it, so one record is left).
    fn upsert_person(&mut self, upsert: PersonUpsert) {
        let PersonUpsert {
            stored,
            kind,
            previous_object_id,
            email_key,
            upn_key,
            ..
        } = upsert;
        let id = stored.person.object_id.clone();
        if let (UpsertKind::Link, Some(previous)) = (kind, previous_object_id)
            && previous != id
            && self.rows.people.contains_key(&previous)
        {
            // The record's new fields are all written below: re-keying it is moving it.
            self.person(&previous, None);
        }
        let row = PersonRow {
            stored,
            email_key,
            upn_key,
        };
        self.person(&id, Some(row));
    }
}
