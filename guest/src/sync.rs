//! One sync run of one tenant: check the request, sign in before touching storage, stop
//! the features whose application permission the token's `roles` lack, then read the
//! users with Graph's delta query:
//!
//! - a full sync, or an incremental one with no saved delta link, runs an initial round
//!   (`GET /v1.0/users/delta?$select=...`, paged by `@odata.nextLink`), then applies the
//!   removal policy to stored people the round did not list;
//! - an incremental sync replays the saved `@odata.deltaLink` and applies what changed:
//!   created and updated users (merged into the stored record, property by property),
//!   and `@removed` ones under the removal policy;
//! - a replay Graph answers with its "resync" error (the delta token expired or was reset)
//!   falls back to an initial round with a `delta-expired` warning.
//!
//! Each page is filtered, looked up in one storage call, decided (create / update /
//! unchanged / removed) and committed as one batch. The round's `@odata.deltaLink` is
//! saved ONLY in the final batch, with the last page's changes and the run's sync log; a
//! next link is never saved. A run stopped at any point therefore leaves the previous
//! delta link, and the next run replays it (or runs the initial round again): people are
//! keyed by object id and compared by fingerprint, so nothing is doubled or lost.
//!
//! Memory stays flat in the tenant's size: a page at a time, plus (in an initial round) a
//! compact set of the object ids seen.

use crate::bindings::m365sync::engine::log::Level;
use crate::bindings::m365sync::engine::secrets::SecretError;
use crate::bindings::m365sync::engine::storage::StorageError;
use crate::filter::{self, Filter};
use crate::graph::client::Reply;
use crate::graph::paging::{self, Pager};
use crate::graph::token::{Credentials, token_roles};
use crate::graph::{GraphClient, Stats};
use crate::ids::IdSet;
use crate::merge::{self, Decision};
use crate::permissions::{self, feature_names};
use crate::platform::{Env, Log, Secrets, Store};
use crate::redact::Redactor;
use crate::sources::users::{self, Entry};
use crate::types::{
    Batch, Change, Checkpoint, DataSet, DataSetReport, Features, HttpFailure, PermissionDenied,
    Person, PersonKey, ReasonCount, RemovalPolicy, StoredPerson, SyncError, SyncMode, SyncReport,
    SyncRequest, Tenant, Warning,
};
use crate::url::{AbsoluteUrl, display_url};

/// The features this engine implements.
pub const IMPLEMENTED: Features = Features::USERS;
/// The name of the secret the engine reads.
pub const CLIENT_SECRET: &str = "client-secret";
/// Checkpoint written with the final batch of a complete initial (full) round.
pub const LAST_FULL_SYNC: &str = "users.last-full-sync";
/// Checkpoint: the `@odata.deltaLink` of the last complete users delta round, written only
/// in the final batch of that round.
pub const USERS_DELTA_LINK: &str = "users.delta-link";
/// Stored ids listed per `list-people-ids` call when looking for removed people.
const LIST_LIMIT: u32 = 1000;
/// Removal changes are committed in batches of at most this many.
const MAX_BATCH_CHANGES: usize = 5000;
/// Usage report periods Graph offers.
const USAGE_PERIODS: [u16; 4] = [7, 30, 90, 180];

/// A tenant whose fields were checked, endpoints without a trailing slash.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedTenant {
    pub key: String,
    pub tenant_id: String,
    pub client_id: String,
    pub login: String,
    pub graph: String,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> SyncError {
    SyncError::InvalidRequest(format!("{field}: {why}"))
}

/// An absolute http(s) base URL with no query or fragment; one trailing slash is trimmed.
fn endpoint(field: &str, value: &str) -> Result<String, SyncError> {
    let v = value.trim();
    let url = AbsoluteUrl::parse(v).map_err(|e| invalid(field, format!("{v:?}: {e}")))?;
    if url.path_and_query.contains('?') || v.contains('#') {
        return Err(invalid(
            field,
            format!("{v:?} must be a base URL without query or fragment"),
        ));
    }
    Ok(v.strip_suffix('/').unwrap_or(v).to_owned())
}

/// Checks a tenant as the host handed it over.
pub fn check_tenant(t: &Tenant) -> Result<CheckedTenant, SyncError> {
    let key = t.key.trim();
    if key.is_empty() {
        return Err(invalid("tenant.key", "is empty"));
    }
    let tenant_id = t.tenant_id.trim();
    if tenant_id.is_empty() {
        return Err(invalid("tenant.tenant-id", "is empty"));
    }
    if tenant_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '\\'))
    {
        return Err(invalid(
            "tenant.tenant-id",
            format!("{tenant_id:?} is not a directory GUID or a domain name"),
        ));
    }
    let client_id = t.client_id.trim();
    if client_id.is_empty() {
        return Err(invalid("tenant.client-id", "is empty"));
    }
    Ok(CheckedTenant {
        key: key.to_owned(),
        tenant_id: tenant_id.to_owned(),
        client_id: client_id.to_owned(),
        login: endpoint("tenant.endpoints.login", &t.endpoints.login)?,
        graph: endpoint("tenant.endpoints.graph", &t.endpoints.graph)?,
    })
}

/// Checks the features a run asks for against what the engine implements.
pub fn check_features(features: Features) -> Result<(), SyncError> {
    if features.is_empty() {
        return Err(invalid(
            "options.features",
            "no feature is enabled; enable at least users",
        ));
    }
    let missing = features.difference(IMPLEMENTED);
    if !missing.is_empty() {
        return Err(SyncError::Unsupported(format!(
            "options.features: engine {} implements {}; not yet: {}",
            env!("CARGO_PKG_VERSION"),
            feature_names(IMPLEMENTED),
            feature_names(missing)
        )));
    }
    Ok(())
}

/// Reads the client secret; errors name the secret, never a value.
pub fn read_secret(secrets: &mut dyn Secrets, tenant_key: &str) -> Result<String, SyncError> {
    match secrets.get(CLIENT_SECRET) {
        Ok(s) if s.trim().is_empty() => Err(SyncError::Secret(format!(
            "secret \"{CLIENT_SECRET}\" of tenant {tenant_key} is empty"
        ))),
        // Trailing newlines from secret files are never part of a client secret.
        Ok(s) => Ok(s.trim_end_matches(['\r', '\n']).to_owned()),
        Err(SecretError::NotFound(name)) => Err(SyncError::Secret(format!(
            "secret \"{name}\" is not configured for tenant {tenant_key}"
        ))),
        Err(SecretError::Unreadable(source)) => Err(SyncError::Secret(format!(
            "secret \"{CLIENT_SECRET}\" of tenant {tenant_key} could not be read from {source}"
        ))),
    }
}

pub fn credentials(t: &CheckedTenant, secret: String) -> Credentials {
    Credentials {
        login: t.login.clone(),
        graph: t.graph.clone(),
        tenant_id: t.tenant_id.clone(),
        client_id: t.client_id.clone(),
        secret,
    }
}

/// A storage failure as a sync error naming the operation.
pub fn storage_error(op: &str, e: StorageError) -> SyncError {
    SyncError::Storage(match e {
        StorageError::Unavailable(m) => format!("{op} failed: storage unavailable: {m}"),
        StorageError::Invalid(m) => format!("{op} failed: storage refused the data: {m}"),
    })
}

/// An error in one line of words, for the log.
pub fn summary(e: &SyncError) -> String {
    match e {
        SyncError::Auth(a) => a.message.clone(),
        SyncError::Permission(p) => p.message.clone(),
        SyncError::HostDenied(authority) => {
            format!("the host does not allow requests to {authority} (not on its allowlist)")
        }
        SyncError::Http(f) => f.message.clone(),
        SyncError::BadResponse(f) => f.message.clone(),
        SyncError::Secret(m) | SyncError::Storage(m) => m.clone(),
        SyncError::InvalidRequest(m) => format!("invalid request: {m}"),
        SyncError::Unsupported(m) => format!("unsupported: {m}"),
    }
}

/// Logs a line with every known secret masked.
pub fn log_line(log: &mut dyn Log, r: &Redactor, level: Level, message: &str) {
    log.log(level, &r.text(message));
}

/// Runs one sync. Errors and log lines never carry the client secret or a token.
pub fn run(env: &mut Env<'_>, req: &SyncRequest) -> Result<SyncReport, SyncError> {
    let started_ms = env.clock.now_ms();
    let started_at = env.clock.wall_rfc3339();
    let tenant = check_tenant(&req.tenant)?;
    let opts = &req.options;
    check_features(opts.features)?;
    if let Some(p) = opts
        .usage_periods
        .iter()
        .find(|p| !USAGE_PERIODS.contains(p))
    {
        return Err(invalid(
            "options.usage-periods",
            format!("{p} is not a report period; use 7, 30, 90 or 180"),
        ));
    }
    let filter = Filter::compile(&opts.filter)?;

    let mut warnings = Vec::new();
    if !opts.field_map.is_empty() {
        warnings.push(Warning {
            code: "field-map-unsupported".into(),
            message: format!(
                "Engine {} stores every person with the standard fields; the {} field \
                 mapping(s) in the request were not applied.",
                env!("CARGO_PKG_VERSION"),
                opts.field_map.len()
            ),
        });
    }

    let secret = read_secret(&mut *env.secrets, &tenant.key)?;
    let mut graph = GraphClient::new(
        &mut *env.http,
        &mut *env.clock,
        credentials(&tenant, secret),
    );
    let mut run = Run {
        store: &mut *env.store,
        log: &mut *env.log,
        tenant: &tenant,
        filter: &filter,
        mode: opts.mode,
        features: opts.features,
        removal: opts.removal,
        dry_run: opts.dry_run,
        started_ms,
        started_at,
        warnings,
    };
    let result = run.sync(&mut graph);
    let redactor = graph.redactor().clone();
    result.map_err(|e| {
        let e = redactor.error(e);
        log_line(
            run.log,
            &redactor,
            Level::Error,
            &format!("sync of tenant {} failed: {}", tenant.key, summary(&e)),
        );
        e
    })
}

/// The message of a feature stopped for a permission the token lacks.
/// Say which page of the users round a Graph failure happened on.
fn at_page(error: SyncError, page: u32) -> SyncError {
    match error {
        SyncError::Http(mut f) => {
            f.message = format!("{} (users, page {page})", f.message);
            SyncError::Http(f)
        }
        SyncError::BadResponse(mut f) => {
            f.message = format!("{} (users, page {page})", f.message);
            SyncError::BadResponse(f)
        }
        other => other,
    }
}

fn permission_message(permission: &str, feature: &str) -> String {
    format!(
        "Feature {feature} needs the application permission {permission}, which this app has \
         not been granted; add it in the app registration's API permissions and grant admin \
         consent."
    )
}

/// The state of a run besides the Graph client.
struct Run<'r> {
    store: &'r mut dyn Store,
    log: &'r mut dyn Log,
    tenant: &'r CheckedTenant,
    filter: &'r Filter,
    /// The mode asked for.
    mode: SyncMode,
    /// The features to run (those stopped for a missing permission are taken out).
    features: Features,
    removal: RemovalPolicy,
    dry_run: bool,
    started_ms: u64,
    started_at: String,
    warnings: Vec<Warning>,
}

/// The two kinds of delta round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    /// From scratch: lists every user (the tenant's whole state), then finds who is gone.
    Initial,
    /// Replays a saved delta link: only what changed since.
    Replay,
}

/// How a round ended.
enum RoundEnd {
    Done(SyncReport),
    /// Graph answered the replay with its resync error: run an initial round instead.
    Resync(HttpFailure),
}

/// Counts of the users phase.
#[derive(Default)]
struct Counts {
    pages: u32,
    read: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    removed: u64,
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
            pages: self.pages,
            read: self.read,
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

impl Run<'_> {
    fn info(&mut self, r: &Redactor, message: &str) {
        log_line(self.log, r, Level::Info, message);
    }

    fn warn(&mut self, r: &Redactor, code: &str, message: String) {
        log_line(self.log, r, Level::Warn, &message);
        self.warnings.push(Warning {
            code: code.into(),
            message,
        });
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), SyncError> {
        if self.dry_run {
            return Ok(());
        }
        self.store
            .commit(batch)
            .map_err(|e| storage_error("commit", e))
    }

    fn find(&mut self, keys: &[PersonKey]) -> Result<Vec<Option<StoredPerson>>, SyncError> {
        let found = self
            .store
            .find_people(keys)
            .map_err(|e| storage_error("find-people", e))?;
        if found.len() != keys.len() {
            return Err(SyncError::Storage(format!(
                "find-people answered {} entries for {} keys (it must answer one per key)",
                found.len(),
                keys.len()
            )));
        }
        Ok(found)
    }

    fn sync(&mut self, graph: &mut GraphClient<'_>) -> Result<SyncReport, SyncError> {
        // Sign in before reading or writing anything: a bad secret changes nothing.
        graph.sign_in()?;
        let r = graph.redactor().clone();
        self.info(&r, &format!("signed in to tenant {}", self.tenant.key));
        self.gate(graph, &r)?;

        let mut counts = Counts::default();
        let (mut round, mut url) = self.start(graph, &r)?;
        loop {
            match self.round(graph, &r, round, url, &mut counts)? {
                RoundEnd::Done(report) => return Ok(report),
                RoundEnd::Resync(f) => {
                    // Only a replay ends this way, so this happens at most once a run.
                    let answer = match &f.graph_code {
                        Some(code) => format!("HTTP {} {code}", f.status.unwrap_or(0)),
                        None => format!("HTTP {}", f.status.unwrap_or(0)),
                    };
                    self.warn(
                        &r,
                        "delta-expired",
                        format!(
                            "Graph no longer accepts the saved users delta link ({answer}): \
                             its change tracking expired or was reset (Microsoft keeps it for \
                             seven days for directory objects). A full sync ran instead, with \
                             removal detection, and saved a new delta link; people are matched \
                             by object id, so nothing was duplicated."
                        ),
                    );
                    round = Round::Initial;
                    url = users::first_url(graph.graph());
                }
            }
        }
    }

    /// Compares the token's `roles` with what the enabled features need. A feature whose
    /// permission is missing is stopped with a `permission-missing` warning; when every
    /// enabled feature is, the run fails with `permission` for the first (nothing written,
    /// no Graph request sent). A token without a `roles` claim has no app roles. A token
    /// that is not a readable JWT is let through: Graph's own 403 then names what is missing.
    fn gate(&mut self, graph: &mut GraphClient<'_>, r: &Redactor) -> Result<(), SyncError> {
        let roles = match token_roles(graph.sign_in()?) {
            Ok(roles) => roles,
            Err(why) => {
                log_line(
                    self.log,
                    r,
                    Level::Warn,
                    &format!(
                        "{why}, so the app's permissions cannot be read from it before the \
                         run; Graph will refuse what the app may not read"
                    ),
                );
                return Ok(());
            }
        };
        let check = permissions::check(roles, self.features, &self.tenant.client_id);
        if check.missing.is_empty() {
            return Ok(());
        }
        let mut denied: Vec<PermissionDenied> = check
            .missing
            .into_iter()
            .map(|m| PermissionDenied {
                message: permission_message(&m.permission, &m.feature),
                ..m
            })
            .collect();
        let stopped = denied
            .iter()
            .filter_map(|d| permissions::feature_flag(&d.feature))
            .fold(Features::empty(), |a, f| a | f);
        if self.features.difference(stopped).is_empty() {
            return Err(SyncError::Permission(denied.swap_remove(0)));
        }
        for d in denied {
            self.warn(r, "permission-missing", d.message);
        }
        self.features = self.features.difference(stopped);
        Ok(())
    }

    /// Which round to run, and its first URL.
    fn start(
        &mut self,
        graph: &GraphClient<'_>,
        r: &Redactor,
    ) -> Result<(Round, String), SyncError> {
        let first = users::first_url(graph.graph());
        if self.mode == SyncMode::Full {
            return Ok((Round::Initial, first));
        }
        let saved = self
            .store
            .get_checkpoint(USERS_DELTA_LINK)
            .map_err(|e| storage_error("get-checkpoint", e))?;
        let Some(link) = saved else {
            self.info(
                r,
                &format!(
                    "no users delta link was saved yet for tenant {}: running an initial \
                     (full) round, which saves one",
                    self.tenant.key
                ),
            );
            return Ok((Round::Initial, first));
        };
        match paging::on_graph(graph.graph(), &link) {
            Ok(()) => Ok((Round::Replay, link)),
            Err(why) => {
                // The endpoint changed since (or the checkpoint is damaged): the token must
                // not go to another host, and an initial round needs no link.
                self.warn(
                    r,
                    "delta-link-unusable",
                    format!(
                        "The saved users delta link {why}. A full sync ran instead and saved \
                         a new delta link."
                    ),
                );
                Ok((Round::Initial, first))
            }
        }
    }

    /// Runs one delta round from `url` to its `@odata.deltaLink`, then commits the final
    /// batch with the delta link and the report.
    fn round(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
        round: Round,
        url: String,
        counts: &mut Counts,
    ) -> Result<RoundEnd, SyncError> {
        let mut pager = Pager::new(graph.graph(), url);
        let mut seen = IdSet::default();
        let mut held: Vec<Change> = Vec::new();
        let mut delta_link: Option<String> = None;
        while let Some(url) = pager.next_url() {
            let reply = graph
                .get_json(&url, users::NEED, &[users::PREFER], users::WHAT, |b| {
                    users::parse_page(b, &url)
                })
                .map_err(|e| at_page(e, counts.pages + 1))?;
            let page = match reply {
                Reply::Ok(page) => page,
                Reply::Resync(f) if round == Round::Replay => return Ok(RoundEnd::Resync(f)),
                // An initial round has no state to reset: a resync answer is an error.
                Reply::Resync(f) => return Err(SyncError::Http(f)),
            };
            pager.advance(&url, page.next_link)?;
            counts.pages += 1;
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
            counts.read += n as u64;
            let changes = self.page(page.entries, round, &mut seen, counts)?;
            if last {
                held = changes;
            } else if !changes.is_empty() {
                self.commit(&Batch {
                    changes,
                    checkpoints: Vec::new(),
                    run: None,
                })?;
            }
            self.log.progress(DataSet::Users, counts.read, None);
            self.info(r, &format!("users page {}: {n} read", counts.pages));
        }
        let delta_link = delta_link.ok_or_else(|| {
            SyncError::BadResponse(HttpFailure {
                url: display_url(graph.graph()),
                status: None,
                graph_code: None,
                message: "the users delta round ended without an @odata.deltaLink".into(),
            })
        })?;

        // An initial round listed everyone: whoever is stored and was not listed is gone.
        let mut final_changes = held;
        if round == Round::Initial {
            self.gone(&seen, counts, &mut final_changes)?;
        }
        drop(seen);

        if counts.partial_unknown > 0 {
            self.warn(
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
        let users_report = counts.report();
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
        self.info(
            r,
            &format!(
                "users ({} round): {} read, {} created, {} updated, {} unchanged, {} removed, \
                 {} filtered out{extra}{}",
                match round {
                    Round::Initial => "initial",
                    Round::Replay => "delta",
                },
                users_report.read,
                users_report.created,
                users_report.updated,
                users_report.unchanged,
                users_report.removed,
                users_report
                    .filtered_out
                    .iter()
                    .map(|c| c.count)
                    .sum::<u64>(),
                if self.dry_run {
                    " (dry run: nothing committed)"
                } else {
                    ""
                }
            ),
        );
        let Stats {
            requests,
            retries,
            retry_wait_ms,
        } = graph.stats;
        let report = SyncReport {
            tenant_key: self.tenant.key.clone(),
            mode: match round {
                Round::Initial => SyncMode::Full,
                Round::Replay => SyncMode::Incremental,
            },
            started_at: self.started_at.clone(),
            elapsed_ms: graph.clock().now_ms().saturating_sub(self.started_ms),
            requests,
            retries,
            retry_wait_ms,
            data_sets: vec![users_report],
            warnings: std::mem::take(&mut self.warnings),
            dry_run: self.dry_run,
        };
        let mut checkpoints = vec![Checkpoint {
            key: USERS_DELTA_LINK.into(),
            value: Some(delta_link),
        }];
        if round == Round::Initial {
            checkpoints.push(Checkpoint {
                key: LAST_FULL_SYNC.into(),
                value: Some(self.started_at.clone()),
            });
        }
        self.commit(&Batch {
            changes: final_changes,
            checkpoints,
            run: Some(report.clone()),
        })?;
        Ok(RoundEnd::Done(report))
    }

    /// Decides one page of a round; returns its changes.
    fn page(
        &mut self,
        entries: Vec<Entry>,
        round: Round,
        seen: &mut IdSet,
        counts: &mut Counts,
    ) -> Result<Vec<Change>, SyncError> {
        let entries = last_occurrences(entries, counts);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<PersonKey> = entries
            .iter()
            .map(|e| PersonKey::ObjectId(e.id().to_owned()))
            .collect();
        let found = self.find(&keys)?;
        drop(keys);
        let mut changes = Vec::new();
        for (entry, stored) in entries.into_iter().zip(found) {
            // An initial round accounts for every id it lists, removed ones included, so
            // that the search for the gone does not handle them a second time.
            if round == Round::Initial && !seen.insert(entry.id()) {
                counts.duplicates += 1;
            }
            match entry {
                Entry::Removed { restorable, .. } => {
                    let Some(stored) = stored else {
                        counts.unknown_removed += 1;
                        continue;
                    };
                    if let Some(change) = merge::removal_of(stored, self.removal, restorable) {
                        counts.removed += 1;
                        if restorable && self.removal == RemovalPolicy::Delete {
                            counts.kept_restorable += 1;
                        }
                        changes.push(change);
                    }
                }
                Entry::User(change) => {
                    let person = match (round, &stored) {
                        (Round::Initial, _) => change.into_person(),
                        (Round::Replay, Some(s)) => change.apply(s.person.clone()),
                        (Round::Replay, None) => match change.into_new_person() {
                            Some(p) => p,
                            None => {
                                counts.partial_unknown += 1;
                                continue;
                            }
                        },
                    };
                    self.decide(person, stored, counts, &mut changes);
                }
            }
        }
        Ok(changes)
    }

    /// Filters and merges one person read from Graph.
    fn decide(
        &self,
        person: Person,
        stored: Option<StoredPerson>,
        counts: &mut Counts,
        changes: &mut Vec<Change>,
    ) {
        match filter::decide(self.filter, &person) {
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
                if let Some(change) = stored.and_then(|s| merge::removal(s, self.removal)) {
                    counts.removed += 1;
                    changes.push(change);
                }
            }
        }
    }

    /// Applies the removal policy to stored people not seen in Graph.
    fn gone(
        &mut self,
        seen: &IdSet,
        counts: &mut Counts,
        pending: &mut Vec<Change>,
    ) -> Result<(), SyncError> {
        let mut after: Option<String> = None;
        loop {
            let ids = self
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
                for stored in self.find(&keys)?.into_iter().flatten() {
                    if let Some(change) = merge::removal(stored, self.removal) {
                        counts.removed += 1;
                        pending.push(change);
                    }
                }
            }
            if pending.len() >= MAX_BATCH_CHANGES {
                let changes = std::mem::take(pending);
                self.commit(&Batch {
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
}

#[cfg(test)]
mod tests;
