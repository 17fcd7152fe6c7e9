//! Microsoft 365 usage reports: the per-user detail reports Graph serves as CSV
//! through `GET /v1.0/reports/get…(period='D7')` (a `302 Found` to a
//! pre-authenticated download URL, see `download.rs`), their exact columns,
//! and a deterministic activity model that fills them.
//!
//! Columns, in order, are the ones each page lists under "The CSV file has the
//! following headers for columns" (microsoftgraph/microsoft-graph-docs-contrib,
//! api-reference/v1.0/api/):
//! * reportroot-getmailboxusagedetail.md — the page's example CSV header line
//!   omits "Deleted Item Quota (Byte)" and "Has Archive", which its column
//!   list includes; the simulator follows the list.
//! * reportroot-getemailactivityuserdetail.md
//! * reportroot-getteamsuseractivityuserdetail.md
//! * reportroot-getonedriveactivityuserdetail.md
//! * reportroot-getsharepointactivityuserdetail.md
//! * reportroot-getyammeractivityuserdetail.md
//! * reportroot-getskypeforbusinessactivityuserdetail.md (the page does not
//!   call the report retired, so it is served; Skype for Business Online
//!   itself was retired in 2021, so its rows show no activity)
//! * reportroot-getm365appuserdetail.md
//!
//! Each page: "The supported values for {period_value} are: D7, D30, D90, and
//! D180"; the downloaded file is `Content-Type: application/octet-stream`.
//!
//! Rows: one per live user whose licences include the report's workload
//! (e.g. a Teams plan for the Teams report), in directory order; deleted users
//! are not listed. Values are derived from the tenant id, the user id and the
//! report, so they are stable for a seed: most users are active within the
//! last week, some have been inactive for 30 days or more, some never were
//! (empty `Last Activity Date`, zero counts). Counts cover the period; the
//! `Last Activity Date` is the user's last activity even when it lies before
//! the period. Dates are `YYYY-MM-DD`; booleans `True`/`False` ("Is Deleted",
//! "Has Archive") or `Yes`/`No` ("Has Other Action", "Is Licensed", the M365
//! apps platform and app columns), as in the Teams row quoted by
//! office365itpros.com ("Has Other Action : No").
//!
//! Concealed names ("In all reports, display de-identified names for users,
//! groups, and sites", the admin center setting behind
//! adminReportSettings.displayConcealedNames, api-reference/v1.0/resources/adminreportsettings.md):
//! user principal names and display names become 32 upper-case hex
//! characters, e.g. `FE7CC8C15246EDCCA289C9A4022762F7` (the form quoted in
//! office365itpros.com/2020/12/07/anonymize-microsoft-365-usage-reports/);
//! Microsoft does not document how the value is derived, so the simulator
//! uses a keyed hash that joins to no directory attribute. Teams' `User Id`
//! is concealed too (a GUID that matches no user).

use std::collections::HashMap;

use crate::names;
use crate::rng::{Rng, guid_from};
use crate::tenant::parse_iso_seconds;
use crate::tenant::{Tenant, User};
use crate::util::{civil_date, keyed_hash, parse_civil_date, push_civil_date};

/// A per-user usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// `getMailboxUsageDetail`.
    MailboxUsage,
    /// `getEmailActivityUserDetail`.
    EmailActivity,
    /// `getTeamsUserActivityUserDetail`.
    TeamsUserActivity,
    /// `getOneDriveActivityUserDetail`.
    OneDriveActivity,
    /// `getSharePointActivityUserDetail`.
    SharePointActivity,
    /// `getYammerActivityUserDetail` (Viva Engage).
    YammerActivity,
    /// `getSkypeForBusinessActivityUserDetail`.
    SkypeForBusinessActivity,
    /// `getM365AppUserDetail`.
    M365AppUser,
}

const MAILBOX_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Display Name",
    "Is Deleted",
    "Deleted Date",
    "Created Date",
    "Last Activity Date",
    "Item Count",
    "Storage Used (Byte)",
    "Issue Warning Quota (Byte)",
    "Prohibit Send Quota (Byte)",
    "Prohibit Send/Receive Quota (Byte)",
    "Deleted Item Count",
    "Deleted Item Size (Byte)",
    "Deleted Item Quota (Byte)",
    "Has Archive",
    "Report Period",
];

const EMAIL_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Display Name",
    "Is Deleted",
    "Deleted Date",
    "Last Activity Date",
    "Send Count",
    "Receive Count",
    "Read Count",
    "Meeting Created Count",
    "Meeting Interacted Count",
    "Assigned Products",
    "Report Period",
];

const TEAMS_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "Tenant Display Name",
    "Shared Channel Tenant Display Names",
    "User Id",
    "User Principal Name",
    "Last Activity Date",
    "Is Deleted",
    "Deleted Date",
    "Assigned Products",
    "Team Chat Message Count",
    "Private Chat Message Count",
    "Call Count",
    "Meeting Count",
    "Post Messages",
    "Reply Messages",
    "Urgent Messages",
    "Meetings Organized Count",
    "Meetings Attended Count",
    "Ad Hoc Meetings Organized Count",
    "Ad Hoc Meetings Attended Count",
    "Scheduled One-time Meetings Organized Count",
    "Scheduled One-time Meetings Attended Count",
    "Scheduled Recurring Meetings Organized Count",
    "Scheduled Recurring Meetings Attended Count",
    "Audio Duration",
    "Video Duration",
    "Screen Share Duration",
    "Audio Duration In Seconds",
    "Video Duration In Seconds",
    "Screen Share Duration In Seconds",
    "Has Other Action",
    "Is Licensed",
    "Report Period",
];

const ONEDRIVE_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Is Deleted",
    "Deleted Date",
    "Last Activity Date",
    "Viewed Or Edited File Count",
    "Synced File Count",
    "Shared Internally File Count",
    "Shared Externally File Count",
    "Assigned Products",
    "Report Period",
];

const SHAREPOINT_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Is Deleted",
    "Deleted Date",
    "Last Activity Date",
    "Viewed Or Edited File Count",
    "Synced File Count",
    "Shared Internally File Count",
    "Shared Externally File Count",
    "Visited Page Count",
    "Assigned Products",
    "Report Period",
];

const YAMMER_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Display Name",
    "User State",
    "State Change Date",
    "Last Activity Date",
    "Posted Count",
    "Read Count",
    "Liked Count",
    "Assigned Products",
    "Report Period",
];

const SKYPE_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Is Deleted",
    "Deleted Date",
    "Last Activity Date",
    "Total Peer-to-peer Session Count",
    "Total Organized Conference Count",
    "Total Participated Conference Count",
    "Peer-to-peer Last Activity Date",
    "Organized Conference Last Activity Date",
    "Participated Conference Last Activity Date",
    "Peer-to-peer IM Count",
    "Peer-to-peer Audio Count",
    "Peer-to-peer Audio Minutes",
    "Peer-to-peer Video Count",
    "Peer-to-peer Video Minutes",
    "Peer-to-peer App Sharing Count",
    "Peer-to-peer File Transfer Count",
    "Organized Conference IM Count",
    "Organized Conference Audio/Video Count",
    "Organized Conference Audio/Video Minutes",
    "Organized Conference App Sharing Count",
    "Organized Conference Web Count",
    "Organized Conference Dial-in/out 3rd Party Count",
    "Organized Conference Dial-in/out Microsoft Count",
    "Organized Conference Dial-in Microsoft Minutes",
    "Organized Conference Dial-out Microsoft Minutes",
    "Participated Conference IM Count",
    "Participated Conference Audio/Video Count",
    "Participated Conference Audio/Video Minutes",
    "Participated Conference App Sharing Count",
    "Participated Conference Web Count",
    "Participated Conference Dial-in/out 3rd Party Count",
    "Assigned Products",
    "Report Period",
];

const M365_APP_COLUMNS: &[&str] = &[
    "Report Refresh Date",
    "User Principal Name",
    "Last Activation Date",
    "Last Activity Date",
    "Report Period",
    "Windows",
    "Mac",
    "Mobile",
    "Web",
    "Outlook",
    "Word",
    "Excel",
    "PowerPoint",
    "OneNote",
    "Teams",
    "Outlook (Windows)",
    "Word (Windows)",
    "Excel (Windows)",
    "PowerPoint (Windows)",
    "OneNote (Windows)",
    "Teams (Windows)",
    "Outlook (Mac)",
    "Word (Mac)",
    "Excel (Mac)",
    "PowerPoint (Mac)",
    "OneNote (Mac)",
    "Teams (Mac)",
    "Outlook (Mobile)",
    "Word (Mobile)",
    "Excel (Mobile)",
    "PowerPoint (Mobile)",
    "OneNote (Mobile)",
    "Teams (Mobile)",
    "Outlook (Web)",
    "Word (Web)",
    "Excel (Web)",
    "PowerPoint (Web)",
    "OneNote (Web)",
    "Teams (Web)",
];

/// Which service plans put a user in a report's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Exchange,
    Teams,
    SharePoint,
    Yammer,
    Skype,
    OfficeApps,
}

impl Workload {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn plans(self) -> &'static [&'static str] {
        match self {
            Workload::Exchange => &[
                "EXCHANGE_S_ENTERPRISE",
                "EXCHANGE_S_STANDARD",
                "EXCHANGE_S_DESKLESS",
            ],
            Workload::Teams => &["TEAMS1"],
            Workload::SharePoint => &["SHAREPOINTENTERPRISE", "SHAREPOINTSTANDARD"],
            Workload::Yammer => &["YAMMER_ENTERPRISE"],
            Workload::Skype => &["MCOSTANDARD"],
            Workload::OfficeApps => &["OFFICESUBSCRIPTION", "O365_BUSINESS"],
        }
    }
}

const WORKLOADS: [Workload; 6] = [
    Workload::Exchange,
    Workload::Teams,
    Workload::SharePoint,
    Workload::Yammer,
    Workload::Skype,
    Workload::OfficeApps,
];

impl ReportKind {
    /// Every report, in the order of the brief.
    pub const ALL: [ReportKind; 8] = [
        ReportKind::MailboxUsage,
        ReportKind::EmailActivity,
        ReportKind::TeamsUserActivity,
        ReportKind::OneDriveActivity,
        ReportKind::SharePointActivity,
        ReportKind::YammerActivity,
        ReportKind::SkypeForBusinessActivity,
        ReportKind::M365AppUser,
    ];

    /// The Graph function, e.g. `getMailboxUsageDetail`.
    pub fn function_name(self) -> &'static str {
        match self {
            ReportKind::MailboxUsage => "getMailboxUsageDetail",
            ReportKind::EmailActivity => "getEmailActivityUserDetail",
            ReportKind::TeamsUserActivity => "getTeamsUserActivityUserDetail",
            ReportKind::OneDriveActivity => "getOneDriveActivityUserDetail",
            ReportKind::SharePointActivity => "getSharePointActivityUserDetail",
            ReportKind::YammerActivity => "getYammerActivityUserDetail",
            ReportKind::SkypeForBusinessActivity => "getSkypeForBusinessActivityUserDetail",
            ReportKind::M365AppUser => "getM365AppUserDetail",
        }
    }

    /// The CSV columns, in order, as documented.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            ReportKind::MailboxUsage => MAILBOX_COLUMNS,
            ReportKind::EmailActivity => EMAIL_COLUMNS,
            ReportKind::TeamsUserActivity => TEAMS_COLUMNS,
            ReportKind::OneDriveActivity => ONEDRIVE_COLUMNS,
            ReportKind::SharePointActivity => SHAREPOINT_COLUMNS,
            ReportKind::YammerActivity => YAMMER_COLUMNS,
            ReportKind::SkypeForBusinessActivity => SKYPE_COLUMNS,
            ReportKind::M365AppUser => M365_APP_COLUMNS,
        }
    }

    /// The report a function name (case-insensitive) stands for.
    pub fn from_function(name: &str) -> Option<ReportKind> {
        ReportKind::ALL
            .into_iter()
            .find(|k| k.function_name().eq_ignore_ascii_case(name))
    }

    fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Option<ReportKind> {
        ReportKind::ALL.get(code as usize).copied()
    }

    fn workload(self) -> Workload {
        match self {
            ReportKind::MailboxUsage | ReportKind::EmailActivity => Workload::Exchange,
            ReportKind::TeamsUserActivity => Workload::Teams,
            ReportKind::OneDriveActivity | ReportKind::SharePointActivity => Workload::SharePoint,
            ReportKind::YammerActivity => Workload::Yammer,
            ReportKind::SkypeForBusinessActivity => Workload::Skype,
            ReportKind::M365AppUser => Workload::OfficeApps,
        }
    }

    /// A file name like the service's downloads carry.
    pub(crate) fn file_stem(self) -> &'static str {
        &self.function_name()[3..]
    }
}

/// The periods the reports support, in days.
pub const PERIODS: [u16; 4] = [7, 30, 90, 180];

/// What a report says about one user (ground truth, see
/// [`Tenant::report_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub user_id: String,
    /// The real UPN (the CSV shows [`ReportRow::concealed_user_principal_name`]
    /// instead when names are concealed).
    pub user_principal_name: String,
    pub display_name: String,
    /// 32 upper-case hex characters.
    pub concealed_user_principal_name: String,
    pub concealed_display_name: String,
    /// `YYYY-MM-DD`, `None` when the user shows no activity.
    pub last_activity_date: Option<String>,
    /// Mailbox usage only: "Item Count".
    pub item_count: Option<u64>,
    /// Mailbox usage only: "Storage Used (Byte)".
    pub storage_used_bytes: Option<u64>,
    /// Every column with its CSV value (unconcealed, unquoted), in order.
    pub cells: Vec<(&'static str, String)>,
}

impl ReportRow {
    /// The value of a column ("" for an empty cell).
    pub fn cell(&self, column: &str) -> Option<&str> {
        self.cells
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v.as_str())
    }

    /// A numeric column's value (counts, bytes, seconds).
    pub fn count(&self, column: &str) -> Option<u64> {
        self.cell(column).and_then(|v| v.parse().ok())
    }
}

/// One cell before rendering.
enum Cell<'a> {
    Str(&'a str),
    Empty,
    Int(u64),
    Date(i64),
    OptDate(Option<i64>),
    TrueFalse(bool),
    YesNo(bool),
    /// An ISO 8601 duration of so many seconds (`PT1H2M3S`, `PT0S`).
    Duration(u64),
    Products,
    Upn,
    DisplayName,
    UserId,
}

/// Tenant-wide facts the rows need.
pub(crate) struct Ctx<'a> {
    key: u64,
    conceal_key: u64,
    refresh: i64,
    period: u16,
    tenant_name: &'a str,
    /// skuId → (product name, workload bits, mailbox size: 3 for Exchange
    /// Plan 2, 2 for Plan 1, 1 for Kiosk, 0 without Exchange).
    skus: HashMap<&'a str, (&'a str, u8, u8)>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(meta: &'a Tenant, period: u16, refresh: i64) -> Ctx<'a> {
        let key = keyed_hash(0x2E90_2755, meta.id.as_bytes());
        let mut skus = HashMap::new();
        for s in &meta.skus {
            let product =
                names::sku_info(&s.sku_id).map_or(s.sku_part_number.as_str(), |i| i.product);
            let mut bits = 0u8;
            for w in WORKLOADS {
                if s.service_plans
                    .iter()
                    .any(|p| w.plans().contains(&p.as_str()))
                {
                    bits |= w.bit();
                }
            }
            let has = |plan: &str| s.service_plans.iter().any(|p| p == plan);
            let mailbox = if has("EXCHANGE_S_ENTERPRISE") {
                3
            } else if has("EXCHANGE_S_STANDARD") {
                2
            } else if has("EXCHANGE_S_DESKLESS") {
                1
            } else {
                0
            };
            skus.insert(s.sku_id.as_str(), (product, bits, mailbox));
        }
        Ctx {
            key,
            conceal_key: keyed_hash(key, b"concealed-names"),
            refresh,
            period,
            tenant_name: &meta.name,
            skus,
        }
    }

    fn in_scope(&self, u: &User, kind: ReportKind) -> bool {
        let bit = kind.workload().bit();
        u.assigned_licenses.iter().any(|l| {
            self.skus
                .get(l.as_str())
                .is_some_and(|(_, b, _)| b & bit != 0)
        })
    }

    fn products(&self, u: &User, out: &mut String) {
        for l in &u.assigned_licenses {
            if let Some((p, _, _)) = self.skus.get(l.as_str()) {
                if !out.is_empty() {
                    out.push('+');
                }
                out.push_str(p);
            }
        }
    }

    /// 32 upper-case hex characters standing for `value`.
    pub(crate) fn conceal(&self, salt: u64, value: &str) -> String {
        let lower = value.to_lowercase();
        let a = keyed_hash(self.conceal_key ^ salt, lower.as_bytes());
        let b = keyed_hash(
            self.conceal_key ^ salt.rotate_left(17) ^ 0x5A5A,
            lower.as_bytes(),
        );
        format!("{a:016X}{b:016X}")
    }

    fn concealed_id(&self, id: &str) -> String {
        let a = keyed_hash(self.conceal_key ^ 3, id.as_bytes());
        let b = keyed_hash(self.conceal_key ^ 4, id.as_bytes());
        guid_from(a, b)
    }
}

/// A user's activity in one workload, relative to the refresh date.
struct Activity {
    /// Days between the last activity and the refresh date.
    last_ago: Option<u32>,
    /// Days with activity inside the period.
    active_days: u64,
    rng: Rng,
}

fn activity(ctx: &Ctx<'_>, u: &User, kind: ReportKind) -> Activity {
    let salt = match kind {
        // Mailbox and email activity describe the same mailbox.
        ReportKind::MailboxUsage => ReportKind::EmailActivity.code(),
        k => k.code(),
    } as u64;
    let mut rng = Rng::new(keyed_hash(ctx.key ^ (salt << 56), u.id.as_bytes()));
    let never_per_mille = match kind {
        ReportKind::SkypeForBusinessActivity => 1000,
        ReportKind::YammerActivity => 650,
        ReportKind::M365AppUser => 100,
        _ => 60,
    };
    let last_ago = if rng.chance(never_per_mille) {
        None
    } else if !u.account_enabled {
        Some(rng.range(30, 179) as u32)
    } else {
        Some(match rng.below(100) {
            0..80 => rng.below(7) as u32,
            80..88 => rng.range(7, 29) as u32,
            _ => rng.range(30, 179) as u32,
        })
    };
    let period = ctx.period as u64;
    // Drawn whatever the period, so that what follows (e.g. a mailbox's
    // size) does not depend on it.
    let share = rng.range(30, 95);
    let active_days = match last_ago {
        Some(ago) if (ago as u64) < period => {
            let window = period - ago as u64;
            (window * share).div_ceil(100).max(1)
        }
        _ => 0,
    };
    Activity {
        last_ago,
        active_days,
        rng,
    }
}

impl Activity {
    /// A count of roughly `lo..=hi` per active day.
    fn count(&mut self, lo: u64, hi: u64) -> u64 {
        if self.active_days == 0 {
            return 0;
        }
        let per_day_x10 = self.rng.range(lo * 10, hi * 10);
        (self.active_days * per_day_x10 + self.rng.below(10)) / 10
    }

    fn last_date(&self, refresh: i64) -> Option<i64> {
        self.last_ago.map(|d| refresh - d as i64)
    }
}

/// Mailbox quotas by licence: (issue warning, prohibit send, prohibit
/// send/receive) in bytes — Exchange Online's defaults for 100 GB (Plan 2),
/// 50 GB (Plan 1) and 2 GB (Kiosk) mailboxes.
fn quotas(ctx: &Ctx<'_>, u: &User) -> (u64, u64, u64) {
    let size = u
        .assigned_licenses
        .iter()
        .filter_map(|l| ctx.skus.get(l.as_str()).map(|s| s.2))
        .max()
        .unwrap_or(0);
    match size {
        3 => (105_226_698_752, 106_300_440_576, 107_374_182_400),
        2 => (52_613_349_376, 53_150_220_288, 53_687_091_200),
        _ => (1_932_735_283, 2_040_109_465, 2_147_483_648),
    }
}

/// Emits the cells of one row, in column order.
fn cells(ctx: &Ctx<'_>, u: &User, kind: ReportKind, emit: &mut dyn FnMut(Cell<'_>)) {
    let mut a = activity(ctx, u, kind);
    let last = a.last_date(ctx.refresh);
    let period = ctx.period as u64;
    let refresh = ctx.refresh;
    let created_day = parse_iso_seconds(&u.created_date_time)
        .map_or(refresh - 400, |s| (s / 86_400) as i64)
        .min(refresh);
    match kind {
        ReportKind::MailboxUsage => {
            let items = if last.is_some() {
                a.rng.range(300, 60_000)
            } else {
                a.rng.range(0, 40)
            };
            let avg = a.rng.range(40_000, 140_000);
            let (warn, send, send_receive) = quotas(ctx, u);
            let storage = (items * avg).min(send_receive - send_receive / 20);
            let deleted = items / a.rng.range(8, 40);
            emit(Cell::Date(refresh));
            emit(Cell::Upn);
            emit(Cell::DisplayName);
            emit(Cell::TrueFalse(false));
            emit(Cell::Empty);
            emit(Cell::Date(created_day));
            emit(Cell::OptDate(last));
            emit(Cell::Int(items));
            emit(Cell::Int(storage));
            emit(Cell::Int(warn));
            emit(Cell::Int(send));
            emit(Cell::Int(send_receive));
            emit(Cell::Int(deleted));
            emit(Cell::Int(deleted * avg / 2));
            emit(Cell::Int(32_212_254_720));
            emit(Cell::TrueFalse(
                send_receive > 100_000_000_000 && a.rng.chance(300),
            ));
            emit(Cell::Int(period));
        }
        ReportKind::EmailActivity => {
            emit(Cell::Date(refresh));
            emit(Cell::Upn);
            emit(Cell::DisplayName);
            emit(Cell::TrueFalse(false));
            emit(Cell::Empty);
            emit(Cell::OptDate(last));
            let send = a.count(0, 15);
            let receive = a.count(5, 60);
            emit(Cell::Int(send));
            emit(Cell::Int(receive));
            emit(Cell::Int(receive * a.rng.range(40, 95) / 100));
            emit(Cell::Int(a.count(0, 1)));
            emit(Cell::Int(a.count(0, 3)));
            emit(Cell::Products);
            emit(Cell::Int(period));
        }
        ReportKind::TeamsUserActivity => {
            emit(Cell::Date(refresh));
            emit(Cell::Str(ctx.tenant_name));
            emit(Cell::Empty);
            emit(Cell::UserId);
            emit(Cell::Upn);
            emit(Cell::OptDate(last));
            emit(Cell::TrueFalse(false));
            emit(Cell::Empty);
            emit(Cell::Products);
            let team_chat = a.count(0, 10);
            let private_chat = a.count(0, 30);
            let calls = a.count(0, 2);
            let ad_hoc_org = a.count(0, 1) / 2;
            let ad_hoc_att = a.count(0, 1);
            let one_time_org = a.count(0, 1) / 2;
            let one_time_att = a.count(0, 2);
            let recurring_org = a.count(0, 1) / 3;
            let recurring_att = a.count(0, 2);
            let organized = ad_hoc_org + one_time_org + recurring_org;
            let attended = ad_hoc_att + one_time_att + recurring_att;
            let meetings = organized + attended;
            let posts = team_chat / 3;
            emit(Cell::Int(team_chat));
            emit(Cell::Int(private_chat));
            emit(Cell::Int(calls));
            emit(Cell::Int(meetings));
            emit(Cell::Int(posts));
            emit(Cell::Int(team_chat - posts));
            emit(Cell::Int(if team_chat > 40 { team_chat / 40 } else { 0 }));
            emit(Cell::Int(organized));
            emit(Cell::Int(attended));
            emit(Cell::Int(ad_hoc_org));
            emit(Cell::Int(ad_hoc_att));
            emit(Cell::Int(one_time_org));
            emit(Cell::Int(one_time_att));
            emit(Cell::Int(recurring_org));
            emit(Cell::Int(recurring_att));
            let audio = (meetings + calls) * a.rng.range(600, 2400);
            let video = audio * a.rng.range(0, 80) / 100;
            let share = audio * a.rng.range(0, 30) / 100;
            emit(Cell::Duration(audio));
            emit(Cell::Duration(video));
            emit(Cell::Duration(share));
            emit(Cell::Int(audio));
            emit(Cell::Int(video));
            emit(Cell::Int(share));
            emit(Cell::YesNo(a.active_days > 0 && a.rng.chance(400)));
            emit(Cell::YesNo(true));
            emit(Cell::Int(period));
        }
        ReportKind::OneDriveActivity | ReportKind::SharePointActivity => {
            emit(Cell::Date(refresh));
            emit(Cell::Upn);
            emit(Cell::TrueFalse(false));
            emit(Cell::Empty);
            emit(Cell::OptDate(last));
            emit(Cell::Int(a.count(0, 10)));
            emit(Cell::Int(a.count(0, 20)));
            emit(Cell::Int(a.count(0, 1) / 2));
            emit(Cell::Int(a.count(0, 1) / 5));
            if kind == ReportKind::SharePointActivity {
                emit(Cell::Int(a.count(1, 15)));
            }
            emit(Cell::Products);
            emit(Cell::Int(period));
        }
        ReportKind::YammerActivity => {
            emit(Cell::Date(refresh));
            emit(Cell::Upn);
            emit(Cell::DisplayName);
            emit(Cell::Str("Active"));
            emit(Cell::Date(created_day));
            emit(Cell::OptDate(last));
            emit(Cell::Int(a.count(0, 1)));
            emit(Cell::Int(a.count(0, 6)));
            emit(Cell::Int(a.count(0, 2)));
            emit(Cell::Products);
            emit(Cell::Int(period));
        }
        ReportKind::SkypeForBusinessActivity => {
            emit(Cell::Date(refresh));
            emit(Cell::Upn);
            emit(Cell::TrueFalse(false));
            emit(Cell::Empty);
            emit(Cell::OptDate(last));
            for _ in 0..3 {
                emit(Cell::Int(0));
            }
            for _ in 0..3 {
                emit(Cell::OptDate(None));
            }
            for _ in 0..22 {
                emit(Cell::Int(0));
            }
            emit(Cell::Products);
            emit(Cell::Int(period));
        }
        ReportKind::M365AppUser => {
            emit(Cell::Date(refresh));
            emit(Cell::Upn);
            let activated = last.is_some() || a.rng.chance(500);
            let activation = activated.then(|| {
                let span = (refresh - created_day).max(1) as u64;
                created_day + a.rng.below(span.min(400)) as i64
            });
            emit(Cell::OptDate(activation));
            emit(Cell::OptDate(last));
            emit(Cell::Int(period));
            let active = a.active_days > 0;
            // platforms: Windows, Mac, Mobile, Web; apps: Outlook, Word,
            // Excel, PowerPoint, OneNote, Teams.
            let mut grid = [[false; 6]; 4];
            if active {
                let mac = a.rng.chance(150);
                let platforms = [!mac, mac, a.rng.chance(550), a.rng.chance(450)];
                let shares = [950, 800, 700, 450, 200, 900];
                for (p, on) in platforms.iter().enumerate() {
                    if *on {
                        for (app, share) in shares.iter().enumerate() {
                            grid[p][app] = a.rng.chance(*share);
                        }
                    }
                }
            }
            for p in &grid {
                emit(Cell::YesNo(p.iter().any(|x| *x)));
            }
            for app in 0..6 {
                emit(Cell::YesNo(grid.iter().any(|p| p[app])));
            }
            for p in &grid {
                for on in p {
                    emit(Cell::YesNo(*on));
                }
            }
        }
    }
}

/// Appends a CSV field (RFC 4180: quoted when it holds a comma, a quote or a
/// line break; quotes doubled).
pub(crate) fn push_field(out: &mut Vec<u8>, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        for b in value.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn duration(secs: u64) -> String {
    if secs == 0 {
        return "PT0S".to_string();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// Renders a whole report: UTF-8 BOM, the header line, one line per user in
/// scope, CRLF line ends (RFC 4180).
pub(crate) fn render_csv<'u>(
    meta: &Tenant,
    users: impl Iterator<Item = &'u User>,
    kind: ReportKind,
    period: u16,
    refresh: i64,
    concealed: bool,
    out: &mut Vec<u8>,
) {
    let ctx = Ctx::new(meta, period, refresh);
    out.extend_from_slice(b"\xEF\xBB\xBF");
    for (i, c) in kind.columns().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(out, c);
    }
    out.extend_from_slice(b"\r\n");
    let mut products = String::new();
    for u in users.filter(|u| ctx.in_scope(u, kind)) {
        let mut first = true;
        let mut write = |cell: Cell<'_>| {
            if !first {
                out.push(b',');
            }
            first = false;
            match cell {
                Cell::Str(s) => push_field(out, s),
                Cell::Empty | Cell::OptDate(None) => {}
                Cell::Int(n) => push_u64(out, n),
                Cell::Date(d) | Cell::OptDate(Some(d)) => push_civil_date(out, d),
                Cell::TrueFalse(b) => out.extend_from_slice(if b { b"True" } else { b"False" }),
                Cell::YesNo(b) => out.extend_from_slice(if b { b"Yes" } else { b"No" }),
                Cell::Duration(s) => out.extend_from_slice(duration(s).as_bytes()),
                Cell::Products => {
                    products.clear();
                    ctx.products(u, &mut products);
                    push_field(out, &products);
                }
                Cell::Upn if concealed => {
                    out.extend_from_slice(ctx.conceal(1, &u.user_principal_name).as_bytes())
                }
                Cell::Upn => push_field(out, &u.user_principal_name),
                Cell::DisplayName if concealed => {
                    out.extend_from_slice(ctx.conceal(2, &u.display_name).as_bytes())
                }
                Cell::DisplayName => push_field(out, &u.display_name),
                Cell::UserId if concealed => {
                    out.extend_from_slice(ctx.concealed_id(&u.id).as_bytes())
                }
                Cell::UserId => out.extend_from_slice(u.id.as_bytes()),
            }
        };
        cells(&ctx, u, kind, &mut write);
        out.extend_from_slice(b"\r\n");
    }
}

/// The rows of a report as data (see [`Tenant::report_rows`]).
pub(crate) fn rows<'u>(
    meta: &Tenant,
    users: impl Iterator<Item = &'u User>,
    kind: ReportKind,
    period: u16,
    refresh: i64,
) -> Vec<ReportRow> {
    let ctx = Ctx::new(meta, period, refresh);
    let columns = kind.columns();
    let mut out = Vec::new();
    for u in users.filter(|u| ctx.in_scope(u, kind)) {
        let mut values: Vec<String> = Vec::with_capacity(columns.len());
        cells(&ctx, u, kind, &mut |cell| {
            let v = match cell {
                Cell::Str(s) => s.to_string(),
                Cell::Empty | Cell::OptDate(None) => String::new(),
                Cell::Int(n) => n.to_string(),
                Cell::Date(d) | Cell::OptDate(Some(d)) => civil_date(d),
                Cell::TrueFalse(b) => if b { "True" } else { "False" }.to_string(),
                Cell::YesNo(b) => if b { "Yes" } else { "No" }.to_string(),
                Cell::Duration(s) => duration(s),
                Cell::Products => {
                    let mut p = String::new();
                    ctx.products(u, &mut p);
                    p
                }
                Cell::Upn => u.user_principal_name.clone(),
                Cell::DisplayName => u.display_name.clone(),
                Cell::UserId => u.id.clone(),
            };
            values.push(v);
        });
        debug_assert_eq!(values.len(), columns.len(), "{kind:?}");
        let cells: Vec<(&'static str, String)> = columns.iter().copied().zip(values).collect();
        let get = |c: &str| cells.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone());
        let last_activity_date = get("Last Activity Date").filter(|v| !v.is_empty());
        let (item_count, storage_used_bytes) = if kind == ReportKind::MailboxUsage {
            (
                get("Item Count").and_then(|v| v.parse().ok()),
                get("Storage Used (Byte)").and_then(|v| v.parse().ok()),
            )
        } else {
            (None, None)
        };
        out.push(ReportRow {
            user_id: u.id.clone(),
            user_principal_name: u.user_principal_name.clone(),
            display_name: u.display_name.clone(),
            concealed_user_principal_name: ctx.conceal(1, &u.user_principal_name),
            concealed_display_name: ctx.conceal(2, &u.display_name),
            last_activity_date,
            item_count,
            storage_used_bytes,
            cells,
        });
    }
    out
}

/// Graph's answer to a report function the tenant's cloud does not serve
/// (`SimConfig::unserved_reports`), for a request to `path` (still
/// percent-encoded): `400 BadRequest` "Resource not found for the segment
/// '{function}'.", the routing error Graph gives for a function it does not
/// have. concepts/errors.md gives the status ("400 Bad Request: Cannot
/// process the request because it is malformed or incorrect") and the body's
/// shape (`{"error": {"code", "message"}}`, OData v4 errors); the message is
/// not quoted in Microsoft's docs: it is the OData router's, as observed for
/// getSkypeForBusinessActivityUserDetail after the Skype for Business Online
/// retirement, and answered before the token is checked (routing first).
pub(crate) fn unserved(config: &crate::SimConfig, path: &str) -> Option<crate::odata::GraphError> {
    if config.unserved_reports.is_empty() {
        return None;
    }
    let rest = path.strip_prefix("/v1.0/reports/")?;
    let segment = crate::util::percent_decode(rest, false)?;
    let name = segment.split(['(', '/']).next().unwrap_or("");
    let name = name.strip_prefix("microsoft.graph.").unwrap_or(name);
    config
        .unserved_reports
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
        .then(|| {
            crate::odata::GraphError::new(
                400,
                "BadRequest",
                format!("Resource not found for the segment '{name}'."),
            )
        })
}

/// Parses `D7`, `D30`, `D90` or `D180`.
pub(crate) fn parse_period(value: &str) -> Option<u16> {
    let n: u16 = value.strip_prefix('D')?.parse().ok()?;
    PERIODS.contains(&n).then_some(n)
}

/// The refresh date of reports served now: reports lag a few days behind
/// (two to four, fixed per seed).
pub(crate) fn refresh_day(now_unix: u64, seed: u64) -> i64 {
    (now_unix / 86_400) as i64 - 2 - (seed % 3) as i64
}

/// Day number of a report's refresh date string.
pub(crate) fn refresh_of(tenant: &Tenant) -> i64 {
    parse_civil_date(&tenant.report_refresh_date).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::TenantSpec;

    #[test]
    fn csv_quoting() {
        let mut out = Vec::new();
        push_field(&mut out, "plain");
        out.push(b',');
        push_field(&mut out, "a,b");
        out.push(b',');
        push_field(&mut out, "say \"hi\"");
        assert_eq!(out, b"plain,\"a,b\",\"say \"\"hi\"\"\"");
        assert_eq!(duration(0), "PT0S");
        assert_eq!(duration(3723), "PT1H2M3S");
        assert_eq!(duration(120), "PT2M");
    }

    #[test]
    fn periods() {
        assert_eq!(parse_period("D7"), Some(7));
        assert_eq!(parse_period("D180"), Some(180));
        assert_eq!(parse_period("D8"), None);
        assert_eq!(parse_period("d7"), None);
        assert_eq!(parse_period("7"), None);
    }

    #[test]
    fn rows_match_csv_and_columns() {
        let t = Tenant::generate(&TenantSpec::new(5, 600));
        let refresh = refresh_of(&t);
        for kind in ReportKind::ALL {
            for period in PERIODS {
                let rows = t.report_rows(kind, period);
                assert!(!rows.is_empty(), "{kind:?}");
                let mut csv = Vec::new();
                render_csv(&t, t.users.iter(), kind, period, refresh, false, &mut csv);
                assert!(csv.starts_with(b"\xEF\xBB\xBF"));
                let text = String::from_utf8(csv[3..].to_vec()).expect("utf-8");
                let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
                assert_eq!(lines[0], kind.columns().join(","));
                assert_eq!(lines.len(), rows.len() + 1);
                for r in &rows {
                    assert_eq!(r.cells.len(), kind.columns().len());
                    assert_eq!(r.cell("Report Period"), Some(period.to_string().as_str()));
                    assert_eq!(r.concealed_user_principal_name.len(), 32);
                }
            }
        }
        // Most people are active in the last week; some are not.
        let email = t.report_rows(ReportKind::EmailActivity, 7);
        let active = email
            .iter()
            .filter(|r| {
                r.count("Send Count").unwrap_or(0) + r.count("Receive Count").unwrap_or(0) > 0
            })
            .count();
        assert!(active * 10 > email.len() * 6, "{active} of {}", email.len());
        assert!(email.iter().any(|r| r.last_activity_date.is_none()));
        let skype = t.report_rows(ReportKind::SkypeForBusinessActivity, 180);
        assert!(skype.iter().all(|r| r.last_activity_date.is_none()));
        let mailbox = t.report_rows(ReportKind::MailboxUsage, 7);
        assert!(mailbox.iter().all(|r| r.storage_used_bytes.is_some()));
        // A mailbox's size does not depend on the period.
        let mailbox_180 = t.report_rows(ReportKind::MailboxUsage, 180);
        for (a, b) in mailbox.iter().zip(&mailbox_180) {
            assert_eq!(a.storage_used_bytes, b.storage_used_bytes);
            assert_eq!(a.item_count, b.item_count);
            assert_eq!(a.last_activity_date, b.last_activity_date);
        }
    }
}
