//! The simulated tenant: its data model (domains, licence SKUs, users) and a
//! deterministic generator that builds a realistic directory from a seed and a
//! size. The same `(seed, users)` always yields the same tenant.
//!
//! Shapes follow the Graph v1.0 resources: user
//! (microsoftgraph/microsoft-graph-docs-contrib: api-reference/v1.0/resources/user.md),
//! domain (api-reference/v1.0/api/domain-list.md) and subscribedSku
//! (api-reference/v1.0/api/subscribedsku-list.md).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;
use serde_json::{Value, json};

use crate::names::{
    self, COUNTRIES, Country, DEPARTMENTS, Locale, SkuInfo, ascii_fold, ascii_fold_into,
};
use crate::reports::{self, ReportKind, ReportRow};
use crate::rng::Rng;
use crate::util::{civil_date, days_from_civil, iso8601, keyed_hash, parse_civil_date};

/// What to generate: a seed, a number of users, and the tenant's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    pub seed: u64,
    pub users: usize,
    /// The tenant (directory) id, a GUID.
    pub tenant_id: String,
    /// The organisation's display name, e.g. "Contoso Ltd".
    pub name: String,
}

impl TenantSpec {
    /// Derives a GUID tenant id and a company name from the seed.
    pub fn new(seed: u64, users: usize) -> Self {
        let mut rng = Rng::derived(seed, 0x007E_4A17);
        let tenant_id = rng.guid();
        let company = rng.pick(names::COMPANIES);
        let suffix = rng.pick(names::COMPANY_SUFFIXES);
        TenantSpec {
            seed,
            users,
            tenant_id,
            name: format!("{company} {suffix}"),
        }
    }
}

/// A generated tenant: ground truth for tests.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub domains: Vec<Domain>,
    pub skus: Vec<Sku>,
    pub users: Vec<User>,
    /// Groups (live ones, with their current members: user ids, live users
    /// only, in the order they were added).
    pub groups: Vec<Group>,
    /// The `Report Refresh Date` usage reports carry (`YYYY-MM-DD`): a few
    /// days before today in a running simulator's [`Tenant`] snapshots (reports
    /// lag), a fixed date in [`Tenant::generate`]'s output.
    pub report_refresh_date: String,
    /// When the tenant was created (ISO 8601 UTC).
    pub created_date_time: String,
    /// ISO 3166 code of the country the organisation is registered in.
    pub country_letter_code: String,
    /// The headquarters' city.
    pub city: String,
}

/// A domain registered in the tenant; `id` is the domain name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: String,
    pub is_default: bool,
    pub is_initial: bool,
    pub is_verified: bool,
}

/// A licence subscription the tenant holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    pub sku_id: String,
    pub sku_part_number: String,
    /// `prepaidUnits.enabled`.
    pub prepaid_enabled: u32,
    pub consumed_units: u32,
    /// Names of the service plans the SKU includes (`servicePlans`), e.g.
    /// `EXCHANGE_S_ENTERPRISE`, `TEAMS1`.
    pub service_plans: Vec<String>,
    /// `prepaidUnits.suspended`.
    pub suspended: u32,
    /// `prepaidUnits.warning`.
    pub warning: u32,
}

/// What kind of group: the combinations of `groupTypes`, `mailEnabled` and
/// `securityEnabled` that api-reference/v1.0/resources/groups-overview.md
/// lists ("Group types in Microsoft Entra ID and Microsoft Graph").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum GroupKind {
    /// `groupTypes: ["Unified"]`, mail-enabled, not security-enabled.
    Microsoft365,
    /// `groupTypes: []`, not mail-enabled, security-enabled.
    Security,
    /// `groupTypes: []`, mail-enabled and security-enabled.
    MailEnabledSecurity,
    /// A distribution list: `groupTypes: []`, mail-enabled, not security-enabled.
    Distribution,
}

impl GroupKind {
    /// The `groupTypes` collection.
    pub fn group_types(self) -> &'static [&'static str] {
        match self {
            GroupKind::Microsoft365 => &["Unified"],
            _ => &[],
        }
    }

    pub fn mail_enabled(self) -> bool {
        self != GroupKind::Security
    }

    pub fn security_enabled(self) -> bool {
        matches!(self, GroupKind::Security | GroupKind::MailEnabledSecurity)
    }

    /// Only Microsoft 365 groups go to the directory's deleted items (and can
    /// be restored); other groups are deleted permanently
    /// (api-reference/v1.0/api/directory-deleteditems-get.md).
    pub fn restorable(self) -> bool {
        self == GroupKind::Microsoft365
    }
}

/// A directory group. Members are users only (no nested groups).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: String,
    /// The primary SMTP address; `None` for security groups.
    pub mail: Option<String>,
    pub kind: GroupKind,
    /// Member user ids.
    pub members: Vec<String>,
    pub mail_nickname: String,
    pub description: Option<String>,
    /// ISO 8601 UTC.
    pub created_date_time: String,
}

/// A directory user. `None` fields are `null` in Graph.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub display_name: String,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub country: Option<String>,
    pub usage_location: Option<String>,
    pub office_location: Option<String>,
    pub account_enabled: bool,
    /// "Member" or "Guest".
    pub user_type: String,
    /// skuIds of the assigned licences.
    pub assigned_licenses: Vec<String>,
    /// ISO 8601 UTC, e.g. "2021-03-04T10:11:12Z".
    pub created_date_time: String,
    pub city: Option<String>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub preferred_language: Option<String>,
    /// ISO 8601 date-time at midnight UTC, e.g. "2019-03-04T00:00:00Z".
    pub employee_hire_date: Option<String>,
    /// `SMTP:` (primary) and `smtp:` (alias) addresses.
    pub proxy_addresses: Vec<String>,
    /// The id of the user's manager (another member).
    pub manager_id: Option<String>,
    /// The tenant's name for members, `None` for guests.
    pub company_name: Option<String>,
    /// The last interactive sign-in (RFC 3339), `None` if the user never
    /// signed in (signInActivity).
    pub last_sign_in: Option<String>,
}

impl User {
    /// The user in Graph's camelCase JSON shape, with the properties the
    /// simulator models (assignedLicenses as `[{"disabledPlans":[],"skuId":…}]`,
    /// see api-reference/v1.0/resources/assignedlicense.md).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "accountEnabled": self.account_enabled,
            "assignedLicenses": self.assigned_licenses.iter()
                .map(|s| json!({"disabledPlans": [], "skuId": s}))
                .collect::<Vec<_>>(),
            "businessPhones": self.business_phones,
            "city": self.city,
            "companyName": self.company_name,
            "country": self.country,
            "createdDateTime": self.created_date_time,
            "department": self.department,
            "displayName": self.display_name,
            "employeeHireDate": self.employee_hire_date,
            "givenName": self.given_name,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": self.mobile_phone,
            "officeLocation": self.office_location,
            "preferredLanguage": self.preferred_language,
            "proxyAddresses": self.proxy_addresses,
            "surname": self.surname,
            "usageLocation": self.usage_location,
            "userPrincipalName": self.user_principal_name,
            "userType": self.user_type,
        })
    }

    /// True for external (B2B guest) accounts.
    pub fn is_guest(&self) -> bool {
        self.user_type == "Guest"
    }

    /// True for people (members with a given name), as opposed to guests,
    /// service accounts and the admin account.
    pub fn is_person(&self) -> bool {
        !self.is_guest() && self.given_name.is_some()
    }
}

impl Tenant {
    /// Generates the tenant described by `spec` (linear in `spec.users`).
    pub fn generate(spec: &TenantSpec) -> Tenant {
        Generator::new(spec).run()
    }

    /// The initial `<slug>.onmicrosoft.com` domain.
    pub fn initial_domain(&self) -> &str {
        self.domains
            .iter()
            .find(|d| d.is_initial)
            .map(|d| d.id.as_str())
            .unwrap_or("")
    }

    /// The default domain (new users are created on it).
    pub fn default_domain(&self) -> &str {
        self.domains
            .iter()
            .find(|d| d.is_default)
            .map(|d| d.id.as_str())
            .unwrap_or("")
    }

    /// What a usage report says about each user it lists, for a period of
    /// `period_days` (7, 30, 90 or 180), as of [`Tenant::report_refresh_date`]:
    /// one row per live user whose licences include the report's workload,
    /// in user order. The CSV the simulator serves has exactly these rows
    /// (with names concealed when `SimConfig::concealed_reports` is set). See
    /// [`ReportKind`] for the columns.
    pub fn report_rows(&self, report: ReportKind, period_days: u16) -> Vec<ReportRow> {
        let refresh = reports::refresh_of(self);
        reports::rows(self, self.users.iter(), report, period_days, refresh)
    }

    /// A group by id (case-insensitive).
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    /// A user by id (case-insensitive).
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id.eq_ignore_ascii_case(id))
    }
}

/// Lower-case ASCII label for domains: "Margie's Travel Ltd" → "margiestravel".
pub fn slug_of(name: &str) -> String {
    let mut base = name.trim();
    for suffix in names::COMPANY_SUFFIXES {
        if let Some(stripped) = base.strip_suffix(suffix)
            && stripped.ends_with(' ')
        {
            base = stripped.trim_end();
            break;
        }
    }
    let slug = ascii_fold(base);
    if slug.is_empty() {
        "tenant".to_string()
    } else {
        slug
    }
}

/// A `Hasher` for keys that already are well-mixed 64-bit hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PreHashedBuild = BuildHasherDefault<PreHashed>;

/// Where a generated address is unique: it hands out `local`, `local2`,
/// `local3`… per domain, in amortised O(1). Addresses are remembered by a
/// 64-bit hash; a (vanishingly rare) false match only costs a needless suffix,
/// never a duplicate.
#[derive(Default)]
struct AddressBook {
    used: HashSet<u64, PreHashedBuild>,
    next_suffix: HashMap<u64, u32, PreHashedBuild>,
    buf: String,
}

const ADDRESS_KEY: u64 = 0xADD2_E55B_00C5_u64;

impl AddressBook {
    fn with_capacity(n: usize) -> Self {
        AddressBook {
            used: HashSet::with_capacity_and_hasher(n + n / 8, PreHashedBuild::default()),
            next_suffix: HashMap::with_capacity_and_hasher(n / 4, PreHashedBuild::default()),
            buf: String::with_capacity(64),
        }
    }

    /// Reserves a unique `local@domain` (lower case) and returns its local part.
    fn reserve(&mut self, local: &str, domain: &str) -> String {
        match self.reserve_suffix(local, domain) {
            None => local.to_string(),
            Some(n) => format!("{local}{n}"),
        }
    }

    /// Reserves a unique `local@domain`: `None` if it was free, else the
    /// number appended to `local` to make it unique.
    fn reserve_suffix(&mut self, local: &str, domain: &str) -> Option<u32> {
        self.buf.clear();
        self.buf.push_str(local);
        self.buf.push('@');
        self.buf.push_str(domain);
        let base = keyed_hash(ADDRESS_KEY, self.buf.as_bytes());
        if self.used.insert(base) {
            return None;
        }
        let n = self.next_suffix.entry(base).or_insert(1);
        loop {
            *n += 1;
            self.buf.clear();
            let _ = write!(self.buf, "{local}{n}@{domain}");
            if self
                .used
                .insert(keyed_hash(ADDRESS_KEY, self.buf.as_bytes()))
            {
                return Some(*n);
            }
        }
    }
}

/// The tenant generator. After [`Generator::run`] it can keep producing
/// users (for users created at run time) that stay unique against everything
/// it generated before.
pub(crate) struct Generator {
    spec: TenantSpec,
    rng: Rng,
    slug: String,
    default_domain: String,
    initial_domain: String,
    uk_domain: String,
    /// `tenant.mail.onmicrosoft.com`, the mail routing domain.
    mail_domain: String,
    labs_domain: Option<String>,
    home: &'static Country,
    country_cdf: Vec<u32>,
    department_cdf: Vec<u32>,
    skus: Vec<SkuInfo>,
    consumed: Vec<u32>,
    large: bool,
    legacy_share: u32,
    tenant_created: u64,
    latest: u64,
    book: AddressBook,
    /// Users generated so far (seeds each user's stream for [`Generator::extras`]).
    made: u64,
    /// SKUs (bit per index into `skus`) assigned to the user being generated.
    assigned_bits: u16,
}

fn cdf(weights: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut acc = 0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn pick_cdf(rng: &mut Rng, cdf: &[u32]) -> usize {
    let total = cdf.last().copied().unwrap_or(1).max(1);
    let r = rng.below(total as u64) as u32;
    cdf.partition_point(|&c| c <= r)
        .min(cdf.len().saturating_sub(1))
}

/// A person, as the group generator sees them.
struct Trait {
    index: usize,
    /// Index into DEPARTMENTS + 1, or 0.
    department: u8,
    /// Bit k: holds the generator's k-th SKU.
    skus: u16,
    /// Works in the home country's first city.
    first_city: bool,
}

/// The add-on SKU that is not a Microsoft product, assigned to about 1.5% of
/// the people (at least three when there are three), never as a fourth
/// licence.
struct CustomSku {
    rng: Rng,
    sku_id: String,
    consumed: u32,
}

impl CustomSku {
    fn new(seed: u64) -> CustomSku {
        let mut rng = Rng::derived(seed, 0xC057_0A0D);
        let sku_id = rng.guid();
        CustomSku {
            rng,
            sku_id,
            consumed: 0,
        }
    }

    fn eligible(u: &User) -> bool {
        !u.assigned_licenses.is_empty() && u.assigned_licenses.len() < 3
    }

    fn offer(&mut self, u: &mut User) {
        if Self::eligible(u) && self.rng.chance(15) {
            u.assigned_licenses.push(self.sku_id.clone());
            self.consumed += 1;
        }
    }

    fn finish(mut self, users: &mut [User], people: &[Trait]) -> Sku {
        for p in people {
            if self.consumed >= 3 {
                break;
            }
            let u = &mut users[p.index];
            if Self::eligible(u) && !u.assigned_licenses.contains(&self.sku_id) {
                u.assigned_licenses.push(self.sku_id.clone());
                self.consumed += 1;
            }
        }
        Sku {
            sku_id: self.sku_id,
            sku_part_number: names::CUSTOM_SKU_PART_NUMBER.to_string(),
            prepaid_enabled: (self.consumed / 5 + 1) * 5,
            consumed_units: self.consumed,
            service_plans: vec![names::CUSTOM_SKU_PLAN.to_string()],
            suspended: 0,
            warning: 0,
        }
    }
}

/// Unix seconds of a `YYYY-MM-DDTHH:MM:SSZ` string.
pub(crate) fn parse_iso_seconds(s: &str) -> Option<u64> {
    let days = parse_civil_date(s.get(..10)?)?;
    let h: u64 = s.get(11..13)?.parse().ok()?;
    let m: u64 = s.get(14..16)?.parse().ok()?;
    let sec: u64 = s.get(17..19)?.parse().ok()?;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

fn unix_of(y: i64, m: u32, d: u32) -> u64 {
    (days_from_civil(y, m, d) * 86_400) as u64
}

impl Generator {
    pub(crate) fn new(spec: &TenantSpec) -> Self {
        let mut rng = Rng::derived(spec.seed, 0xD1EC_7041);
        let slug = slug_of(&spec.name);
        let home = &COUNTRIES[*rng.pick(names::HOME_COUNTRIES)];
        let country_cdf = cdf(COUNTRIES.iter().map(|c| {
            if c.code == home.code {
                c.weight + 60
            } else {
                c.weight
            }
        }));
        let department_cdf = cdf(DEPARTMENTS.iter().map(|d| d.weight));
        // Microsoft 365 Business plans are capped at 300 seats; larger
        // organisations run Enterprise plans, often mid-migration from
        // Office 365 E3 to Microsoft 365 E3.
        let large = spec.users > 300;
        let skus = if large {
            vec![
                names::SPE_E3,
                names::ENTERPRISEPACK,
                names::EMS,
                names::SPE_E5,
                names::POWER_BI_PRO,
                names::FLOW_FREE,
                names::TEAMS_EXPLORATORY,
            ]
        } else {
            vec![
                names::O365_BUSINESS_PREMIUM,
                names::SPE_E5,
                names::POWER_BI_PRO,
                names::FLOW_FREE,
                names::TEAMS_EXPLORATORY,
            ]
        };
        let legacy_share = rng.range(100, 600) as u32;
        let tenant_created =
            rng.range(unix_of(2015, 1, 1), unix_of(2018, 12, 31)) + rng.below(86_400);
        let labs_domain = rng.chance(500).then(|| format!("{slug}-labs.io"));
        Generator {
            spec: spec.clone(),
            consumed: vec![0; skus.len()],
            skus,
            large,
            legacy_share,
            default_domain: format!("{slug}.com"),
            initial_domain: format!("{slug}.onmicrosoft.com"),
            uk_domain: format!("{slug}.co.uk"),
            mail_domain: format!("{slug}.mail.onmicrosoft.com"),
            labs_domain,
            slug,
            home,
            country_cdf,
            department_cdf,
            tenant_created,
            latest: unix_of(2025, 12, 31) + 86_399,
            // Users and groups.
            book: AddressBook::with_capacity(spec.users + spec.users / 16 + 64),
            made: 0,
            assigned_bits: 0,
            rng,
        }
    }

    fn domains(&mut self) -> Vec<Domain> {
        let verified = |id: &str, is_default: bool, is_initial: bool| Domain {
            id: id.to_string(),
            is_default,
            is_initial,
            is_verified: true,
        };
        let mut domains = vec![
            verified(&self.default_domain, true, false),
            verified(&self.uk_domain, false, false),
        ];
        if let Some(labs) = &self.labs_domain {
            domains.push(verified(labs, false, false));
        }
        if self.rng.chance(400) {
            // Added in the admin centre but never verified: nobody can use it.
            domains.push(Domain {
                id: format!("{}.net", self.slug),
                is_default: false,
                is_initial: false,
                is_verified: false,
            });
        }
        domains.push(verified(&self.initial_domain, false, true));
        domains.push(verified(&self.mail_domain, false, false));
        domains
    }

    fn sku_index(&self, sku: &SkuInfo) -> Option<usize> {
        self.skus.iter().position(|s| s.sku_id == sku.sku_id)
    }

    fn assign(&mut self, licenses: &mut Vec<String>, sku: &SkuInfo) {
        if let Some(i) = self.sku_index(sku)
            && !licenses.iter().any(|l| l == sku.sku_id)
        {
            self.consumed[i] += 1;
            self.assigned_bits |= 1 << i;
            licenses.push(sku.sku_id.to_string());
        }
    }

    fn created(&mut self) -> String {
        let t = self.rng.range(self.tenant_created, self.latest);
        iso8601(t)
    }

    fn phone(&mut self, country: &Country, mobile: bool) -> String {
        let a = self.rng.range(200, 989);
        let b = self.rng.range(100, 999);
        let c = self.rng.range(0, 9999);
        if mobile {
            format!("{} {} {b} {c:04}", country.phone_prefix, a + 10)
        } else {
            format!("{} {a} {b} {c:04}", country.phone_prefix)
        }
    }

    /// Generates the tenant; the generator stays usable for [`Generator::more`].
    pub(crate) fn run(&mut self) -> Tenant {
        let domains = self.domains();
        let n = self.spec.users;
        let mut users: Vec<User> = Vec::with_capacity(n);
        // What the groups need to know of each person, gathered while the
        // user is at hand: (user index, department + 1 or 0, SKU bits,
        // works in the first office city).
        let mut people: Vec<Trait> = Vec::new();
        // The properties added after the first generator version use their
        // own random streams, so that the users' other properties stay what
        // they were.
        let mut managers = Rng::derived(self.spec.seed, 0x0A9A_6E25);
        let tops = (1 + n / 4000).min(5);
        let mut custom = CustomSku::new(self.spec.seed);
        for i in 0..n {
            self.assigned_bits = 0;
            let mut user = if i == 0 {
                self.admin()
            } else {
                self.next_user()
            };
            self.extras(&mut user, false);
            self.add_alias(&mut user);
            if user.is_person() {
                // The org tree: the first few people have no manager; every
                // later one reports to someone earlier, picked among positions
                // k/10..=(k-1)/3, about five direct reports per manager.
                let k = people.len();
                if k >= tops {
                    let lo = k / 10;
                    let hi = ((k - 1) / 3).max(lo);
                    let j = managers.range(lo as u64, hi as u64) as usize;
                    user.manager_id = Some(users[people[j].index].id.clone());
                }
                custom.offer(&mut user);
                people.push(self.traits(i, &user));
            }
            users.push(user);
        }
        let custom = custom.finish(&mut users, &people);
        let groups = self.groups(&users, &people);
        let mut skus = Vec::with_capacity(self.skus.len() + 1);
        for (info, &consumed) in self.skus.iter().zip(&self.consumed) {
            let prepaid = if info.free {
                consumed.max(10_000)
            } else {
                let step = match consumed {
                    0..100 => 5,
                    100..1000 => 25,
                    _ => 100,
                };
                (consumed / step + 1) * step + self.rng.below(step as u64) as u32
            };
            // A lapsed extra Power BI subscription in its grace period, and a
            // legacy Office 365 E3 subscription being wound down: non-zero
            // `warning` and `suspended` units (subscribedsku-list.md shows
            // both fields in prepaidUnits).
            let warning = if info.sku_id == names::POWER_BI_PRO.sku_id {
                5
            } else {
                0
            };
            let suspended = if info.sku_id == names::ENTERPRISEPACK.sku_id {
                25
            } else {
                0
            };
            skus.push(Sku {
                sku_id: info.sku_id.to_string(),
                sku_part_number: info.part_number.to_string(),
                prepaid_enabled: prepaid,
                consumed_units: consumed,
                service_plans: info.plans.iter().map(|p| p.to_string()).collect(),
                suspended,
                warning,
            });
        }
        skus.push(custom);
        let refresh = days_from_civil(2025, 12, 31) - 3;
        Tenant {
            id: self.spec.tenant_id.clone(),
            name: self.spec.name.clone(),
            domains,
            skus,
            users,
            groups,
            report_refresh_date: civil_date(refresh),
            created_date_time: iso8601(self.tenant_created),
            country_letter_code: self.home.code.to_string(),
            city: self.home.cities[0].to_string(),
        }
    }

    /// One member, guest or service account, in the tenant's proportions.
    fn next_user(&mut self) -> User {
        match self.rng.below(1000) {
            0..50 => self.guest(),
            50..90 => self.service_account(),
            _ => self.member(),
        }
    }

    /// `n` further users for a tenant already generated by [`Generator::run`]:
    /// same generator style, addresses unique against every earlier one,
    /// created at `created` (ISO 8601). New users have never signed in, and
    /// new people were hired the day they were created.
    pub(crate) fn more(&mut self, n: usize, created: &str) -> Vec<User> {
        (0..n)
            .map(|_| {
                let mut u = self.next_user();
                u.created_date_time = created.to_string();
                self.extras(&mut u, true);
                self.add_alias(&mut u);
                u
            })
            .collect()
    }

    /// The properties added after the first generator version (hire date,
    /// proxy addresses, company name, last sign-in), drawn from a stream of
    /// their own.
    fn extras(&mut self, u: &mut User, new_hire: bool) {
        let mut x = Rng::derived(self.spec.seed ^ 0x4A11_0C8E, self.made);
        self.made += 1;
        let guest = u.is_guest();
        let person = u.is_person();
        u.company_name = (!guest).then(|| self.spec.name.clone());
        u.proxy_addresses = u.mail.iter().map(|m| format!("SMTP:{m}")).collect();
        let created = parse_iso_seconds(&u.created_date_time).unwrap_or(self.tenant_created);
        let created_day = (created / 86_400) as i64;
        u.employee_hire_date = if !person {
            None
        } else if new_hire {
            Some(iso8601(created_day as u64 * 86_400))
        } else if x.chance(850) {
            // Hired a little before the account was created (onboarding).
            let day = (created_day - x.below(60) as i64).max(0);
            Some(iso8601(day as u64 * 86_400))
        } else {
            None
        };
        let signed_in_share = match () {
            _ if new_hire => 0,
            _ if guest => 800,
            _ if !person && u.mail.is_none() => 500,
            _ if !u.account_enabled => 700,
            _ => 960,
        };
        u.last_sign_in = x.chance(signed_in_share).then(|| {
            // Mostly recent; some long ago; never before the account existed.
            let ago_days = match x.below(100) {
                0..70 => x.below(14),
                70..90 => x.range(14, 90),
                _ => x.range(90, 720),
            };
            let ago_days = if u.account_enabled {
                ago_days
            } else {
                ago_days + 90
            };
            let t = self
                .latest
                .saturating_sub(ago_days * 86_400 + x.below(86_400))
                .max(created);
            iso8601(t)
        });
    }

    /// Mailboxes on the default domain also carry their coexistence
    /// (routing) address, `smtp:local@tenant.mail.onmicrosoft.com`, a domain
    /// no UPN uses: unique because default-domain local parts are.
    fn add_alias(&mut self, u: &mut User) {
        if u.is_guest() {
            return;
        }
        let Some(mail) = &u.mail else { return };
        let Some((local, domain)) = mail.rsplit_once('@') else {
            return;
        };
        if !domain.eq_ignore_ascii_case(&self.default_domain) {
            return;
        }
        let mut alias = String::with_capacity(5 + local.len() + 1 + self.mail_domain.len());
        alias.push_str("smtp:");
        alias.push_str(local);
        alias.push('@');
        alias.push_str(&self.mail_domain);
        u.proxy_addresses.push(alias);
    }

    fn traits(&self, index: usize, u: &User) -> Trait {
        let department = u
            .department
            .as_deref()
            .and_then(|d| DEPARTMENTS.iter().position(|x| x.name == d))
            .map_or(0, |k| k as u8 + 1);
        Trait {
            index,
            department,
            skus: self.assigned_bits,
            first_city: u.city.as_deref() == Some(self.home.cities[0]),
        }
    }

    /// About one group per 25 users (at least five): "All Company" (tenants
    /// of up to 10 000 people), group-based licensing security groups for the
    /// add-on SKUs, a mail-enabled security group, an office distribution
    /// list, one Microsoft 365 group per department, then project groups of
    /// every kind. The first four cover every kind.
    fn groups(&mut self, users: &[User], people: &[Trait]) -> Vec<Group> {
        let mut r = Rng::derived(self.spec.seed, 0x6209_5EED);
        let want = (users.len() / 25).max(5);
        type Planned = (String, GroupKind, Vec<usize>, Option<String>);
        let mut first: Vec<Planned> = Vec::new();
        if people.len() <= 10_000 {
            let mut everyone: Vec<usize> = Vec::with_capacity(people.len() + 1);
            if !users.is_empty() {
                everyone.push(0);
            }
            everyone.extend(people.iter().map(|p| p.index));
            first.push((
                "All Company".to_string(),
                GroupKind::Microsoft365,
                everyone,
                Some("This is the default group for everyone in the network".to_string()),
            ));
        }
        let mut departments: Vec<Vec<usize>> = vec![Vec::new(); DEPARTMENTS.len()];
        let mut licensed: Vec<Vec<usize>> = vec![Vec::new(); self.skus.len()];
        let mut office: Vec<usize> = Vec::new();
        let mut it: Vec<usize> = Vec::new();
        let it_index = DEPARTMENTS
            .iter()
            .position(|d| d.name == "IT")
            .map(|k| k as u8 + 1);
        for p in people {
            if p.department > 0 {
                departments[p.department as usize - 1].push(p.index);
            }
            for (k, list) in licensed.iter_mut().enumerate() {
                if p.skus & (1 << k) != 0 {
                    list.push(p.index);
                }
            }
            if p.first_city {
                office.push(p.index);
            }
            if Some(p.department) == it_index && it.len() < 40 {
                it.push(p.index);
            }
        }
        let mut department_groups: Vec<Planned> = DEPARTMENTS
            .iter()
            .zip(departments)
            .filter(|(_, members)| !members.is_empty())
            .map(|(d, members)| {
                (
                    d.name.to_string(),
                    GroupKind::Microsoft365,
                    members,
                    Some(format!("{} team", d.name)),
                )
            })
            .collect();
        if first.is_empty() && !department_groups.is_empty() {
            first.push(department_groups.remove(0));
        }
        // Group-based licensing groups for the add-on SKUs (at most a tenth of
        // the people each; the main SKU is assigned directly), smallest first.
        let mut licensing: Vec<(&SkuInfo, Vec<usize>)> = self
            .skus
            .iter()
            .zip(licensed)
            .filter(|(info, m)| !info.free && !m.is_empty())
            .collect();
        licensing.sort_by_key(|(_, m)| m.len());
        let small = licensing
            .iter()
            .filter(|(_, m)| m.len() * 10 <= people.len())
            .count()
            .max(1);
        licensing.truncate(small);
        let mut rest: Vec<Planned> = Vec::new();
        for (info, members) in licensing {
            let g = (
                format!("Licensing - {}", info.part_number),
                GroupKind::Security,
                members,
                Some(format!("Group-based licensing: {}", info.product)),
            );
            if first.len() <= 1 {
                first.push(g);
            } else {
                rest.push(g);
            }
        }
        first.push((
            "IT Admins".to_string(),
            GroupKind::MailEnabledSecurity,
            it,
            Some("Administrators of the tenant".to_string()),
        ));
        let city = self.home.cities[0];
        first.push((
            format!("{city} Office"),
            GroupKind::Distribution,
            office,
            Some(format!("Everyone in the {city} office")),
        ));
        let people_ix: Vec<usize> = people.iter().map(|p| p.index).collect();
        let people = people_ix;
        let mut plan = first;
        plan.extend(department_groups);
        plan.extend(rest);
        plan.truncate(want.max(4));
        let mut n = 0usize;
        while plan.len() < want {
            let name = names::PROJECT_NAMES[n % names::PROJECT_NAMES.len()];
            let round = n / names::PROJECT_NAMES.len();
            n += 1;
            let base = if round == 0 {
                format!("Project {name}")
            } else {
                format!("Project {name} {}", round + 1)
            };
            let (display, kind) = match r.below(10) {
                0..6 => (base, GroupKind::Microsoft365),
                6..8 => (format!("{base} Security"), GroupKind::Security),
                8 => (format!("{base} Updates"), GroupKind::Distribution),
                _ => (format!("{base} Approvers"), GroupKind::MailEnabledSecurity),
            };
            let size = if people.is_empty() {
                0
            } else {
                (r.range(2, 30) as usize).min(people.len())
            };
            let mut members: Vec<usize> = Vec::with_capacity(size);
            let mut tries = 0;
            while members.len() < size && tries < size * 4 {
                tries += 1;
                let i = people[r.index(people.len())];
                if !members.contains(&i) {
                    members.push(i);
                }
            }
            plan.push((display, kind, members, None));
        }
        plan.into_iter()
            .map(|(display_name, kind, members, description)| {
                let slug: String = display_name
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(ascii_fold)
                    .collect::<Vec<_>>()
                    .join("-");
                let (nick, mail) = self.group_address(&slug, kind);
                Group {
                    id: r.guid(),
                    display_name,
                    mail,
                    kind,
                    members: members.iter().map(|&i| users[i].id.clone()).collect(),
                    mail_nickname: nick,
                    description,
                    created_date_time: iso8601(r.range(self.tenant_created, self.latest)),
                }
            })
            .collect()
    }

    /// A unique mail nickname for a group, and its address on the default
    /// domain if the kind is mail-enabled.
    pub(crate) fn group_address(
        &mut self,
        slug: &str,
        kind: GroupKind,
    ) -> (String, Option<String>) {
        let nick = self.book.reserve(slug, &self.default_domain);
        let mail = kind
            .mail_enabled()
            .then(|| format!("{nick}@{}", self.default_domain));
        (nick, mail)
    }

    /// Marks an address (e.g. a UPN changed at run time) as taken so that
    /// later generated users avoid it.
    pub(crate) fn reserve_address(&mut self, address: &str) {
        if let Some((local, domain)) = address.to_ascii_lowercase().rsplit_once('@') {
            self.book.reserve(local, domain);
        }
    }

    fn admin(&mut self) -> User {
        let local = self.book.reserve("admin", &self.initial_domain);
        let upn = format!("{local}@{}", self.initial_domain);
        let mut licenses = Vec::new();
        self.assign(&mut licenses, &names::SPE_E5);
        let id = self.rng.guid();
        User {
            id,
            mail: Some(upn.clone()),
            user_principal_name: upn,
            given_name: None,
            surname: None,
            display_name: "MOD Administrator".to_string(),
            department: Some("IT".to_string()),
            job_title: None,
            country: Some(self.home.name.to_string()),
            usage_location: Some(self.home.code.to_string()),
            office_location: None,
            account_enabled: true,
            user_type: "Member".to_string(),
            assigned_licenses: licenses,
            created_date_time: iso8601(self.tenant_created),
            city: None,
            business_phones: Vec::new(),
            mobile_phone: None,
            preferred_language: Some(self.home.language.to_string()),
            employee_hire_date: None,
            proxy_addresses: Vec::new(),
            manager_id: None,
            company_name: None,
            last_sign_in: None,
        }
    }

    fn member(&mut self) -> User {
        let id = self.rng.guid();
        let country = &COUNTRIES[pick_cdf(&mut self.rng, &self.country_cdf)];
        // Most people carry names from where they work; some do not.
        let locale: Locale = if self.rng.chance(850) {
            country.locale
        } else {
            COUNTRIES[self.rng.index(COUNTRIES.len())].locale
        };
        let given = *self.rng.pick(names::given_names(locale));
        let surname = *self.rng.pick(names::surnames(locale));
        let department = if self.rng.chance(70) {
            None
        } else {
            Some(&DEPARTMENTS[pick_cdf(&mut self.rng, &self.department_cdf)])
        };
        let job_title = match department {
            Some(d) if !self.rng.chance(70) => Some(*self.rng.pick(d.titles)),
            Some(_) => None,
            None if self.rng.chance(500) => {
                let d = &DEPARTMENTS[self.rng.index(DEPARTMENTS.len())];
                Some(*self.rng.pick(d.titles))
            }
            None => None,
        };
        let city = *self.rng.pick(country.cities);
        let office_location = if self.rng.chance(90) {
            None
        } else {
            let floor = self.rng.range(1, 12);
            let room = self.rng.range(1, 60);
            Some(format!("{city} {floor}/{}", floor * 100 + room))
        };
        let dept_name = department.map(|d| d.name);
        let domain: &str = if country.code == "GB" && self.rng.chance(700) {
            &self.uk_domain
        } else if let (Some(labs), Some("Research & Development")) = (&self.labs_domain, dept_name)
        {
            if self.rng.chance(400) {
                labs
            } else {
                &self.default_domain
            }
        } else if self.rng.chance(5) {
            &self.initial_domain
        } else {
            &self.default_domain
        };
        let mut local_base = String::with_capacity(given.len() + surname.len() + 1);
        ascii_fold_into(given, &mut local_base);
        local_base.push('.');
        ascii_fold_into(surname, &mut local_base);
        if local_base.starts_with('.') || local_base.ends_with('.') {
            local_base = local_base.trim_matches('.').to_string();
        }
        if local_base.is_empty() {
            local_base = "user".to_string();
        }
        let mut upn = self.book.reserve(&local_base, domain);
        upn.reserve(domain.len() + 1);
        upn.push('@');
        upn.push_str(domain);

        let account_enabled = !self.rng.chance(30);
        let licensed = !self.rng.chance(10) && (account_enabled || self.rng.chance(500));
        let mut licenses = Vec::new();
        if licensed {
            let privileged = matches!(dept_name, Some("Executive") | Some("IT"));
            if self.rng.chance(if privileged { 350 } else { 40 }) {
                self.assign(&mut licenses, &names::SPE_E5);
            } else if self.rng.chance(30) {
                self.assign(&mut licenses, &names::TEAMS_EXPLORATORY);
            } else if self.large {
                if self.rng.below(1000) < self.legacy_share as u64 {
                    self.assign(&mut licenses, &names::ENTERPRISEPACK);
                    if self.rng.chance(600) {
                        self.assign(&mut licenses, &names::EMS);
                    }
                } else {
                    self.assign(&mut licenses, &names::SPE_E3);
                }
            } else {
                self.assign(&mut licenses, &names::O365_BUSINESS_PREMIUM);
            }
            let analyst = matches!(
                dept_name,
                Some("Finance") | Some("Sales") | Some("Marketing")
            );
            if licenses.iter().all(|l| l != names::SPE_E5.sku_id)
                && self.rng.chance(if analyst { 300 } else { 60 })
            {
                self.assign(&mut licenses, &names::POWER_BI_PRO);
            }
            if licenses.len() < 3 && self.rng.chance(50) {
                self.assign(&mut licenses, &names::FLOW_FREE);
            }
        }
        let country_known = !self.rng.chance(30);
        let usage_location = if licensed || self.rng.chance(500) {
            Some(
                if country_known {
                    country.code
                } else {
                    self.home.code
                }
                .to_string(),
            )
        } else {
            None
        };
        let business_phones = if self.rng.chance(650) {
            vec![self.phone(country, false)]
        } else {
            Vec::new()
        };
        let mobile_phone = self.rng.chance(450).then(|| self.phone(country, true));
        let preferred_language = self.rng.chance(550).then(|| country.language.to_string());
        User {
            id,
            mail: Some(upn.clone()),
            user_principal_name: upn,
            given_name: Some(given.to_string()),
            surname: Some(surname.to_string()),
            display_name: [given, surname].join(" "),
            department: dept_name.map(str::to_string),
            job_title: job_title.map(str::to_string),
            country: country_known.then(|| country.name.to_string()),
            usage_location,
            office_location,
            account_enabled,
            user_type: "Member".to_string(),
            assigned_licenses: licenses,
            created_date_time: self.created(),
            city: (!self.rng.chance(50)).then(|| city.to_string()),
            business_phones,
            mobile_phone,
            preferred_language,
            employee_hire_date: None,
            proxy_addresses: Vec::new(),
            manager_id: None,
            company_name: None,
            last_sign_in: None,
        }
    }

    fn guest(&mut self) -> User {
        let id = self.rng.guid();
        let locale = if self.rng.chance(600) {
            Locale::En
        } else {
            COUNTRIES[self.rng.index(COUNTRIES.len())].locale
        };
        let given = *self.rng.pick(names::given_names(locale));
        let surname = *self.rng.pick(names::surnames(locale));
        let mut ext = *self.rng.pick(names::GUEST_DOMAINS);
        if ext == self.default_domain {
            ext = "gmail.com";
        }
        let consumer = names::CONSUMER_MAIL_DOMAINS.contains(&ext);
        let base = if !consumer || self.rng.chance(700) {
            format!("{}.{}", ascii_fold(given), ascii_fold(surname))
        } else {
            format!(
                "{}{}{}",
                ascii_fold(given),
                ascii_fold(surname),
                self.rng.range(10, 99)
            )
        };
        let local = self.book.reserve(&base, ext);
        let mail = format!("{local}@{ext}");
        // B2B guests get a UPN in the inviting tenant's initial domain, with
        // '@' replaced by '_' and an #EXT# marker
        // (api-reference/v1.0/api/user-list.md, example 4).
        let upn = format!("{local}_{ext}#EXT#@{}", self.initial_domain);
        let named = self.rng.chance(600);
        let display_name = if self.rng.chance(800) {
            format!("{given} {surname}")
        } else {
            mail.clone()
        };
        let partner = self.rng.chance(100);
        let department = partner.then(|| {
            DEPARTMENTS[pick_cdf(&mut self.rng, &self.department_cdf)]
                .name
                .to_string()
        });
        let country = self
            .rng
            .chance(200)
            .then(|| COUNTRIES[self.rng.index(COUNTRIES.len())].name.to_string());
        User {
            id,
            user_principal_name: upn,
            mail: Some(mail),
            given_name: named.then(|| given.to_string()),
            surname: named.then(|| surname.to_string()),
            display_name,
            department,
            job_title: None,
            country,
            usage_location: None,
            office_location: None,
            account_enabled: !self.rng.chance(30),
            user_type: "Guest".to_string(),
            assigned_licenses: Vec::new(),
            created_date_time: self.created(),
            city: None,
            business_phones: Vec::new(),
            mobile_phone: None,
            preferred_language: None,
            employee_hire_date: None,
            proxy_addresses: Vec::new(),
            manager_id: None,
            company_name: None,
            last_sign_in: None,
        }
    }

    fn service_account(&mut self) -> User {
        let id = self.rng.guid();
        let (stem, display, department) = *self.rng.pick(names::SERVICE_ACCOUNTS);
        let (base, display_name) = if self.rng.chance(500) {
            let city = *self.rng.pick(self.home.cities);
            (
                format!("{stem}-{}", ascii_fold(city)),
                format!("{display} ({city})"),
            )
        } else {
            (stem.to_string(), display.to_string())
        };
        let domain: &str = if self.rng.chance(300) {
            &self.initial_domain
        } else {
            &self.default_domain
        };
        let local = self.book.reserve(&base, domain);
        User {
            id,
            user_principal_name: format!("{local}@{domain}"),
            mail: None,
            given_name: None,
            surname: None,
            display_name,
            department: department.map(str::to_string),
            job_title: None,
            country: self.rng.chance(500).then(|| self.home.name.to_string()),
            usage_location: None,
            office_location: None,
            account_enabled: !self.rng.chance(30),
            user_type: "Member".to_string(),
            assigned_licenses: Vec::new(),
            created_date_time: self.created(),
            city: None,
            business_phones: Vec::new(),
            mobile_phone: None,
            preferred_language: None,
            employee_hire_date: None,
            proxy_addresses: Vec::new(),
            manager_id: None,
            company_name: None,
            last_sign_in: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::is_guid;

    fn share(n: usize, total: usize) -> f64 {
        n as f64 / total as f64
    }

    #[test]
    fn spec_is_deterministic() {
        let a = TenantSpec::new(42, 10);
        let b = TenantSpec::new(42, 10);
        assert_eq!(a, b);
        assert!(is_guid(&a.tenant_id));
        assert_ne!(a.tenant_id, TenantSpec::new(43, 10).tenant_id);
        assert!(a.name.contains(' '), "{}", a.name);
    }

    #[test]
    fn generation_is_deterministic() {
        let spec = TenantSpec::new(7, 3000);
        let a = Tenant::generate(&spec);
        let b = Tenant::generate(&spec);
        let ja = serde_json::to_string(&a).expect("serialise");
        let jb = serde_json::to_string(&b).expect("serialise");
        assert_eq!(ja, jb);
        let c = Tenant::generate(&TenantSpec::new(8, 3000));
        assert_ne!(a.users[5].id, c.users[5].id);
    }

    #[test]
    fn proportions_and_uniqueness() {
        let spec = TenantSpec::new(42, 20_000);
        let t = Tenant::generate(&spec);
        let n = t.users.len();
        assert_eq!(n, 20_000);
        let guests = t.users.iter().filter(|u| u.is_guest()).count();
        let disabled = t.users.iter().filter(|u| !u.account_enabled).count();
        let no_mail = t.users.iter().filter(|u| u.mail.is_none()).count();
        let unlicensed = t
            .users
            .iter()
            .filter(|u| u.assigned_licenses.is_empty())
            .count();
        assert!(
            (0.035..0.065).contains(&share(guests, n)),
            "guests {guests}"
        );
        assert!(
            (0.02..0.045).contains(&share(disabled, n)),
            "disabled {disabled}"
        );
        assert!(
            (0.025..0.055).contains(&share(no_mail, n)),
            "no mail {no_mail}"
        );
        assert!(
            (0.07..0.15).contains(&share(unlicensed, n)),
            "unlicensed {unlicensed}"
        );

        let mut upns = HashSet::new();
        let mut mails = HashSet::new();
        let mut ids = HashSet::new();
        for u in &t.users {
            assert!(
                upns.insert(u.user_principal_name.to_lowercase()),
                "{}",
                u.user_principal_name
            );
            assert!(ids.insert(u.id.clone()));
            assert!(is_guid(&u.id));
            assert!(u.user_principal_name.is_ascii());
            if let Some(m) = &u.mail {
                assert!(mails.insert(m.to_lowercase()), "{m}");
                assert!(m.is_ascii());
            }
            assert!(u.assigned_licenses.len() <= 3);
            assert!(u.created_date_time.as_str() >= "2015-01-01T00:00:00Z");
            assert!(u.created_date_time.as_str() <= "2025-12-31T23:59:59Z");
            if u.is_guest() {
                assert!(u.user_principal_name.contains("#EXT#@"));
                assert!(u.user_principal_name.ends_with(t.initial_domain()));
            }
        }
        // Empty fields occur, and non-ASCII names too.
        assert!(t.users.iter().any(|u| u.department.is_none()));
        assert!(t.users.iter().any(|u| u.job_title.is_none()));
        assert!(t.users.iter().any(|u| u.office_location.is_none()));
        assert!(t.users.iter().any(|u| !u.display_name.is_ascii()));
        // Most users live on the default domain.
        let on_default = t
            .users
            .iter()
            .filter(|u| {
                u.user_principal_name
                    .ends_with(&format!("@{}", t.default_domain()))
            })
            .count();
        assert!(share(on_default, n) > 0.6);
        // Consumed units match assignments, prepaid covers them.
        for sku in &t.skus {
            let assigned = t
                .users
                .iter()
                .filter(|u| u.assigned_licenses.contains(&sku.sku_id))
                .count() as u32;
            assert_eq!(sku.consumed_units, assigned, "{}", sku.sku_part_number);
            assert!(sku.prepaid_enabled >= sku.consumed_units);
        }
        // Domains: one initial, one default, all users on verified ones.
        assert_eq!(t.domains.iter().filter(|d| d.is_initial).count(), 1);
        assert_eq!(t.domains.iter().filter(|d| d.is_default).count(), 1);
        assert!(t.domains.iter().filter(|d| d.is_verified).count() >= 3);
        for u in &t.users {
            let domain = u.user_principal_name.rsplit('@').next().unwrap_or("");
            assert!(
                t.domains.iter().any(|d| d.is_verified && d.id == domain),
                "{}",
                u.user_principal_name
            );
        }
    }

    #[test]
    fn small_tenants_work() {
        for users in [0, 1, 2, 10] {
            let t = Tenant::generate(&TenantSpec::new(1, users));
            assert_eq!(t.users.len(), users);
        }
        let t = Tenant::generate(&TenantSpec::new(1, 50));
        assert!(
            t.skus
                .iter()
                .any(|s| s.sku_part_number == "O365_BUSINESS_PREMIUM")
        );
    }

    #[test]
    fn to_json_shape() {
        let t = Tenant::generate(&TenantSpec::new(3, 20));
        let u = &t.users[0];
        let j = u.to_json();
        assert_eq!(j["id"], u.id.as_str());
        assert_eq!(j["userPrincipalName"], u.user_principal_name.as_str());
        assert!(j["assignedLicenses"][0]["disabledPlans"].is_array());
        assert!(j["assignedLicenses"][0]["skuId"].is_string());
        assert!(j.get("businessPhones").is_some());
    }

    #[test]
    fn generates_100k_users() {
        // Speed is measured by the benchmark, not asserted here.
        let t = Tenant::generate(&TenantSpec::new(1, 100_000));
        assert_eq!(t.users.len(), 100_000);
        let ids: std::collections::HashSet<&str> = t.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn people_have_the_new_properties() {
        let t = Tenant::generate(&TenantSpec::new(42, 5000));
        let people: Vec<&User> = t.users.iter().filter(|u| u.is_person()).collect();
        let ids: HashSet<&str> = people.iter().map(|u| u.id.as_str()).collect();
        // Most people have a manager who is another person; a few top people
        // have none; nobody else has one.
        let managed = people.iter().filter(|u| u.manager_id.is_some()).count();
        assert!(managed + 5 >= people.len(), "{managed} of {}", people.len());
        assert!(managed < people.len());
        for u in &t.users {
            if let Some(m) = &u.manager_id {
                assert!(u.is_person());
                assert!(ids.contains(m.as_str()));
                assert_ne!(m, &u.id);
            }
            // companyName: the tenant's name for members, null for guests.
            if u.is_guest() {
                assert_eq!(u.company_name, None);
                assert_eq!(u.employee_hire_date, None);
            } else {
                assert_eq!(u.company_name.as_deref(), Some(t.name.as_str()));
            }
            if let Some(m) = &u.mail {
                assert_eq!(u.proxy_addresses[0], format!("SMTP:{m}"));
                assert!(
                    u.proxy_addresses[1..]
                        .iter()
                        .all(|a| a.starts_with("smtp:"))
                );
            } else {
                assert!(u.proxy_addresses.is_empty());
            }
            if let Some(h) = &u.employee_hire_date {
                assert!(h.ends_with("T00:00:00Z"), "{h}");
                assert!(parse_iso_seconds(h).is_some());
            }
            if let Some(s) = &u.last_sign_in {
                assert!(s.as_str() >= u.created_date_time.as_str(), "{s}");
            }
        }
        // The org tree has no cycles: every chain ends at a top person.
        let by_id: HashMap<&str, &User> = t.users.iter().map(|u| (u.id.as_str(), u)).collect();
        for u in &people {
            let mut cur = *u;
            for _ in 0..64 {
                match cur.manager_id.as_deref() {
                    Some(m) => cur = by_id[m],
                    None => break,
                }
            }
            assert!(cur.manager_id.is_none());
        }
        assert!(people.iter().any(|u| u.employee_hire_date.is_none()));
        assert!(
            people
                .iter()
                .filter(|u| u.employee_hire_date.is_some())
                .count()
                * 10
                > people.len() * 7
        );
        assert!(t.users.iter().any(|u| u.proxy_addresses.len() > 1));
        assert!(t.users.iter().any(|u| u.last_sign_in.is_none()));
        // Aliases are unique addresses.
        let mut seen = HashSet::new();
        for u in &t.users {
            for a in &u.proxy_addresses {
                assert!(seen.insert(a[5..].to_lowercase()), "{a}");
            }
        }
    }

    #[test]
    fn groups_and_custom_sku() {
        for users in [0usize, 3, 50, 2600] {
            let t = Tenant::generate(&TenantSpec::new(3, users));
            assert_eq!(t.groups.len(), (users / 25).max(5).max(4), "{users}");
            let kinds: HashSet<GroupKind> = t.groups.iter().map(|g| g.kind).collect();
            assert_eq!(kinds.len(), 4, "{users}: {kinds:?}");
            let ids: HashSet<&str> = t.users.iter().map(|u| u.id.as_str()).collect();
            let mut nicks = HashSet::new();
            for g in &t.groups {
                assert!(crate::rng::is_guid(&g.id));
                assert!(nicks.insert(g.mail_nickname.clone()), "{}", g.mail_nickname);
                assert_eq!(g.mail.is_some(), g.kind.mail_enabled());
                let members: HashSet<&String> = g.members.iter().collect();
                assert_eq!(members.len(), g.members.len(), "no duplicate members");
                assert!(g.members.iter().all(|m| ids.contains(m.as_str())));
            }
            let custom = t
                .skus
                .iter()
                .find(|s| s.sku_part_number == names::CUSTOM_SKU_PART_NUMBER)
                .expect("custom SKU");
            assert!(names::sku_info(&custom.sku_id).is_none());
            let holders = t
                .users
                .iter()
                .filter(|u| u.assigned_licenses.contains(&custom.sku_id))
                .count() as u32;
            assert_eq!(holders, custom.consumed_units);
            if users >= 50 {
                assert!(holders >= 3);
            }
        }
        let t = Tenant::generate(&TenantSpec::new(3, 2600));
        let all = t
            .groups
            .iter()
            .find(|g| g.display_name == "All Company")
            .expect("all");
        assert!(all.members.len() > 2000);
        for s in &t.skus {
            assert!(!s.service_plans.is_empty());
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(slug_of("Contoso Ltd"), "contoso");
        assert_eq!(slug_of("Margie's Travel Inc."), "margiestravel");
        assert_eq!(slug_of(""), "tenant");
        assert_eq!(slug_of("ACME"), "acme");
    }

    #[test]
    fn address_book_suffixes() {
        let mut b = AddressBook::default();
        assert_eq!(b.reserve("jane.doe", "x.com"), "jane.doe");
        assert_eq!(b.reserve("jane.doe", "x.com"), "jane.doe2");
        assert_eq!(b.reserve("jane.doe", "x.com"), "jane.doe3");
        assert_eq!(b.reserve("jane.doe", "y.com"), "jane.doe");
    }
}
