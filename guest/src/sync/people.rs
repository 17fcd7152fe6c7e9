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
use crate::ids::IdSet;
use crate::merge::{self, Decision};
use crate::redact::Redactor;
use crate::sources::DeltaPage;
use crate::sources::users::{self, Entry};
use crate::types::{
    Batch, Change, Checkpoint, DataSet, DataSetReport, Features, Person, PersonKey, ReasonCount,
    RemovalPolicy, StoredPerson, SyncError,
};

/// Checkpoint written with the final batch of a complete initial (full) users round.
pub const LAST_FULL_SYNC: &str = "users.last-full-sync";
/// Checkpoint: the `@odata.deltaLink` of the last complete users delta round, written only
/// in the final batch of that round.
pub const USERS_DELTA_LINK: &str = "users.delta-link";
/// Checkpoint: the `$select` that delta link encodes, saved with it.
pub const USERS_DELTA_SELECT: &str = "users.delta-select";
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
    pub removed: u64,
    /// Objects listed more than once (delta-query-overview.md: "a single entity will be
    /// contained multiple times in the response" is possible); the last one wins.
    duplicates: u64,
    /// `@removed` ids the store never held (ignored).
    unknown_removed: u64,
    /// Soft-deleted (restorable) people kept as removed although the policy is delete.
    kept_restorable: u64,
    /// Changed users the store does not hold that came without a userPrincipalName.
    partial_unknown: u64,
    filtered: Vec<(&'static str, u64)>,
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
            written: self.created + self.updated + self.removed,
            created: self.created,
            updated: self.updated,
            unchanged: self.unchanged,
            removed: self.removed,
            conflicts: 0,
            filtered_out,
        }
    }
}

/// The users delta data set of one run.
struct Users {
    select: String,
    managers: bool,
    counts: Counts,
    /// Ids listed by the current initial round (for the search for the gone).
    seen: IdSet,
}

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

    fn parse(body: &[u8], url: &str) -> Result<DeltaPage<Entry>, BodyError> {
        users::parse_page(body, url)
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.counts.tally
    }

    fn begin(&mut self, _round: Round) {
        self.seen = IdSet::default();
    }

    fn page(
        &mut self,
        run: &mut Run<'_>,
        entries: Vec<Entry>,
        round: Round,
    ) -> Result<Vec<Change>, SyncError> {
        let counts = &mut self.counts;
        let entries = last_occurrences(entries, counts);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<PersonKey> = entries
            .iter()
            .map(|e| PersonKey::ObjectId(e.id().to_owned()))
            .collect();
        let found = run.find(&keys)?;
        drop(keys);
        let mut changes = Vec::new();
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
                    if let Some(change) = merge::removal_of(stored, run.removal, restorable) {
                        counts.removed += 1;
                        if restorable && run.removal == RemovalPolicy::Delete {
                            counts.kept_restorable += 1;
                        }
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
                        (Round::Replay, None) => match change.into_new_person() {
                            Some(p) => p,
                            None => {
                                counts.partial_unknown += 1;
                                continue;
                            }
                        },
                    };
                    decide(run, person, stored, counts, &mut changes);
                }
            }
        }
        Ok(changes)
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
                     user principal name, so they could not be created; the next full sync \
                     imports them.",
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
        Ok(if round == Round::Initial {
            vec![Checkpoint {
                key: LAST_FULL_SYNC.into(),
                value: Some(run.started_at.clone()),
            }]
        } else {
            Vec::new()
        })
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
        let mut set = Users {
            select: users::select(managers),
            managers,
            counts: Counts::default(),
            seen: IdSet::default(),
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

/// Filters and merges one person read from Graph.
fn decide(
    run: &Run<'_>,
    person: Person,
    stored: Option<StoredPerson>,
    counts: &mut Counts,
    changes: &mut Vec<Change>,
) {
    match filter::decide(run.filter, &person) {
        Ok(()) => {
            let fp = merge::fingerprint(&person);
            match merge::decide(stored.as_ref(), &fp) {
                Decision::Create => {
                    counts.created += 1;
                    changes.push(merge::upsert(person, fp));
                }
                Decision::Update => {
                    counts.updated += 1;
                    changes.push(merge::upsert(person, fp));
                }
                Decision::Unchanged => counts.unchanged += 1,
            }
        }
        Err(reason) => {
            counts.filtered_out(reason);
            if let Some(change) = stored.and_then(|s| merge::removal(s, run.removal)) {
                counts.removed += 1;
                changes.push(change);
            }
        }
    }
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
