//! The groups phase: groups and their user members by delta query, on the round machinery
//! the users share ([`super::round`]).
//!
//! Graph may list one group several times in a round, each time with another part of its
//! members (concepts/delta-query-groups.md, "Paging through members in a large group":
//! "the same group could show up anywhere in the nextLink sequence"). So:
//! - in an INITIAL round, the first entry of a group in the round resets it — a
//!   `delete-group` then an `upsert-group`, in the same batch — so that members stored
//!   before (who may have left while no delta link was usable) are cleared; that entry
//!   and every later one of the group in the round then only add members;
//! - in a REPLAY, each entry upserts the group (once per round) and applies its member
//!   additions and removals;
//! - a group `@removed` is a `delete-group`.
//!
//! Only user members are stored; other member types (groups, devices, contacts, service
//! principals) are counted and logged. The store cannot be asked which groups it holds
//! (the WIT storage interface has no such call), so the round compares each group with
//! the fingerprints the last complete round saved ([`GROUPS_FINGERPRINTS`], with the delta
//! link): created, updated or unchanged; a replay does not write an unchanged group again
//! (an initial round does, since it resets the group to rebuild its members).

use super::Run;
use super::round::{DeltaSet, Round, Tally};
use crate::graph::client::BodyError;
use crate::graph::{GraphClient, Need};
use crate::ids::IdSet;
use crate::merge::{self, Fingerprints, Outcome};
use crate::redact::Redactor;
use crate::sources::DeltaPage;
use crate::sources::groups::{self, Entry};
use crate::types::{Change, Checkpoint, DataSet, MembershipChange, ReasonCount, SyncError};

/// Checkpoint: the `@odata.deltaLink` of the last complete groups delta round.
pub const GROUPS_DELTA_LINK: &str = "groups.delta-link";
/// Checkpoint: the `$select` that delta link encodes.
pub const GROUPS_DELTA_SELECT: &str = "groups.delta-select";
/// Checkpoint: the fingerprints of the stored groups ([`Fingerprints`]), saved with the
/// delta link.
pub const GROUPS_FINGERPRINTS: &str = "groups.fingerprints";

#[derive(Default)]
struct Counts {
    tally: Tally,
    created: u64,
    updated: u64,
    unchanged: u64,
    deleted: u64,
    members_added: u64,
    members_removed: u64,
    /// Member references of other types, not stored.
    other_members: u64,
    /// Groups reset (deleted and rebuilt) by an initial round.
    reset: u64,
}

struct Groups {
    counts: Counts,
    /// Groups met in the current round.
    seen: IdSet,
    /// Groups upserted in the current round (an entry that carries only members cannot
    /// upsert its group: a later one of the same group then does).
    upserted: IdSet,
    /// The fingerprints the last complete round saved (`None`: not known).
    saved: Option<Fingerprints>,
    /// The fingerprints as of this round so far.
    now: Fingerprints,
}

impl DeltaSet for Groups {
    type Entry = Entry;
    const NAME: &'static str = "groups";
    const DATA_SET: DataSet = DataSet::Groups;
    const LINK_KEY: &'static str = GROUPS_DELTA_LINK;
    const SELECT_KEY: &'static str = GROUPS_DELTA_SELECT;
    const WHAT: &'static str = groups::WHAT;
    const NEED: Need = groups::NEED;
    const PREFER: (&'static str, &'static str) = groups::PREFER;

    fn select(&self) -> &str {
        groups::SELECT
    }

    fn parse(body: &[u8], url: &str) -> Result<DeltaPage<Entry>, BodyError> {
        groups::parse_page(body, url)
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.counts.tally
    }

    fn begin(&mut self, _round: Round) {
        self.seen = IdSet::default();
        self.upserted = IdSet::default();
        self.now = self.saved.clone().unwrap_or_default();
    }

    fn page(
        &mut self,
        _run: &mut Run<'_>,
        entries: Vec<Entry>,
        round: Round,
    ) -> Result<Vec<Change>, SyncError> {
        let c = &mut self.counts;
        let mut changes = Vec::new();
        for entry in entries {
            match entry {
                Entry::Removed { id } => {
                    if self.now.remove(&id) || self.saved.is_none() {
                        c.deleted += 1;
                    }
                    changes.push(Change::DeleteGroup(id));
                }
                Entry::Group(g) => {
                    let first = self.seen.insert(&g.id);
                    c.other_members += g.other_members;
                    if first && round == Round::Initial {
                        c.reset += 1;
                        changes.push(Change::DeleteGroup(g.id.clone()));
                    }
                    if let Some(group) = g.group()
                        && self.upserted.insert(&g.id)
                    {
                        let hash = merge::group_hash(&group);
                        let outcome = match &self.saved {
                            Some(_) => self.now.outcome(&g.id, hash),
                            None => Outcome::Created,
                        };
                        match outcome {
                            Outcome::Created => c.created += 1,
                            Outcome::Updated => c.updated += 1,
                            Outcome::Unchanged => c.unchanged += 1,
                        }
                        self.now.insert(&g.id, hash);
                        // An initial round reset the group above: it is written again.
                        if outcome != Outcome::Unchanged || round == Round::Initial {
                            changes.push(Change::UpsertGroup(group));
                        }
                    }
                    if !g.added.is_empty() || !g.removed.is_empty() {
                        c.members_added += g.added.len() as u64;
                        c.members_removed += g.removed.len() as u64;
                        changes.push(Change::GroupMembers(MembershipChange {
                            group_id: g.id,
                            added: g.added,
                            removed: g.removed,
                        }));
                    }
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
        _changes: &mut Vec<Change>,
    ) -> Result<Vec<Checkpoint>, SyncError> {
        let c = &self.counts;
        run.info(
            r,
            &format!(
                "groups ({} round): {} read, {} created, {} updated, {} unchanged{}, {} \
                 deleted; members: {} added, {} removed, {} of other types (not users) ignored",
                match round {
                    Round::Initial => "initial",
                    Round::Replay => "delta",
                },
                c.tally.read,
                c.created,
                c.updated,
                c.unchanged,
                if c.reset > 0 {
                    format!(" ({} reset and rebuilt)", c.reset)
                } else {
                    String::new()
                },
                c.deleted,
                c.members_added,
                c.members_removed,
                c.other_members
            ),
        );
        Ok(vec![Checkpoint {
            key: GROUPS_FINGERPRINTS.into(),
            value: Some(self.now.encode()),
        }])
    }
}

impl Run<'_> {
    /// The groups phase: data sets `groups` and `group-members`.
    pub(super) fn groups(&mut self, graph: &mut GraphClient<'_>) -> Result<Round, SyncError> {
        let r = graph.redactor().clone();
        let saved = self.fingerprints(GROUPS_FINGERPRINTS)?;
        let mut set = Groups {
            counts: Counts::default(),
            seen: IdSet::default(),
            upserted: IdSet::default(),
            now: saved.clone().unwrap_or_default(),
            saved,
        };
        let round = self.delta(graph, &r, &mut set)?;
        let c = set.counts;
        let groups = self.data_set(DataSet::Groups);
        groups.pages += c.tally.pages;
        groups.read += c.tally.read;
        groups.created += c.created;
        groups.updated += c.updated;
        groups.unchanged += c.unchanged;
        groups.removed += c.deleted;
        groups.written += c.created + c.updated + c.deleted;
        let members = self.data_set(DataSet::GroupMembers);
        members.pages += c.tally.pages;
        members.read += c.members_added + c.members_removed + c.other_members;
        members.created += c.members_added;
        members.removed += c.members_removed;
        members.written += c.members_added + c.members_removed;
        if c.other_members > 0 {
            members.filtered_out.push(ReasonCount {
                reason: "not-a-user".into(),
                count: c.other_members,
            });
        }
        Ok(round)
    }
}
