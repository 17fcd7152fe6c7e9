//! The user property catalogue: which names `$select` accepts on
//! `microsoft.graph.user`, the default property set of user reads, and how each
//! property is rendered from the generated [`User`] (streamed straight into the
//! response buffer by serde, without building intermediate JSON values).
//!
//! Property names: the v1.0 user resource
//! (microsoftgraph/microsoft-graph-docs-contrib: api-reference/v1.0/resources/user.md).
//! Default set and collection-only restrictions:
//! api-reference/v1.0/api/user-list.md.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use crate::directory::field;
use crate::odata::GraphError;
use crate::tenant::User;

/// How a property's value is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    AccountEnabled,
    AssignedLicenses,
    BusinessPhones,
    City,
    Country,
    CreatedDateTime,
    Department,
    DisplayName,
    GivenName,
    JobTitle,
    Mail,
    MailNickname,
    MobilePhone,
    OfficeLocation,
    PreferredLanguage,
    Surname,
    UsageLocation,
    UserPrincipalName,
    UserType,
    ProxyAddresses,
    ImAddresses,
    Identities,
    CreationType,
    ExternalUserState,
    ExternalUserStateChangeDateTime,
    LicenseAssignmentStates,
    SecurityIdentifier,
    SignInSessionsValidFromDateTime,
    OnPremisesExtensionAttributes,
    AuthorizationInfo,
    CompanyName,
    EmployeeHireDate,
    /// signInActivity: needs AuditLog.Read.All and a premium tenant (checked
    /// by the caller); not served by users/delta.
    SignInActivity,
    /// The manager relationship: `$select=manager` on users/delta only,
    /// rendered as `manager@delta`.
    Manager,
    /// Modelled as always null.
    Null,
    /// Modelled as always an empty collection.
    Empty,
    /// "Certain properties cannot be returned within a user collection"
    /// (user-list.md): 501 in a list, null on a single user.
    SingleOnly,
}

/// A resolved, canonically spelled property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prop {
    pub name: &'static str,
    kind: Kind,
}

const CATALOGUE: &[(&str, Kind)] = &[
    ("id", Kind::Id),
    ("aboutMe", Kind::SingleOnly),
    ("accountEnabled", Kind::AccountEnabled),
    ("ageGroup", Kind::Null),
    ("assignedLicenses", Kind::AssignedLicenses),
    ("assignedPlans", Kind::Empty),
    ("authorizationInfo", Kind::AuthorizationInfo),
    ("birthday", Kind::SingleOnly),
    ("businessPhones", Kind::BusinessPhones),
    ("city", Kind::City),
    ("companyName", Kind::CompanyName),
    ("consentProvidedForMinor", Kind::Null),
    ("country", Kind::Country),
    ("createdDateTime", Kind::CreatedDateTime),
    ("creationType", Kind::CreationType),
    ("customSecurityAttributes", Kind::Null),
    ("deletedDateTime", Kind::Null),
    ("department", Kind::Department),
    ("displayName", Kind::DisplayName),
    ("employeeHireDate", Kind::EmployeeHireDate),
    ("employeeId", Kind::Null),
    ("employeeLeaveDateTime", Kind::Null),
    ("employeeOrgData", Kind::Null),
    ("employeeType", Kind::Null),
    ("externalUserState", Kind::ExternalUserState),
    (
        "externalUserStateChangeDateTime",
        Kind::ExternalUserStateChangeDateTime,
    ),
    ("faxNumber", Kind::Null),
    ("givenName", Kind::GivenName),
    ("hireDate", Kind::SingleOnly),
    ("identities", Kind::Identities),
    ("imAddresses", Kind::ImAddresses),
    ("interests", Kind::SingleOnly),
    ("isResourceAccount", Kind::Null),
    ("jobTitle", Kind::JobTitle),
    (
        "lastPasswordChangeDateTime",
        Kind::SignInSessionsValidFromDateTime,
    ),
    ("legalAgeGroupClassification", Kind::Null),
    ("licenseAssignmentStates", Kind::LicenseAssignmentStates),
    ("mail", Kind::Mail),
    ("mailboxSettings", Kind::SingleOnly),
    ("mailNickname", Kind::MailNickname),
    ("manager", Kind::Manager),
    ("mobilePhone", Kind::MobilePhone),
    ("mySite", Kind::SingleOnly),
    ("officeLocation", Kind::OfficeLocation),
    ("onPremisesDistinguishedName", Kind::Null),
    ("onPremisesDomainName", Kind::Null),
    (
        "onPremisesExtensionAttributes",
        Kind::OnPremisesExtensionAttributes,
    ),
    ("onPremisesImmutableId", Kind::Null),
    ("onPremisesLastSyncDateTime", Kind::Null),
    ("onPremisesProvisioningErrors", Kind::Empty),
    ("onPremisesSamAccountName", Kind::Null),
    ("onPremisesSecurityIdentifier", Kind::Null),
    ("onPremisesSyncEnabled", Kind::Null),
    ("onPremisesUserPrincipalName", Kind::Null),
    ("otherMails", Kind::Empty),
    ("passwordPolicies", Kind::Null),
    ("passwordProfile", Kind::Null),
    ("pastProjects", Kind::SingleOnly),
    ("postalCode", Kind::Null),
    ("preferredDataLocation", Kind::Null),
    ("preferredLanguage", Kind::PreferredLanguage),
    ("preferredName", Kind::SingleOnly),
    ("provisionedPlans", Kind::Empty),
    ("proxyAddresses", Kind::ProxyAddresses),
    ("responsibilities", Kind::SingleOnly),
    ("schools", Kind::SingleOnly),
    ("securityIdentifier", Kind::SecurityIdentifier),
    ("serviceProvisioningErrors", Kind::Empty),
    ("showInAddressList", Kind::Null),
    ("signInActivity", Kind::SignInActivity),
    (
        "signInSessionsValidFromDateTime",
        Kind::SignInSessionsValidFromDateTime,
    ),
    ("skills", Kind::SingleOnly),
    ("state", Kind::Null),
    ("streetAddress", Kind::Null),
    ("surname", Kind::Surname),
    ("usageLocation", Kind::UsageLocation),
    ("userPrincipalName", Kind::UserPrincipalName),
    ("userType", Kind::UserType),
];

/// "By default, only a limited set of properties are returned (businessPhones,
/// displayName, givenName, id, jobTitle, mail, mobilePhone, officeLocation,
/// preferredLanguage, surname, and userPrincipalName)" — user-list.md; order as
/// in that page's example response.
pub const DEFAULT_SELECT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

impl Prop {
    /// The [`field`]s of [`User`] this property is derived from: a change to
    /// any of them is a change to the property (0: never changes). Changes to
    /// licenseAssignmentStates "are currently not tracked" by users/delta
    /// (https://learn.microsoft.com/en-us/graph/api/user-delta?view=graph-rest-1.0, note).
    pub fn fields(&self) -> u32 {
        use field::*;
        match self.kind {
            Kind::Id | Kind::SecurityIdentifier => ID,
            Kind::AccountEnabled => ACCOUNT_ENABLED,
            Kind::AssignedLicenses => LICENSES,
            Kind::BusinessPhones => BUSINESS_PHONES,
            Kind::City => CITY,
            Kind::Country => COUNTRY,
            Kind::CreatedDateTime | Kind::SignInSessionsValidFromDateTime => CREATED,
            Kind::Department => DEPARTMENT,
            Kind::DisplayName => DISPLAY_NAME,
            Kind::GivenName => GIVEN_NAME,
            Kind::JobTitle => JOB_TITLE,
            Kind::Mail => MAIL,
            Kind::MailNickname | Kind::UserPrincipalName => UPN,
            Kind::MobilePhone => MOBILE_PHONE,
            Kind::OfficeLocation => OFFICE_LOCATION,
            Kind::PreferredLanguage => PREFERRED_LANGUAGE,
            Kind::Surname => SURNAME,
            Kind::UsageLocation => USAGE_LOCATION,
            Kind::UserType | Kind::CreationType | Kind::ExternalUserState => USER_TYPE,
            Kind::ExternalUserStateChangeDateTime => USER_TYPE | CREATED,
            Kind::ProxyAddresses => PROXY_ADDRESSES,
            Kind::CompanyName => COMPANY_NAME,
            Kind::EmployeeHireDate => EMPLOYEE_HIRE_DATE,
            Kind::SignInActivity => LAST_SIGN_IN,
            Kind::Manager => MANAGER,
            Kind::ImAddresses => MAIL | USER_TYPE | LICENSES,
            Kind::Identities => USER_TYPE | UPN,
            Kind::LicenseAssignmentStates
            | Kind::OnPremisesExtensionAttributes
            | Kind::AuthorizationInfo
            | Kind::Null
            | Kind::Empty
            | Kind::SingleOnly => 0,
        }
    }

    /// True if the property renders as `null` for `u`.
    pub fn is_null(&self, u: &User) -> bool {
        match self.kind {
            Kind::Null | Kind::SingleOnly => true,
            Kind::City => u.city.is_none(),
            Kind::Country => u.country.is_none(),
            Kind::Department => u.department.is_none(),
            Kind::GivenName => u.given_name.is_none(),
            Kind::JobTitle => u.job_title.is_none(),
            Kind::Mail => u.mail.is_none(),
            Kind::MobilePhone => u.mobile_phone.is_none(),
            Kind::OfficeLocation => u.office_location.is_none(),
            Kind::PreferredLanguage => u.preferred_language.is_none(),
            Kind::Surname => u.surname.is_none(),
            Kind::UsageLocation => u.usage_location.is_none(),
            Kind::CompanyName => u.company_name.is_none(),
            Kind::EmployeeHireDate => u.employee_hire_date.is_none(),
            Kind::SignInActivity => u.last_sign_in.is_none(),
            Kind::Manager => u.manager_id.is_none(),
            Kind::CreationType
            | Kind::ExternalUserState
            | Kind::ExternalUserStateChangeDateTime => !u.is_guest(),
            _ => false,
        }
    }
}

impl Prop {
    /// signInActivity.
    pub fn is_sign_in_activity(&self) -> bool {
        self.kind == Kind::SignInActivity
    }

    /// The manager relationship.
    pub fn is_manager(&self) -> bool {
        self.kind == Kind::Manager
    }
}

/// A `$select` item's code in a state token: its index in the catalogue, or
/// [`STAR_CODE`] for `*`.
pub fn select_code(name: &str) -> Option<u8> {
    if name == "*" {
        return Some(STAR_CODE);
    }
    CATALOGUE
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|i| u8::try_from(i).ok())
}

/// The `$select` item a [`select_code`] stands for.
pub fn select_name(code: u8) -> Option<&'static str> {
    if code == STAR_CODE {
        return Some("*");
    }
    CATALOGUE.get(code as usize).map(|(n, _)| *n)
}

/// The code of `*` in state tokens.
pub const STAR_CODE: u8 = 255;

/// The canonical spelling of a `$select` item (`*` stays `*`).
pub fn canonical(name: &str) -> String {
    lookup(name).map_or_else(|| name.to_string(), |p| p.name.to_string())
}

fn lookup(name: &str) -> Option<Prop> {
    CATALOGUE
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(name, kind)| Prop { name, kind })
}

/// The default property set.
pub fn default_props() -> Vec<Prop> {
    DEFAULT_SELECT.iter().filter_map(|n| lookup(n)).collect()
}

/// Resolves `$select` names (case-insensitively) for a user list
/// (`collection = true`) or a single user.
pub fn resolve(names: &[String], collection: bool) -> Result<Vec<Prop>, GraphError> {
    let mut props: Vec<Prop> = Vec::with_capacity(names.len());
    for name in names {
        if name == "*" {
            // `*` is the entity's structural properties: not the manager
            // relationship, and not signInActivity ("Returned only on
            // $select", resources/user.md).
            for &(n, kind) in CATALOGUE {
                let excluded = matches!(kind, Kind::Manager | Kind::SignInActivity)
                    || (collection && kind == Kind::SingleOnly);
                if !excluded && !props.iter().any(|p| p.name == n) {
                    props.push(Prop { name: n, kind });
                }
            }
            continue;
        }
        let prop = lookup(name).ok_or_else(|| {
            GraphError::bad_request(format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.user'."
            ))
        })?;
        if collection && prop.kind == Kind::SingleOnly {
            // "returns a 501 Not Implemented error code" (user-list.md).
            return Err(GraphError::new(
                501,
                "NotImplemented",
                "This operation target is not yet supported.",
            ));
        }
        if !props.iter().any(|p| p.name == prop.name) {
            props.push(prop);
        }
    }
    Ok(props)
}

/// Tenant facts some derived properties need.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub initial_domain: &'a str,
}

/// One user restricted to `props`.
pub struct UserView<'a> {
    pub user: &'a User,
    pub props: &'a [Prop],
    pub ctx: Ctx<'a>,
}

impl Serialize for UserView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.props.len()))?;
        write_props(&mut map, self.user, self.props, self.ctx)?;
        map.end()
    }
}

/// A single user read: `@odata.context` followed by the properties.
pub struct SingleUser<'a> {
    pub context: &'a str,
    pub view: UserView<'a>,
}

impl Serialize for SingleUser<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.view.props.len() + 1))?;
        map.serialize_entry("@odata.context", self.context)?;
        write_props(&mut map, self.view.user, self.view.props, self.view.ctx)?;
        map.end()
    }
}

/// A page of a user list.
pub struct UserPage<'a> {
    pub context: &'a str,
    pub count: Option<usize>,
    pub next_link: Option<&'a str>,
    pub users: &'a [&'a User],
    pub props: &'a [Prop],
    pub ctx: Ctx<'a>,
}

struct Values<'a>(&'a UserPage<'a>);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.users.len()))?;
        for &user in self.0.users {
            seq.serialize_element(&UserView {
                user,
                props: self.0.props,
                ctx: self.0.ctx,
            })?;
        }
        seq.end()
    }
}

impl Serialize for UserPage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("@odata.context", self.context)?;
        if let Some(count) = self.count {
            map.serialize_entry("@odata.count", &count)?;
        }
        if let Some(next) = self.next_link {
            map.serialize_entry("@odata.nextLink", next)?;
        }
        map.serialize_entry("value", &Values(self))?;
        map.end()
    }
}

/// One entry of a users/delta page.
#[derive(Debug, Clone, Copy)]
pub enum DeltaItem<'a> {
    /// A user the client has not seen in this state: its standard
    /// representation ("Newly created instances … are represented … using
    /// their standard representation", concepts/delta-query-overview.md).
    Full(&'a User),
    /// An updated user, the fields changed since the client's token, and the
    /// manager it had before its last manager change.
    Changed(&'a User, u32, Option<&'a str>),
    /// A deleted user: `{"id", "@removed": {"reason"}}` (delta-query-overview.md).
    Removed(&'a str, &'static str),
}

/// A page of users/delta.
pub struct DeltaPage<'a> {
    pub context: &'a str,
    pub next_link: Option<&'a str>,
    pub delta_link: Option<&'a str>,
    pub items: &'a [DeltaItem<'a>],
    /// The selected properties (always including `id`).
    pub props: &'a [Prop],
    /// `Prefer: return=minimal` applied: updated users carry only `id` and
    /// the properties that changed.
    pub minimal: bool,
    pub ctx: Ctx<'a>,
}

struct DeltaEntry<'a> {
    item: DeltaItem<'a>,
    page: &'a DeltaPage<'a>,
}

impl Serialize for DeltaEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let (props, ctx) = (self.page.props, self.page.ctx);
        // user-delta.md, "Default: return the same properties as initial delta
        // request": changed properties with their new value (null included),
        // unchanged ones with their old value, and "If the property has never
        // been set before it will not be included in the response at all";
        // "Alternative: return only the changed properties" with
        // `Prefer: return=minimal`.
        // `manager@delta` (delta-query-overview.md: "Relationships on users
        // and groups are represented as annotations … propertyName@delta")
        // carries the manager in full items and, in changed items, only when
        // the manager changed.
        match self.item {
            DeltaItem::Full(u) => {
                write_props_where(&mut map, u, props, ctx, None, |p| !p.is_null(u))?
            }
            DeltaItem::Changed(u, changed, prev) if self.page.minimal => {
                write_props_where(&mut map, u, props, ctx, prev, |p| {
                    p.kind == Kind::Id || p.fields() & changed != 0
                })?
            }
            DeltaItem::Changed(u, changed, prev) => {
                write_props_where(&mut map, u, props, ctx, prev, |p| {
                    if p.kind == Kind::Manager {
                        p.fields() & changed != 0
                    } else {
                        !p.is_null(u) || p.fields() & changed != 0
                    }
                })?
            }
            DeltaItem::Removed(id, reason) => {
                #[derive(Serialize)]
                struct Removed {
                    reason: &'static str,
                }
                map.serialize_entry("id", id)?;
                map.serialize_entry("@removed", &Removed { reason })?;
            }
        }
        map.end()
    }
}

struct DeltaValues<'a>(&'a DeltaPage<'a>);

impl Serialize for DeltaValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .items
                .iter()
                .map(|&item| DeltaEntry { item, page: self.0 }),
        )
    }
}

impl Serialize for DeltaPage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("@odata.context", self.context)?;
        if let Some(next) = self.next_link {
            map.serialize_entry("@odata.nextLink", next)?;
        }
        if let Some(delta) = self.delta_link {
            map.serialize_entry("@odata.deltaLink", delta)?;
        }
        map.serialize_entry("value", &DeltaValues(self))?;
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssignedLicense<'a> {
    disabled_plans: [&'a str; 0],
    sku_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseAssignmentState<'a> {
    assigned_by_group: Option<&'a str>,
    disabled_plans: [&'a str; 0],
    error: &'a str,
    last_updated_date_time: &'a str,
    sku_id: &'a str,
    state: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    sign_in_type: &'a str,
    issuer: &'a str,
    issuer_assigned_id: Option<&'a str>,
}

struct Licenses<'a>(&'a [String]);

impl Serialize for Licenses<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|sku_id| AssignedLicense {
            disabled_plans: [],
            sku_id,
        }))
    }
}

struct LicenseStates<'a>(&'a User);

impl Serialize for LicenseStates<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let when = self.0.created_date_time.as_str();
        s.collect_seq(
            self.0
                .assigned_licenses
                .iter()
                .map(|sku_id| LicenseAssignmentState {
                    assigned_by_group: None,
                    disabled_plans: [],
                    error: "None",
                    last_updated_date_time: when,
                    sku_id,
                    state: "Active",
                }),
        )
    }
}

struct ExtensionAttributes;

impl Serialize for ExtensionAttributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const NAMES: [&str; 15] = [
            "extensionAttribute1",
            "extensionAttribute2",
            "extensionAttribute3",
            "extensionAttribute4",
            "extensionAttribute5",
            "extensionAttribute6",
            "extensionAttribute7",
            "extensionAttribute8",
            "extensionAttribute9",
            "extensionAttribute10",
            "extensionAttribute11",
            "extensionAttribute12",
            "extensionAttribute13",
            "extensionAttribute14",
            "extensionAttribute15",
        ];
        let mut map = s.serialize_map(Some(NAMES.len()))?;
        for n in NAMES {
            map.serialize_entry(n, &None::<&str>)?;
        }
        map.end()
    }
}

/// The mail nickname: the UPN's local part (for guests, `jane_gmail.com#EXT#`).
fn mail_nickname(u: &User) -> &str {
    u.user_principal_name
        .rsplit_once('@')
        .map(|(l, _)| l)
        .unwrap_or(&u.user_principal_name)
}

/// Cloud-only users' SID, derived from the object id (S-1-12-1-…).
pub(crate) fn security_identifier(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = hex
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    // The GUID's first three fields are little-endian in its byte form.
    let le = [
        bytes[3], bytes[2], bytes[1], bytes[0], bytes[5], bytes[4], bytes[7], bytes[6], bytes[8],
        bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ];
    let w = |i: usize| u32::from_le_bytes([le[i], le[i + 1], le[i + 2], le[i + 3]]);
    format!("S-1-12-1-{}-{}-{}-{}", w(0), w(4), w(8), w(12))
}

fn write_props<M: SerializeMap>(
    map: &mut M,
    u: &User,
    props: &[Prop],
    ctx: Ctx<'_>,
) -> Result<(), M::Error> {
    // signInActivity "is not returned for a user who has never signed in"
    // (resources/user.md).
    write_props_where(map, u, props, ctx, None, |p| {
        p.kind != Kind::SignInActivity || u.last_sign_in.is_some()
    })
}

/// The `manager@delta` entry for a manager: `{"@odata.type", "id"}` as in
/// the documented `members@delta` entries (api-reference/v1.0/api/group-delta.md),
/// with `"@removed": {"reason": "deleted"}` for a manager taken away — the
/// shape delta-query-groups.md shows for a removed member.
#[derive(Serialize)]
struct ManagerRef<'a> {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    id: &'a str,
    #[serde(rename = "@removed", skip_serializing_if = "Option::is_none")]
    removed: Option<Removed>,
}

#[derive(Serialize)]
struct Removed {
    reason: &'static str,
}

/// signInActivity (resources/signinactivity.md): the interactive sign-in is
/// the user's `last_sign_in`; the non-interactive one follows within two days
/// (a client refreshing tokens); the last successful one is the later of the
/// two. Request ids are derived from the user id and time.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignInActivity {
    last_non_interactive_sign_in_date_time: String,
    last_non_interactive_sign_in_request_id: String,
    last_sign_in_date_time: String,
    last_sign_in_request_id: String,
    last_successful_sign_in_date_time: String,
    last_successful_sign_in_request_id: String,
}

fn sign_in_activity(u: &User, last: &str) -> SignInActivity {
    let t = crate::tenant::parse_iso_seconds(last).unwrap_or(0);
    let h = crate::util::keyed_hash(t, u.id.as_bytes());
    let non_interactive = crate::util::iso8601(t + h % 172_800);
    let rid = |salt: u64| {
        crate::rng::guid_from(
            crate::rng::mix64(h ^ salt),
            crate::rng::mix64(h.rotate_left(13) ^ salt),
        )
    };
    SignInActivity {
        last_non_interactive_sign_in_request_id: rid(1),
        last_successful_sign_in_date_time: non_interactive.clone(),
        last_successful_sign_in_request_id: rid(1),
        last_non_interactive_sign_in_date_time: non_interactive,
        last_sign_in_date_time: last.to_string(),
        last_sign_in_request_id: rid(2),
    }
}

/// Like `write_props`, for the properties `include` accepts only.
fn write_props_where<M: SerializeMap>(
    map: &mut M,
    u: &User,
    props: &[Prop],
    ctx: Ctx<'_>,
    prev_manager: Option<&str>,
    include: impl Fn(&Prop) -> bool,
) -> Result<(), M::Error> {
    const NONE: Option<&str> = None;
    let empty: [&str; 0] = [];
    let guest = u.is_guest();
    for p in props.iter().filter(|p| include(p)) {
        let k = p.name;
        match p.kind {
            Kind::Id => map.serialize_entry(k, &u.id)?,
            Kind::AccountEnabled => map.serialize_entry(k, &u.account_enabled)?,
            Kind::AssignedLicenses => map.serialize_entry(k, &Licenses(&u.assigned_licenses))?,
            Kind::BusinessPhones => map.serialize_entry(k, &u.business_phones)?,
            Kind::City => map.serialize_entry(k, &u.city)?,
            Kind::Country => map.serialize_entry(k, &u.country)?,
            Kind::CreatedDateTime => map.serialize_entry(k, &u.created_date_time)?,
            Kind::Department => map.serialize_entry(k, &u.department)?,
            Kind::DisplayName => map.serialize_entry(k, &u.display_name)?,
            Kind::GivenName => map.serialize_entry(k, &u.given_name)?,
            Kind::JobTitle => map.serialize_entry(k, &u.job_title)?,
            Kind::Mail => map.serialize_entry(k, &u.mail)?,
            Kind::MailNickname => map.serialize_entry(k, mail_nickname(u))?,
            Kind::MobilePhone => map.serialize_entry(k, &u.mobile_phone)?,
            Kind::OfficeLocation => map.serialize_entry(k, &u.office_location)?,
            Kind::PreferredLanguage => map.serialize_entry(k, &u.preferred_language)?,
            Kind::Surname => map.serialize_entry(k, &u.surname)?,
            Kind::UsageLocation => map.serialize_entry(k, &u.usage_location)?,
            Kind::UserPrincipalName => map.serialize_entry(k, &u.user_principal_name)?,
            Kind::UserType => map.serialize_entry(k, &u.user_type)?,
            Kind::ProxyAddresses => map.serialize_entry(k, &u.proxy_addresses)?,
            Kind::CompanyName => map.serialize_entry(k, &u.company_name)?,
            Kind::EmployeeHireDate => map.serialize_entry(k, &u.employee_hire_date)?,
            Kind::SignInActivity => match &u.last_sign_in {
                Some(last) => map.serialize_entry(k, &sign_in_activity(u, last))?,
                None => map.serialize_entry(k, &NONE)?,
            },
            Kind::Manager => {
                let entry = match (&u.manager_id, prev_manager) {
                    (Some(m), _) => Some(ManagerRef {
                        odata_type: "#microsoft.graph.user",
                        id: m,
                        removed: None,
                    }),
                    (None, Some(old)) => Some(ManagerRef {
                        odata_type: "#microsoft.graph.user",
                        id: old,
                        removed: Some(Removed { reason: "deleted" }),
                    }),
                    (None, None) => None,
                };
                map.serialize_entry("manager@delta", &entry.as_slice())?
            }
            Kind::ImAddresses => match &u.mail {
                Some(m) if !guest && !u.assigned_licenses.is_empty() => {
                    map.serialize_entry(k, &[m])?
                }
                _ => map.serialize_entry(k, &empty)?,
            },
            Kind::Identities => {
                let identity = if guest {
                    Identity {
                        sign_in_type: "federated",
                        issuer: "ExternalAzureAD",
                        issuer_assigned_id: None,
                    }
                } else {
                    Identity {
                        sign_in_type: "userPrincipalName",
                        issuer: ctx.initial_domain,
                        issuer_assigned_id: Some(&u.user_principal_name),
                    }
                };
                map.serialize_entry(k, &[identity])?
            }
            Kind::CreationType => {
                map.serialize_entry(k, &if guest { Some("Invitation") } else { None })?
            }
            Kind::ExternalUserState => {
                map.serialize_entry(k, &if guest { Some("Accepted") } else { None })?
            }
            Kind::ExternalUserStateChangeDateTime => map.serialize_entry(
                k,
                &if guest {
                    Some(u.created_date_time.as_str())
                } else {
                    None
                },
            )?,
            Kind::LicenseAssignmentStates => map.serialize_entry(k, &LicenseStates(u))?,
            Kind::SecurityIdentifier => map.serialize_entry(k, &security_identifier(&u.id))?,
            Kind::SignInSessionsValidFromDateTime => {
                map.serialize_entry(k, &u.created_date_time)?
            }
            Kind::OnPremisesExtensionAttributes => map.serialize_entry(k, &ExtensionAttributes)?,
            Kind::AuthorizationInfo => {
                #[derive(Serialize)]
                #[serde(rename_all = "camelCase")]
                struct AuthorizationInfo<'a> {
                    certificate_user_ids: [&'a str; 0],
                }
                map.serialize_entry(
                    k,
                    &AuthorizationInfo {
                        certificate_user_ids: [],
                    },
                )?
            }
            Kind::Empty => map.serialize_entry(k, &empty)?,
            Kind::Null | Kind::SingleOnly => map.serialize_entry(k, &NONE)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{Tenant, TenantSpec};

    #[test]
    fn resolves_case_insensitively() {
        let p = resolve(&["DISPLAYNAME".into(), "Id".into(), "id".into()], true).expect("ok");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "displayName");
        assert_eq!(p[1].name, "id");
    }

    #[test]
    fn unknown_and_single_only() {
        let e = resolve(&["nope".into()], true).expect_err("unknown");
        assert_eq!(e.status, 400);
        assert!(e.message.contains("'nope'"));
        let e = resolve(&["aboutMe".into()], true).expect_err("501");
        assert_eq!(e.status, 501);
        assert!(resolve(&["aboutMe".into()], false).is_ok());
        let all = resolve(&["*".into()], true).expect("star");
        assert!(all.iter().all(|p| p.kind != Kind::SingleOnly));
    }

    #[test]
    fn renders_selected_properties() {
        let t = Tenant::generate(&TenantSpec::new(11, 30));
        let props = resolve(
            &[
                "id".into(),
                "assignedLicenses".into(),
                "mailNickname".into(),
                "securityIdentifier".into(),
                "onPremisesExtensionAttributes".into(),
            ],
            true,
        )
        .expect("ok");
        let view = UserView {
            user: &t.users[0],
            props: &props,
            ctx: Ctx {
                initial_domain: t.initial_domain(),
            },
        };
        let v = serde_json::to_value(&view).expect("json");
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 5);
        assert_eq!(v["id"], t.users[0].id.as_str());
        assert_eq!(v["mailNickname"], "admin");
        assert!(
            v["securityIdentifier"]
                .as_str()
                .unwrap_or("")
                .starts_with("S-1-12-1-")
        );
        assert!(v["onPremisesExtensionAttributes"]["extensionAttribute15"].is_null());
        assert_eq!(
            v["assignedLicenses"],
            t.users[0].to_json()["assignedLicenses"]
        );
    }

    #[test]
    fn default_set_matches_docs() {
        let names: Vec<&str> = default_props().iter().map(|p| p.name).collect();
        assert_eq!(names, DEFAULT_SELECT);
    }
}
