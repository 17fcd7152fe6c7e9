//! The back-end-neutral model of the store: sync-log records, lock holders, organizations
//! and their rules, resets, and the codecs of values every back end stores as text.

use std::collections::HashMap;
use std::time::Duration;

use m365sync_wit::StorageError;
use m365sync_wit::names::WitName;
use m365sync_wit::types::{
    Change, Mailbox, PersonStatus, PlatformOrganization, ReviewAction, SyncReport,
};

use crate::log_entry::RunReport;
use crate::time::{now_rfc3339, unix_now};

/// How a run the host records ended (a successful run is recorded by the engine, `ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunStatus {
    /// The run failed (sign-in, Graph, storage, a limit...).
    #[default]
    Failed,
    /// A signal stopped the run at a batch boundary (or after the grace period).
    Interrupted,
    /// The run never started: another process was syncing the tenant.
    Refused,
}

impl RunStatus {
    /// The name in the sync log's `status`.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Refused => "refused",
        }
    }
}

/// Every status a sync-log entry may have: "ok", the [`RunStatus`] names, and "reset".
pub const RUN_STATUSES: &[&str] = &["ok", "failed", "interrupted", "refused", "reset"];

/// A run that did not succeed, as the host records it in the sync log.
#[derive(Debug, Clone)]
pub struct FailedRun {
    /// How it ended.
    pub status: RunStatus,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The mode that ran ("full" or "incremental"): the report's, else the one asked for.
    pub mode: String,
    pub elapsed_ms: u64,
    /// What the run did until it failed, when the engine said (requests, retries, data
    /// sets, warnings); stored as the run's report.
    pub report: Option<SyncReport>,
    pub dry_run: bool,
    /// What kind of failure (the runtime's `RunError::kind`, or "locked").
    pub error_kind: String,
    /// The error in words, without secrets.
    pub error: String,
}

/// One entry of the sync log (as `m365sync logs --json` and the API show it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRecord {
    pub id: i64,
    pub tenant: String,
    pub started_at: String,
    pub mode: String,
    /// One of [`RUN_STATUSES`].
    pub status: String,
    pub elapsed_ms: Option<u64>,
    /// Unknown (None) for a failed run.
    pub requests: Option<u64>,
    pub retries: Option<u64>,
    pub dry_run: bool,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// The run's report: of a failed run, what it did until it failed (None when the host
    /// stopped it, for a reset, or for runs logged before the report was kept).
    pub report: Option<RunReport>,
}

/// How often the holder of a tenant lock refreshes its heartbeat.
pub const LOCK_HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock held from another host whose heartbeat is older than this is stale: its holder
/// is presumed gone (crashed, or its machine is down) and the lock may be taken over. A
/// holder on this host is judged by its pid instead: stale exactly when no such process
/// lives (its heartbeat may lag while its own write transaction is open). Four missed
/// heartbeats: a `serve` worker on a lost machine holds its tenants up for two minutes.
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(2 * 60);

/// Who holds a tenant's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// When the holder took the lock, RFC 3339 UTC.
    pub since: String,
    /// Its last heartbeat, Unix seconds.
    pub heartbeat: i64,
}

impl LockHolder {
    /// This process, as a lock holder.
    pub fn this_process() -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            since: now_rfc3339(),
            heartbeat: unix_now(),
        }
    }

    /// Whether the holder is presumed gone (see [`LOCK_STALE_AFTER`]).
    pub fn is_stale(&self) -> bool {
        if self.host == host_name() {
            return !process_alive(self.pid);
        }
        unix_now().saturating_sub(self.heartbeat) > LOCK_STALE_AFTER.as_secs() as i64
    }

    /// What to do about a lock this holder keeps, in words.
    pub fn takeover_hint(&self) -> String {
        if self.host == host_name() {
            format!(
                "wait for it to finish or, if that process is gone, its lock is taken over as \
                 soon as no process {} runs here (stop it with `kill {}`)",
                self.pid, self.pid
            )
        } else {
            format!(
                "wait for it to finish or, if that process is gone, its lock is taken over {} \
                 minutes after its last heartbeat (it had one {} s ago)",
                LOCK_STALE_AFTER.as_secs() / 60,
                unix_now().saturating_sub(self.heartbeat)
            )
        }
    }
}

/// This machine's name (`uname -n`), to tell lock holders on this host from others.
pub fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buffer = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        // on success (and we stop at the first NUL or the end anyway).
        let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
        if result == 0 {
            let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
            let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether a process with this pid lives on this host.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 sends nothing; it only checks that the process exists.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        // Without a way to ask, a holder on this host is judged by its heartbeat.
        let _ = pid;
        true
    }
}

/// What a reset deleted: rows per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    pub deleted: Vec<(String, u64)>,
    /// The reset's entry in the sync log.
    pub run_id: i64,
}

impl ResetOutcome {
    /// The note the sync log keeps for the reset.
    pub fn note(deleted: &[(String, u64)]) -> String {
        let summary: Vec<String> = deleted
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(table, n)| format!("{n} {table}"))
            .collect();
        if summary.is_empty() {
            "the store held nothing for the tenant".to_string()
        } else {
            format!(
                "deleted {}; the next sync reads the tenant in full",
                summary.join(", ")
            )
        }
    }
}

/// What an import of organizations did.
#[derive(Debug, Clone, Default)]
pub struct OrganizationImport {
    /// New organizations.
    pub created: Vec<PlatformOrganization>,
    /// Organizations (by id) whose name changed.
    pub renamed: Vec<PlatformOrganization>,
    /// Rows that were there already (same id and name, or no id and an organization of
    /// that exact name exists).
    pub unchanged: usize,
}

/// One row to import: a name, and the organization's id if the file gives one. A row with
/// an id creates that organization, or renames it when it exists; a row without an id
/// creates an organization with a fresh id unless one of exactly that name exists, so
/// importing a file twice creates nothing the second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRow {
    /// Where the row is, for errors (e.g. "orgs.csv line 3").
    pub origin: String,
    pub id: Option<String>,
    pub name: String,
}

/// The longest organization name accepted.
const MAX_ORGANIZATION_NAME: usize = 256;

/// An organization name as stored (trimmed), or why it is refused.
pub fn check_organization_name(name: &str) -> Result<&str, StorageError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StorageError::Invalid(
            "organization name is empty".to_string(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StorageError::Invalid(format!(
            "organization name {name:?} contains a control character"
        )));
    }
    if name.chars().count() > MAX_ORGANIZATION_NAME {
        return Err(StorageError::Invalid(format!(
            "organization name {:?}... is longer than {MAX_ORGANIZATION_NAME} characters",
            name.chars().take(40).collect::<String>()
        )));
    }
    Ok(name)
}

/// An organization id as stored (trimmed), or why it is refused.
pub fn check_organization_id(id: &str) -> Result<&str, StorageError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StorageError::Invalid(format!(
            "organization id {id:?} is not usable: it must be 1 to 128 characters without \
             spaces or control characters"
        )));
    }
    Ok(id)
}

/// Refuses `what` (a write) when a tenant's store was opened read-only
/// ([`crate::Access::ReadOnly`]).
pub fn refuse_if_read_only(read_only: bool, what: &str, tenant: &str) -> Result<(), StorageError> {
    if read_only {
        return Err(StorageError::Invalid(format!(
            "{what}: this store of tenant {tenant} was opened read-only"
        )));
    }
    Ok(())
}

/// The organization a create makes: its name as stored and its id (`id` when given and
/// usable, else a fresh one), or why it is refused.
pub fn organization_to_create(
    name: &str,
    id: Option<&str>,
) -> Result<PlatformOrganization, StorageError> {
    let name = check_organization_name(name)?.to_string();
    let id = match id {
        Some(id) => check_organization_id(id)?.to_string(),
        None => new_organization_id(),
    };
    Ok(PlatformOrganization { id, name })
}

/// The refusal of a create whose id is taken.
pub fn organization_exists(id: &str) -> StorageError {
    StorageError::Invalid(format!("an organization with id {id:?} already exists"))
}

/// A fresh organization id: a random UUID (version 4).
pub fn new_organization_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Prefix a row's origin to an error about it.
pub fn at_origin(origin: &str, error: StorageError) -> StorageError {
    match error {
        StorageError::Invalid(m) => StorageError::Invalid(format!("{origin}: {m}")),
        StorageError::Unavailable(m) => StorageError::Unavailable(format!("{origin}: {m}")),
        cancelled @ StorageError::Cancelled(_) => cancelled,
    }
}

/// A stored status (an unknown one reads as active, as the first schema wrote only that).
pub fn status_from(name: &str) -> PersonStatus {
    PersonStatus::from_name(name).unwrap_or(PersonStatus::Active)
}

/// A review action as stored: its name and its organization id.
pub fn action_parts(action: &ReviewAction) -> (&'static str, Option<&str>) {
    match action {
        ReviewAction::Accept(id) => ("accept", Some(id.as_str())),
        ReviewAction::Change(id) => ("change", Some(id.as_str())),
        ReviewAction::Ignore => ("ignore", None),
        ReviewAction::Create => ("create", None),
    }
}

/// A stored review action.
pub fn action_from(name: &str, organization: Option<String>) -> ReviewAction {
    let organization = organization.unwrap_or_default();
    match name {
        "accept" => ReviewAction::Accept(organization),
        "change" => ReviewAction::Change(organization),
        "create" => ReviewAction::Create,
        _ => ReviewAction::Ignore,
    }
}

/// A list of strings as stored in a text column (JSON).
pub fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_string())
}

/// A stored list of strings.
pub fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// An import's plan: what importing `rows` into a store that holds `existing` creates,
/// renames and leaves as it is (the rules of [`OrganizationRow`]), or the first row refused,
/// named by its origin. Every back end imports through it, so they import alike: read the
/// organizations, plan, then create `created` and rename `renamed` in one transaction.
/// Rows see the rows before them (a name created or renamed by an earlier row counts).
pub fn plan_organization_import(
    rows: &[OrganizationRow],
    existing: &[PlatformOrganization],
) -> Result<OrganizationImport, StorageError> {
    let mut names_by_id: HashMap<String, String> = existing
        .iter()
        .map(|o| (o.id.clone(), o.name.clone()))
        .collect();
    // How many organizations bear each name (names are not unique).
    let mut names: HashMap<String, usize> = HashMap::new();
    for name in names_by_id.values() {
        *names.entry(name.clone()).or_default() += 1;
    }
    let mut seen_ids: HashMap<String, &str> = HashMap::new();
    let mut plan = OrganizationImport::default();
    for row in rows {
        let at = |e: StorageError| at_origin(&row.origin, e);
        let name = check_organization_name(&row.name).map_err(at)?;
        let id = match &row.id {
            Some(id) => {
                let id = check_organization_id(id).map_err(at)?;
                if let Some(first) = seen_ids.insert(id.to_string(), &row.origin) {
                    return Err(StorageError::Invalid(format!(
                        "{}: organization id {id:?} is given twice (first at {first})",
                        row.origin
                    )));
                }
                id.to_string()
            }
            None if names.get(name).is_some_and(|n| *n > 0) => {
                plan.unchanged += 1;
                continue;
            }
            None => new_organization_id(),
        };
        let organization = PlatformOrganization {
            id: id.clone(),
            name: name.to_string(),
        };
        match names_by_id.insert(id, name.to_string()) {
            Some(old) if old == name => {
                plan.unchanged += 1;
                continue;
            }
            Some(old) => {
                if let Some(n) = names.get_mut(&old) {
                    *n = n.saturating_sub(1);
                }
                plan.renamed.push(organization);
            }
            None => plan.created.push(organization),
        }
        *names.entry(name.to_string()).or_default() += 1;
    }
    Ok(plan)
}

/// `value` as the signed 64-bit integer every back end stores (SQLite's INTEGER,
/// PostgreSQL's BIGINT), or an `invalid` error naming `field`: a value a store cannot hold
/// as it is is refused, never wrapped (a `u64` above `i64::MAX` would read back negative).
/// A back end reports it through [`change_error`], which names the change.
pub fn stored_integer(field: &str, value: u64) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| {
        StorageError::Invalid(format!(
            "{field} is {value}, more than a store can hold (at most {})",
            i64::MAX
        ))
    })
}

/// A mailbox's counts as every back end stores them (storage used, items), or an
/// `invalid` error naming the field that no store can hold (see [`stored_integer`]).
pub fn mailbox_counts(mailbox: &Mailbox) -> Result<(i64, i64), StorageError> {
    Ok((
        stored_integer("storage_used_bytes", mailbox.storage_used_bytes)?,
        stored_integer("item_count", mailbox.item_count)?,
    ))
}

/// A run's elapsed time as every back end stores it (see [`stored_integer`]).
pub fn stored_elapsed_ms(elapsed_ms: u64) -> Result<i64, StorageError> {
    stored_integer("the run's elapsed_ms", elapsed_ms)
}

/// An error applying `change`, prefixed with what the change is (never its contents).
pub fn change_error(change: &Change, error: StorageError) -> StorageError {
    at_origin(&format!("applying {}", change_name(change)), error)
}

/// A usage row's counts as every back end stores and exports them: a JSON object, keys in
/// byte order (a name given twice keeps its last count).
pub fn counts_json(counts: &[(String, u64)]) -> String {
    // A BTreeMap, not serde_json's Map: its order would follow serde_json's features.
    let counts: std::collections::BTreeMap<&str, u64> = counts
        .iter()
        .map(|(name, count)| (name.as_str(), *count))
        .collect();
    serde_json::to_string(&counts).unwrap_or_else(|_| "{}".to_string())
}

/// What a change is, for error messages (never its contents).
pub fn change_name(change: &Change) -> String {
    use m365sync_wit::types::{ReportScope, UpsertKind};
    match change {
        Change::UpsertPerson(p) => match (&p.kind, &p.previous_object_id) {
            (UpsertKind::Link, Some(previous)) => format!(
                "link of person {} (stored as {previous})",
                p.stored.person.object_id
            ),
            _ => format!("person {}", p.stored.person.object_id),
        },
        Change::DeletePerson(id) => format!("deletion of person {id}"),
        Change::UpsertSubscription(s) => format!("subscription {}", s.sku_id),
        Change::UpsertGroup(g) => format!("group {}", g.object_id),
        Change::DeleteGroup(id) => format!("deletion of group {id}"),
        Change::GroupMembers(m) => format!("members of group {}", m.group_id),
        Change::UpsertOrganization(o) => format!("organization {}", o.tenant_id),
        Change::UpsertDomain(d) => format!("domain {}", d.name),
        Change::UpsertMailbox(m) => format!("mailbox of {}", m.object_id),
        Change::UpsertUsage(u) => format!("{} usage of {}", u.workload, u.object_id),
        Change::ReplaceReport(ReportScope::Mailboxes) => "replacement of the mailbox report".into(),
        Change::ReplaceReport(ReportScope::Usage(u)) => format!(
            "replacement of the {} usage report ({} days)",
            u.workload, u.period_days
        ),
    }
}
