//! Features `mailboxes` and `usage-reports`: Microsoft 365 usage reports, joined to the
//! stored people by user principal name.
//!
//! Each report is requested from Graph with the bearer token; Graph answers `302` with a
//! pre-authenticated download URL on another host, which is fetched WITHOUT credentials
//! ([`GraphClient::download`]). The CSV is read by column name ([`crate::sources::reports`])
//! in chunks of [`CHUNK`] rows: one find-people call (by normalised UPN, for the names not
//! joined earlier in the run) and one batch per
//! chunk.
//!
//! Periods: usage reports are read for every period in `options.usage-periods` (7 days
//! when the list is empty). The mailbox report describes each mailbox's current storage;
//! its period only bounds the activity it considers, so it is read once, for the SHORTEST
//! requested period (7 days when none is requested), which keeps its last-activity date as
//! fresh as the usage reports'.
//!
//! Rows that join nobody: rows whose `User Principal Name` looks concealed (a report
//! setting of the tenant replaces names by pseudonyms) are never joined; when they are most
//! of a report's rows, they are counted as `concealed` and the run warns once
//! (`reports-concealed`) with the setting to change; otherwise they count as `unmatched`,
//! like rows of people the store does not hold. Rows of deleted users count as `deleted`.
//! Reports lag behind: when the oldest `Report Refresh Date` is more than three days before
//! the run, the run warns once (`reports-lag`). A report Graph says does not exist
//! ([`reports::unavailable`]: 404, 410, 501, or 400 "Resource not found for the segment",
//! e.g. a retired workload's) is skipped with a `report-unavailable` warning.
//!
//! Reports are snapshots, and the store cannot be read back: each report's rows are
//! compared with the fingerprints the last run saved ([`Fingerprints`], a checkpoint per
//! report and period), so a row counts as created, updated or unchanged, and only the
//! rows that differ are written. When someone dropped out of a report (or the fingerprints
//! are not known: a first sync, a run stopped part-way), the stored rows of that report are
//! replaced (`replace-report`, then every row), in batches of [`CHUNK`] rows: the first
//! batch clears the fingerprints, the last one saves the new ones (see [`ReportWriter`]).
//! The whole report is read and joined before anything is written, so a report that
//! cannot be downloaded or read (unavailable, 403, bad CSV) leaves the stored rows as they
//! were.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::rc::Rc;

use super::Run;
use crate::graph::GraphClient;
use crate::graph::Need;
use crate::graph::client::ReportAnswer;
use crate::ids::IdHasher;
use crate::merge::{self, Fingerprints, Outcome};
use crate::redact::Redactor;
use crate::sources::reports::{self, CsvError, Row, Spec, Table};
use crate::types::{
    Batch, Change, Checkpoint, DataSet, Features, HttpFailure, Mailbox, PersonKey, ReasonCount,
    ReportScope, SyncError, Usage, UsageScope,
};
use crate::url::display_url;

/// Rows read, joined and committed at a time.
pub const CHUNK: usize = 999;
/// Reports older than this many days get a `reports-lag` warning.
const LAG_DAYS: i64 = 3;

const MAILBOX_NEED: Need = Need {
    permission: "Reports.Read.All",
    feature: "mailboxes",
};
const USAGE_NEED: Need = Need {
    permission: "Reports.Read.All",
    feature: "usage-reports",
};

/// What the report phase learns across reports, for its run-wide warnings.
#[derive(Default)]
struct Seen {
    /// Report functions Graph said it does not have (not asked again for other periods).
    unavailable: Vec<&'static str>,
    /// (report, concealed rows) of the reports whose rows were mostly concealed.
    concealed: Vec<(String, u64)>,
    oldest_refresh: Option<String>,
    /// The object id each user principal name key joined (none: no one), as the store
    /// answered: every report and period joins the same people, so each is asked once a
    /// run, not once per report and period (7 reports × 4 periods lifted every person
    /// across the boundary 28 times). Hashed (with the engine's fixed hasher): it is
    /// looked up once per report row.
    joined: Joined,
}

/// User principal name keys to the object id each joined: shared by the rows that join
/// it (a report's rows each hold theirs between its two passes: 100k copies otherwise).
type Joined = HashMap<String, Option<Rc<str>>, BuildHasherDefault<IdHasher>>;

/// Counts of one report.
#[derive(Default)]
struct Counts {
    rows: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    /// Stored rows of people who dropped out of the report (replaced).
    removed: u64,
    /// Rows written.
    written: u64,
    unmatched: u64,
    /// Rows whose name looks concealed (never joined).
    concealed_like: u64,
    deleted: u64,
}

impl Run<'_> {
    pub(super) fn reports(&mut self, graph: &mut GraphClient<'_>) -> Result<(), SyncError> {
        let r = graph.redactor().clone();
        let mut seen = Seen::default();
        let periods = if self.periods.is_empty() {
            vec![7]
        } else {
            self.periods.clone()
        };
        if self.features.contains(Features::MAILBOXES) {
            self.report(graph, &r, &reports::MAILBOX, periods[0], &mut seen)?;
        }
        if self.features.contains(Features::USAGE_REPORTS) {
            for &period in &periods {
                for spec in reports::USAGE {
                    self.report(graph, &r, spec, period, &mut seen)?;
                }
            }
        }
        if !seen.concealed.is_empty() {
            let total: u64 = seen.concealed.iter().map(|(_, n)| n).sum();
            let names: Vec<&str> = seen.concealed.iter().map(|(n, _)| n.as_str()).collect();
            self.warn(
                &r,
                "reports-concealed",
                format!(
                    "The tenant's usage reports conceal user names ({total} row(s) of {} carry \
                     pseudonyms instead of user principal names), so their rows could not be \
                     joined to anyone and were skipped. To import per-user usage, a global \
                     administrator must turn off the setting \"Display concealed user, group, \
                     and site names in all reports\" in the Microsoft 365 admin center \
                     (Settings > Org settings > Services > Reports; in Graph, \
                     adminReportSettings.displayConcealedNames); reports show real names from \
                     their next refresh.",
                    names.join(", ")
                ),
            );
        }
        if let Some(oldest) = &seen.oldest_refresh
            && let (Some(refreshed), Some(today)) =
                (day_number(oldest), day_number(&self.started_at))
            && today - refreshed > LAG_DAYS
        {
            self.warn(
                &r,
                "reports-lag",
                format!(
                    "Usage reports lag by days; this data is as of {oldest} ({} days before \
                     this run), the latest Microsoft had processed.",
                    today - refreshed
                ),
            );
        }
        Ok(())
    }

    /// Reads one report for one period.
    fn report(
        &mut self,
        graph: &mut GraphClient<'_>,
        r: &Redactor,
        spec: &Spec,
        period: u16,
        seen: &mut Seen,
    ) -> Result<(), SyncError> {
        if seen.unavailable.contains(&spec.function) {
            return Ok(());
        }
        let mailbox = spec.workload == reports::MAILBOX.workload;
        let url = reports::url(graph.graph(), spec, period);
        let what = format!("{}(period='D{period}')", spec.function);
        let need = if mailbox { MAILBOX_NEED } else { USAGE_NEED };
        let answer = match graph.get_report(&url, need) {
            Ok(answer) => answer,
            Err(SyncError::Http(f)) => match reports::unavailable(spec, &f) {
                Some(why) => {
                    seen.unavailable.push(spec.function);
                    self.warn(r, "report-unavailable", why);
                    return Ok(());
                }
                None => return Err(SyncError::Http(f)),
            },
            Err(e) => return Err(e),
        };
        let body = match answer {
            ReportAnswer::Redirect(location) => graph.download(&location, &what)?,
            ReportAnswer::Body(body) => body,
        };
        let bad = |e: CsvError| {
            SyncError::BadResponse(HttpFailure {
                url: display_url(&url),
                status: Some(200),
                graph_code: None,
                message: format!(
                    "the {what} report (GET {}) cannot be read: {e}",
                    display_url(&url)
                ),
            })
        };
        let key = fingerprints_key(spec, period);
        let prev = self.fingerprints(&key)?;
        // Pass 1: join every row to a person and compare it with the stored snapshot
        // (nothing is written yet, so a report that cannot be read changes nothing).
        let mut table = Table::open(&body, spec).map_err(bad)?;
        let mut c = Counts::default();
        let mut joined: Vec<Option<Rc<str>>> = Vec::new();
        let mut now = Fingerprints::default();
        let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK.min(1024));
        loop {
            let row = match table.next_row() {
                Some(row) => Some(row.map_err(bad)?),
                None => None,
            };
            let end = row.is_none();
            if let Some(row) = row {
                c.rows += 1;
                if seen
                    .oldest_refresh
                    .as_ref()
                    .is_none_or(|o| row.refreshed < *o)
                {
                    seen.oldest_refresh = Some(row.refreshed.clone());
                }
                chunk.push(row);
            }
            if chunk.len() >= CHUNK || (end && !chunk.is_empty()) {
                let rows = std::mem::take(&mut chunk);
                let ids = self.join(&rows, &mut c, &mut seen.joined)?;
                for (row, id) in rows.into_iter().zip(&ids) {
                    let Some(id) = id else { continue };
                    let hash = row_hash(spec, period, id, row);
                    // A person listed twice is counted once (the last row is stored).
                    if now.insert(id, hash) {
                        match prev
                            .as_ref()
                            .map_or(Outcome::Created, |p| p.outcome(id, hash))
                        {
                            Outcome::Created => c.created += 1,
                            Outcome::Updated => c.updated += 1,
                            Outcome::Unchanged => c.unchanged += 1,
                        }
                    }
                }
                joined.extend(ids);
                self.log.progress(data_set(spec), c.rows, None);
            }
            if end {
                break;
            }
        }
        let considered = c.rows - c.deleted;
        let concealed = c.concealed_like > 0 && c.concealed_like * 2 > considered;
        if concealed {
            seen.concealed.push((what.clone(), c.concealed_like));
        } else {
            c.unmatched += c.concealed_like;
        }
        // A report is a snapshot: when someone dropped out of it (or what is stored is not
        // known), its stored rows are replaced. A report whose names are concealed tells
        // nothing about who dropped out: its joined rows are upserted, the others kept.
        let replace = !concealed && prev.as_ref().is_none_or(|p| p.missing_from(&now) > 0);
        if replace {
            c.removed = prev.as_ref().map_or(0, |p| p.missing_from(&now) as u64);
        } else if let Some(p) = &prev {
            now.keep_missing(p);
        }
        // Pass 2: write the rows that differ from the stored ones (all of them when
        // replacing), CHUNK a batch.
        let mut table = Table::open(&body, spec).map_err(bad)?;
        let mut writer = ReportWriter::new(spec, period, replace, &key);
        let mut i = 0usize;
        while let Some(row) = table.next_row() {
            let row = row.map_err(bad)?;
            let id = joined
                .get_mut(i)
                .and_then(Option::take)
                .map(|id| String::from(&*id));
            i += 1;
            let Some(id) = id else { continue };
            let change = record(spec, period, id, row);
            let differs = replace
                || prev.as_ref().is_none_or(|p| {
                    p.outcome(record_id(&change), record_hash(&change)) != Outcome::Unchanged
                });
            if differs {
                writer.push(self, change)?;
            }
        }
        drop(body);
        let unchanged_snapshot = !replace && prev.as_ref() == Some(&now);
        c.written = writer.finish(self, (!unchanged_snapshot).then_some(&now))?;
        self.info(
            r,
            &format!(
                "{what}: {} row(s), {} created, {} updated, {} unchanged, {} removed ({} \
                 written{}), {} unmatched, {} concealed, {} of deleted users",
                c.rows,
                c.created,
                c.updated,
                c.unchanged,
                c.removed,
                c.written,
                if replace {
                    ", the stored report replaced"
                } else {
                    ""
                },
                c.unmatched,
                if concealed { c.concealed_like } else { 0 },
                c.deleted
            ),
        );
        let d = self.data_set(data_set(spec));
        d.pages += 1;
        d.read += c.rows;
        d.created += c.created;
        d.updated += c.updated;
        d.unchanged += c.unchanged;
        d.removed += c.removed;
        d.written += c.created + c.updated + c.removed;
        for (reason, n) in [
            ("concealed", if concealed { c.concealed_like } else { 0 }),
            ("deleted", c.deleted),
            ("unmatched", c.unmatched),
        ] {
            if n == 0 {
                continue;
            }
            match d.filtered_out.iter_mut().find(|x| x.reason == reason) {
                Some(x) => x.count += n,
                None => d.filtered_out.push(ReasonCount {
                    reason: reason.into(),
                    count: n,
                }),
            }
        }
        d.filtered_out.sort_by(|a, b| a.reason.cmp(&b.reason));
        Ok(())
    }

    /// Joins a chunk of rows to the stored people by user principal name: the object id
    /// each row joins, or `None` (counted for why). Keys not `joined` before are asked of
    /// the store in one find-people call, and remembered there.
    fn join(
        &mut self,
        rows: &[Row],
        c: &mut Counts,
        joined: &mut Joined,
    ) -> Result<Vec<Option<Rc<str>>>, SyncError> {
        // Keys to ask the store, each once (a BTreeSet: std's HashSet would seed itself
        // from wasi:random, an import the component does not otherwise need).
        let mut keys: BTreeSet<String> = BTreeSet::new();
        let mut wanted: Vec<Option<String>> = Vec::with_capacity(rows.len());
        for row in rows {
            let upn = row.upn.trim();
            if row.deleted {
                c.deleted += 1;
                wanted.push(None);
            } else if reports::looks_concealed(upn) {
                // A pseudonym is never joined to anyone.
                c.concealed_like += 1;
                wanted.push(None);
            } else if upn.is_empty() {
                c.unmatched += 1;
                wanted.push(None);
            } else {
                let key = upn.to_lowercase();
                if !joined.contains_key(&key) {
                    keys.insert(key.clone());
                }
                wanted.push(Some(key));
            }
        }
        if !keys.is_empty() {
            let person_keys: Vec<PersonKey> =
                keys.into_iter().map(PersonKey::UserPrincipalName).collect();
            let found = self.find(&person_keys)?;
            for (key, person) in person_keys.into_iter().zip(found) {
                let PersonKey::UserPrincipalName(key) = key else {
                    continue;
                };
                joined.insert(key, person.map(|p| Rc::from(p.person.object_id)));
            }
        }
        Ok(wanted
            .into_iter()
            .map(|want| match joined.get(&want?) {
                Some(Some(id)) => Some(id.clone()),
                _ => {
                    c.unmatched += 1;
                    None
                }
            })
            .collect())
    }
}

/// The checkpoint that holds the fingerprints of a report's stored rows.
fn fingerprints_key(spec: &Spec, period: u16) -> String {
    if is_mailbox(spec) {
        "reports.mailboxes.fingerprints".into()
    } else {
        format!("reports.usage.{}.D{period}.fingerprints", spec.workload)
    }
}

fn is_mailbox(spec: &Spec) -> bool {
    spec.workload == reports::MAILBOX.workload
}

fn data_set(spec: &Spec) -> DataSet {
    if is_mailbox(spec) {
        DataSet::Mailboxes
    } else {
        DataSet::Usage
    }
}

/// The stored row of a joined report row.
fn record(spec: &Spec, period: u16, object_id: String, row: Row) -> Change {
    if is_mailbox(spec) {
        Change::UpsertMailbox(mailbox_record(object_id, row))
    } else {
        Change::UpsertUsage(Usage {
            object_id,
            workload: spec.workload.into(),
            period_days: period,
            last_activity: row.last_activity,
            counts: row
                .values
                .into_iter()
                .map(|(name, n)| (String::from(&*name), n))
                .collect(),
            report_refreshed: row.refreshed,
        })
    }
}

/// The hash of the stored row a joined report row becomes ([`record_hash`] of its
/// [`record`]): a usage row's hashed from the row as read, without building the record.
fn row_hash(spec: &Spec, period: u16, object_id: &str, row: Row) -> u64 {
    if is_mailbox(spec) {
        return merge::mailbox_hash(&mailbox_record(object_id.to_owned(), row));
    }
    merge::usage_fields_hash(
        object_id,
        spec.workload,
        period,
        row.last_activity.as_deref(),
        row.counts(),
        &row.refreshed,
    )
}

fn record_id(change: &Change) -> &str {
    match change {
        Change::UpsertMailbox(m) => &m.object_id,
        Change::UpsertUsage(u) => &u.object_id,
        _ => "",
    }
}

fn record_hash(change: &Change) -> u64 {
    match change {
        Change::UpsertMailbox(m) => merge::mailbox_hash(m),
        Change::UpsertUsage(u) => merge::usage_hash(u),
        _ => 0,
    }
}

/// Writes one report's rows in batches of [`CHUNK`]. Replacing: the first batch starts
/// with `replace-report` and clears the report's fingerprints checkpoint, so that a run
/// stopped part-way leaves "not known" behind (the next run replaces again) rather than
/// fingerprints of rows the replacement deleted; the last batch saves the new
/// fingerprints. So every batch of a report holds a checkpoint change only at its ends,
/// and a report's rows never stand half-replaced under a checkpoint that says otherwise.
struct ReportWriter {
    scope: Option<ReportScope>,
    key: String,
    changes: Vec<Change>,
    written: u64,
    batches: u32,
}

impl ReportWriter {
    fn new(spec: &Spec, period: u16, replace: bool, key: &str) -> Self {
        let scope = replace.then(|| {
            if is_mailbox(spec) {
                ReportScope::Mailboxes
            } else {
                ReportScope::Usage(UsageScope {
                    workload: spec.workload.into(),
                    period_days: period,
                })
            }
        });
        ReportWriter {
            scope,
            key: key.to_owned(),
            changes: Vec::new(),
            written: 0,
            batches: 0,
        }
    }

    fn push(&mut self, run: &mut Run<'_>, change: Change) -> Result<(), SyncError> {
        self.changes.push(change);
        if self.changes.len() >= CHUNK {
            self.commit(run, None)?;
        }
        Ok(())
    }

    /// Commits the rows gathered so far; `last` carries the new fingerprints.
    fn commit(&mut self, run: &mut Run<'_>, last: Option<String>) -> Result<(), SyncError> {
        let rows = std::mem::take(&mut self.changes);
        self.written += rows.len() as u64;
        let mut changes = Vec::with_capacity(rows.len() + 1);
        let first = self.batches == 0;
        if first && let Some(scope) = self.scope.clone() {
            changes.push(Change::ReplaceReport(scope));
        }
        changes.extend(rows);
        let value = match last {
            Some(v) => Some(Some(v)),
            None if first && self.scope.is_some() => Some(None),
            None => None,
        };
        let checkpoints = value
            .map(|value| Checkpoint {
                key: self.key.clone(),
                value,
            })
            .into_iter()
            .collect();
        self.batches += 1;
        run.commit(&Batch {
            changes,
            checkpoints,
            run: None,
        })
    }

    /// Commits the last batch with the new fingerprints (`None`: nothing changed, and
    /// nothing is committed); returns the rows written.
    fn finish(mut self, run: &mut Run<'_>, now: Option<&Fingerprints>) -> Result<u64, SyncError> {
        match now {
            Some(now) => self.commit(run, Some(now.encode()))?,
            None if !self.changes.is_empty() => self.commit(run, None)?,
            None => {}
        }
        Ok(self.written)
    }
}

/// A mailbox record from a row of getMailboxUsageDetail. The report has no quota status
/// column; it is derived from the storage used and the three quotas the report lists, as
/// the admin center's mailbox usage report shows it: "send-receive-prohibited",
/// "send-prohibited", "warning-issued", "under-limit", or "unknown" when the row has no
/// quota.
fn mailbox_record(object_id: String, row: Row) -> Mailbox {
    let get = |h: &str| row.value(&reports::kebab(h));
    let used = get(reports::MAILBOX_STORAGE).unwrap_or(0);
    let reached = |h: &str| get(h).is_some_and(|q| q > 0 && used >= q);
    let quota_status = if reached(reports::MAILBOX_SEND_RECEIVE_QUOTA) {
        "send-receive-prohibited"
    } else if reached(reports::MAILBOX_SEND_QUOTA) {
        "send-prohibited"
    } else if reached(reports::MAILBOX_WARNING_QUOTA) {
        "warning-issued"
    } else if [
        reports::MAILBOX_SEND_RECEIVE_QUOTA,
        reports::MAILBOX_SEND_QUOTA,
        reports::MAILBOX_WARNING_QUOTA,
    ]
    .iter()
    .any(|h| get(h).is_some_and(|q| q > 0))
    {
        "under-limit"
    } else {
        "unknown"
    };
    Mailbox {
        object_id,
        storage_used_bytes: used,
        item_count: get(reports::MAILBOX_ITEMS).unwrap_or(0),
        quota_status: quota_status.into(),
        last_activity: row.last_activity,
        report_refreshed: row.refreshed,
    }
}

/// Days since 1970-01-01 of a date that starts `YYYY-MM-DD` (an RFC 3339 time too).
fn day_number(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(&b[r]).ok()?.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers() {
        assert_eq!(day_number("1970-01-01"), Some(0));
        assert_eq!(day_number("2024-05-01T00:00:00.000Z"), Some(19_844));
        assert_eq!(
            day_number("2024-03-01").unwrap() - day_number("2024-02-28").unwrap(),
            2
        );
        assert_eq!(day_number("2024-13-01"), None);
        assert_eq!(day_number("yesterday"), None);
    }

    /// A row hashed as read is hashed as the record it becomes: the fingerprints saved by
    /// one run are compared with the next run's rows.
    #[test]
    fn a_row_hashes_as_its_record() {
        let row = |last_activity: Option<&str>, values: &[(&str, u64)]| Row {
            row: 1,
            upn: "a@b.c".into(),
            refreshed: "2024-05-01".into(),
            last_activity: last_activity.map(str::to_owned),
            deleted: false,
            values: values.iter().map(|(n, v)| ((*n).into(), *v)).collect(),
        };
        for r in [
            row(None, &[]),
            row(Some("2024-04-30"), &[("send-count", 12), ("read-count", 0)]),
        ] {
            for spec in [&reports::MAILBOX, &reports::USAGE[0], &reports::USAGE[6]] {
                assert_eq!(
                    row_hash(spec, 30, "id", r.clone()),
                    record_hash(&record(spec, 30, "id".into(), r.clone())),
                    "{}",
                    spec.function
                );
            }
        }
        // And the fields count: a different value is a different hash.
        assert_ne!(
            row_hash(
                &reports::USAGE[0],
                30,
                "id",
                row(None, &[("send-count", 1)])
            ),
            row_hash(
                &reports::USAGE[0],
                30,
                "id",
                row(None, &[("send-count", 2)])
            ),
        );
    }

    #[test]
    fn quota_status_is_derived_from_the_quotas() {
        let row = |values: &[(&str, u64)]| Row {
            row: 1,
            upn: "a@b.c".into(),
            refreshed: "2024-05-01".into(),
            last_activity: None,
            deleted: false,
            values: values
                .iter()
                .map(|(h, v)| (reports::kebab(h).into(), *v))
                .collect(),
        };
        let q = [
            (reports::MAILBOX_WARNING_QUOTA, 90),
            (reports::MAILBOX_SEND_QUOTA, 95),
            (reports::MAILBOX_SEND_RECEIVE_QUOTA, 100),
        ];
        for (used, want) in [
            (10, "under-limit"),
            (90, "warning-issued"),
            (96, "send-prohibited"),
            (100, "send-receive-prohibited"),
        ] {
            let mut v = q.to_vec();
            v.push((reports::MAILBOX_STORAGE, used));
            v.push((reports::MAILBOX_ITEMS, 3));
            let m = mailbox_record("id".into(), row(&v));
            assert_eq!(m.quota_status, want, "{used}");
            assert_eq!(m.storage_used_bytes, used);
            assert_eq!(m.item_count, 3);
        }
        let m = mailbox_record("id".into(), row(&[]));
        assert_eq!(m.quota_status, "unknown");
        assert_eq!(m.storage_used_bytes, 0);
    }
}
