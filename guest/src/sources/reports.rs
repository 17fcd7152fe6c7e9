//! Microsoft 365 usage reports: which report functions the engine reads, and their CSV
//! read by column name.
//!
//! Per the report pages of microsoft-graph-docs-contrib (api-reference/v1.0/api/
//! reportroot-getmailboxusagedetail.md, -getemailactivityuserdetail.md,
//! -getteamsuseractivityuserdetail.md, -getonedriveactivityuserdetail.md,
//! -getsharepointactivityuserdetail.md, -getyammeractivityuserdetail.md,
//! -getskypeforbusinessactivityuserdetail.md, -getm365appuserdetail.md):
//! - `GET /v1.0/reports/{function}(period='D7'|'D30'|'D90'|'D180')` answers `302 Found`
//!   whose `Location` is "a preauthenticated download URL for the report", valid "a few
//!   minutes", that does "not require an Authorization header" (it is on another host,
//!   e.g. reports.office.com). getM365AppUserDetail also serves JSON, so it is asked for
//!   `?$format=text/csv`.
//! - The CSV's columns are listed per report ("The CSV file has the following headers for
//!   columns"); every report has `Report Refresh Date`, `User Principal Name` and `Last
//!   Activity Date`. The engine reads columns by name (order and extra columns do not
//!   matter), with the `csv` crate (quoted fields, empty values), after a UTF-8 BOM.
//! - Counts: every documented numeric column other than dates and flags becomes a
//!   `(name, count)` pair, the name being the header in kebab case ("Send Count" →
//!   `send-count`, "Storage Used (Byte)" → `storage-used-byte`). getM365AppUserDetail has
//!   no counts, only per-app Yes/No columns ("Outlook (Windows)"); those become 0/1 pairs
//!   (`outlook-windows`), since they are the report's whole content.
//! - Concealed names: when the tenant's report setting conceals user information
//!   (adminReportSettings.displayConcealedNames, resources/adminreportsettings.md:
//!   "all reports conceal user information such as usernames, groups, and sites"), the
//!   `User Principal Name` column holds a pseudonym instead of a name: 32 hexadecimal
//!   characters (e.g. `FE7CC8C15246EDCCA289C9A4022762F7`), or a GUID in some reports.
//!   [`looks_concealed`] recognises them; they are never joined to anyone.

use std::rc::Rc;

use csv::{ByteRecord, ReaderBuilder};

/// How a report column's values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Count,
    /// Yes/No (True/False), read as 1/0.
    Flag,
}

/// A report the engine reads.
#[derive(Debug)]
pub struct Spec {
    /// The reportRoot function, e.g. "getEmailActivityUserDetail".
    pub function: &'static str,
    /// The workload name stored in `usage.workload` ("mailbox" for the mailbox report).
    pub workload: &'static str,
    /// Whether the function needs `?$format=text/csv` (it also serves JSON).
    pub format_csv: bool,
    /// The documented value columns the engine keeps, by header.
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::{Count as C, Flag as F};

/// getMailboxUsageDetail: one row per mailbox.
pub const MAILBOX: Spec = Spec {
    function: "getMailboxUsageDetail",
    workload: "mailbox",
    format_csv: false,
    columns: &[
        (MAILBOX_ITEMS, C),
        (MAILBOX_STORAGE, C),
        (MAILBOX_WARNING_QUOTA, C),
        (MAILBOX_SEND_QUOTA, C),
        (MAILBOX_SEND_RECEIVE_QUOTA, C),
        ("Deleted Item Count", C),
        ("Deleted Item Size (Byte)", C),
        ("Deleted Item Quota (Byte)", C),
    ],
};

pub const MAILBOX_ITEMS: &str = "Item Count";
pub const MAILBOX_STORAGE: &str = "Storage Used (Byte)";
pub const MAILBOX_WARNING_QUOTA: &str = "Issue Warning Quota (Byte)";
pub const MAILBOX_SEND_QUOTA: &str = "Prohibit Send Quota (Byte)";
pub const MAILBOX_SEND_RECEIVE_QUOTA: &str = "Prohibit Send/Receive Quota (Byte)";

/// The per-user activity reports, in the order a run reads them.
pub const USAGE: &[Spec] = &[
    Spec {
        function: "getEmailActivityUserDetail",
        workload: "exchange",
        format_csv: false,
        columns: &[
            ("Send Count", C),
            ("Receive Count", C),
            ("Read Count", C),
            ("Meeting Created Count", C),
            ("Meeting Interacted Count", C),
        ],
    },
    Spec {
        function: "getTeamsUserActivityUserDetail",
        workload: "teams",
        format_csv: false,
        columns: &[
            ("Team Chat Message Count", C),
            ("Private Chat Message Count", C),
            ("Call Count", C),
            ("Meeting Count", C),
            ("Post Messages", C),
            ("Reply Messages", C),
            ("Urgent Messages", C),
            ("Meetings Organized Count", C),
            ("Meetings Attended Count", C),
            ("Ad Hoc Meetings Organized Count", C),
            ("Ad Hoc Meetings Attended Count", C),
            ("Scheduled One-time Meetings Organized Count", C),
            ("Scheduled One-time Meetings Attended Count", C),
            ("Scheduled Recurring Meetings Organized Count", C),
            ("Scheduled Recurring Meetings Attended Count", C),
            ("Audio Duration In Seconds", C),
            ("Video Duration In Seconds", C),
            ("Screen Share Duration In Seconds", C),
        ],
    },
    Spec {
        function: "getOneDriveActivityUserDetail",
        workload: "onedrive",
        format_csv: false,
        columns: &[
            ("Viewed Or Edited File Count", C),
            ("Synced File Count", C),
            ("Shared Internally File Count", C),
            ("Shared Externally File Count", C),
        ],
    },
    Spec {
        function: "getSharePointActivityUserDetail",
        workload: "sharepoint",
        format_csv: false,
        columns: &[
            ("Viewed Or Edited File Count", C),
            ("Synced File Count", C),
            ("Shared Internally File Count", C),
            ("Shared Externally File Count", C),
            ("Visited Page Count", C),
        ],
    },
    Spec {
        function: "getYammerActivityUserDetail",
        workload: "yammer",
        format_csv: false,
        columns: &[("Posted Count", C), ("Read Count", C), ("Liked Count", C)],
    },
    Spec {
        function: "getSkypeForBusinessActivityUserDetail",
        workload: "skype",
        format_csv: false,
        columns: &[
            ("Total Peer-to-peer Session Count", C),
            ("Total Organized Conference Count", C),
            ("Total Participated Conference Count", C),
            ("Peer-to-peer IM Count", C),
            ("Peer-to-peer Audio Count", C),
            ("Peer-to-peer Audio Minutes", C),
            ("Peer-to-peer Video Count", C),
            ("Peer-to-peer Video Minutes", C),
            ("Peer-to-peer App Sharing Count", C),
            ("Peer-to-peer File Transfer Count", C),
            ("Organized Conference IM Count", C),
            ("Organized Conference Audio/Video Count", C),
            ("Organized Conference Audio/Video Minutes", C),
            ("Organized Conference App Sharing Count", C),
            ("Organized Conference Web Count", C),
            ("Organized Conference Dial-in/out 3rd Party Count", C),
            ("Organized Conference Dial-in/out Microsoft Count", C),
            ("Organized Conference Dial-in Microsoft Minutes", C),
            ("Organized Conference Dial-out Microsoft Minutes", C),
            ("Participated Conference IM Count", C),
            ("Participated Conference Audio/Video Count", C),
            ("Participated Conference Audio/Video Minutes", C),
            ("Participated Conference App Sharing Count", C),
            ("Participated Conference Web Count", C),
            ("Participated Conference Dial-in/out 3rd Party Count", C),
        ],
    },
    Spec {
        function: "getM365AppUserDetail",
        workload: "m365-apps",
        format_csv: true,
        columns: &[
            ("Windows", F),
            ("Mac", F),
            ("Mobile", F),
            ("Web", F),
            ("Outlook", F),
            ("Word", F),
            ("Excel", F),
            ("PowerPoint", F),
            ("OneNote", F),
            ("Teams", F),
            ("Outlook (Windows)", F),
            ("Word (Windows)", F),
            ("Excel (Windows)", F),
            ("PowerPoint (Windows)", F),
            ("OneNote (Windows)", F),
            ("Teams (Windows)", F),
            ("Outlook (Mac)", F),
            ("Word (Mac)", F),
            ("Excel (Mac)", F),
            ("PowerPoint (Mac)", F),
            ("OneNote (Mac)", F),
            ("Teams (Mac)", F),
            ("Outlook (Mobile)", F),
            ("Word (Mobile)", F),
            ("Excel (Mobile)", F),
            ("PowerPoint (Mobile)", F),
            ("OneNote (Mobile)", F),
            ("Teams (Mobile)", F),
            ("Outlook (Web)", F),
            ("Word (Web)", F),
            ("Excel (Web)", F),
            ("PowerPoint (Web)", F),
            ("OneNote (Web)", F),
            ("Teams (Web)", F),
        ],
    },
];

pub const UPN: &str = "User Principal Name";
pub const REFRESH_DATE: &str = "Report Refresh Date";
pub const LAST_ACTIVITY: &str = "Last Activity Date";
pub const IS_DELETED: &str = "Is Deleted";

/// The report request for `period` days on the Graph endpoint `graph`.
pub fn url(graph: &str, spec: &Spec, period: u16) -> String {
    let mut u = format!("{graph}/v1.0/reports/{}(period='D{period}')", spec.function);
    if spec.format_csv {
        u.push_str("?$format=text/csv");
    }
    u
}

/// Why Graph does not serve the report `spec` to this tenant, as the `report-unavailable`
/// warning says it, when `failure` (Graph's answer to the report request) means so; `None`
/// for any other failure, which fails the run. Graph says so with:
/// - `404`, `410` or `501`: the function does not exist (any longer), or is not
///   implemented in the tenant's cloud;
/// - `400 BadRequest` "Resource not found for the segment '{function}'.": Graph's routing
///   error for a function it does not have, which it answers for
///   getSkypeForBusinessActivityUserDetail since Skype for Business Online was retired,
///   and a national cloud for functions it never offered. Only that message naming this
///   very function counts: any other 400 (a bad period, say) is an error of ours.
pub fn unavailable(spec: &Spec, failure: &crate::types::HttpFailure) -> Option<String> {
    let gone = matches!(failure.status, Some(404 | 410 | 501));
    let segment =
        format!("resource not found for the segment '{}", spec.function).to_ascii_lowercase();
    let unrouted = failure.status == Some(400)
        && failure
            .graph_code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("BadRequest"))
        && failure.message.to_ascii_lowercase().contains(&segment);
    if !(gone || unrouted) {
        return None;
    }
    let why = match spec.function {
        "getSkypeForBusinessActivityUserDetail" => {
            "Microsoft retired Skype for Business Online on 31 July 2021, and its report with it"
        }
        _ => {
            "the tenant's Microsoft cloud may not offer this report, or Microsoft may have \
             retired it"
        }
    };
    Some(format!(
        "Graph has no {} report for this tenant ({}); it was skipped for every period, and \
         the other reports were read. {why}.",
        spec.function, failure.message
    ))
}

/// A header in kebab case: lower-case ASCII letters and digits, every other run of
/// characters one `-` ("Organized Conference Audio/Video Count" →
/// `organized-conference-audio-video-count`).
pub fn kebab(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut dash = false;
    for c in header.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    out
}

/// Does a `User Principal Name` value look like a concealed (pseudonymised) name: no `@`,
/// and 32 hexadecimal characters or a GUID?
pub fn looks_concealed(upn: &str) -> bool {
    let v = upn.trim();
    if v.contains('@') {
        return false;
    }
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (v.len() == 32 && hex(v)) || crate::ids::parse_guid(v).is_some()
}

/// Why a report's CSV cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub enum CsvError {
    /// A required column is missing.
    MissingColumn(&'static str),
    /// A value is not what its column holds.
    BadValue {
        row: u64,
        column: String,
        value: String,
        expected: &'static str,
    },
    /// A required value is empty.
    Empty { row: u64, column: &'static str },
    /// The file is not CSV the reader can read (bad UTF-8, ...).
    Syntax(String),
}

/// The longest bad value an error quotes.
const QUOTED_VALUE_CHARS: usize = 40;

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsvError::MissingColumn(c) => write!(f, "it has no \"{c}\" column"),
            CsvError::BadValue {
                row,
                column,
                value,
                expected,
            } => {
                write!(f, "row {row}, column \"{column}\": ")?;
                // Only a short value is quoted, and whole: the beginning of a long one
                // could end inside a secret it echoes, which the run's redactor (applied
                // to the whole message later) would then no longer recognise.
                let length = value.chars().count();
                if length <= QUOTED_VALUE_CHARS {
                    write!(f, "{value:?} is not {expected}")
                } else {
                    write!(f, "a value of {length} characters is not {expected}")
                }
            }
            CsvError::Empty { row, column } => {
                write!(f, "row {row}, column \"{column}\" is empty")
            }
            CsvError::Syntax(m) => write!(f, "it is not readable CSV: {m}"),
        }
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The row's number among the data rows (1 for the first row after the header).
    pub row: u64,
    pub upn: String,
    pub refreshed: String,
    pub last_activity: Option<String>,
    /// `Is Deleted` is True (the report keeps deleted users for a while).
    pub deleted: bool,
    /// The values of the documented columns present in the file (empty values left out),
    /// in the spec's order, named in kebab case (each name shared by every row of the
    /// table, not copied per row).
    pub values: Vec<(Rc<str>, u64)>,
}

impl Row {
    /// The value of the column with this (kebab-case) name.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| *v)
    }

    /// The values, borrowed, as [`Row::values`] holds them.
    pub fn counts(&self) -> impl ExactSizeIterator<Item = (&str, u64)> {
        self.values.iter().map(|(name, n)| (&**name, *n))
    }
}

/// A report's CSV, read row by row.
pub struct Table<'a> {
    reader: csv::Reader<&'a [u8]>,
    /// The current row, read as bytes: only the columns the engine keeps are checked as
    /// UTF-8 and trimmed (a report has up to 50 columns; checking and trimming every field
    /// of every row showed in profiles).
    record: ByteRecord,
    /// Data rows read so far.
    rows: u64,
    upn: usize,
    refreshed: usize,
    last_activity: Option<usize>,
    deleted: Option<usize>,
    /// (index, header, kebab name, kind) of each documented column present.
    columns: Vec<(usize, &'static str, Rc<str>, Kind)>,
}

impl<'a> Table<'a> {
    /// Reads the header (after a UTF-8 BOM) and finds the columns by name.
    pub fn open(body: &'a [u8], spec: &Spec) -> Result<Table<'a>, CsvError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let mut reader = ReaderBuilder::new().flexible(true).from_reader(body);
        let headers = reader
            .headers()
            .map_err(|e| CsvError::Syntax(e.to_string()))?
            .clone();
        let find = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        let upn = find(UPN).ok_or(CsvError::MissingColumn(UPN))?;
        let refreshed = find(REFRESH_DATE).ok_or(CsvError::MissingColumn(REFRESH_DATE))?;
        let columns = spec
            .columns
            .iter()
            .filter_map(|&(h, kind)| find(h).map(|i| (i, h, Rc::from(kebab(h)), kind)))
            .collect();
        Ok(Table {
            last_activity: find(LAST_ACTIVITY),
            deleted: find(IS_DELETED),
            reader,
            record: ByteRecord::new(),
            rows: 0,
            upn,
            refreshed,
            columns,
        })
    }

    /// The next row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Option<Result<Row, CsvError>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Err(e) => Some(Err(CsvError::Syntax(e.to_string()))),
            Ok(true) => {
                self.rows += 1;
                Some(self.row())
            }
        }
    }

    fn row(&self) -> Result<Row, CsvError> {
        let r = &self.record;
        let row = self.rows;
        let get = |i: usize, column: &str| match std::str::from_utf8(r.get(i).unwrap_or_default()) {
            Ok(v) => Ok(v.trim()),
            Err(_) => Err(CsvError::Syntax(format!(
                "row {row}, column \"{column}\" is not UTF-8"
            ))),
        };
        let refreshed = get(self.refreshed, REFRESH_DATE)?;
        if refreshed.is_empty() {
            return Err(CsvError::Empty {
                row,
                column: REFRESH_DATE,
            });
        }
        let last_activity = match self.last_activity {
            Some(i) => Some(get(i, LAST_ACTIVITY)?)
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            None => None,
        };
        let mut values = Vec::with_capacity(self.columns.len());
        for (i, header, name, kind) in &self.columns {
            let v = get(*i, header)?;
            if v.is_empty() {
                continue;
            }
            let bad = |expected| CsvError::BadValue {
                row,
                column: (*header).to_owned(),
                value: v.to_owned(),
                expected,
            };
            let n = match kind {
                Kind::Count => {
                    if !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad("a whole number"));
                    }
                    v.parse::<u64>().map_err(|_| bad("a whole number"))?
                }
                Kind::Flag => match parse_flag(v) {
                    Some(b) => u64::from(b),
                    None => return Err(bad("Yes or No")),
                },
            };
            values.push((name.clone(), n));
        }
        let deleted = match self.deleted {
            Some(i) => parse_flag(get(i, IS_DELETED)?).unwrap_or(false),
            None => false,
        };
        Ok(Row {
            row,
            upn: get(self.upn, UPN)?.to_owned(),
            refreshed: refreshed.to_owned(),
            last_activity,
            deleted,
            values,
        })
    }
}

fn parse_flag(v: &str) -> Option<bool> {
    let is = |word: &str| v.eq_ignore_ascii_case(word);
    if is("yes") || is("true") || v == "1" {
        Some(true)
    } else if is("no") || is("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HttpFailure;

    fn spec(function: &str) -> &'static Spec {
        USAGE.iter().find(|s| s.function == function).unwrap()
    }

    fn failure(status: u16, code: &str, message: &str) -> HttpFailure {
        HttpFailure {
            url: "https://graph.test/v1.0/reports/x".into(),
            status: Some(status),
            graph_code: Some(code.into()),
            message: format!(
                "GET https://graph.test/v1.0/reports/x answered HTTP {status} {code}: {message}"
            ),
        }
    }

    #[test]
    fn a_report_graph_does_not_route_is_unavailable_with_its_own_reason() {
        let skype = spec("getSkypeForBusinessActivityUserDetail");
        let yammer = spec("getYammerActivityUserDetail");
        let unrouted = |f: &str| {
            failure(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{f}'."),
            )
        };
        let why = unavailable(skype, &unrouted(skype.function)).expect("unavailable");
        assert!(
            why.contains("getSkypeForBusinessActivityUserDetail"),
            "{why}"
        );
        assert!(why.contains("Skype for Business Online"), "{why}");
        let why = unavailable(yammer, &unrouted(yammer.function)).expect("unavailable");
        assert!(why.contains("getYammerActivityUserDetail"), "{why}");
        assert!(
            !why.contains("Skype"),
            "not the Skype text for every report: {why}"
        );
        // 404, 410 and 501 as before.
        for status in [404, 410, 501] {
            assert!(unavailable(yammer, &failure(status, "x", "gone")).is_some());
        }
        // Any other 400, or the segment of another function, is an error.
        assert!(unavailable(yammer, &unrouted(skype.function)).is_none());
        assert!(
            unavailable(
                yammer,
                &failure(
                    400,
                    "InvalidArgument",
                    "Invalid period value specified: D8."
                )
            )
            .is_none()
        );
        assert!(unavailable(yammer, &failure(500, "generalException", "x")).is_none());
        assert!(unavailable(yammer, &failure(403, "Authorization_RequestDenied", "x")).is_none());
    }

    #[test]
    fn a_secret_echoed_in_a_long_bad_value_is_masked_whole() {
        // A report cell echoing the access token (or any secret) past the point an error
        // would cut its quote: the run's redactor, applied to the message, must see it all.
        let token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.payload-of-the-token.sig";
        let mut redactor = crate::redact::Redactor::default();
        redactor.add(token);
        let body = format!(
            "Report Refresh Date,User Principal Name,Send Count\n2024-05-01,a@b.c,{}{token}\n",
            "9".repeat(30)
        );
        let e = rows(body.as_bytes(), &USAGE[0]).unwrap_err();
        let shown = redactor.text(&e.to_string());
        assert!(!shown.contains(&token[..8]), "{shown}");
        assert!(shown.contains("row 1, column \"Send Count\""), "{shown}");
        assert!(shown.contains("is not a whole number"), "{shown}");
    }

    fn rows(body: &[u8], spec: &Spec) -> Result<Vec<Row>, CsvError> {
        let mut t = Table::open(body, spec)?;
        let mut out = Vec::new();
        while let Some(r) = t.next_row() {
            out.push(r?);
        }
        Ok(out)
    }

    #[test]
    fn urls_and_names() {
        assert_eq!(
            url("https://g", &USAGE[0], 7),
            "https://g/v1.0/reports/getEmailActivityUserDetail(period='D7')"
        );
        assert_eq!(
            url("https://g", &USAGE[6], 30),
            "https://g/v1.0/reports/getM365AppUserDetail(period='D30')?$format=text/csv"
        );
        assert_eq!(kebab("Send Count"), "send-count");
        assert_eq!(kebab("Storage Used (Byte)"), "storage-used-byte");
        assert_eq!(
            kebab("Organized Conference Dial-in/out 3rd Party Count"),
            "organized-conference-dial-in-out-3rd-party-count"
        );
        assert_eq!(kebab(" Outlook (Windows) "), "outlook-windows");
        let workloads: Vec<_> = USAGE.iter().map(|s| s.workload).collect();
        assert_eq!(
            workloads,
            vec![
                "exchange",
                "teams",
                "onedrive",
                "sharepoint",
                "yammer",
                "skype",
                "m365-apps"
            ]
        );
    }

    #[test]
    fn concealed_names() {
        assert!(looks_concealed("FE7CC8C15246EDCCA289C9A4022762F7"));
        assert!(looks_concealed("fe7cc8c15246edcca289c9a4022762f7"));
        assert!(looks_concealed("6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"));
        assert!(!looks_concealed("adele@contoso.com"));
        assert!(!looks_concealed("FE7CC8C15246EDCCA289C9A4022762F"));
        assert!(!looks_concealed("FE7CC8C15246EDCCA289C9A4022762FZ"));
        assert!(!looks_concealed(""));
    }

    #[test]
    fn reads_by_column_name_with_bom_quotes_and_empty_values() {
        // Columns reordered, an unknown column, a quoted field with a comma and a quote,
        // an empty count and an empty last activity date, CRLF line ends.
        let body = "\u{feff}Report Period,Send Count,User Principal Name,Extra,\"Display Name\",Last Activity Date,Receive Count,Report Refresh Date,Is Deleted\r\n\
                    7,12,adele@contoso.com,x,\"Vance, Adele \"\"AV\"\"\",2024-04-30,,2024-05-01,False\r\n\
                    7,,ALEX@contoso.com,,Alex,,3,2024-05-01,True\r\n";
        let got = rows(body.as_bytes(), &USAGE[0]).unwrap();
        assert_eq!(
            got,
            vec![
                Row {
                    row: 1,
                    upn: "adele@contoso.com".into(),
                    refreshed: "2024-05-01".into(),
                    last_activity: Some("2024-04-30".into()),
                    deleted: false,
                    values: vec![("send-count".into(), 12)],
                },
                Row {
                    row: 2,
                    upn: "ALEX@contoso.com".into(),
                    refreshed: "2024-05-01".into(),
                    last_activity: None,
                    deleted: true,
                    values: vec![("receive-count".into(), 3)],
                }
            ]
        );
        assert_eq!(got[0].value("send-count"), Some(12));
        assert_eq!(got[0].value("read-count"), None);
    }

    #[test]
    fn flags_become_zero_or_one() {
        let body = b"Report Refresh Date,User Principal Name,Last Activation Date,Last Activity Date,Report Period,Windows,Mac,Outlook (Windows)\n2024-05-01,a@b.c,2024-01-01,2024-04-30,30,Yes,No,TRUE\n";
        let got = rows(body, &USAGE[6]).unwrap();
        assert_eq!(
            got[0].values,
            vec![
                ("windows".into(), 1),
                ("mac".into(), 0),
                ("outlook-windows".into(), 1)
            ]
        );
    }

    #[test]
    fn errors_name_the_column_and_line() {
        let missing = b"Report Refresh Date,Send Count\n2024-05-01,1\n";
        assert_eq!(
            rows(missing, &USAGE[0]).err(),
            Some(CsvError::MissingColumn(UPN))
        );
        let missing = b"User Principal Name,Send Count\na@b.c,1\n";
        assert_eq!(
            rows(missing, &USAGE[0]).err(),
            Some(CsvError::MissingColumn(REFRESH_DATE))
        );
        let bad = b"Report Refresh Date,User Principal Name,Send Count\n2024-05-01,a@b.c,1\n2024-05-01,b@b.c,-4\n";
        let e = rows(bad, &USAGE[0]).unwrap_err();
        assert_eq!(
            e,
            CsvError::BadValue {
                row: 2,
                column: "Send Count".into(),
                value: "-4".into(),
                expected: "a whole number"
            }
        );
        assert_eq!(
            e.to_string(),
            "row 2, column \"Send Count\": \"-4\" is not a whole number"
        );
        let flag = b"Report Refresh Date,User Principal Name,Windows\n2024-05-01,a@b.c,maybe\n";
        assert!(matches!(
            rows(flag, &USAGE[6]),
            Err(CsvError::BadValue { .. })
        ));
        let empty = b"Report Refresh Date,User Principal Name\n,a@b.c\n";
        assert_eq!(
            rows(empty, &USAGE[0]).unwrap_err().to_string(),
            "row 1, column \"Report Refresh Date\" is empty"
        );
        let not_utf8 = b"Report Refresh Date,User Principal Name\n2024-05-01,\xff\xfe\n";
        assert_eq!(
            rows(not_utf8, &USAGE[0]).unwrap_err().to_string(),
            "it is not readable CSV: row 1, column \"User Principal Name\" is not UTF-8"
        );
        // Only the columns the engine keeps are read: bytes that are not UTF-8 elsewhere
        // (a display name in another encoding) do not stop the report.
        let elsewhere = b"Report Refresh Date,User Principal Name,Display Name,Send Count\n\
            2024-05-01,a@b.c,Ren\xe9e,3\n";
        let got = rows(elsewhere, &USAGE[0]).expect("the row");
        assert_eq!(got[0].values, vec![("send-count".into(), 3)]);
        // A header only: no rows, no error.
        assert_eq!(
            rows(b"Report Refresh Date,User Principal Name\n", &USAGE[0]).unwrap(),
            vec![]
        );
    }
}
