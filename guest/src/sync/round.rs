//! The delta round machinery users and groups share: which round to run (a replay of the
//! saved `@odata.deltaLink`, or an initial round), paging by `@odata.nextLink` with one
//! batch per page, the final batch that alone saves the new delta link (and the `$select`
//! it encodes), and the fall-back to an initial round when Graph answers a replay with its
//! "resync" error (see `crate::graph::client::is_resync`).
//!
//! concepts/delta-query-overview.md: "State tokens ... encode and include other query
//! parameters (such as `$select`) specified in the initial delta query", so a saved link
//! keeps the `$select` of the round that issued it. When the engine now asks for other
//! properties (feature `managers` switched on, or a new engine version), replaying the old
//! link would never return them: the select is saved beside the link, and a different one
//! runs an initial round.

use super::{Run, at_page, storage_error};
use crate::graph::client::{BodyError, Reply};
use crate::graph::paging::{self, Pager};
use crate::graph::{GraphClient, Need};
use crate::redact::Redactor;
use crate::sources::DeltaPage;
use crate::types::{Batch, Change, Checkpoint, DataSet, HttpFailure, SyncError};
use crate::url::display_url;

/// The two kinds of delta round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Round {
    /// From scratch: lists every object (the collection's whole state).
    Initial,
    /// Replays a saved delta link: only what changed since.
    Replay,
}

/// Pages and objects read by a data set's rounds in this run (all rounds together).
#[derive(Default, Debug, Clone, Copy)]
pub(super) struct Tally {
    pub pages: u32,
    pub read: u64,
}

/// A data set read with Graph's delta query.
pub(super) trait DeltaSet {
    type Entry;
    /// The collection, e.g. "users": names it in URLs, logs, warnings and errors.
    const NAME: &'static str;
    const DATA_SET: DataSet;
    /// Checkpoint keys of the saved delta link and of the `$select` it encodes.
    const LINK_KEY: &'static str;
    const SELECT_KEY: &'static str;
    /// What a page is, for error messages.
    const WHAT: &'static str;
    const NEED: Need;
    const PREFER: (&'static str, &'static str);

    /// The `$select` of this run's rounds.
    fn select(&self) -> &str;
    /// Why the saved delta link must not be replayed this run, if it must not.
    fn replay_blocked(&self) -> Option<&str> {
        None
    }
    fn first_url(&self, graph: &str) -> String {
        format!(
            "{graph}/v1.0/{}/delta?$select={}",
            Self::NAME,
            self.select()
        )
    }
    fn parse(body: &[u8], url: &str) -> Result<DeltaPage<Self::Entry>, BodyError>;
    fn tally(&mut self) -> &mut Tally;
    /// A round starts (from scratch, or again after a resync).
    fn begin(&mut self, round: Round);
    /// Decides one page; returns its changes.
    fn page(
        &mut self,
        run: &mut Run<'_>,
        entries: Vec<Self::Entry>,
        round: Round,
    ) -> Result<Vec<Change>, SyncError>;
    /// After [`Self::page`], what the page's objects needed from Graph besides it (users a
    /// replay reports without the properties to create them, read whole); returns the
    /// further changes of the page. Nothing by default.
    fn complete_page(
        &mut self,
        _run: &mut Run<'_>,
        _graph: &mut GraphClient<'_>,
        _round: Round,
        _last: bool,
    ) -> Result<Vec<Change>, SyncError> {
        Ok(Vec::new())
    }
    /// The round's last page was read: adds the final batch's further changes (committing
    /// large ones in batches of their own before it) and returns its further checkpoints.
    fn finish(
        &mut self,
        run: &mut Run<'_>,
        r: &Redactor,
        round: Round,
        changes: &mut Vec<Change>,
    ) -> Result<Vec<Checkpoint>, SyncError>;
}

/// How a round ended.
enum RoundEnd {
    Done,
    /// Graph answered the replay with its resync error: run an initial round instead.
    Resync(HttpFailure),
}

impl Run<'_> {
    /// Runs the delta phase of `set` to a complete round, whose final batch (with the new
    /// delta link) is held as the run's pending batch. Returns the kind of round that
    /// completed.
    pub(super) fn delta<S: DeltaSet>(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
        set: &mut S,
    ) -> Result<Round, SyncError> {
        let (mut round, mut url) = self.start(graph, r, set)?;
        loop {
            match self.round(graph, r, set, round, url)? {
                RoundEnd::Done => return Ok(round),
                RoundEnd::Resync(f) => {
                    // Only a replay ends this way, so this happens at most once a run.
                    let answer = match &f.graph_code {
                        Some(code) => format!("HTTP {} {code}", f.status.unwrap_or(0)),
                        None => format!("HTTP {}", f.status.unwrap_or(0)),
                    };
                    self.warn(
                        r,
                        "delta-expired",
                        format!(
                            "Graph no longer accepts the saved {} delta link ({answer}): \
                             its change tracking expired or was reset (Microsoft keeps it for \
                             seven days for directory objects). A full sync ran instead{} and \
                             saved a new delta link; {}, so nothing was duplicated.",
                            S::NAME,
                            if S::NAME == "users" {
                                ", with removal detection,"
                            } else {
                                ""
                            },
                            if S::NAME == "users" {
                                "people are matched by object id"
                            } else {
                                "each group is rebuilt from the full round"
                            },
                        ),
                    );
                    round = Round::Initial;
                    url = set.first_url(graph.graph());
                }
            }
        }
    }

    /// Which round to run, and its first URL.
    fn start<S: DeltaSet>(
        &mut self,
        graph: &GraphClient<'_>,
        r: &Redactor,
        set: &S,
    ) -> Result<(Round, String), SyncError> {
        let first = set.first_url(graph.graph());
        if self.mode == crate::types::SyncMode::Full {
            return Ok((Round::Initial, first));
        }
        let checkpoint = |run: &mut Self, key: &str| {
            run.store
                .get_checkpoint(key)
                .map_err(|e| storage_error("get-checkpoint", e))
        };
        let Some(link) = checkpoint(self, S::LINK_KEY)? else {
            self.info(
                r,
                &format!(
                    "no {} delta link was saved yet for tenant {}: running an initial \
                     (full) round, which saves one",
                    S::NAME,
                    self.tenant.key
                ),
            );
            return Ok((Round::Initial, first));
        };
        if let Err(why) = paging::on_graph(graph.graph(), &link) {
            // The endpoint changed since (or the checkpoint is damaged): the token must
            // not go to another host, and an initial round needs no link.
            self.warn(
                r,
                "delta-link-unusable",
                format!(
                    "The saved {} delta link {why}. A full sync ran instead and saved a new \
                     delta link.",
                    S::NAME
                ),
            );
            return Ok((Round::Initial, first));
        }
        let saved = checkpoint(self, S::SELECT_KEY)?;
        if saved.as_deref() != Some(set.select()) {
            self.info(
                r,
                &format!(
                    "the {} properties read changed since the saved delta link was issued \
                     (it encodes its $select: {} then, {} now): running an initial (full) \
                     round, which saves a new one",
                    S::NAME,
                    saved.as_deref().unwrap_or("not recorded"),
                    set.select()
                ),
            );
            return Ok((Round::Initial, first));
        }
        if let Some(why) = set.replay_blocked() {
            self.info(r, &format!("{}: {why}", S::NAME));
            return Ok((Round::Initial, first));
        }
        Ok((Round::Replay, link))
    }

    /// Runs one delta round from `url` to its `@odata.deltaLink`, committing a batch per
    /// page and holding the final one, with the delta link and the select.
    fn round<S: DeltaSet>(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
        set: &mut S,
        round: Round,
        url: String,
    ) -> Result<RoundEnd, SyncError> {
        set.begin(round);
        let mut pager = Pager::new(graph.graph(), url);
        let mut held: Vec<Change> = Vec::new();
        let mut delta_link: Option<String> = None;
        while let Some(url) = pager.next_url() {
            let reply = graph
                .get_json(&url, S::NEED, &[S::PREFER], S::WHAT, |b| S::parse(b, &url))
                .map_err(|e| at_page(e, S::NAME, set.tally().pages + 1))?;
            let page = match reply {
                Reply::Ok(page) => page,
                Reply::Resync(f) if round == Round::Replay => return Ok(RoundEnd::Resync(f)),
                // An initial round has no state to reset: a resync answer is an error.
                Reply::Resync(f) => return Err(SyncError::Http(f)),
            };
            pager.advance(&url, page.next_link)?;
            set.tally().pages += 1;
            let last = pager.is_done();
            if last {
                let Some(link) = page.delta_link else {
                    return Err(SyncError::BadResponse(HttpFailure {
                        url: display_url(&url),
                        status: Some(200),
                        graph_code: None,
                        message: format!(
                            "the answer to GET {} has neither an @odata.nextLink nor an \
                             @odata.deltaLink, so the delta round cannot be completed",
                            display_url(&url)
                        ),
                    }));
                };
                paging::check_link(graph.graph(), &url, &link, "@odata.deltaLink")?;
                delta_link = Some(link);
            }
            let n = page.entries.len();
            set.tally().read += n as u64;
            let mut changes = set.page(self, page.entries, round)?;
            let page_no = set.tally().pages;
            changes.extend(
                set.complete_page(self, graph, round, last)
                    .map_err(|e| at_page(e, S::NAME, page_no))?,
            );
            if last {
                held = changes;
            } else if !changes.is_empty() {
                self.commit(&Batch {
                    changes,
                    checkpoints: Vec::new(),
                    run: None,
                })?;
            }
            let Tally { pages, read } = *set.tally();
            self.log.progress(S::DATA_SET, read, None);
            self.info(r, &format!("{} page {pages}: {n} read", S::NAME));
        }
        let delta_link = delta_link.ok_or_else(|| {
            SyncError::BadResponse(HttpFailure {
                url: display_url(graph.graph()),
                status: None,
                graph_code: None,
                message: format!(
                    "the {} delta round ended without an @odata.deltaLink",
                    S::NAME
                ),
            })
        })?;
        let mut changes = held;
        let extra = set.finish(self, r, round, &mut changes)?;
        let mut checkpoints = vec![
            Checkpoint {
                key: S::LINK_KEY.into(),
                value: Some(delta_link),
            },
            Checkpoint {
                key: S::SELECT_KEY.into(),
                value: Some(set.select().to_owned()),
            },
        ];
        checkpoints.extend(extra);
        self.hold(Batch {
            changes,
            checkpoints,
            run: None,
        })?;
        Ok(RoundEnd::Done)
    }
}
