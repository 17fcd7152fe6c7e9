//! Users: the `GET /v1.0/users` request with the properties the engine stores, and one
//! page of Graph's answer turned into WIT `person` records in a single serde pass.

use serde::{Deserialize, Deserializer};

use crate::graph::Need;
use crate::graph::client::bad_json;
use crate::types::{HttpFailure, Person, SyncError};
use crate::url::display_url;

/// The user properties the engine stores.
pub const SELECT: &str = "id,userPrincipalName,mail,givenName,surname,displayName,department,\
jobTitle,companyName,country,usageLocation,officeLocation,accountEnabled,userType,\
assignedLicenses,createdDateTime";

/// The largest page Graph serves for users.
pub const PAGE_SIZE: u32 = 999;

/// What reading users needs.
pub const NEED: Need = Need {
    permission: "User.Read.All",
    feature: "users",
};

/// The first page's URL on the Graph endpoint `graph` (no trailing slash).
pub fn first_url(graph: &str) -> String {
    format!("{graph}/v1.0/users?$select={SELECT}&$top={PAGE_SIZE}")
}

/// One page of users.
pub struct UsersPage {
    pub people: Vec<Person>,
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<GraphUser>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A Graph user as selected; unknown properties are skipped, nulls become `None`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    id: Option<String>,
    user_principal_name: Option<String>,
    mail: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    display_name: Option<String>,
    department: Option<String>,
    job_title: Option<String>,
    company_name: Option<String>,
    country: Option<String>,
    usage_location: Option<String>,
    office_location: Option<String>,
    account_enabled: Option<bool>,
    user_type: Option<String>,
    #[serde(default, deserialize_with = "sku_ids")]
    assigned_licenses: Vec<String>,
    created_date_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignedLicense {
    sku_id: Option<String>,
}

/// `assignedLicenses: [{"skuId": "...", "disabledPlans": [...]}, ...]` (or null) as the
/// sorted SKU ids, so that the order Graph lists them in does not look like a change.
fn sku_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list: Option<Vec<AssignedLicense>> = Option::deserialize(d)?;
    let mut ids: Vec<String> = list
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| l.sku_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Parses one page read from `url`.
pub fn parse_page(body: &[u8], url: &str) -> Result<UsersPage, SyncError> {
    let raw: RawPage =
        serde_json::from_slice(body).map_err(|e| bad_json(url, "page of users", &e))?;
    let Some(value) = raw.value else {
        return Err(bad(url, "the page has no \"value\" list of users".into()));
    };
    let mut people = Vec::with_capacity(value.len());
    for (i, u) in value.into_iter().enumerate() {
        people.push(
            to_person(u).map_err(|why| bad(url, format!("user #{} on the page {why}", i + 1)))?,
        );
    }
    Ok(UsersPage {
        people,
        next_link: raw.next_link,
    })
}

fn bad(url: &str, message: String) -> SyncError {
    SyncError::BadResponse(HttpFailure {
        url: display_url(url),
        status: Some(200),
        graph_code: None,
        message: format!(
            "the answer to GET {} is not usable: {message}",
            display_url(url)
        ),
    })
}

fn to_person(u: GraphUser) -> Result<Person, &'static str> {
    let object_id = match u.id {
        Some(id) if !id.trim().is_empty() => id,
        _ => return Err("has no id"),
    };
    let user_principal_name = u.user_principal_name.unwrap_or_default();
    // userType is null for some old accounts: external (#EXT#) ones are guests.
    let user_type = match u.user_type {
        Some(t) if !t.is_empty() => t,
        _ if user_principal_name.contains("#EXT#") => "Guest".to_owned(),
        _ => "Member".to_owned(),
    };
    Ok(Person {
        object_id,
        user_principal_name,
        mail: u.mail,
        given_name: u.given_name,
        surname: u.surname,
        display_name: u.display_name,
        department: u.department,
        job_title: u.job_title,
        company_name: u.company_name,
        country: u.country,
        usage_location: u.usage_location,
        office_location: u.office_location,
        // Selected explicitly, so Graph returns it; when it does not, assume the account
        // works rather than report every account as disabled.
        account_enabled: u.account_enabled.unwrap_or(true),
        user_type,
        licences: u.assigned_licenses,
        created_at: u.created_date_time,
        manager_id: None,
        hire_date: None,
        proxy_addresses: Vec::new(),
        last_sign_in: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_url_selects_the_stored_properties() {
        let u = first_url("https://graph.microsoft.com");
        assert_eq!(
            u,
            "https://graph.microsoft.com/v1.0/users?$select=id,userPrincipalName,mail,givenName,\
             surname,displayName,department,jobTitle,companyName,country,usageLocation,\
             officeLocation,accountEnabled,userType,assignedLicenses,createdDateTime&$top=999"
        );
    }

    #[test]
    fn parses_a_page_into_people() {
        let body = br#"{
          "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(id,mail)",
          "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=abc",
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
        let page = parse_page(body, "https://graph.microsoft.com/v1.0/users").unwrap();
        assert_eq!(
            page.next_link.as_deref(),
            Some("https://graph.microsoft.com/v1.0/users?$skiptoken=abc")
        );
        assert_eq!(page.people.len(), 3);
        let a = &page.people[0];
        assert_eq!(a.object_id, "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0");
        assert_eq!(a.mail.as_deref(), Some("Adele@contoso.com"));
        assert_eq!(a.job_title, None);
        assert_eq!(a.licences, vec!["sku-a", "sku-b"]);
        assert_eq!(a.created_at.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert!(a.account_enabled);
        let b = &page.people[1];
        assert_eq!(b.user_type, "Guest");
        assert!(b.licences.is_empty());
        assert!(!b.account_enabled);
        let c = &page.people[2];
        assert_eq!(c.user_type, "Member");
        assert_eq!(c.user_principal_name, "José@contoso.com");
    }

    #[test]
    fn last_page_has_no_next_link() {
        let page = parse_page(br#"{"value": []}"#, "u").unwrap();
        assert!(page.people.is_empty());
        assert!(page.next_link.is_none());
    }

    #[test]
    fn bad_pages_name_the_url_and_the_position() {
        let url = "https://graph.test/v1.0/users?$skiptoken=tok";
        for (body, expect) in [
            (&b"{\"value\": [ {\"id\": \"a\",,} ]}"[..], "line 1 column"),
            (b"<html>gateway</html>", "line 1 column 1"),
            (b"{\"value\": {}}", "invalid type"),
            (b"{\"value\": [{\"id\": 5}]}", "invalid type"),
            (b"{\"odata\": 1}", "no \"value\""),
            (
                b"{\"value\": [{\"userPrincipalName\": \"x\"}]}",
                "user #1 on the page has no id",
            ),
            (b"", "EOF"),
        ] {
            let Err(SyncError::BadResponse(f)) = parse_page(body, url) else {
                panic!("{body:?}")
            };
            assert_eq!(f.url, "https://graph.test/v1.0/users?$skiptoken=...");
            assert!(f.message.contains(expect), "{} / {expect}", f.message);
            assert!(
                f.message.contains("https://graph.test/v1.0/users"),
                "{}",
                f.message
            );
        }
    }
}
