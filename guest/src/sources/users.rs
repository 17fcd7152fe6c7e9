//! Users, read with Graph's delta query (`GET /v1.0/users/delta`): the request with the
//! properties the engine stores, and one page of Graph's answer turned into entries (a
//! user, or an `@removed` id) in a single serde pass.
//!
//! What the pages mean, per Microsoft's documentation (microsoft-graph-docs-contrib):
//! - api-reference/v1.0/api/user-delta.md: query parameters are given once, in the initial
//!   request; Graph encodes them into the `nextLink` / `deltaLink` it returns, which the
//!   engine follows as they are. By default a replay "returns the same properties as
//!   selected in the initial delta query": a changed property with its new value
//!   ("including properties being set to null value"), an unchanged one with its old
//!   value, and "if the property has never been set before it will not be included in the
//!   response at all".
//! - concepts/delta-query-overview.md, "Resource representation in the delta query
//!   response": "Updated instances are represented by their id with *at least* the
//!   properties that have been updated". So in a replay a property ABSENT from an object
//!   keeps the stored value, while a property PRESENT with `null` clears it
//!   ([`UserChange::apply`]). In an initial round an object is the user's whole current
//!   state, so absent means "no value" ([`UserChange::into_person`]).
//! - Same page: "Removed instances are represented by their id and an @removed object";
//!   the reason `changed` "indicates the item was deleted and can be restored from
//!   deletedItems", `deleted` "indicates the item is deleted and cannot be restored"
//!   (concepts/delta-query-users.md: `changed` when a user is deleted, `deleted` when
//!   permanently deleted; a restored user comes back with no annotation).
//! - Selected besides the directory fields: `employeeHireDate` (stored as `hire-date`) and
//!   `proxyAddresses` (sorted, so that Graph's order is no change); with feature
//!   `managers`, the `manager` relationship, which users/delta reports as `manager@delta`
//!   ([`ManagerChange`]). A delta link encodes its `$select`, so the engine saves the
//!   select beside the link and runs an initial round when it changes
//!   (`crate::sync` round machinery).
//! - Page size: delta-query-overview.md says that for users and groups "`$top` is not
//!   supported", so the engine asks for 999-user pages with the OData preference
//!   `Prefer: odata.maxpagesize=999`, the header Graph's delta functions document for their
//!   page size (e.g. message-delta.md, event-delta.md: "Prefer: odata.maxpagesize={x}").
//!   Graph may serve smaller pages; the engine follows next links either way. Headers do
//!   not travel inside a next link (concepts/paging.md: "any additional request headers ...
//!   are not included by default in subsequent page requests"), so every delta request
//!   sends it.

use serde::{Deserialize, Deserializer};

use crate::graph::client::{BodyError, bad_json};
use crate::graph::{GraphClient, Need};
use crate::sources::unusable;
use crate::types::{Person, SyncError};
use crate::url::path_segment_encode;

/// The user properties the engine stores.
pub const SELECT: &str = "id,userPrincipalName,mail,givenName,surname,displayName,department,\
jobTitle,companyName,country,usageLocation,officeLocation,accountEnabled,userType,\
assignedLicenses,createdDateTime,employeeHireDate,proxyAddresses";

/// Added to [`SELECT`] by feature `managers`: Graph then tracks each user's manager and
/// reports it as `manager@delta` (see [`ManagerChange`]).
pub const SELECT_MANAGER: &str = "manager";

/// The page size the engine asks for.
pub const PAGE_SIZE: u32 = 999;

/// The `Prefer` header of every delta request (see the module notes).
pub const PREFER: (&str, &str) = ("Prefer", "odata.maxpagesize=999");

/// What reading users needs.
pub const NEED: Need = Need {
    permission: "User.Read.All",
    feature: "users",
};

/// What a page is, for error messages.
pub const WHAT: &str = "page of users";

/// The `$select` of a users delta round: the stored properties, plus the manager when
/// `managers` is on. A delta link encodes the select of the round that issued it, so the
/// engine saves this value beside the link and runs a full round when it changes.
pub fn select(managers: bool) -> String {
    if managers {
        format!("{SELECT},{SELECT_MANAGER}")
    } else {
        SELECT.to_owned()
    }
}

/// The initial delta request on the Graph endpoint `graph` (no trailing slash).
pub fn first_url(graph: &str, select: &str) -> String {
    format!("{graph}/v1.0/users/delta?$select={select}")
}

/// One page of a users delta round.
pub type DeltaPage = crate::sources::DeltaPage<Entry>;

/// One object of a delta page.
// Nearly every entry is a user: boxing it would cost an allocation per user to save room
// in the few removed ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A user that exists (created, updated, restored, or listed by an initial round).
    User(UserChange),
    /// A user that is gone. `restorable` for reason `changed` (soft-deleted, in
    /// deletedItems), false for `deleted` (permanently deleted).
    Removed { id: String, restorable: bool },
}

impl Entry {
    pub fn id(&self) -> &str {
        match self {
            Entry::User(u) => u.id(),
            Entry::Removed { id, .. } => id,
        }
    }
}

/// A property as a delta answer carries it: `None` when absent from the object,
/// `Some(None)` when present as `null`, `Some(Some(v))` when present with a value.
pub type Field<T> = Option<Option<T>>;

/// A user object of a delta page, every property with its presence.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserChange {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "@removed", default, deserialize_with = "present")]
    removed: Field<RemovedReason>,
    #[serde(default, deserialize_with = "present")]
    pub user_principal_name: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub mail: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub given_name: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub surname: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub display_name: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub department: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub job_title: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub company_name: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub country: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub usage_location: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub office_location: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub account_enabled: Field<bool>,
    #[serde(default, deserialize_with = "present")]
    pub user_type: Field<String>,
    #[serde(default, deserialize_with = "present_skus")]
    pub assigned_licenses: Field<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub created_date_time: Field<String>,
    #[serde(default, deserialize_with = "present")]
    pub employee_hire_date: Field<String>,
    #[serde(default, deserialize_with = "present_sorted")]
    pub proxy_addresses: Field<Vec<String>>,
    /// `manager@delta`, when the object carries it (feature `managers`).
    #[serde(rename = "manager@delta", default, deserialize_with = "manager_delta")]
    pub manager: Option<ManagerChange>,
}

/// What a user object's `manager@delta` says.
///
/// The documented shape (concepts/delta-query-users.md and the Microsoft Graph API design
/// pattern "Change tracking", whose users/delta example carries
/// `"manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "..."}]`) is an array
/// of directory-object references; a reference that ends the relationship carries an
/// `@removed` object, as relationship changes do in delta answers
/// (concepts/delta-query-groups.md, `members@delta`). Absent: the manager did not change
/// (a replay keeps the stored one; an initial round lists the whole state, so absent means
/// no manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerChange {
    /// The user's manager is now this object id.
    Set(String),
    /// The user no longer has a manager.
    Clear,
}

#[derive(Deserialize)]
struct DirectoryRef {
    id: Option<String>,
    #[serde(rename = "@removed", default, deserialize_with = "present")]
    removed: Field<serde::de::IgnoredAny>,
}

/// `manager@delta`: the last reference that is not `@removed` sets the manager; an array
/// of removals only (or an empty one, or `null`) clears it.
fn manager_delta<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ManagerChange>, D::Error> {
    let refs: Option<Vec<DirectoryRef>> = Option::deserialize(d)?;
    let current = refs
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.removed.is_none())
        .filter_map(|r| r.id.filter(|id| !id.trim().is_empty()))
        .next_back()
        .map(crate::ids::normalize);
    Ok(Some(match current {
        Some(id) => ManagerChange::Set(id),
        None => ManagerChange::Clear,
    }))
}

/// A list of strings (or null) sorted, so that Graph's order does not look like a change.
fn present_sorted<'de, D: Deserializer<'de>>(d: D) -> Result<Field<Vec<String>>, D::Error> {
    let list: Option<Vec<Option<String>>> = Option::deserialize(d)?;
    Ok(Some(list.map(|l| {
        let mut v: Vec<String> = l.into_iter().flatten().collect();
        v.sort_unstable();
        v.dedup();
        v
    })))
}

#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
struct RemovedReason {
    reason: Option<String>,
}

/// Marks a property as present: `null` becomes `Some(None)`. With `#[serde(default)]`, an
/// absent property stays `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Field<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignedLicense {
    sku_id: Option<String>,
}

/// `assignedLicenses: [{"skuId": "...", "disabledPlans": [...]}, ...]` (or null) as the
/// sorted SKU ids, so that the order Graph lists them in does not look like a change.
fn present_skus<'de, D: Deserializer<'de>>(d: D) -> Result<Field<Vec<String>>, D::Error> {
    let list: Option<Vec<AssignedLicense>> = Option::deserialize(d)?;
    Ok(Some(list.map(|list| {
        let mut ids: Vec<String> = list
            .into_iter()
            .filter_map(|l| l.sku_id)
            .map(crate::ids::normalize)
            .filter(|id| !id.is_empty())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    })))
}

/// Sets `slot` from a present property (`null` clears it); an absent one leaves it.
fn set<T>(slot: &mut Option<T>, field: Field<T>) {
    if let Some(value) = field {
        *slot = value;
    }
}

impl UserChange {
    /// The object id (checked non-empty when the page was parsed).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// True when the object carries a non-empty userPrincipalName.
    pub fn has_user_principal_name(&self) -> bool {
        matches!(&self.user_principal_name, Some(Some(u)) if !u.trim().is_empty())
    }

    /// The user as an initial round lists it: the whole current state, so an absent
    /// property has no value (user-delta.md: a property never set "will not be included").
    pub fn into_person(mut self) -> Person {
        let blank = blank_person(self.id.take().unwrap_or_default());
        self.apply(blank)
    }

    /// A user a replay reports that the store does not hold: created from what the object
    /// carries, or `None` when it has no userPrincipalName (a person cannot be stored
    /// without one; the next full sync brings it in).
    pub fn into_new_person(self) -> Option<Person> {
        self.has_user_principal_name().then(|| self.into_person())
    }

    /// Merges a replayed change into the stored person: a present property replaces the
    /// stored value (`null` clears it), an absent one keeps it. The identity properties
    /// never become empty: a `null` userPrincipalName or accountEnabled keeps the stored
    /// value, a `null` userType is derived again from the userPrincipalName.
    pub fn apply(self, mut p: Person) -> Person {
        if let Some(Some(upn)) = self.user_principal_name
            && !upn.trim().is_empty()
        {
            p.user_principal_name = upn;
        }
        set(&mut p.mail, self.mail);
        set(&mut p.given_name, self.given_name);
        set(&mut p.surname, self.surname);
        set(&mut p.display_name, self.display_name);
        set(&mut p.department, self.department);
        set(&mut p.job_title, self.job_title);
        set(&mut p.company_name, self.company_name);
        set(&mut p.country, self.country);
        set(&mut p.usage_location, self.usage_location);
        set(&mut p.office_location, self.office_location);
        if let Some(Some(enabled)) = self.account_enabled {
            p.account_enabled = enabled;
        }
        match self.user_type {
            Some(Some(t)) if !t.is_empty() => p.user_type = t,
            Some(_) => p.user_type.clear(),
            None => {}
        }
        if let Some(licences) = self.assigned_licenses {
            p.licences = licences.unwrap_or_default();
        }
        set(&mut p.created_at, self.created_date_time);
        set(&mut p.hire_date, self.employee_hire_date);
        if let Some(addresses) = self.proxy_addresses {
            p.proxy_addresses = addresses.unwrap_or_default();
        }
        match self.manager {
            Some(ManagerChange::Set(id)) => p.manager_id = Some(id),
            Some(ManagerChange::Clear) => p.manager_id = None,
            None => {}
        }
        if p.user_type.is_empty() {
            // userType is null for some old accounts: external (#EXT#) ones are guests.
            p.user_type = if p.user_principal_name.contains("#EXT#") {
                "Guest"
            } else {
                "Member"
            }
            .to_owned();
        }
        p
    }
}

/// A person with only an id: what an initial round's object is merged into.
pub fn blank_person(object_id: String) -> Person {
    Person {
        object_id,
        user_principal_name: String::new(),
        mail: None,
        given_name: None,
        surname: None,
        display_name: None,
        department: None,
        job_title: None,
        company_name: None,
        country: None,
        usage_location: None,
        office_location: None,
        // Selected explicitly, so Graph returns it; when it does not, assume the account
        // works rather than report every account as disabled.
        account_enabled: true,
        user_type: String::new(),
        licences: Vec::new(),
        created_at: None,
        manager_id: None,
        hire_date: None,
        proxy_addresses: Vec::new(),
        last_sign_in: None,
    }
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<UserChange>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// Parses one delta page read from `url`. A JSON error comes back as
/// [`BodyError::Json`] (the client decides whether to read the page again); a page that is
/// JSON but unusable as [`BodyError::Unusable`].
pub fn parse_page(body: &[u8], url: &str) -> Result<DeltaPage, BodyError> {
    let raw: RawPage = crate::graph::json::from_body(body)?;
    let Some(value) = raw.value else {
        return Err(BodyError::Unusable(unusable(
            url,
            "the page has no \"value\" list of users".into(),
        )));
    };
    let mut entries = Vec::with_capacity(value.len());
    for (i, mut u) in value.into_iter().enumerate() {
        let id = match u.id.take() {
            Some(id) if !id.trim().is_empty() => crate::ids::normalize(id),
            _ => {
                return Err(BodyError::Unusable(unusable(
                    url,
                    format!("user #{} on the page has no id", i + 1),
                )));
            }
        };
        entries.push(match u.removed.take() {
            // Only a permanent deletion is final; `changed`, an unknown or a missing
            // reason may be undone, so the engine never deletes on it.
            Some(removed) => Entry::Removed {
                restorable: removed.and_then(|r| r.reason).as_deref() != Some("deleted"),
                id,
            },
            None => {
                u.id = Some(id);
                Entry::User(u)
            }
        });
    }
    Ok(DeltaPage {
        entries,
        next_link: raw.next_link,
        delta_link: raw.delta_link,
    })
}

/// Reads users whole by object id, as [`UserChange`]s that
/// [`UserChange::into_person`] turns into people like an initial round's objects: one
/// result per id, in order, `None` for a user Graph no longer has (404).
///
/// `GET /users/{id}?$select=...` (api-reference/v1.0/api/user-get.md) with the properties
/// `select` (a users delta round's [`select`]) names, sent through JSON batches
/// (`crate::graph::batch`). `manager` is a relationship, not a property a user read can
/// select (users/delta alone tracks it with `$select=manager`): with it, each user's
/// manager is read too, `GET /users/{id}/manager?$select=id`
/// (api-reference/v1.0/api/user-list-manager.md), whose 404 means the user has none. Used
/// for users a delta replay reports changed with only some properties (no
/// userPrincipalName) while the store does not hold them.
pub fn fetch_by_ids(
    graph: &mut GraphClient<'_>,
    ids: &[String],
    select: &str,
) -> Result<Vec<Option<UserChange>>, SyncError> {
    let managers = select.split(',').any(|p| p.trim() == SELECT_MANAGER);
    let properties: Vec<&str> = select
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != SELECT_MANAGER)
        .collect();
    let properties = properties.join(",");
    let per_user = if managers { 2 } else { 1 };
    let mut paths = Vec::with_capacity(ids.len() * per_user);
    for id in ids {
        let id = path_segment_encode(id);
        paths.push(format!("/users/{id}?$select={properties}"));
        if managers {
            paths.push(format!("/users/{id}/manager?$select=id"));
        }
    }
    let found = graph.get_batch(&paths, NEED)?;
    let graph_url = graph.graph().to_owned();
    let mut out = Vec::with_capacity(ids.len());
    for ((id, answers), paths) in ids
        .iter()
        .zip(found.chunks(per_user))
        .zip(paths.chunks(per_user))
    {
        let Some(body) = &answers[0] else {
            out.push(None);
            continue;
        };
        let url = format!("{graph_url}/v1.0{}", paths[0]);
        let mut user: UserChange = crate::graph::json::from_body(body)
            .map_err(|e| in_batch(bad_json(&url, "user", &e)))?;
        if !user.id().trim().eq_ignore_ascii_case(id.trim()) {
            return Err(in_batch(unusable(
                &url,
                format!("it is the user {:?}, not the one asked for", user.id()),
            )));
        }
        user.id = user.id.take().map(crate::ids::normalize);
        // A user read is the user's whole current state: no annotations apply.
        user.removed = None;
        if managers {
            user.manager = Some(match &answers[1] {
                Some(body) => {
                    let url = format!("{graph_url}/v1.0{}", paths[1]);
                    let manager: DirectoryRef = crate::graph::json::from_body(body)
                        .map_err(|e| in_batch(bad_json(&url, "manager", &e)))?;
                    match manager.id.filter(|m| !m.trim().is_empty()) {
                        Some(m) => ManagerChange::Set(crate::ids::normalize(m)),
                        None => {
                            return Err(in_batch(unusable(&url, "the manager has no id".into())));
                        }
                    }
                }
                None => ManagerChange::Clear,
            });
        }
        out.push(Some(user));
    }
    Ok(out)
}

/// Says that an answer was read from a JSON batch.
fn in_batch(e: SyncError) -> SyncError {
    match e {
        SyncError::BadResponse(mut f) => {
            f.message.push_str(" (in a JSON batch)");
            SyncError::BadResponse(f)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &[u8]) -> DeltaPage {
        parse_page(body, "https://graph.test/v1.0/users/delta").unwrap()
    }

    fn user(e: &Entry) -> &UserChange {
        match e {
            Entry::User(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_url_selects_the_stored_properties_without_top() {
        let u = first_url("https://graph.microsoft.com", &select(false));
        assert_eq!(
            u,
            "https://graph.microsoft.com/v1.0/users/delta?$select=id,userPrincipalName,mail,\
             givenName,surname,displayName,department,jobTitle,companyName,country,\
             usageLocation,officeLocation,accountEnabled,userType,assignedLicenses,\
             createdDateTime,employeeHireDate,proxyAddresses"
        );
        assert!(!u.contains("$top"), "users/delta does not support $top");
        assert_eq!(PREFER, ("Prefer", "odata.maxpagesize=999"));
        assert!(PREFER.1.ends_with(&PAGE_SIZE.to_string()));
        assert_eq!(select(true), format!("{SELECT},manager"));
    }

    #[test]
    fn hire_date_proxy_addresses_and_manager() {
        let p = page(
            br##"{"value": [
              {"id": "a", "userPrincipalName": "a@c.com", "employeeHireDate": "2020-02-03T00:00:00Z",
               "proxyAddresses": ["smtp:alias@c.com", "SMTP:a@c.com"],
               "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "boss"}]},
              {"id": "b", "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "boss",
               "@removed": {"reason": "deleted"}}]},
              {"id": "c", "manager@delta": [
                 {"@odata.type": "#microsoft.graph.user", "id": "old", "@removed": {"reason": "changed"}},
                 {"@odata.type": "#microsoft.graph.user", "id": "new"}]},
              {"id": "d", "manager@delta": []},
              {"id": "e", "proxyAddresses": null, "employeeHireDate": null},
              {"id": "f"}
            ]}"##,
        );
        let a = user(&p.entries[0]).clone().into_person();
        assert_eq!(a.hire_date.as_deref(), Some("2020-02-03T00:00:00Z"));
        assert_eq!(a.proxy_addresses, vec!["SMTP:a@c.com", "smtp:alias@c.com"]);
        assert_eq!(a.manager_id.as_deref(), Some("boss"));
        let mut s = stored();
        s.manager_id = Some("boss".into());
        s.hire_date = Some("2019-01-01T00:00:00Z".into());
        s.proxy_addresses = vec!["SMTP:old@contoso.com".into()];
        // A removal entry clears the manager; a removal and an addition set the new one.
        assert_eq!(
            user(&p.entries[1]).clone().apply(s.clone()).manager_id,
            None
        );
        assert_eq!(
            user(&p.entries[2])
                .clone()
                .apply(s.clone())
                .manager_id
                .as_deref(),
            Some("new")
        );
        assert_eq!(
            user(&p.entries[3]).clone().apply(s.clone()).manager_id,
            None
        );
        // Null clears; absent keeps.
        let e = user(&p.entries[4]).clone().apply(s.clone());
        assert!(e.proxy_addresses.is_empty());
        assert_eq!(e.hire_date, None);
        assert_eq!(e.manager_id.as_deref(), Some("boss"));
        let f = user(&p.entries[5]).clone().apply(s.clone());
        assert_eq!(f, s);
    }

    #[test]
    fn parses_an_initial_page_into_people() {
        let body = br#"{
          "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id,mail)",
          "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc",
          "value": [
            {"id": "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0", "userPrincipalName": "adele@contoso.com",
             "mail": "Adele@contoso.com", "givenName": "Adele", "surname": "Vance",
             "displayName": "Adele Vance", "department": "Retail", "jobTitle": null,
             "companyName": null, "country": "United States", "usageLocation": "US",
             "officeLocation": "18/2111", "accountEnabled": true, "userType": "Member",
             "assignedLicenses": [{"disabledPlans": [], "skuId": "sku-b"}, {"disabledPlans": ["x"], "skuId": "sku-a"}],
             "createdDateTime": "2024-01-02T03:04:05Z", "businessPhones": ["+1 425"], "extra": {"nested": [1, 2]}},
            {"id": "x2", "userPrincipalName": "bob_fabrikam.com#EXT#@contoso.onmicrosoft.com",
             "userType": null, "assignedLicenses": null, "accountEnabled": false},
            {"id": "x3", "userPrincipalName": "Jos\u00e9@contoso.com", "mail": "jos\u00e9@contoso.com"}
          ]
        }"#;
        let p = page(body);
        assert_eq!(
            p.next_link.as_deref(),
            Some("https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc")
        );
        assert_eq!(p.delta_link, None);
        let people: Vec<Person> = p
            .entries
            .iter()
            .map(|e| user(e).clone().into_person())
            .collect();
        assert_eq!(people.len(), 3);
        let a = &people[0];
        assert_eq!(a.object_id, "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0");
        assert_eq!(a.mail.as_deref(), Some("Adele@contoso.com"));
        assert_eq!(a.job_title, None);
        assert_eq!(a.licences, vec!["sku-a", "sku-b"]);
        assert_eq!(a.created_at.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert!(a.account_enabled);
        let b = &people[1];
        assert_eq!(b.user_type, "Guest");
        assert!(b.licences.is_empty());
        assert!(!b.account_enabled);
        let c = &people[2];
        assert_eq!(c.user_type, "Member");
        assert_eq!(c.user_principal_name, "José@contoso.com");
        assert_eq!(c.department, None, "absent in an initial round: no value");
    }

    #[test]
    fn removed_entries_and_their_reasons() {
        let p = page(
            br#"{"@odata.deltaLink": "https://g/v1.0/users/delta?$deltatoken=t", "value": [
              {"id": "a", "@removed": {"reason": "changed"}},
              {"id": "b", "@removed": {"reason": "deleted"}},
              {"id": "c", "@removed": {}},
              {"id": "d", "@removed": {"reason": "somethingNew"}},
              {"id": "e", "@removed": null},
              {"id": "f", "displayName": "Back"}
            ]}"#,
        );
        assert_eq!(
            p.delta_link.as_deref(),
            Some("https://g/v1.0/users/delta?$deltatoken=t")
        );
        let got: Vec<_> = p
            .entries
            .iter()
            .map(|e| match e {
                Entry::Removed { id, restorable } => (id.as_str(), Some(*restorable)),
                Entry::User(u) => (u.id(), None),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", Some(true)),
                ("b", Some(false)),
                ("c", Some(true)),
                ("d", Some(true)),
                ("e", Some(true)),
                ("f", None)
            ]
        );
        assert_eq!(p.entries[5].id(), "f");
    }

    fn stored() -> Person {
        let mut p = blank_person("id-1".into());
        p.user_principal_name = "old@contoso.com".into();
        p.mail = Some("old@contoso.com".into());
        p.department = Some("Sales".into());
        p.job_title = Some("Rep".into());
        p.office_location = Some("B1".into());
        p.account_enabled = false;
        p.user_type = "Member".into();
        p.licences = vec!["sku-1".into()];
        p.created_at = Some("2020-01-01T00:00:00Z".into());
        p
    }

    #[test]
    fn a_replayed_update_merges_absent_keeps_and_null_clears() {
        let p = page(
            br#"{"value": [{"id": "id-1", "department": "Research", "jobTitle": null,
                 "assignedLicenses": [], "accountEnabled": true}]}"#,
        );
        let merged = user(&p.entries[0]).clone().apply(stored());
        let mut want = stored();
        want.department = Some("Research".into());
        want.job_title = None;
        want.licences = vec![];
        want.account_enabled = true;
        assert_eq!(merged, want);

        // Nothing but the id: nothing changes.
        let p = page(br#"{"value": [{"id": "id-1"}]}"#);
        assert_eq!(user(&p.entries[0]).clone().apply(stored()), stored());

        // Identity properties never become empty; a null userType is derived again.
        let p = page(
            br#"{"value": [{"id": "id-1", "userPrincipalName": null, "accountEnabled": null,
                 "userType": null, "assignedLicenses": null, "mail": null}]}"#,
        );
        let merged = user(&p.entries[0]).clone().apply(stored());
        assert_eq!(merged.user_principal_name, "old@contoso.com");
        assert!(!merged.account_enabled);
        assert_eq!(merged.user_type, "Member");
        assert!(merged.licences.is_empty());
        assert_eq!(merged.mail, None);
        assert_eq!(merged.department.as_deref(), Some("Sales"));

        // A new UPN and type replace the old ones.
        let p = page(
            br#"{"value": [{"id": "id-1", "userPrincipalName": "x_f.com#EXT#@contoso.com",
                 "userType": "Guest"}]}"#,
        );
        let merged = user(&p.entries[0]).clone().apply(stored());
        assert_eq!(merged.user_principal_name, "x_f.com#EXT#@contoso.com");
        assert_eq!(merged.user_type, "Guest");
    }

    #[test]
    fn an_unknown_user_needs_a_user_principal_name_to_be_created() {
        let p = page(
            br#"{"value": [{"id": "n1", "department": "Research"},
                           {"id": "n2", "userPrincipalName": "  "},
                           {"id": "n3", "userPrincipalName": "new@contoso.com", "department": "R"}]}"#,
        );
        assert!(user(&p.entries[0]).clone().into_new_person().is_none());
        assert!(user(&p.entries[1]).clone().into_new_person().is_none());
        let n = user(&p.entries[2]).clone().into_new_person().unwrap();
        assert_eq!(n.object_id, "n3");
        assert_eq!(n.user_principal_name, "new@contoso.com");
        assert_eq!(n.department.as_deref(), Some("R"));
        assert_eq!(n.mail, None);
        assert!(n.account_enabled);
        assert_eq!(n.user_type, "Member");
    }

    mod fetch {
        use super::super::*;
        use crate::fakes::{
            FakeClock, FakeHttp, json_response, person, token_response, user_id, user_json,
        };
        use crate::graph::token::Credentials;

        const BATCH: &str = "POST https://graph.test/v1.0/$batch";

        fn creds() -> Credentials {
            crate::fakes::credentials()
        }

        fn answer(responses: Vec<serde_json::Value>) -> crate::platform::HttpResponse {
            json_response(
                200,
                &serde_json::json!({ "responses": responses }).to_string(),
            )
        }

        fn status(id: u32, status: u16, body: serde_json::Value) -> serde_json::Value {
            serde_json::json!({"id": id.to_string(), "status": status, "headers": {}, "body": body})
        }

        fn not_found(id: u32) -> serde_json::Value {
            status(
                id,
                404,
                serde_json::json!({"error": {"code": "Request_ResourceNotFound",
                    "message": "Resource 'x' does not exist or one of its queried reference-property objects are not present."}}),
            )
        }

        fn sent_urls(http: &FakeHttp, n: usize) -> Vec<String> {
            let v: serde_json::Value =
                serde_json::from_slice(http.sent[n].body.as_deref().unwrap()).unwrap();
            v["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["url"].as_str().unwrap().to_owned())
                .collect()
        }

        #[test]
        fn users_are_read_whole_with_the_rounds_select_and_their_manager() {
            let mut http = FakeHttp::new();
            http.push_ok("POST https://login.test/", token_response("tok", 3600));
            http.push_ok(
                BATCH,
                answer(vec![
                    not_found(6),
                    status(5, 200, user_json(3)),
                    not_found(4),
                    not_found(3),
                    status(
                        2,
                        200,
                        serde_json::json!({"@odata.type": "#microsoft.graph.user", "id": "boss"}),
                    ),
                    status(1, 200, user_json(1)),
                ]),
            );
            let mut clock = FakeClock::default();
            let mut c = GraphClient::new(&mut http, &mut clock, creds());
            let ids = vec![user_id(1), user_id(2), user_id(3)];
            let got = fetch_by_ids(&mut c, &ids, &select(true)).unwrap();
            drop(c);
            assert_eq!(got.len(), 3);
            let one = got[0].clone().unwrap().into_person();
            let mut want = person(1);
            want.manager_id = Some("boss".into());
            assert_eq!(
                one, want,
                "the person an initial round makes, with the manager"
            );
            assert!(got[1].is_none(), "gone");
            let three = got[2].clone().unwrap().into_person();
            assert_eq!(three, person(3), "no manager");
            let u1 = user_id(1);
            assert_eq!(
                sent_urls(&http, 1),
                vec![
                    format!("/users/{u1}?$select={SELECT}"),
                    format!("/users/{u1}/manager?$select=id"),
                    format!("/users/{}?$select={SELECT}", user_id(2)),
                    format!("/users/{}/manager?$select=id", user_id(2)),
                    format!("/users/{}?$select={SELECT}", user_id(3)),
                    format!("/users/{}/manager?$select=id", user_id(3)),
                ]
            );
            http.assert_done();
        }

        #[test]
        fn without_managers_one_read_per_user_and_bad_bodies_name_the_url() {
            let mut http = FakeHttp::new();
            http.push_ok("POST https://login.test/", token_response("tok", 3600));
            http.push_ok(BATCH, answer(vec![status(1, 200, user_json(7))]));
            http.push_ok(
                BATCH,
                answer(vec![status(1, 200, serde_json::json!({"id": 5}))]),
            );
            http.push_ok(BATCH, answer(vec![status(1, 200, user_json(8))]));
            let mut clock = FakeClock::default();
            let mut c = GraphClient::new(&mut http, &mut clock, creds());
            let got = fetch_by_ids(&mut c, &[user_id(7)], &select(false)).unwrap();
            assert_eq!(got[0].clone().unwrap().into_person(), person(7));

            let SyncError::BadResponse(f) =
                fetch_by_ids(&mut c, &[user_id(7)], &select(false)).unwrap_err()
            else {
                panic!()
            };
            assert_eq!(
                f.url,
                format!(
                    "https://graph.test/v1.0/users/{}?$select={SELECT}",
                    user_id(7)
                )
            );
            assert!(f.message.contains("not a valid user"), "{}", f.message);
            assert!(f.message.contains("in a JSON batch"), "{}", f.message);

            // The answer must be the user asked for.
            let SyncError::BadResponse(f) =
                fetch_by_ids(&mut c, &[user_id(7)], &select(false)).unwrap_err()
            else {
                panic!()
            };
            assert!(f.message.contains("not the one asked for"), "{}", f.message);
            drop(c);
            assert_eq!(
                sent_urls(&http, 1),
                vec![format!("/users/{}?$select={SELECT}", user_id(7))]
            );
            http.assert_done();
        }
    }

    #[test]
    fn last_page_may_be_empty() {
        let p = page(br#"{"value": [], "@odata.deltaLink": "https://g/d?$deltatoken=x"}"#);
        assert!(p.entries.is_empty());
        assert!(p.next_link.is_none());
        assert!(p.delta_link.is_some());
    }

    #[test]
    fn bad_pages_name_the_url_and_the_position() {
        let url = "https://graph.test/v1.0/users/delta?$skiptoken=T0K3N";
        // Not JSON, or cut short: a JSON error the client may retry.
        for (body, category) in [
            (&b"{\"value\": [ {\"id\": \"a\",,} ]}"[..], "Syntax"),
            (b"<html>gateway</html>", "Syntax"),
            (b"{\"value\": [{\"id\": \"a\"", "Eof"),
            (b"", "Eof"),
            (b"{\"value\": {}}", "Data"),
            (b"{\"value\": [{\"id\": 5}]}", "Data"),
        ] {
            let Err(BodyError::Json(e)) = parse_page(body, url) else {
                panic!("{body:?}")
            };
            assert_eq!(format!("{:?}", e.classify()), category, "{body:?}");
        }
        // JSON, but unusable.
        for (body, expect) in [
            (&b"{\"odata\": 1}"[..], "no \"value\""),
            (
                b"{\"value\": [{\"userPrincipalName\": \"x\"}]}",
                "user #1 on the page has no id",
            ),
            (
                b"{\"value\": [{\"id\": \" \", \"@removed\": {}}]}",
                "user #1 on the page has no id",
            ),
        ] {
            let Err(BodyError::Unusable(SyncError::BadResponse(f))) = parse_page(body, url) else {
                panic!("{body:?}")
            };
            assert_eq!(f.url, "https://graph.test/v1.0/users/delta?$skiptoken=...");
            assert!(f.message.contains(expect), "{} / {expect}", f.message);
            assert!(!f.message.contains("T0K3N"), "{}", f.message);
        }
    }
}
