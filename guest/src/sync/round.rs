//! The delta round machinery users and groups share: which round to run (a replay of the
//! saved `@odata.deltaLink`, or an initial round), paging by `@odata.nextLink` with one
//! batch per page, the final batch that alone saves the new delta link (and the `$select`
//! it encodes), and the fall-back to an initial round when Graph answers a replay with its
//! "resync" error (see `crate::graph::client::is_resync`).
//!
//! Progress: a round of a resumable set (`DeltaSet::RESUME_KEY`, the users) commits, every
//! [`PROGRESS_PAGES`] pages or [`PROGRESS_MS`], whichever comes first, its page together
//! with a resume checkpoint: the round's kind, its next link, the `$select` and basis it
//! was read with, and the set's round state gathered since the last one as a numbered chunk
//! (`<key>.1`, `<key>.2`, …, each written once, so a round writes its state once in all).
//! A run that finds one resumes the round at that next link with the restored state; when
//! Graph refuses the link (400/404/410, or its resync error: the skip token expired), it
//! warns `resume-refused` and runs a fresh round. The final batch (with the delta link)
//! clears the resume checkpoint and its chunks.
//!
//! concepts/delta-query-overview.md: "State tokens ... encode and include other query
//! parameters (such as `$select`) specified in the initial delta query", so a saved link
//! keeps the `$select` of the round that issued it. When the engine now asks for other
//! properties (feature `managers` switched on, or a new engine version), replaying the old
//! link would never return them: the select is saved beside the link, and a different one
//! runs an initial round.

use super::{Run, at_page};
use crate::graph::client::{BodyError, Reply};
use crate::graph::paging::{self, Pager};
use crate::graph::{GraphClient, Need};
use crate::redact::Redactor;
use crate::sources::DeltaPage;
use crate::types::{Batch, Change, Checkpoint, DataSet, HttpFailure, SyncError, SyncMode};
use crate::url::display_url;
use serde::{Deserialize, Serialize};

/// A resumable round commits its progress after this many pages at most: with Graph's
/// 999 users a page, a crash loses at most ~20,000 users' worth of reading, while a
/// checkpoint (one more transaction on the host) every 20 pages costs nothing measurable.
pub(super) const PROGRESS_PAGES: u32 = 20;
/// ... or after this long at most: on a slow or throttled tenant (a 20,000-user first sync
/// took 65 s) 20 pages are a minute, and a crash should cost seconds of work, not minutes.
pub(super) const PROGRESS_MS: u64 = 5_000;

/// The fewest pages a delta round may take whatever the size hint says (a first sync has
/// none): 2,000 full pages are two million objects, more than almost any directory holds.
pub(super) const MIN_ROUND_PAGES: u32 = 2_000;
/// Graph fills delta pages up to `odata.maxpagesize` (999) but may send fewer; an average
/// below this many entries a page over a whole round is not a directory, it is a loop.
const ENTRIES_PER_PAGE_FLOOR: u64 = 10;

/// The most pages a round of a collection of `size_hint` entries can plausibly take: a
/// next link that changes on every page (a counter) escapes the repeated-link check, and
/// would otherwise run until the run's budget.
pub(super) fn plausible_pages(size_hint: u64) -> u32 {
    let pages = u64::from(MIN_ROUND_PAGES) + size_hint / ENTRIES_PER_PAGE_FLOOR;
    pages.min(u64::from(paging::MAX_PAGES)) as u32
}

/// The resume checkpoint of an interrupted round (JSON, under `DeltaSet::RESUME_KEY`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ResumeHead {
    /// "initial" or "replay".
    round: String,
    /// The round's next link: where the next run carries on.
    next: String,
    /// The `$select` the round reads (its skip tokens encode it).
    select: String,
    /// `DeltaSet::resume_basis` of the round.
    basis: String,
    /// How many state chunks (`<key>.1` … `<key>.<chunks>`) the round wrote.
    chunks: u32,
}

/// The checkpoint key of chunk `n` of a resume state.
fn chunk_key(key: &str, n: u32) -> String {
    format!("{key}.{n}")
}

/// Checkpoints clearing a resume state of `chunks` chunks.
fn clear_resume(key: &str, chunks: u32) -> Vec<Checkpoint> {
    std::iter::once(key.to_owned())
        .chain((1..=chunks).map(|n| chunk_key(key, n)))
        .map(|key| Checkpoint { key, value: None })
        .collect()
}

/// A saved round to resume: its head (its state chunks are read one at a time when the
/// round restores them, so that a large tenant's ids are never held twice).
pub(super) struct Resume {
    head: ResumeHead,
    round: Round,
}

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
    /// Checkpoint: how many entries the last initial round listed, the size hint that
    /// bounds the pages of later rounds ([`plausible_pages`]).
    fn size_key() -> String {
        format!("{}.size", Self::NAME)
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
    /// Checkpoint key of the resume state of an interrupted round; `None`: rounds of this set
    /// are not resumed (they commit no progress checkpoints).
    const RESUME_KEY: Option<&'static str> = None;
    /// What the round's decisions depend on besides `$select` (the users' account filter):
    /// a resume state saved under another basis is not resumed.
    fn resume_basis(&self) -> &str {
        ""
    }
    /// The round state gathered since the last call (one chunk of the resume state).
    fn progress(&mut self) -> String {
        String::new()
    }
    /// Restores one chunk of a resume state, after [`Self::begin`]; chunks come in order.
    /// An error says why the chunk is unusable.
    fn restore(&mut self, _chunk: &str) -> Result<(), String> {
        Ok(())
    }
    /// The round's last page was read: adds the final batch's further changes (committing
    /// large ones in batches of their own before it) and returns its further checkpoints.
    /// `SyncError::MassRemoval` stops the round: the final batch's changes are committed
    /// without the delta link (the next run meets the removals again).
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
    /// A resumed round cannot go on (Graph refused its next link, or its saved state is
    /// unusable; says why): run a fresh round.
    ResumeRefused(String),
}

/// "HTTP 410 syncStateNotFound": a refusal in a few words.
fn answer(f: &HttpFailure) -> String {
    match &f.graph_code {
        Some(code) => format!("HTTP {} {code}", f.status.unwrap_or(0)),
        None => format!("HTTP {}", f.status.unwrap_or(0)),
    }
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
        // The first delta phase of the run decides the mode the report names, as soon as
        // its round's kind is known (a run that fails mid-round says what it ran).
        let first_phase = self.mode_run.is_none();
        let mut resume = self.saved_round(graph, r, set)?;
        let (mut round, mut url) = match &resume {
            Some(saved) => (saved.round, saved.head.next.clone()),
            None => self.start(graph, r, set)?,
        };
        loop {
            if first_phase {
                self.mode_run = Some(round.mode());
            }
            match self.round(graph, r, set, round, url, resume.take())? {
                RoundEnd::Done => return Ok(round),
                RoundEnd::ResumeRefused(why) => {
                    self.warn(
                        r,
                        "resume-refused",
                        format!(
                            "The {} round an earlier run left unfinished could not be resumed \
                             ({why}); a fresh round ran instead. Nothing is doubled: people \
                             are matched by object id.",
                            S::NAME
                        ),
                    );
                    (round, url) = self.start(graph, r, set)?;
                }
                RoundEnd::Resync(f) => {
                    // Only a replay ends this way, so this happens at most once a run.
                    let answer = answer(&f);
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

    /// The round an earlier run of this set left unfinished, when it can be resumed: same
    /// `$select` and basis, and a full sync resumes only an initial round. One that cannot
    /// is cleared (its state would mislead a later run).
    fn saved_round<S: DeltaSet>(
        &mut self,
        graph: &GraphClient<'_>,
        r: &Redactor,
        set: &S,
    ) -> Result<Option<Resume>, SyncError> {
        // A dry run (a preview) shows every account, so it reads whole rounds; it commits
        // nothing, so the resume point stays for the next real run.
        let Some(key) = S::RESUME_KEY.filter(|_| !self.dry_run) else {
            return Ok(None);
        };
        let Some(text) = self.checkpoint(key)? else {
            return Ok(None);
        };
        let head: Option<ResumeHead> = serde_json::from_str(&text).ok();
        let round = match head.as_ref().map(|h| h.round.as_str()) {
            Some("initial") => Some(Round::Initial),
            Some("replay") => Some(Round::Replay),
            _ => None,
        };
        let why = match (&head, round) {
            (None, _) | (_, None) => Some("its checkpoint is damaged".to_owned()),
            (Some(h), Some(round)) => {
                if h.select != set.select() {
                    Some("the properties read changed since".to_owned())
                } else if h.basis != set.resume_basis() {
                    Some("the account filter changed since".to_owned())
                } else if round == Round::Replay && self.mode == SyncMode::Full {
                    Some("it was an incremental round and a full sync was asked for".to_owned())
                } else if let Err(why) = paging::on_graph(graph.graph(), &h.next) {
                    Some(format!("its next link {why}"))
                } else {
                    None
                }
            }
        };
        let chunks = head.as_ref().map_or(0, |h| h.chunks);
        if let Some(why) = why {
            self.info(
                r,
                &format!(
                    "not resuming the unfinished {} round of an earlier run: {why}",
                    S::NAME
                ),
            );
            self.commit(&Batch {
                changes: Vec::new(),
                checkpoints: clear_resume(key, chunks),
                run: None,
            })?;
            return Ok(None);
        }
        let (Some(head), Some(round)) = (head, round) else {
            return Ok(None);
        };
        self.info(
            r,
            &format!(
                "resuming the {} {} round an earlier run left unfinished",
                S::NAME,
                match round {
                    Round::Initial => "initial",
                    Round::Replay => "delta",
                }
            ),
        );
        Ok(Some(Resume { head, round }))
    }

    /// Clears the resume state of a round that will not go on (`chunks` of it written).
    fn forget<S: DeltaSet>(&mut self, chunks: u32) -> Result<(), SyncError> {
        match S::RESUME_KEY {
            Some(key) if chunks > 0 => self.commit(&Batch {
                changes: Vec::new(),
                checkpoints: clear_resume(key, chunks),
                run: None,
            }),
            _ => Ok(()),
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
        let Some(link) = self.checkpoint(S::LINK_KEY)? else {
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
        let saved = self.checkpoint(S::SELECT_KEY)?;
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

    /// Runs one delta round from `url` (or, `resume`d, from a saved next link) to its
    /// `@odata.deltaLink`, committing a batch per page (with a resume checkpoint at most
    /// every [`PROGRESS_PAGES`] pages or [`PROGRESS_MS`]) and holding the final one, with
    /// the delta link and the select.
    fn round<S: DeltaSet>(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
        set: &mut S,
        round: Round,
        url: String,
        resume: Option<Resume>,
    ) -> Result<RoundEnd, SyncError> {
        set.begin(round);
        let resumable = S::RESUME_KEY.filter(|_| !self.dry_run);
        // Chunks of this round's resume state written so far (by this run or the one it
        // resumes), and whether the first request probes a saved next link.
        let mut chunks = 0;
        let mut probing = false;
        if let (Some(saved), Some(key)) = (resume, S::RESUME_KEY) {
            chunks = saved.head.chunks;
            for n in 1..=chunks {
                let restored = match self.checkpoint(&chunk_key(key, n))? {
                    Some(chunk) => set.restore(&chunk),
                    None => Err("it is missing".to_owned()),
                };
                if let Err(why) = restored {
                    self.forget::<S>(chunks)?;
                    return Ok(RoundEnd::ResumeRefused(format!(
                        "its saved state (chunk {n}) is unusable: {why}"
                    )));
                }
            }
            probing = true;
        }
        let mut since_pages = 0u32;
        let mut since_ms = graph.clock().now_ms();
        let size_hint = self
            .checkpoint(&S::size_key())?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut pager = Pager::new(graph.graph(), url).with_max_pages(plausible_pages(size_hint));
        let mut held: Vec<Change> = Vec::new();
        let mut delta_link: Option<String> = None;
        while let Some(url) = pager.next_url() {
            let reply = graph.get_json(&url, S::NEED, &[S::PREFER], S::WHAT, |b| S::parse(b, &url));
            let reply = match reply {
                // Graph refuses a skip token it no longer knows (or that expired) with a
                // 400 or 410; then the saved round cannot go on, a fresh one can.
                Err(SyncError::Http(f)) if probing && matches!(f.status, Some(400 | 404 | 410)) => {
                    self.forget::<S>(chunks)?;
                    return Ok(RoundEnd::ResumeRefused(format!(
                        "Graph refused its saved next link: {}",
                        answer(&f)
                    )));
                }
                other => other.map_err(|e| at_page(e, S::NAME, set.tally().pages + 1))?,
            };
            let page = match reply {
                Reply::Ok(page) => page,
                Reply::Resync(f) if probing => {
                    self.forget::<S>(chunks)?;
                    return Ok(RoundEnd::ResumeRefused(format!(
                        "Graph refused its saved next link: {}",
                        answer(&f)
                    )));
                }
                Reply::Resync(f) if round == Round::Replay => {
                    self.forget::<S>(chunks)?;
                    return Ok(RoundEnd::Resync(f));
                }
                // An initial round has no state to reset: a resync answer is an error.
                Reply::Resync(f) => return Err(SyncError::Http(f)),
            };
            probing = false;
            let next_link = page.next_link.clone();
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
            since_pages += 1;
            let now = graph.clock().now_ms();
            let due = since_pages >= PROGRESS_PAGES || now.saturating_sub(since_ms) >= PROGRESS_MS;
            if last {
                held = changes;
            } else if let (Some(key), Some(next), true) = (resumable, next_link, due) {
                chunks += 1;
                let head = ResumeHead {
                    round: match round {
                        Round::Initial => "initial",
                        Round::Replay => "replay",
                    }
                    .into(),
                    next,
                    select: set.select().to_owned(),
                    basis: set.resume_basis().to_owned(),
                    chunks,
                };
                let head = serde_json::to_string(&head).map_err(|e| {
                    SyncError::Storage(format!("the {} resume checkpoint: {e}", S::NAME))
                })?;
                self.commit(&Batch {
                    changes,
                    checkpoints: vec![
                        Checkpoint {
                            key: chunk_key(key, chunks),
                            value: Some(set.progress()),
                        },
                        Checkpoint {
                            key: key.to_owned(),
                            value: Some(head),
                        },
                    ],
                    run: None,
                })?;
                since_pages = 0;
                since_ms = now;
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
        // The round's resume state goes with its final batch (none written: nothing to clear).
        let cleared = match S::RESUME_KEY {
            Some(key) if chunks > 0 => clear_resume(key, chunks),
            _ => Vec::new(),
        };
        let extra = match set.finish(self, r, round, &mut changes) {
            Ok(extra) => extra,
            Err(stop @ SyncError::MassRemoval(_)) => {
                // The round's other changes stand; its delta link (and the rest of its
                // checkpoints) does not advance, so the next run meets the removals again.
                self.commit(&Batch {
                    changes,
                    checkpoints: cleared,
                    run: None,
                })?;
                return Err(stop);
            }
            Err(e) => return Err(e),
        };
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
        if round == Round::Initial {
            // A resumed round counted only what this run read: never shrink the hint by it.
            let size = set.tally().read.max(size_hint);
            checkpoints.push(Checkpoint {
                key: S::size_key(),
                value: Some(size.to_string()),
            });
        }
        checkpoints.extend(extra);
        checkpoints.extend(cleared);
        self.hold(Batch {
            changes,
            checkpoints,
            run: None,
        })?;
        Ok(RoundEnd::Done)
    }
}
