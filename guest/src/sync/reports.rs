//! Features `mailboxes` and `usage-reports`: Microsoft 365 usage reports, joined to the
//! stored people by user principal name.
//!
//! Each report is requested from Graph with the bearer token; Graph answers `302` with a
//! pre-authenticated download URL on another host, which is fetched WITHOUT credentials
//! ([`GraphClient::download`]). The CSV is read by column name ([`crate::sources::reports`])
//! in chunks of [`CHUNK`] rows: one find-people call (by normalised UPN) and one batch per
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
//! the run, the run warns once (`reports-lag`). A report Graph says does not exist (404,
//! 410 or 501, e.g. a retired workload's) is skipped with a `report-unavailable` warning.

use super::Run;
use crate::graph::GraphClient;
use crate::graph::Need;
use crate::graph::client::ReportAnswer;
use crate::redact::Redactor;
use crate::sources::reports::{self, CsvError, Row, Spec, Table};
use crate::types::{
    Batch, Change, DataSet, Features, HttpFailure, Mailbox, PersonKey, ReasonCount, SyncError,
    Usage,
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
}

/// Counts of one report.
#[derive(Default)]
struct Counts {
    rows: u64,
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
            Err(SyncError::Http(f)) if matches!(f.status, Some(404 | 410 | 501)) => {
                seen.unavailable.push(spec.function);
                self.warn(
                    r,
                    "report-unavailable",
                    format!(
                        "Graph has no {} report for this tenant ({}); it was skipped for every \
                         period. Microsoft retires reports with their workloads (Skype for \
                         Business Online was retired in 2021).",
                        spec.function, f.message
                    ),
                );
                return Ok(());
            }
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
        let mut table = Table::open(&body, spec).map_err(bad)?;
        let mut c = Counts::default();
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
                self.join(spec, period, rows, &mut c)?;
                self.log.progress(
                    if mailbox {
                        DataSet::Mailboxes
                    } else {
                        DataSet::Usage
                    },
                    c.rows,
                    None,
                );
            }
            if end {
                break;
            }
        }
        drop(body);
        let considered = c.rows - c.deleted;
        let concealed = c.concealed_like > 0 && c.concealed_like * 2 > considered;
        if concealed {
            seen.concealed.push((what.clone(), c.concealed_like));
        } else {
            c.unmatched += c.concealed_like;
        }
        self.info(
            r,
            &format!(
                "{what}: {} row(s), {} written, {} unmatched, {} concealed, {} of deleted users",
                c.rows,
                c.written,
                c.unmatched,
                if concealed { c.concealed_like } else { 0 },
                c.deleted
            ),
        );
        let d = self.data_set(if mailbox {
            DataSet::Mailboxes
        } else {
            DataSet::Usage
        });
        d.pages += 1;
        d.read += c.rows;
        d.updated += c.written;
        d.written += c.written;
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

    /// Joins a chunk of rows to the stored people by user principal name (one find-people
    /// call) and commits their records as one batch.
    fn join(
        &mut self,
        spec: &Spec,
        period: u16,
        rows: Vec<Row>,
        c: &mut Counts,
    ) -> Result<(), SyncError> {
        let mut keys: Vec<String> = Vec::with_capacity(rows.len());
        // A BTreeMap: std's HashMap would seed itself from wasi:random, an import the
        // component does not otherwise need.
        let mut index: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        let mut wanted: Vec<Option<usize>> = Vec::with_capacity(rows.len());
        for row in &rows {
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
                let next = keys.len();
                let i = *index.entry(key.clone()).or_insert(next);
                if i == next {
                    keys.push(key);
                }
                wanted.push(Some(i));
            }
        }
        drop(index);
        if keys.is_empty() {
            return Ok(());
        }
        let person_keys: Vec<PersonKey> =
            keys.into_iter().map(PersonKey::UserPrincipalName).collect();
        let found = self.find(&person_keys)?;
        drop(person_keys);
        let mailbox = spec.workload == reports::MAILBOX.workload;
        let mut changes = Vec::new();
        for (row, want) in rows.into_iter().zip(wanted) {
            let Some(i) = want else { continue };
            let Some(person) = &found[i] else {
                c.unmatched += 1;
                continue;
            };
            let object_id = person.person.object_id.clone();
            changes.push(if mailbox {
                Change::UpsertMailbox(mailbox_record(object_id, row))
            } else {
                Change::UpsertUsage(Usage {
                    object_id,
                    workload: spec.workload.into(),
                    period_days: period,
                    last_activity: row.last_activity,
                    counts: row.values,
                    report_refreshed: row.refreshed,
                })
            });
        }
        c.written += changes.len() as u64;
        if !changes.is_empty() {
            self.commit(&Batch {
                changes,
                checkpoints: Vec::new(),
                run: None,
            })?;
        }
        Ok(())
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
                .map(|(h, v)| (reports::kebab(h), *v))
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
