//! The users phase: users (and, with feature `managers`, their managers) by delta query,
//! filtered, merged into the stored people and, after an initial round, the removal
//! policy applied to stored people the round did not list.
//!
//! Removals (people `@removed`, left out by the filter now, or not listed by an initial
//! round) are held back to the round's end ([`Removals`]): the removal guard
//! ([`guard`]) counts them all before any is committed, and they go with the final batch.
//! A resumed round ([`super::round`]) restores the ids an initial round saw, the pending
//! removals and the round's other end-of-round state from the resume checkpoint
//! ([`USERS_RESUME`]), so it removes exactly the people the whole round did not list.
//!
//! Fields that no users round reads are kept as stored: `last-sign-in` (the sign-in pass
//! sets it) and, without feature `managers`, `manager-id`.

use super::round::{DeltaSet, Round, Tally};
use super::{Run, storage_error};
use crate::filter;
use crate::graph::client::BodyError;
use crate::graph::{GraphClient, Need};
use crate::ids::{IdHasher, IdSet};
use crate::matching::{self, Claim, MatchKeys};
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
/// Checkpoint: the resume state of an unfinished users round (see [`super::round`]).
pub const USERS_RESUME: &str = "users.resume";
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
    /// Stored people this round would remove, held back to its end.
    removals: Removals,
    filtered: Vec<(&'static str, u64)>,
    /// Accounts left out for a match conflict in this run.
    unresolved: Vec<String>,
    /// Whom this phase counted (see [`Counted`]).
    counted: Counted,
}

/// Whom the users phase of this run counted and how, so that a later write of the same
/// person in the run (a deleted manager's reports, the sign-in pass) counts each person once.
#[derive(Default)]
pub(super) struct Counted {
    /// Created, updated, linked or removed (for a filter) by this run.
    written: IdSet,
    /// Counted unchanged by this run.
    unchanged: IdSet,
}

/// How a later write of a person in the same run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LaterWrite {
    /// The run counted the person written already: not counted again.
    Counted,
    /// The run counted the person unchanged: now updated instead.
    WasUnchanged,
    /// The run had not counted the person: updated.
    First,
}

impl Counted {
    fn wrote(&mut self, id: &str) {
        self.written.insert(id);
    }

    fn kept(&mut self, id: &str) {
        self.unchanged.insert(id);
    }

    /// Counts a later write of the stored person `id` (once: it is written from now on).
    pub(super) fn later_write(&mut self, id: &str) -> LaterWrite {
        if !self.written.insert(id) {
            LaterWrite::Counted
        } else if self.unchanged.contains(id) {
            LaterWrite::WasUnchanged
        } else {
            LaterWrite::First
        }
    }

    /// Applies a later write to the users phase's own counts.
    fn recount(&mut self, id: &str, counts_updated: &mut u64, counts_unchanged: &mut u64) {
        match self.later_write(id) {
            LaterWrite::Counted => {}
            LaterWrite::WasUnchanged => {
                *counts_updated += 1;
                *counts_unchanged = counts_unchanged.saturating_sub(1);
            }
            LaterWrite::First => *counts_updated += 1,
        }
    }
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
#[derive(Default)]
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
    /// Ids this initial round listed since the last resume chunk ([`Users::progress`]).
    seen_new: Vec<String>,
    /// How many of `counts.unresolved` and `deleted_ids` earlier resume chunks hold.
    saved_unresolved: usize,
    saved_deleted: usize,
    /// People this round's pages created (for the guard's count of the people stored
    /// when the run began).
    creates: u64,
    /// Ids this round reported deleted from the directory (`@removed`), stored or not:
    /// their direct reports lose them as manager ([`clear_removed_managers`]).
    deleted_ids: Vec<String>,
    /// Whether the store held no people when the phase began: then it holds only what
    /// this phase wrote, and is asked only about keys in `claimed` (on a tenant's first
    /// sync, no lookups by id, email or UPN at all but for people listed twice).
    started_empty: bool,
    /// When `started_empty`: what this phase wrote.
    claimed: Claimed,
}

/// Hashes ([`tagged_hash`]) of the keys (object id, email, UPN) of the people a phase that
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
        self.deleted_ids.clear();
        self.counts.removals = Removals::default();
        self.seen_new.clear();
        (self.saved_unresolved, self.saved_deleted) = (0, 0);
        self.creates = 0;
    }

    const RESUME_KEY: Option<&'static str> = Some(USERS_RESUME);

    fn resume_basis(&self) -> &str {
        &self.filter
    }

    fn progress(&mut self) -> String {
        let chunk = Chunk {
            seen: std::mem::take(&mut self.seen_new),
            remove: self.counts.removals.changed_since_saved(),
            unresolved: self.counts.unresolved[self.saved_unresolved..].to_vec(),
            deleted: self.deleted_ids[self.saved_deleted..].to_vec(),
        };
        self.saved_unresolved = self.counts.unresolved.len();
        self.saved_deleted = self.deleted_ids.len();
        // Strings and booleans only: serialising cannot fail.
        serde_json::to_string(&chunk).unwrap_or_default()
    }

    fn restore(&mut self, chunk: &str) -> Result<(), String> {
        let chunk: Chunk = serde_json::from_str(chunk).map_err(|e| e.to_string())?;
        for id in &chunk.seen {
            self.seen.insert(id);
        }
        for (id, removal) in chunk.remove {
            match removal {
                Some(restorable) => self.counts.removals.pending.insert(id, restorable),
                None => self.counts.removals.pending.remove(&id),
            };
        }
        // As `page` marks them: the ids reported deleted (a person only filtered out is
        // still in the directory, and its record is no one else's to link).
        for id in &chunk.deleted {
            self.removed_now.insert(id);
        }
        self.counts.unresolved.extend(chunk.unresolved);
        self.deleted_ids.extend(chunk.deleted);
        self.saved_unresolved = self.counts.unresolved.len();
        self.saved_deleted = self.deleted_ids.len();
        Ok(())
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
        let keys: Vec<(u8, &str)> = entries
            .iter()
            .map(|e| matching::tagged_id(e.id()))
            .collect();
        let claimed = self.started_empty.then_some(&self.claimed);
        let found = find_claimed(run, &keys, claimed)?;
        drop(keys);
        let counts = &mut self.counts;
        let mut changes = Vec::with_capacity(entries.len());
        // Accounts that pass the filter and are not linked to a record yet: matched by
        // email / user principal name together, after the loop.
        let mut unlinked: Vec<Person> = Vec::with_capacity(entries.len());
        for (entry, stored) in entries.into_iter().zip(found) {
            // An initial round accounts for every id it lists, removed ones included, so
            // that the search for the gone does not handle them a second time.
            if round == Round::Initial {
                if !self.seen.insert(entry.id()) {
                    counts.duplicates += 1;
                } else if !run.dry_run {
                    self.seen_new.push(entry.id().to_owned());
                }
            }
            match entry {
                Entry::Removed { restorable, .. } => {
                    self.deleted_ids.push(entry.id().to_owned());
                    let Some(stored) = stored else {
                        counts.unknown_removed += 1;
                        continue;
                    };
                    self.removed_now.insert(&stored.person.object_id);
                    counts.removals.hold(&stored.person.object_id, restorable);
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
                    let keys = MatchKeys::carried(u);
                    record_claim(&mut self.claimed, &u.stored.person.object_id, &keys);
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
        self.creates += changes
            .iter()
            .filter(|c| matches!(c, Change::UpsertPerson(u) if u.kind == UpsertKind::Create))
            .count() as u64;
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
        let (gone_ids, listed) = if round == Round::Initial {
            let seen = std::mem::take(&mut self.seen);
            let (ids, listed) = gone(run, &seen)?;
            (ids, Some(listed))
        } else {
            (Vec::new(), None)
        };
        // A record the final batch re-keys (a link) is not the gone account's any more.
        let relinked: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::UpsertPerson(u) => u.previous_object_id.as_deref(),
                _ => None,
            })
            .collect();
        let (taken, ids): (Vec<(String, bool)>, _) =
            std::mem::take(&mut self.counts.removals.pending)
                .into_iter()
                .chain(gone_ids.into_iter().map(|id| (id, false)))
                .partition(|(id, _)| relinked.contains(&id.as_str()));
        // Their account is gone all the same (counted removed), but the record lives on
        // under the new account: no removal change, and nothing for the guard.
        self.counts.removed += taken.len() as u64;
        let mut held = Held { ids, found: None };
        let g = run.removal_guard;
        // The guard can trip only when it does not allow everything (at 100 % and with no
        // more removals than its count, it cannot: then the stored people need no count).
        let would_remove = if g.allow {
            0
        } else {
            count_removals(run, &mut held)?
        };
        if would_remove > 0 && (g.max_percent < 100 || would_remove > u64::from(g.max_count)) {
            // The people stored when the run began: those stored now but for the ones this
            // round's committed pages created (the final batch is not committed yet).
            let listed = match listed {
                Some(n) => n,
                None => count_people(run)?,
            };
            let committed_creates = if run.dry_run {
                0
            } else {
                let final_creates = changes
                    .iter()
                    .filter(
                        |c| matches!(c, Change::UpsertPerson(u) if u.kind == UpsertKind::Create),
                    )
                    .count() as u64;
                self.creates.saturating_sub(final_creates)
            };
            guard(
                run,
                r,
                would_remove,
                listed.saturating_sub(committed_creates),
            )?;
        }
        apply_removals(run, &mut held, &mut self.counts, changes)?;
        clear_removed_managers(run, &self.deleted_ids, &mut self.counts, changes)?;
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
        let saved = self.checkpoint(USERS_FILTER)?;
        let recheck: Vec<String> = self
            .checkpoint(USERS_UNRESOLVED)?
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
            recheck,
            ..Users::default()
        };
        let round = self.delta(graph, r, &mut set);
        // A failed run's report says what the phase did until then.
        self.data_sets.push(set.counts.report());
        let round = round?;
        self.counted = std::mem::take(&mut set.counts.counted);
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
            // Listed again, passing the filter: the later state wins over a held removal.
            counts.removals.keep(&person.object_id);
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
                    counts.counted.wrote(&person.object_id);
                    run.note(&person, PersonOutcome::Update(fields.clone()));
                    let keys = MatchKeys::of(&person);
                    changes.push(merge::upsert(
                        person,
                        fp,
                        UpsertKind::Update,
                        fields,
                        None,
                        Some(&stored.person),
                        keys,
                    ));
                }
                Decision::Unchanged => {
                    counts.unchanged += 1;
                    counts.counted.kept(&person.object_id);
                    run.note(&person, PersonOutcome::Unchanged);
                }
            }
        }
        Err(reason) => {
            counts.filtered_out(reason);
            run.note(&person, PersonOutcome::FilteredOut(reason.into()));
            // Held back to the round's end (the removal guard counts it first).
            if stored.is_some() {
                counts.removals.hold(&person.object_id, false);
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
    // Each account's keys, computed once: looked up now, carried by its upsert later.
    let match_keys: Vec<MatchKeys> = accounts.iter().map(MatchKeys::of).collect();
    let keys: Vec<Vec<PersonKey>> = match_keys
        .iter()
        .map(|k| k.lookups(run.match_key))
        .collect();
    let flat: Vec<(u8, &str)> = keys.iter().flatten().map(matching::tagged).collect();
    let mut found = find_claimed(run, &flat, claimed.as_deref())?.into_iter();
    // A record this round removed (its batch may not be committed yet) is gone already.
    let mut found_one = || {
        found.next().flatten().map(|mut r| {
            if r.status == PersonStatus::Active && removed_now.contains(&r.person.object_id) {
                r.status = PersonStatus::Removed;
            }
            r
        })
    };
    let found: Vec<Vec<Option<StoredPerson>>> = keys
        .iter()
        .map(|ks| ks.iter().map(|_| found_one()).collect())
        .collect();
    let refs: Vec<&Person> = accounts.iter().collect();
    let claims = matching::resolve(&refs, &keys, found);
    for ((person, claim), keys) in accounts.into_iter().zip(claims).zip(match_keys) {
        if let (Some(set), Claim::Create | Claim::Link(_)) = (claimed.as_deref_mut(), &claim) {
            record_claim(set, &person.object_id, &keys);
        }
        match claim {
            Claim::Create => {
                counts.created += 1;
                counts.counted.wrote(&person.object_id);
                run.note(&person, PersonOutcome::Create);
                let fp = merge::fingerprint(&person);
                changes.push(merge::upsert(
                    person,
                    fp,
                    UpsertKind::Create,
                    Vec::new(),
                    None,
                    None,
                    keys,
                ));
            }
            Claim::Link(record) => {
                counts.linked += 1;
                counts.counted.wrote(&person.object_id);
                let fields = run.field_map.changed_fields(&record.person, &person);
                let previous = record.person.object_id.clone();
                run.note(&person, PersonOutcome::Link(previous.clone()));
                let fp = merge::fingerprint(&person);
                changes.push(merge::upsert(
                    person,
                    fp,
                    UpsertKind::Link,
                    fields,
                    Some(previous),
                    Some(&record.person),
                    keys,
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

/// Clears the manager of the people whose manager this round reported deleted from the
/// directory (`deleted`, any removal policy: the account is gone). Graph re-sends the
/// reports without `manager@delta` (or not at all), so the delta alone keeps the old
/// reference. Runs at the end of the round, into its final batch (`changes`, which saves
/// the delta link): the earlier pages are committed, so the store's direct reports are
/// current, and one that got another manager in this round keeps it; a person the final
/// batch writes already is fixed in that change. Only active people are rewritten: the
/// kept record of a gone (or filtered-out) account stays as it was stored. Each person is
/// counted once in the run ([`Counted`]).
fn clear_removed_managers(
    run: &mut Run<'_>,
    deleted: &[String],
    counts: &mut Counts,
    changes: &mut Vec<Change>,
) -> Result<(), SyncError> {
    if deleted.is_empty() {
        return Ok(());
    }
    let mut gone = IdSet::default();
    for id in deleted {
        gone.insert(id);
    }
    // The final batch's own people first: what it writes is their state now.
    let mut in_batch = IdSet::default();
    for change in changes.iter_mut() {
        let Change::UpsertPerson(u) = change else {
            if let Change::DeletePerson(id) = change {
                in_batch.insert(id);
            }
            continue;
        };
        in_batch.insert(&u.stored.person.object_id);
        let p = &u.stored.person;
        if u.stored.status != PersonStatus::Active
            || !p.manager_id.as_deref().is_some_and(|m| gone.contains(m))
        {
            continue;
        }
        let before = p.clone();
        u.stored.person.manager_id = None;
        u.stored.fingerprint = merge::fingerprint(&u.stored.person);
        if u.kind != UpsertKind::Create {
            for field in run.field_map.changed_fields(&before, &u.stored.person) {
                if !u.changed_fields.contains(&field) {
                    u.changed_fields.push(field);
                }
            }
        }
    }
    for id in deleted {
        let reports = run
            .store
            .find_direct_reports(id)
            .map_err(|e| storage_error("find-direct-reports", e))?;
        for stored in reports {
            if stored.status != PersonStatus::Active || !in_batch.insert(&stored.person.object_id) {
                continue;
            }
            let mut person = stored.person.clone();
            person.manager_id = None;
            let fields = run.field_map.changed_fields(&stored.person, &person);
            counts.counted.recount(
                &person.object_id,
                &mut counts.updated,
                &mut counts.unchanged,
            );
            changes.push(merge::rewrite_person(stored, person, fields));
        }
    }
    Ok(())
}

/// Looks `keys` ([`matching::tagged`] pairs) up, in order, asking the store only about
/// those it may hold: with `claimed` (the store began empty), only keys this phase wrote;
/// the others are `None`.
fn find_claimed(
    run: &mut Run<'_>,
    keys: &[(u8, &str)],
    claimed: Option<&Claimed>,
) -> Result<Vec<Option<StoredPerson>>, SyncError> {
    let asked: Vec<bool> = keys
        .iter()
        .map(|&k| claimed.is_none_or(|set| set.contains(&tagged_hash(k))))
        .collect();
    let wanted: Vec<PersonKey> = keys
        .iter()
        .zip(&asked)
        .filter(|&(_, &ask)| ask)
        .map(|(&k, _)| matching::untagged(k))
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

/// Records that the store now holds a person under `object_id` and `keys`.
fn record_claim(set: &mut Claimed, object_id: &str, keys: &MatchKeys) {
    set.insert(id_hash(object_id));
    set.extend(keys.tagged().map(tagged_hash));
}

/// [`tagged_hash`] of an object id key.
fn id_hash(id: &str) -> u64 {
    tagged_hash(matching::tagged_id(id))
}

/// The hash of a key ([`matching::tagged`] pair) in [`Claimed`].
fn tagged_hash((tag, text): (u8, &str)) -> u64 {
    crate::ids::hash_bytes(u64::from(tag), text.as_bytes())
}

/// The stored people an initial round did not list (`seen`), in id order, and how many
/// people are stored.
fn gone(run: &mut Run<'_>, seen: &IdSet) -> Result<(Vec<String>, u64), SyncError> {
    let mut gone = Vec::new();
    let listed = list_people(run, |id| {
        if !seen.contains(&id) {
            gone.push(id);
        }
    })?;
    Ok((gone, listed))
}

/// How many people are stored (any status).
fn count_people(run: &mut Run<'_>) -> Result<u64, SyncError> {
    list_people(run, |_| {})
}

/// Pages through the stored people's ids, in ascending order; returns how many.
fn list_people(run: &mut Run<'_>, mut each: impl FnMut(String)) -> Result<u64, SyncError> {
    let mut after: Option<String> = None;
    let mut listed = 0u64;
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
        listed += ids.len() as u64;
        ids.into_iter().for_each(&mut each);
        if !full_page {
            break;
        }
        after = Some(last);
    }
    Ok(listed)
}

/// Stored people a round would remove, held back to its end: object id → whether Graph
/// reported the account restorable (`@removed` reason `changed`).
#[derive(Default)]
pub(super) struct Removals {
    pending: std::collections::BTreeMap<String, bool>,
    /// Ids whose entry changed since the last resume chunk.
    touched: std::collections::BTreeSet<String>,
}

impl Removals {
    fn hold(&mut self, id: &str, restorable: bool) {
        self.pending.insert(id.to_owned(), restorable);
        self.touched.insert(id.to_owned());
    }

    fn keep(&mut self, id: &str) {
        if self.pending.remove(id).is_some() {
            self.touched.insert(id.to_owned());
        }
    }

    /// The entries changed since the last call: held (restorable or not), or no longer.
    fn changed_since_saved(&mut self) -> std::collections::BTreeMap<String, Option<bool>> {
        std::mem::take(&mut self.touched)
            .into_iter()
            .map(|id| {
                let held = self.pending.get(&id).copied();
                (id, held)
            })
            .collect()
    }
}

/// One chunk of the users round's resume state (see [`super::round`]): what the round
/// gathered between two progress checkpoints.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Chunk {
    /// Ids an initial round listed.
    #[serde(default)]
    seen: Vec<String>,
    /// Held removals (id → restorable), or `null`: no longer held.
    #[serde(default)]
    remove: std::collections::BTreeMap<String, Option<bool>>,
    /// Accounts left out for a match conflict.
    #[serde(default)]
    unresolved: Vec<String>,
    /// Ids reported deleted from the directory.
    #[serde(default)]
    deleted: Vec<String>,
}

/// The removals a round held back: (object id, restorable), and their stored records
/// when they fit in one lookup (looked up once for the guard's count and the changes).
struct Held {
    ids: Vec<(String, bool)>,
    found: Option<Vec<Option<StoredPerson>>>,
}

/// The removal changes of the `held` people, in lookups of [`LIST_LIMIT`]; `each` gets
/// every stored person with whether Graph reported them restorable, and their change.
fn removals_of(
    run: &mut Run<'_>,
    held: &mut Held,
    mut each: impl FnMut(&mut Run<'_>, &StoredPerson, bool, Change) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let single = held.ids.len() <= LIST_LIMIT as usize;
    for part in held.ids.chunks(LIST_LIMIT as usize) {
        let found = match held.found.take() {
            Some(found) => found,
            None => {
                let keys: Vec<PersonKey> = part
                    .iter()
                    .map(|(id, _)| PersonKey::ObjectId(id.clone()))
                    .collect();
                run.find(&keys)?
            }
        };
        if single {
            held.found = Some(found.clone());
        }
        for ((_, restorable), stored) in part.iter().zip(found) {
            let Some(stored) = stored else { continue };
            if let Some(change) = merge::removal_of(stored.clone(), run.removal, *restorable) {
                each(run, &stored, *restorable, change)?;
            }
        }
    }
    Ok(())
}

/// How many of the `held` people the removal guard counts: active ones the policy
/// changes (deletes, deactivates, flags or marks removed).
fn count_removals(run: &mut Run<'_>, held: &mut Held) -> Result<u64, SyncError> {
    let mut n = 0;
    removals_of(run, held, |_, stored, _, _| {
        n += u64::from(stored.status == PersonStatus::Active);
        Ok(())
    })?;
    Ok(n)
}

/// Applies the removal policy to the `held` people, into the final batch (`pending`);
/// a large one is committed in batches of its own first.
fn apply_removals(
    run: &mut Run<'_>,
    held: &mut Held,
    counts: &mut Counts,
    pending: &mut Vec<Change>,
) -> Result<(), SyncError> {
    let mut in_batch = 0;
    removals_of(run, held, |run, stored, restorable, change| {
        counts.removed += 1;
        in_batch += 1;
        if restorable && run.removal == RemovalPolicy::Delete {
            counts.kept_restorable += 1;
        }
        counts.counted.wrote(&stored.person.object_id);
        run.note_removal(&change);
        pending.push(change);
        if in_batch >= MAX_BATCH_CHANGES {
            in_batch = 0;
            let changes = std::mem::take(pending);
            run.commit(&Batch {
                changes,
                checkpoints: Vec::new(),
                run: None,
            })?;
        }
        Ok(())
    })
}

/// The percent rule never allows fewer removals than this: a tenant of five that loses one
/// person (20 %) is not a mass removal, and stopping its every nightly run for it would only
/// teach admins to turn the guard off. `max-count` still applies below it.
pub const PERCENT_FLOOR: u64 = 10;

/// The removal guard ([`crate::types::RemovalGuard`], after Microsoft Entra Connect's
/// "prevent accidental deletes"): a run that would remove more than `max-count` people,
/// or more than `max-percent` of the `stored` people, stops before committing any
/// removal, unless the guard allows it. A dry run commits nothing, so it only warns.
fn guard(run: &mut Run<'_>, r: &Redactor, would_remove: u64, stored: u64) -> Result<(), SyncError> {
    let g = run.removal_guard;
    let by_percent = (u64::from(g.max_percent).saturating_mul(stored) / 100).max(PERCENT_FLOOR);
    let allowed = by_percent.min(u64::from(g.max_count));
    if g.allow || would_remove <= allowed {
        return Ok(());
    }
    let policy = match run.removal {
        RemovalPolicy::Keep => "keep: marked removed",
        RemovalPolicy::Flag => "flag: flagged for review",
        RemovalPolicy::Deactivate => "deactivate: made inactive",
        RemovalPolicy::Delete => "delete: deleted",
    };
    let why = format!(
        "This run would remove {would_remove} of the {stored} people stored for tenant {} \
         (removal policy {policy}), more than the removal guard allows: {allowed} (at most \
         {}% of the stored people but never fewer than {PERCENT_FLOOR}, and at most {} \
         people).",
        run.tenant.key, g.max_percent, g.max_count
    );
    if run.dry_run {
        run.warn(
            r,
            "mass-removal",
            format!("{why} A real run would stop before removing anyone."),
        );
        return Ok(());
    }
    Err(SyncError::MassRemoval(crate::types::MassRemoval {
        would_remove,
        stored,
        allowed,
        message: format!(
            "{why} It stopped before removing anyone; the other changes were saved and the \
             delta link was kept, so the next run meets these removals again. If they are \
             expected (say, the account filter was narrowed on purpose), raise [tenant.sync] \
             max_removal_percent / max_removals or run with --allow-mass-removal; if not, \
             check the filter and the tenant's directory."
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed round restores what the interrupted one knew: a person `@removed` from
    /// the directory is gone (its record may be linked to a new account), one only
    /// filtered out is not.
    #[test]
    fn a_resume_chunk_restores_whom_the_round_removed_from_the_directory() {
        let mut before = Users::default();
        before.counts.removals.hold("deleted", false);
        before.removed_now.insert("deleted");
        before.deleted_ids.push("deleted".into());
        before.counts.removals.hold("filtered-out", false);
        let chunk = before.progress();

        let mut after = Users::default();
        after.begin(Round::Replay);
        after.restore(&chunk).unwrap();
        assert_eq!(
            after.counts.removals.pending,
            before.counts.removals.pending
        );
        assert_eq!(after.deleted_ids, before.deleted_ids);
        assert!(after.removed_now.contains("deleted"));
        assert!(
            !after.removed_now.contains("filtered-out"),
            "a filtered-out person is still in the directory"
        );
    }
}
