//! One sync run of one tenant: check the request, sign in before touching storage, page
//! through the users (filter, look the page's people up in one storage call, decide
//! create / update / unchanged, commit one batch per page), then, after a complete full
//! read, apply the removal policy to stored people who are gone, and commit the final
//! batch with the run's sync log and checkpoint.
//!
//! Memory stays flat in the tenant's size: a page at a time, plus a compact set of the
//! object ids seen.

use crate::bindings::m365sync::engine::log::Level;
use crate::bindings::m365sync::engine::secrets::SecretError;
use crate::bindings::m365sync::engine::storage::StorageError;
use crate::filter::{self, Filter};
use crate::graph::paging::Pager;
use crate::graph::token::Credentials;
use crate::graph::{GraphClient, Stats};
use crate::ids::IdSet;
use crate::merge::{self, Decision};
use crate::permissions::feature_names;
use crate::platform::{Env, Log, Secrets, Store};
use crate::redact::Redactor;
use crate::sources::users;
use crate::types::{
    Batch, Change, Checkpoint, DataSet, DataSetReport, Features, PersonKey, ReasonCount,
    RemovalPolicy, SyncError, SyncMode, SyncReport, SyncRequest, Tenant, Warning,
};
use crate::url::AbsoluteUrl;

/// The features this engine implements.
pub const IMPLEMENTED: Features = Features::USERS;
/// The name of the secret the engine reads.
pub const CLIENT_SECRET: &str = "client-secret";
/// Checkpoint written with the final batch of a complete full run.
pub const LAST_FULL_SYNC: &str = "users.last-full-sync";
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
    if opts.mode == SyncMode::Incremental {
        warnings.push(Warning {
            code: "incremental-unavailable".into(),
            message: format!(
                "Engine {} has no delta (incremental) sync yet; it arrives in a later version. \
                 A full sync ran instead, with the same result.",
                env!("CARGO_PKG_VERSION")
            ),
        });
    }
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
        removal: opts.removal,
        dry_run: opts.dry_run,
        started_ms,
        started_at,
        warnings,
    };
    let result = run.users(&mut graph);
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

/// The state of a run besides the Graph client.
struct Run<'r> {
    store: &'r mut dyn Store,
    log: &'r mut dyn Log,
    tenant: &'r CheckedTenant,
    filter: &'r Filter,
    removal: RemovalPolicy,
    dry_run: bool,
    started_ms: u64,
    started_at: String,
    warnings: Vec<Warning>,
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
    duplicates: u64,
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

impl Run<'_> {
    fn info(&mut self, r: &Redactor, message: &str) {
        log_line(self.log, r, Level::Info, message);
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), SyncError> {
        if self.dry_run {
            return Ok(());
        }
        self.store
            .commit(batch)
            .map_err(|e| storage_error("commit", e))
    }

    fn find(
        &mut self,
        keys: &[PersonKey],
    ) -> Result<Vec<Option<crate::types::StoredPerson>>, SyncError> {
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

    fn users(&mut self, graph: &mut GraphClient<'_>) -> Result<SyncReport, SyncError> {
        // Sign in before reading or writing anything: a bad secret changes nothing.
        graph.sign_in()?;
        let r = graph.redactor().clone();
        self.info(&r, &format!("signed in to tenant {}", self.tenant.key));

        let mut counts = Counts::default();
        let mut seen = IdSet::default();
        let mut pager = Pager::new(graph.graph(), users::first_url(graph.graph()));
        let mut held: Vec<Change> = Vec::new();
        while let Some(url) = pager.next_url() {
            let body = graph.get(&url, users::NEED)?;
            let page = users::parse_page(&body, &url)?;
            drop(body);
            pager.advance(&url, page.next_link)?;
            counts.pages = pager.pages();
            let n = page.people.len();
            counts.read += n as u64;
            let changes = self.users_page(page.people, &mut seen, &mut counts)?;
            let last = pager.is_done();
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
            self.info(&r, &format!("users page {}: {n} read", counts.pages));
        }

        // The read was complete: whoever is stored and was not listed is gone.
        let mut final_changes = held;
        self.gone(&seen, &mut counts, &mut final_changes)?;

        if counts.duplicates > 0 {
            self.warnings.push(Warning {
                code: "duplicate-users".into(),
                message: format!(
                    "Graph listed {} user(s) more than once while paging; each was imported once.",
                    counts.duplicates
                ),
            });
        }
        let users_report = counts.report();
        self.info(
            &r,
            &format!(
                "users: {} read, {} created, {} updated, {} unchanged, {} removed, {} filtered out{}",
                users_report.read,
                users_report.created,
                users_report.updated,
                users_report.unchanged,
                users_report.removed,
                users_report.filtered_out.iter().map(|c| c.count).sum::<u64>(),
                if self.dry_run { " (dry run: nothing committed)" } else { "" }
            ),
        );
        let Stats {
            requests,
            retries,
            retry_wait_ms,
        } = graph.stats;
        let report = SyncReport {
            tenant_key: self.tenant.key.clone(),
            mode: SyncMode::Full,
            started_at: self.started_at.clone(),
            elapsed_ms: graph.clock().now_ms().saturating_sub(self.started_ms),
            requests,
            retries,
            retry_wait_ms,
            data_sets: vec![users_report],
            warnings: std::mem::take(&mut self.warnings),
            dry_run: self.dry_run,
        };
        self.commit(&Batch {
            changes: final_changes,
            checkpoints: vec![Checkpoint {
                key: LAST_FULL_SYNC.into(),
                value: Some(self.started_at.clone()),
            }],
            run: Some(report.clone()),
        })?;
        Ok(report)
    }

    /// Filters and merges one page; returns its changes.
    fn users_page(
        &mut self,
        people: Vec<crate::types::Person>,
        seen: &mut IdSet,
        counts: &mut Counts,
    ) -> Result<Vec<Change>, SyncError> {
        let mut entries = Vec::with_capacity(people.len());
        let mut keys = Vec::with_capacity(people.len());
        for mut p in people {
            if !seen.insert(&p.object_id) {
                counts.duplicates += 1;
                continue;
            }
            let verdict = filter::decide(self.filter, &p);
            // The key takes the id for the storage call; it comes back below.
            keys.push(PersonKey::ObjectId(std::mem::take(&mut p.object_id)));
            entries.push((p, verdict));
        }
        let found = if keys.is_empty() {
            Vec::new()
        } else {
            self.find(&keys)?
        };
        let mut changes = Vec::new();
        for (((mut p, verdict), key), stored) in entries.into_iter().zip(keys).zip(found) {
            if let PersonKey::ObjectId(id) = key {
                p.object_id = id;
            }
            match verdict {
                Ok(()) => {
                    let fp = merge::fingerprint(&p);
                    match merge::decide(stored.as_ref(), &fp) {
                        Decision::Create => {
                            counts.created += 1;
                            changes.push(merge::upsert(p, fp));
                        }
                        Decision::Update => {
                            counts.updated += 1;
                            changes.push(merge::upsert(p, fp));
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
        Ok(changes)
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
