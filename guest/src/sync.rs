//! One sync run of one tenant: check the request, sign in before touching storage, stop
//! the features whose application permission the token's `roles` lack, then read the
//! enabled data sets in this order, each committing its own batches:
//!
//! 1. users (with their managers), by Graph's delta query (`people`, on the shared
//!    round machinery of `round`): a full sync, or an incremental one with no usable
//!    saved delta link, runs an initial round and then applies the removal policy to
//!    stored people the round did not list; an incremental sync replays the saved
//!    `@odata.deltaLink`; a replay Graph answers with its "resync" error falls back to an
//!    initial round with a `delta-expired` warning; a changed `$select` (the delta link
//!    encodes it) runs an initial round too;
//! 2. last sign-in per user (`signins`), on the stored people;
//! 3. subscribed SKUs (`directory`), 4. the organization and its domains;
//! 5. groups and their members, by delta query (`groups`);
//! 6. mailbox usage and 7. per-workload usage reports (`reports`), joined to the stored
//!    people by user principal name.
//!
//! Users come first, so that everything after sees today's people. A delta round's
//! `@odata.deltaLink` is saved ONLY in its final batch, with the last page's changes (and
//! the round's removals, held back to it for the removal guard). A users round also saves
//! its progress at a bounded interval: a resume checkpoint (its next link and the round
//! state its end needs, see `round`), with which the next run carries on where it stopped.
//! A run stopped at any point therefore leaves the previous delta link (and maybe a resume
//! point), and the next run resumes, replays it or runs the initial round again: people are
//! keyed by object id and compared by fingerprint, groups are reset and rebuilt by an
//! initial round, and the other data sets are plain upserts, so nothing is doubled or
//! lost. The run's sync log rides on the run's last batch, after everything else.
//!
//! Failures: the users phase, storage and sign-in failures end the run. In the phases
//! after it, Graph's 403 (a permission or licence the tenant lacks) is a warning and the
//! run goes on, since what it already committed stands and the other data sets are
//! independent; any other failure ends the run (its committed batches stand, with their
//! checkpoints, and the next run carries on from them).
//!
//! Memory stays flat in the tenant's size: a page (or ~999 report rows) at a time, plus
//! (in an initial round) a compact set of the object ids seen.

use crate::bindings::m365sync::engine::log::Level;
use crate::bindings::m365sync::engine::secrets::SecretError;
use crate::bindings::m365sync::engine::storage::StorageError;
use crate::fieldmap::FieldMap;
use crate::filter::{Filter, FilterData};
use crate::graph::token::{Credentials, Proof, token_roles, token_tenant_id};
use crate::graph::{GraphClient, Stats};
use crate::permissions::{self, feature_names};
use crate::platform::{Assertions, Clock, Env, Http, Log, Secrets, Store};
use crate::redact::Redactor;
use crate::types::{
    AccountFilter, Batch, Change, Checkpoint, CredentialKind, DataSet, DataSetReport, Features,
    MatchConflict, MatchKey, OrganizationMatch, PermissionDenied, Person, PersonKey, PersonOutcome,
    PreviewEntry, RemovalGuard, RemovalPolicy, StoredPerson, SyncError, SyncFailure, SyncMode,
    SyncPreview, SyncReport, SyncRequest, Tenant, Warning,
};
use crate::url::AbsoluteUrl;

mod directory;
mod filter_data;
mod groups;
mod people;
mod reports;
mod round;
mod signins;

pub use groups::{GROUPS_DELTA_LINK, GROUPS_DELTA_SELECT};
pub use people::{
    LAST_FULL_SYNC, USERS_DELTA_LINK, USERS_DELTA_SELECT, USERS_FILTER, USERS_RESUME,
    USERS_UNRESOLVED,
};
use round::Round;

/// The features this engine implements: all of them.
pub const IMPLEMENTED: Features = Features::all();
/// The name of the secret the engine reads.
pub const CLIENT_SECRET: &str = "client-secret";
/// Checkpoint: the directory (tenant) id the tenant's stored data belongs to, bound on its
/// first run that signs in (see `Run::bind_directory`).
pub const DIRECTORY_ID: &str = "tenant.directory-id";
/// Usage report periods Graph offers.
const USAGE_PERIODS: [u16; 4] = [7, 30, 90, 180];

/// A tenant whose fields were checked, endpoints without a trailing slash.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedTenant {
    pub key: String,
    pub tenant_id: String,
    pub client_id: String,
    /// The tenant's cloud: tokens are for its Graph resource, whatever the endpoints.
    pub cloud: crate::types::Cloud,
    pub login: String,
    pub graph: String,
    /// How the app signs in: the client secret, or a client assertion from the host.
    pub credential: CredentialKind,
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
        cloud: t.cloud,
        login: endpoint("tenant.endpoints.login", &t.endpoints.login)?,
        graph: endpoint("tenant.endpoints.graph", &t.endpoints.graph)?,
        credential: t.credential,
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
    if features.contains(Features::MANAGERS) && !features.contains(Features::USERS) {
        return Err(invalid(
            "options.features",
            "managers are read with the users (users/delta with $select=manager); enable \
             users as well",
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

pub fn credentials(t: &CheckedTenant, proof: Proof) -> Credentials {
    Credentials {
        login: t.login.clone(),
        graph: t.graph.clone(),
        cloud: t.cloud,
        tenant_id: t.tenant_id.clone(),
        client_id: t.client_id.clone(),
        proof,
    }
}

/// The Graph client of a call for tenant `t`, signing in as its `credential` says: with
/// the client secret, read now (so a missing one fails before anything is sent), or with
/// a client assertion the host makes for each token request (no secret is read).
pub fn graph_client<'e>(
    http: &'e mut dyn Http,
    clock: &'e mut dyn Clock,
    secrets: &mut dyn Secrets,
    assertions: &'e mut dyn Assertions,
    t: &CheckedTenant,
) -> Result<GraphClient<'e>, SyncError> {
    let proof = match t.credential {
        CredentialKind::ClientSecret => Proof::Secret(read_secret(secrets, &t.key)?),
        CredentialKind::ClientAssertion => Proof::Assertion,
    };
    Ok(GraphClient::new(http, clock, credentials(t, proof)).with_assertions(assertions))
}

/// A storage failure as a sync error naming the operation.
pub fn storage_error(op: &str, e: StorageError) -> SyncError {
    SyncError::Storage(match e {
        StorageError::Unavailable(m) => format!("{op} failed: storage unavailable: {m}"),
        StorageError::Invalid(m) => format!("{op} failed: storage refused the data: {m}"),
        StorageError::Cancelled(m) => return SyncError::Cancelled(m),
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
        SyncError::MassRemoval(m) => m.message.clone(),
        SyncError::TenantMismatch(m) => m.clone(),
        SyncError::Cancelled(m) => format!("cancelled: {m}"),
    }
}

/// Logs a line with every known secret masked.
pub fn log_line(log: &mut dyn Log, r: &Redactor, level: Level, message: &str) {
    log.log(level, &r.text(message));
}

/// Runs one sync. Errors and log lines never carry the client secret or a token. A
/// failure carries the report of what the run did until it failed.
pub fn run(env: &mut Env<'_>, req: &SyncRequest) -> Result<SyncReport, Box<SyncFailure>> {
    run_with(env, req, false).map(|(report, _)| report)
}

/// What a sync would do, account by account: the users phase as a full dry run.
pub fn preview(env: &mut Env<'_>, req: &SyncRequest) -> Result<SyncPreview, SyncError> {
    let mut req = req.clone();
    req.options.mode = SyncMode::Full;
    req.options.dry_run = true;
    req.options.features &= Features::USERS | Features::MANAGERS;
    if !req.options.features.contains(Features::USERS) {
        return Err(invalid(
            "options.features",
            "a preview shows the users a sync would import; enable users",
        ));
    }
    let (report, people) = run_with(env, &req, true).map_err(|f| f.error)?;
    Ok(SyncPreview {
        report,
        people: people.unwrap_or_default(),
    })
}

fn run_with(
    env: &mut Env<'_>,
    req: &SyncRequest,
    preview: bool,
) -> Result<(SyncReport, Option<Vec<PreviewEntry>>), Box<SyncFailure>> {
    let started_ms = env.clock.now_ms();
    let started_at = env.clock.wall_rfc3339();
    // Failures before the run starts sent nothing and did nothing: an empty report.
    let failed_early = |error: SyncError| {
        Box::new(SyncFailure {
            report: SyncReport {
                tenant_key: req.tenant.key.trim().to_owned(),
                mode: req.options.mode,
                started_at: started_at.clone(),
                elapsed_ms: 0,
                requests: 0,
                retries: 0,
                retry_wait_ms: 0,
                data_sets: Vec::new(),
                warnings: Vec::new(),
                conflicts: Vec::new(),
                organization: None,
                dry_run: req.options.dry_run,
            },
            error,
        })
    };
    prepare_and_run(env, req, preview, started_ms, &started_at).map_err(|e| match e {
        Prepared::Early(error) => failed_early(error),
        Prepared::Failed(failure) => failure,
    })
}

/// A failure before the run started (nothing sent), or one during it (with its report).
enum Prepared {
    Early(SyncError),
    Failed(Box<SyncFailure>),
}

impl From<SyncError> for Prepared {
    fn from(e: SyncError) -> Self {
        Prepared::Early(e)
    }
}

fn prepare_and_run(
    env: &mut Env<'_>,
    req: &SyncRequest,
    preview: bool,
    started_ms: u64,
    started_at: &str,
) -> Result<(SyncReport, Option<Vec<PreviewEntry>>), Prepared> {
    let started_at = started_at.to_owned();
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
        )
        .into());
    }
    // Checked before signing in; compiled again with its data once signed in.
    let filter = Filter::compile(&opts.filter, FilterData::default())?;
    let field_map = FieldMap::resolve(&opts.field_map)?;

    let mut graph = graph_client(
        &mut *env.http,
        &mut *env.clock,
        &mut *env.secrets,
        &mut *env.credentials,
        &tenant,
    )?;
    let mut periods = opts.usage_periods.clone();
    periods.sort_unstable();
    periods.dedup();
    let mut run = Run {
        store: &mut *env.store,
        log: &mut *env.log,
        tenant: &tenant,
        filter,
        filter_spec: &opts.filter,
        field_map,
        match_key: opts.match_key,
        mode: opts.mode,
        features: opts.features,
        removal: opts.removal,
        removal_guard: opts.removal_guard,
        dry_run: opts.dry_run,
        periods,
        started_ms,
        started_at,
        warnings: Vec::new(),
        conflicts: Vec::new(),
        organization: None,
        preview: preview.then(Vec::new),
        data_sets: Vec::new(),
        pending: None,
        counted: people::Counted::default(),
        mode_run: None,
    };
    let result = run.sync(&mut graph);
    let redactor = graph.redactor().clone();
    match result {
        Ok(report) => Ok((report, run.preview.take())),
        Err(e) => {
            let error = redactor.error(e);
            log_line(
                run.log,
                &redactor,
                Level::Error,
                &format!("sync of tenant {} failed: {}", tenant.key, summary(&error)),
            );
            let report = run.run_report(&graph);
            Err(Prepared::Failed(Box::new(SyncFailure { error, report })))
        }
    }
}

/// Says which page of a delta round a Graph failure happened on.
fn at_page(error: SyncError, set: &str, page: u32) -> SyncError {
    match error {
        SyncError::Http(mut f) => {
            f.message = format!("{} ({set}, page {page})", f.message);
            SyncError::Http(f)
        }
        SyncError::BadResponse(mut f) => {
            f.message = format!("{} ({set}, page {page})", f.message);
            SyncError::BadResponse(f)
        }
        other => other,
    }
}

/// The message of a feature stopped for a permission the token lacks.
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
    /// The account filter, compiled with its data (SKUs, group members) once signed in.
    filter: Filter,
    filter_spec: &'r AccountFilter,
    field_map: FieldMap,
    match_key: MatchKey,
    /// The mode asked for.
    mode: SyncMode,
    /// The features to run (those stopped for a missing permission are taken out).
    features: Features,
    removal: RemovalPolicy,
    /// How many removals the run may commit (see `people::guard`).
    removal_guard: RemovalGuard,
    dry_run: bool,
    /// Usage report periods asked for, in days, sorted, without duplicates.
    periods: Vec<u16>,
    started_ms: u64,
    started_at: String,
    warnings: Vec<Warning>,
    conflicts: Vec<MatchConflict>,
    /// The tenant's organization match (feature `organization`).
    organization: Option<OrganizationMatch>,
    /// Per-account outcomes, collected for a preview only.
    preview: Option<Vec<PreviewEntry>>,
    /// The data-set reports of the phases run so far, in run order.
    data_sets: Vec<DataSetReport>,
    /// The final batch of the last phase, held so that the run's sync log can ride on it
    /// when nothing comes after; committed before any other batch.
    pending: Option<Batch>,
    /// Whom the users phase counted, so that a later write of a person counts once.
    counted: people::Counted,
    /// The mode the first delta phase actually ran (users, else groups).
    mode_run: Option<SyncMode>,
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

    /// Records what happens to an account, when previewing.
    fn note(&mut self, p: &Person, outcome: PersonOutcome) {
        if let Some(list) = &mut self.preview {
            list.push(PreviewEntry {
                object_id: p.object_id.clone(),
                user_principal_name: p.user_principal_name.clone(),
                mail: p.mail.clone(),
                display_name: p.display_name.clone(),
                outcome,
            });
        }
    }

    /// Records a removal change, when previewing.
    fn note_removal(&mut self, change: &Change) {
        if self.preview.is_none() {
            return;
        }
        let (person, outcome) = match change {
            Change::UpsertPerson(u) => (&u.stored.person, PersonOutcome::Remove(u.stored.status)),
            Change::DeletePerson(id) => {
                let person = crate::sources::users::blank_person(id.clone());
                return self.note(&person, PersonOutcome::Delete);
            }
            _ => return,
        };
        let person = person.clone();
        self.note(&person, outcome);
    }

    /// Records a match conflict once (every account in it reports the same one).
    fn conflict(&mut self, c: MatchConflict) {
        let mut ids = c.object_ids.clone();
        ids.sort();
        let known = self.conflicts.iter().any(|k| {
            let mut kids = k.object_ids.clone();
            kids.sort();
            k.key == c.key && kids == ids
        });
        if !known {
            self.conflicts.push(c);
        }
    }

    fn store_commit(&mut self, batch: &Batch) -> Result<(), SyncError> {
        if self.dry_run {
            return Ok(());
        }
        self.store
            .commit(batch)
            .map_err(|e| storage_error("commit", e))
    }

    /// Commits the held batch, if any.
    fn flush(&mut self) -> Result<(), SyncError> {
        match self.pending.take() {
            Some(batch) => self.store_commit(&batch),
            None => Ok(()),
        }
    }

    /// Commits a batch (after the held one, so that batches land in run order).
    fn commit(&mut self, batch: &Batch) -> Result<(), SyncError> {
        self.flush()?;
        self.store_commit(batch)
    }

    /// Holds a phase's final batch: it is committed before the next batch, or carries the
    /// run's sync log when it is the run's last.
    fn hold(&mut self, batch: Batch) -> Result<(), SyncError> {
        self.flush()?;
        self.pending = Some(batch);
        Ok(())
    }

    /// The tenant's checkpoint `key`, if saved.
    fn checkpoint(&mut self, key: &str) -> Result<Option<String>, SyncError> {
        self.store
            .get_checkpoint(key)
            .map_err(|e| storage_error("get-checkpoint", e))
    }

    /// The fingerprints saved under `key` (`None`: what is stored is not known).
    fn fingerprints(&mut self, key: &str) -> Result<Option<crate::merge::Fingerprints>, SyncError> {
        Ok(crate::merge::Fingerprints::parse(
            self.checkpoint(key)?.as_deref(),
        ))
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

    /// The report of `data_set`, added at the end of the list when not there yet.
    fn data_set(&mut self, data_set: DataSet) -> &mut DataSetReport {
        let i = match self.data_sets.iter().position(|d| d.data_set == data_set) {
            Some(i) => i,
            None => {
                self.data_sets.push(DataSetReport {
                    data_set,
                    pages: 0,
                    read: 0,
                    written: 0,
                    created: 0,
                    updated: 0,
                    unchanged: 0,
                    linked: 0,
                    removed: 0,
                    conflicts: 0,
                    filtered_out: Vec::new(),
                });
                self.data_sets.len() - 1
            }
        };
        &mut self.data_sets[i]
    }

    fn sync(&mut self, graph: &mut GraphClient<'_>) -> Result<SyncReport, SyncError> {
        // Sign in before reading or writing anything: a bad secret changes nothing.
        graph.sign_in()?;
        let r = graph.redactor().clone();
        self.info(&r, &format!("signed in to tenant {}", self.tenant.key));
        self.bind_directory(graph, &r)?;
        self.gate(graph, &r)?;
        if self.features.contains(Features::USERS) {
            let data = self.filter_data(graph, self.filter_spec)?;
            self.filter = Filter::compile(self.filter_spec, data)?;
        }

        if self.features.contains(Features::USERS) {
            let round = self.users(graph, &r)?;
            self.mode_run = Some(round.mode());
        }
        // Each phase starts by committing the one before (its final batch was held in
        // case it was the run's last): what comes after reads today's state, and a
        // failure later leaves it committed.
        if self.features.contains(Features::SIGN_IN_ACTIVITY) {
            self.flush()?;
            let result = self.sign_ins(graph);
            self.optional(graph, "sign-in-activity", result)?;
        }
        if self.features.contains(Features::LICENCES) {
            self.flush()?;
            let result = self.licences(graph);
            self.optional(graph, "licences", result)?;
        }
        if self.features.contains(Features::ORGANIZATION) {
            self.flush()?;
            let result = self.organization(graph);
            self.optional(graph, "organization", result)?;
        }
        if self.features.contains(Features::GROUPS) {
            self.flush()?;
            let result = self.groups(graph);
            if let Ok(round) = &result {
                self.mode_run.get_or_insert(round.mode());
            }
            self.optional(graph, "groups", result.map(|_| ()))?;
        }
        if self
            .features
            .intersects(Features::MAILBOXES | Features::USAGE_REPORTS)
        {
            self.flush()?;
            let result = self.reports(graph);
            self.optional(graph, "usage reports", result)?;
        }
        self.finish(graph)
    }

    /// The outcome of an optional phase (every one after users): Graph's 403 — a
    /// permission, licence or setting the tenant lacks — becomes a warning and the run goes
    /// on; any other failure ends the run (what was committed stands).
    fn optional(
        &mut self,
        graph: &GraphClient<'_>,
        phase: &str,
        result: Result<(), SyncError>,
    ) -> Result<(), SyncError> {
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let r = graph.redactor().clone();
        match e {
            SyncError::Permission(p) => {
                let message = format!("{} The other data sets were synced.", p.message);
                self.warn(&r, "permission-missing", message);
                Ok(())
            }
            SyncError::Http(f) if f.status == Some(403) => {
                self.warn(
                    &r,
                    "forbidden",
                    format!(
                        "Graph refused the {phase} data ({}); it was skipped and the other \
                         data sets were synced.",
                        f.message
                    ),
                );
                Ok(())
            }
            other => Err(other),
        }
    }

    /// Commits the run's last batch, with the sync log: the held final batch of the last
    /// phase, or an empty one.
    fn finish(&mut self, graph: &GraphClient<'_>) -> Result<SyncReport, SyncError> {
        let report = self.run_report(graph);
        let mut batch = self.pending.take().unwrap_or(Batch {
            changes: Vec::new(),
            checkpoints: Vec::new(),
            run: None,
        });
        batch.run = Some(report.clone());
        self.store_commit(&batch)?;
        Ok(report)
    }

    /// The run's report so far (taking the phases' counts, warnings and conflicts): the
    /// sync log of a finished run, or of a failed one up to its failure.
    fn run_report(&mut self, graph: &GraphClient<'_>) -> SyncReport {
        let Stats {
            requests,
            retries,
            retry_wait_ms,
        } = graph.stats;
        SyncReport {
            tenant_key: self.tenant.key.clone(),
            mode: self.mode_run.unwrap_or(self.mode),
            started_at: self.started_at.clone(),
            elapsed_ms: graph.clock().now_ms().saturating_sub(self.started_ms),
            requests,
            retries,
            retry_wait_ms,
            data_sets: std::mem::take(&mut self.data_sets),
            warnings: std::mem::take(&mut self.warnings),
            conflicts: std::mem::take(&mut self.conflicts),
            organization: self.organization.take(),
            dry_run: self.dry_run,
        }
    }

    /// Binds the stored tenant to its directory: the token's `tid` (or, without one, the
    /// configured tenant id when it is a GUID). The first run that signs in commits it
    /// ([`DIRECTORY_ID`]) in a batch of its own, before any data; a store that holds data
    /// but no binding (written before engine 0.3) is bound the same way by its next run.
    /// A later run whose directory differs fails with `tenant-mismatch` before it reads or
    /// writes anything else: the tenant's name in the config was reused for another
    /// directory, and its run would remove (or overwrite) the first directory's people.
    fn bind_directory(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
    ) -> Result<(), SyncError> {
        let from_token = token_tenant_id(graph.sign_in()?).ok().flatten();
        let configured = crate::ids::parse_guid(&self.tenant.tenant_id)
            .is_some()
            .then(|| self.tenant.tenant_id.clone());
        let Some(directory) = from_token.or(configured) else {
            log_line(
                self.log,
                r,
                Level::Debug,
                &format!(
                    "tenant {}: the access token names no directory (tid) and the configured \
                     tenant id is not a GUID, so the store is not bound to a directory",
                    self.tenant.key
                ),
            );
            return Ok(());
        };
        let directory = directory.trim().to_ascii_lowercase();
        let stored = self.checkpoint(DIRECTORY_ID)?;
        match stored {
            Some(bound) if bound.trim().eq_ignore_ascii_case(&directory) => Ok(()),
            Some(bound) => Err(SyncError::TenantMismatch(format!(
                "tenant {key}: the store holds the data of directory {bound} under this name, \
                 but this run signed in to directory {directory}; nothing was read or written. \
                 If the config's tenant {key} now means another directory, use another tenant \
                 name in the config for the other directory, or reset the stored data with \
                 `m365sync reset --tenant {key}`.",
                key = self.tenant.key,
                bound = bound.trim(),
            ))),
            None => self.commit(&Batch {
                changes: Vec::new(),
                checkpoints: vec![Checkpoint {
                    key: DIRECTORY_ID.into(),
                    value: Some(directory),
                }],
                run: None,
            }),
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
        let mut stopped = denied
            .iter()
            .filter_map(|d| permissions::feature_flag(&d.feature))
            .fold(Features::empty(), |a, f| a | f);
        // Managers are read with the users: without users, they stop too.
        if stopped.contains(Features::USERS) {
            stopped |= Features::MANAGERS & self.features;
        }
        if self.features.difference(stopped).is_empty() {
            return Err(SyncError::Permission(denied.swap_remove(0)));
        }
        for d in denied {
            self.warn(r, "permission-missing", d.message);
        }
        self.features = self.features.difference(stopped);
        Ok(())
    }
}

impl Round {
    /// The sync mode a round of this kind is.
    fn mode(self) -> SyncMode {
        match self {
            Round::Initial => SyncMode::Full,
            Round::Replay => SyncMode::Incremental,
        }
    }
}

#[cfg(test)]
mod tests;
