//! The users phase: users (and, with feature `managers`, their managers) by delta query,
//! filtered, merged into the stored people and, after an initial round, the removal
//! policy applied to stored people the round did not list.
//!
//! Fields that no users round reads are kept as stored: `last-sign-in` (the sign-in pass
//! sets it) and, without feature `managers`, `manager-id`.

use super::round::{DeltaSet, Round, Tally};
use super::{Run, storage_error};
use crate::filter;
use crate::graph::client::BodyError;
use crate::graph::{GraphClient, Need};
use crate::ids::{IdHasher, IdSet};
use crate::matching::{self, Claim};
use crate::merge::{self, Decision};
use crate::redact::Redactor;
use crate::sources::DeltaPage;
use crate::sources::users::{self, Entry};
use crate::types::{
    Batch, Change, Checkpoint, DataSet, DataSetReport, Features, Person, PersonKey, PersonOutcome,
    PersonStatus, ReasonCount, RemovalPolicy, StoredPerson, SyncError, UpsertKind,
};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// Checkpoint written with the final batch of a complete initial (full) users round.
pub const LAST_FULL_SYNC: &str = "users.last-full-sync";
/// Checkpoint: the `@odata.deltaLink` of the last complete users delta round, written only
/// in the final batch of that round.
pub const USERS_DELTA_LINK: &str = "users.delta-link";
/// Checkpoint: the `$select` that delta link encodes, saved with it.
pub const USERS_DELTA_SELECT: &str = "users.delta-select";
/// Checkpoint: the fingerprint of the account filter (and the group members it tests)
/// the stored people were filtered with; a different one runs an initial round.
pub const USERS_FILTER: &str = "users.filter";
/// Checkpoint: the accounts the last round left out for a match conflict (comma-separated
/// object ids). A replay does not list them again unless they change, so the next replay
/// reads them whole and decides again: a conflict ends when its cause is gone (say, the
/// other account was deleted), without waiting for a full sync.
pub const USERS_UNRESOLVED: &str = "users.unresolved";
/// At most this many unresolved accounts are carried to the next run (a full sync
/// decides every account again anyway).
const MAX_UNRESOLVED: usize = 2000;
/// Stored ids listed per `list-people-ids` call when looking for removed people.
const LIST_LIMIT: u32 = 1000;
/// Removal changes are committed in batches of at most this many.
const MAX_BATCH_CHANGES: usize = 5000;

/// Counts of the users phase.
#[derive(Default)]
pub(super) struct Counts {
    pub tally: Tally,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub linked: u64,
    pub removed: u64,
    pub conflicts: u64,
    /// Objects listed more than once (delta-query-overview.md: "a single entity will be
    /// contained multiple times in the response" is possible); the last one wins.
    duplicates: u64,
    /// `@removed` ids the store never held (ignored).
    unknown_removed: u64,
    /// Soft-deleted (restorable) people kept as removed although the policy is delete.
    kept_restorable: u64,
    /// Changed users the store does not hold that came without a userPrincipalName and
    /// could not be read whole (gone since).
    partial_unknown: u64,
    filtered: Vec<(&'static str, u64)>,
    /// Accounts left out for a match conflict in this run.
    unresolved: Vec<String>,
}

impl Counts {
    fn filtered_out(&mut self, reason: &'static str) {
        match self.filtered.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.filtered.push((reason, 1)),
        }
    }

    fn report(&self) -> DataSetReport {
        let mut filtered_out: Vec<ReasonCount> = self
            .filtered
            .iter()
            .map(|(reason, count)| ReasonCount {
                reason: (*reason).into(),
                count: *count,
            })
            .collect();
        filtered_out.sort_by(|a, b| a.reason.cmp(&b.reason));
        DataSetReport {
            data_set: DataSet::Users,
            pages: self.tally.pages,
            read: self.tally.read,
            written: self.created + self.updated + self.linked + self.removed,
            created: self.created,
            updated: self.updated,
            unchanged: self.unchanged,
            linked: self.linked,
            removed: self.removed,
            conflicts: self.conflicts,
            filtered_out,
        }
    }
}

/// The users delta data set of one run.
struct Users {
    select: String,
    managers: bool,
    /// The filter's fingerprint, saved with the delta link.
    filter: String,
    /// Why the saved delta link may not be replayed (the filter changed).
    replay_blocked: Option<String>,
    counts: Counts,
    /// Ids listed by the current initial round (for the search for the gone).
    seen: IdSet,
    /// Users the current page of a replay reports changed, that the store does not hold,
    /// without a userPrincipalName: read whole at the end of the page (`complete_page`).
    to_fetch: Vec<String>,
    /// Accounts the last run left out for a conflict (`USERS_UNRESOLVED`).
    recheck: Vec<String>,
    /// Stored people this round removed (their records may be linked to a new account).
    removed_now: IdSet,
    /// Whether the store held no people when the phase began: then it holds only what
    /// this phase wrote, and is asked only about keys in `claimed` (on a tenant's first
    /// sync, no lookups by id, email or UPN at all but for people listed twice).
    started_empty: bool,
    /// When `started_empty`: what this phase wrote.
    claimed: Claimed,
}

/// Hashes ([`key_hash`]) of the keys (object id, email, UPN) of the people a phase that
/// began on an empty store wrote. A hash collision only costs a lookup.
type Claimed = HashSet<u64, BuildHasherDefault<IdHasher>>;

impl DeltaSet for Users {
    type Entry = Entry;
    const NAME: &'static str = "users";
    const DATA_SET: DataSet = DataSet::Users;
    const LINK_KEY: &'static str = USERS_DELTA_LINK;
    const SELECT_KEY: &'static str = USERS_DELTA_SELECT;
    const WHAT: &'static str = users::WHAT;
    const NEED: Need = users::NEED;
    const PREFER: (&'static str, &'static str) = users::PREFER;

    fn select(&self) -> &str {
        &self.select
    }

    fn replay_blocked(&self) -> Option<&str> {
        self.replay_blocked.as_deref()
    }

    fn parse(body: &[u8], url: &str) -> Result<DeltaPage<Entry>, BodyError> {
        users::parse_page(body, url)
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.counts.tally
    }

    fn begin(&mut self, _round: Round) {
        self.seen = IdSet::default();
        self.counts.unresolved.clear();
        self.to_fetch.clear();
        self.removed_now = IdSet::default();
    }

    fn page(
        &mut self,
        run: &mut Run<'_>,
        entries: Vec<Entry>,
        round: Round,
    ) -> Result<Vec<Change>, SyncError> {
        let entries = last_occurrences(entries, &mut self.counts);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<PersonKey> = entries
            .iter()
            .map(|e| PersonKey::ObjectId(e.id().to_owned()))
            .collect();
        let claimed = self.started_empty.then_some(&self.claimed);
        let found = find_claimed(run, &keys.iter().collect::<Vec<_>>(), claimed)?;
        drop(keys);
        let counts = &mut self.counts;
        let mut changes = Vec::new();
        // Accounts that pass the filter and are not linked to a record yet: matched by
        // email / user principal name together, after the loop.
        let mut unlinked: Vec<Person> = Vec::new();
        for (entry, stored) in entries.into_iter().zip(found) {
            // An initial round accounts for every id it lists, removed ones included, so
            // that the search for the gone does not handle them a second time.
            if round == Round::Initial && !self.seen.insert(entry.id()) {
                counts.duplicates += 1;
            }
            match entry {
                Entry::Removed { restorable, .. } => {
                    let Some(stored) = stored else {
                        counts.unknown_removed += 1;
                        continue;
                    };
                    self.removed_now.insert(&stored.person.object_id);
                    if let Some(change) = merge::removal_of(stored, run.removal, restorable) {
                        counts.removed += 1;
                        if restorable && run.removal == RemovalPolicy::Delete {
                            counts.kept_restorable += 1;
                        }
                        run.note_removal(&change);
                        changes.push(change);
                    }
                }
                Entry::User(change) => {
                    let person = match (round, &stored) {
                        (Round::Initial, Some(s)) => {
                            let mut p = change.into_person();
                            // Not read by this round: kept as stored.
                            p.last_sign_in = s.person.last_sign_in.clone();
                            if !self.managers {
                                p.manager_id = s.person.manager_id.clone();
                            }
                            p
                        }
                        (Round::Initial, None) => change.into_person(),
                        (Round::Replay, Some(s)) => change.apply(s.person.clone()),
                        (Round::Replay, None) => {
                            let id = change.id().to_owned();
                            match change.into_new_person() {
                                Some(p) => p,
                                None => {
                                    // Only what changed, no UPN: read whole at the end of
                                    // the page (`complete_page`).
                                    self.to_fetch.push(id);
                                    continue;
                                }
                            }
                        }
                    };
                    decide(run, person, stored, counts, &mut changes, &mut unlinked);
                }
            }
        }
        if self.started_empty {
            // Updated people (listed twice in this phase) may have new keys.
            for change in &changes {
                if let Change::UpsertPerson(u) = change {
                    let p = &u.stored.person;
                    record_claim(&mut self.claimed, p, &matching::keys(p, run.match_key));
                }
            }
        }
        if !unlinked.is_empty() {
            let claimed = self.started_empty.then_some(&mut self.claimed);
            link_or_create(
                run,
                unlinked,
                counts,
                &mut changes,
                claimed,
                &self.removed_now,
            )?;
        }
        Ok(changes)
    }

    /// Users a replay reported changed that the store does not hold, with only some
    /// properties and no userPrincipalName (concepts/delta-query-overview.md: "Updated
    /// instances are represented by their id with *at least* the properties that have been
    /// updated"; a user the filter left out until a change let it in comes so): read whole
    /// by id through JSON batches with the round's `$select`, then decided like the page's
    /// other users. One Graph no longer has (404) is counted for `partial-unknown-user`.
    fn complete_page(
        &mut self,
        run: &mut Run<'_>,
        graph: &mut GraphClient<'_>,
        round: Round,
        last: bool,
    ) -> Result<Vec<Change>, SyncError> {
        // The accounts the last run left out for a conflict are read after the round's
        // last page: by then this round's removals are known, so a conflict whose other
        // account is gone now links instead.
        if last && round == Round::Replay {
            let recheck = self.recheck.clone();
            self.to_fetch.extend(recheck);
            self.to_fetch.sort();
            self.to_fetch.dedup();
        }
        let ids = std::mem::take(&mut self.to_fetch);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity(ids.len());
        for (id, user) in ids
            .iter()
            .zip(users::fetch_by_ids(graph, &ids, &self.select)?)
        {
            match user {
                Some(u) if u.has_user_principal_name() => entries.push(Entry::User(u)),
                // An account left out for a conflict that is gone now: nothing to decide.
                _ if self.recheck.contains(id) => {}
                _ => self.counts.partial_unknown += 1,
            }
        }
        // Whole users now: the page's path creates (or links) them.
        self.page(run, entries, round)
    }

    fn finish(
        &mut self,
        run: &mut Run<'_>,
        r: &Redactor,
        round: Round,
        changes: &mut Vec<Change>,
    ) -> Result<Vec<Checkpoint>, SyncError> {
        // An initial round listed everyone: whoever is stored and was not listed is gone.
        if round == Round::Initial {
            let seen = std::mem::take(&mut self.seen);
            gone(run, &seen, &mut self.counts, changes)?;
        }
        let counts = &self.counts;
        if counts.partial_unknown > 0 {
            run.warn(
                r,
                "partial-unknown-user",
                format!(
                    "Graph reported {} changed user(s) that are not stored yet without their \
                     user principal name, and reading them in full found them gone (or still \
                     without one), so they could not be created; the next full sync imports \
                     any that exist.",
                    counts.partial_unknown
                ),
            );
        }
        let report = counts.report();
        let mut extra = String::new();
        if counts.kept_restorable > 0 {
            extra.push_str(&format!(
                ", {} soft-deleted (restorable) kept as removed",
                counts.kept_restorable
            ));
        }
        if counts.unknown_removed > 0 {
            extra.push_str(&format!(
                ", {} removals of people never stored ignored",
                counts.unknown_removed
            ));
        }
        if counts.duplicates > 0 {
            extra.push_str(&format!(
                ", {} listed more than once (the last one counted)",
                counts.duplicates
            ));
        }
        run.info(
            r,
            &format!(
                "users ({} round): {} read, {} created, {} updated, {} unchanged, {} removed, \
                 {} filtered out{extra}{}",
                match round {
                    Round::Initial => "initial",
                    Round::Replay => "delta",
                },
                report.read,
                report.created,
                report.updated,
                report.unchanged,
                report.removed,
                report.filtered_out.iter().map(|c| c.count).sum::<u64>(),
                if run.dry_run {
                    " (dry run: nothing committed)"
                } else {
                    ""
                }
            ),
        );
        let mut unresolved = std::mem::take(&mut self.counts.unresolved);
        unresolved.sort();
        unresolved.dedup();
        unresolved.truncate(MAX_UNRESOLVED);
        let mut checkpoints = vec![
            Checkpoint {
                key: USERS_FILTER.into(),
                value: Some(self.filter.clone()),
            },
            Checkpoint {
                key: USERS_UNRESOLVED.into(),
                value: (!unresolved.is_empty()).then(|| unresolved.join(",")),
            },
        ];
        if round == Round::Initial {
            checkpoints.push(Checkpoint {
                key: LAST_FULL_SYNC.into(),
                value: Some(run.started_at.clone()),
            });
        }
        Ok(checkpoints)
    }
}

impl Run<'_> {
    /// The users phase; its report goes first in the run's data sets.
    pub(super) fn users(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
    ) -> Result<Round, SyncError> {
        let managers = self.features.contains(Features::MANAGERS);
        let filter = self.filter.fingerprint(self.filter_spec);
        let saved = self
            .store
            .get_checkpoint(USERS_FILTER)
            .map_err(|e| storage_error("get-checkpoint", e))?;
        let recheck: Vec<String> = self
            .store
            .get_checkpoint(USERS_UNRESOLVED)
            .map_err(|e| storage_error("get-checkpoint", e))?
            .map(|ids| {
                ids.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let replay_blocked = (saved.as_deref() != Some(filter.as_str())).then(|| {
            "the account filter (or the members of a group it names) changed since the \
             stored people were filtered: running an initial (full) round, which filters \
             everyone again"
                .to_owned()
        });
        let mut set = Users {
            select: users::select(managers),
            managers,
            filter,
            replay_blocked,
            started_empty: self
                .store
                .list_people_ids(None, 1)
                .map_err(|e| storage_error("list-people-ids", e))?
                .is_empty(),
            claimed: HashSet::default(),
            counts: Counts::default(),
            seen: IdSet::default(),
            to_fetch: Vec::new(),
            recheck,
            removed_now: IdSet::default(),
        };
        let round = self.delta(graph, r, &mut set)?;
        self.data_sets.push(set.counts.report());
        Ok(round)
    }
}

/// Keeps the last object of each id on a page (a later one is the later state), counting
/// the others as duplicates.
fn last_occurrences(entries: Vec<Entry>, counts: &mut Counts) -> Vec<Entry> {
    let mut later = IdSet::default();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries.into_iter().rev() {
        if later.insert(e.id()) {
            out.push(e);
        } else {
            counts.duplicates += 1;
        }
    }
    out.reverse();
    out
}

/// Filters and merges one person read from Graph; one the store does not hold by object
/// id goes to `unlinked`, for [`link_or_create`].
fn decide(
    run: &mut Run<'_>,
    person: Person,
    stored: Option<StoredPerson>,
    counts: &mut Counts,
    changes: &mut Vec<Change>,
    unlinked: &mut Vec<Person>,
) {
    match filter::decide(&run.filter, &person) {
        Ok(()) => {
            let Some(stored) = stored else {
                unlinked.push(person);
                return;
            };
            let fp = merge::fingerprint(&person);
            match merge::decide(Some(&stored), &fp) {
                Decision::Create | Decision::Update => {
                    let mut fields = run.field_map.changed_fields(&stored.person, &person);
                    if stored.status != PersonStatus::Active {
                        fields.push("status".into());
                    }
                    counts.updated += 1;
                    run.note(&person, PersonOutcome::Update(fields.clone()));
                    changes.push(merge::upsert(person, fp, UpsertKind::Update, fields, None));
                }
                Decision::Unchanged => {
                    counts.unchanged += 1;
                    run.note(&person, PersonOutcome::Unchanged);
                }
            }
        }
        Err(reason) => {
            counts.filtered_out(reason);
            run.note(&person, PersonOutcome::FilteredOut(reason.into()));
            if let Some(change) = stored.and_then(|s| merge::removal(s, run.removal)) {
                counts.removed += 1;
                changes.push(change);
            }
        }
    }
}

/// Matches accounts that are not linked to a record yet (see `crate::matching`): creates
/// the unmatched, links records of gone (or unlinked) accounts, and leaves conflicts out.
/// `claimed` (when the store began empty): only keys it holds are looked up.
fn link_or_create(
    run: &mut Run<'_>,
    accounts: Vec<Person>,
    counts: &mut Counts,
    changes: &mut Vec<Change>,
    mut claimed: Option<&mut Claimed>,
    removed_now: &IdSet,
) -> Result<(), SyncError> {
    let keys: Vec<Vec<PersonKey>> = accounts
        .iter()
        .map(|a| matching::keys(a, run.match_key))
        .collect();
    let flat: Vec<&PersonKey> = keys.iter().flatten().collect();
    let mut found = find_claimed(run, &flat, claimed.as_deref())?.into_iter();
    let found: Vec<Vec<Option<StoredPerson>>> = keys
        .iter()
        .map(|ks| ks.iter().map(|_| found.next().flatten()).collect())
        .collect();
    // A record this round removed (its batch may not be committed yet) is gone already.
    let found: Vec<Vec<Option<StoredPerson>>> = found
        .into_iter()
        .map(|f| {
            f.into_iter()
                .map(|r| {
                    r.map(|mut r| {
                        if r.status == PersonStatus::Active
                            && removed_now.contains(&r.person.object_id)
                        {
                            r.status = PersonStatus::Removed;
                        }
                        r
                    })
                })
                .collect()
        })
        .collect();
    let refs: Vec<&Person> = accounts.iter().collect();
    let claims = matching::resolve(&refs, &keys, found);
    for ((person, claim), keys) in accounts.into_iter().zip(claims).zip(&keys) {
        if let (Some(set), Claim::Create | Claim::Link(_)) = (claimed.as_deref_mut(), &claim) {
            record_claim(set, &person, keys);
        }
        match claim {
            Claim::Create => {
                counts.created += 1;
                run.note(&person, PersonOutcome::Create);
                let fp = merge::fingerprint(&person);
                changes.push(merge::upsert(
                    person,
                    fp,
                    UpsertKind::Create,
                    Vec::new(),
                    None,
                ));
            }
            Claim::Link(record) => {
                counts.linked += 1;
                let fields = run.field_map.changed_fields(&record.person, &person);
                let previous = record.person.object_id;
                run.note(&person, PersonOutcome::Link(previous.clone()));
                let fp = merge::fingerprint(&person);
                changes.push(merge::upsert(
                    person,
                    fp,
                    UpsertKind::Link,
                    fields,
                    Some(previous),
                ));
            }
            Claim::Conflict(conflict) => {
                counts.conflicts += 1;
                counts.unresolved.push(person.object_id.clone());
                run.note(&person, PersonOutcome::Conflict(conflict.message.clone()));
                run.conflict(conflict);
            }
        }
    }
    Ok(())
}

/// Looks `keys` up, in order, asking the store only about those it may hold: with
/// `claimed` (the store began empty), only keys this phase wrote; the others are `None`.
fn find_claimed(
    run: &mut Run<'_>,
    keys: &[&PersonKey],
    claimed: Option<&Claimed>,
) -> Result<Vec<Option<StoredPerson>>, SyncError> {
    let asked: Vec<bool> = keys
        .iter()
        .map(|k| claimed.is_none_or(|set| set.contains(&key_hash(k))))
        .collect();
    let wanted: Vec<PersonKey> = keys
        .iter()
        .zip(&asked)
        .filter(|&(_, &ask)| ask)
        .map(|(k, _)| (*k).clone())
        .collect();
    let mut answers = if wanted.is_empty() {
        Vec::new()
    } else {
        run.find(&wanted)?
    }
    .into_iter();
    Ok(asked
        .iter()
        .map(|&ask| if ask { answers.next().flatten() } else { None })
        .collect())
}

/// Records that the store now holds `person` under its object id and `keys`.
fn record_claim(set: &mut Claimed, person: &Person, keys: &[PersonKey]) {
    set.insert(id_hash(&person.object_id));
    set.extend(keys.iter().map(key_hash));
}

fn key_hash(k: &PersonKey) -> u64 {
    tagged_hash(matching::tagged(k))
}

/// [`key_hash`] of an object id key.
fn id_hash(id: &str) -> u64 {
    tagged_hash(matching::tagged_id(id))
}

fn tagged_hash((tag, text): (u8, &str)) -> u64 {
    crate::ids::hash_bytes(u64::from(tag), text.as_bytes())
}

/// Applies the removal policy to stored people not seen in Graph.
fn gone(
    run: &mut Run<'_>,
    seen: &IdSet,
    counts: &mut Counts,
    pending: &mut Vec<Change>,
) -> Result<(), SyncError> {
    let mut after: Option<String> = None;
    loop {
        let ids = run
            .store
            .list_people_ids(after.as_deref(), LIST_LIMIT)
            .map_err(|e| storage_error("list-people-ids", e))?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        if after.as_deref().is_some_and(|a| last.as_str() <= a) {
            return Err(SyncError::Storage(format!(
                "list-people-ids did not advance past {:?} (ids must come in ascending order)",
                after.unwrap_or_default()
            )));
        }
        let full_page = ids.len() >= LIST_LIMIT as usize;
        let keys: Vec<PersonKey> = ids
            .into_iter()
            .filter(|id| !seen.contains(id))
            .map(PersonKey::ObjectId)
            .collect();
        if !keys.is_empty() {
            for stored in run.find(&keys)?.into_iter().flatten() {
                if let Some(change) = merge::removal(stored, run.removal) {
                    counts.removed += 1;
                    run.note_removal(&change);
                    pending.push(change);
                }
            }
        }
        if pending.len() >= MAX_BATCH_CHANGES {
            let changes = std::mem::take(pending);
            run.commit(&Batch {
                changes,
                checkpoints: Vec::new(),
                run: None,
            })?;
        }
        if !full_page {
            break;
        }
        after = Some(last);
    }
    Ok(())
}
