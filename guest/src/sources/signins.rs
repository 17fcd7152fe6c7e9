//! Last sign-in per user: `GET /v1.0/users?$select=id,signInActivity`, a plain paged list.
//!
//! Per Microsoft's documentation:
//! - api-reference/v1.0/resources/signinactivity.md: `lastSignInDateTime` is "the last
//!   interactive sign-in date and time for a specific user" (an attempt, successful or
//!   not), ISO 8601 in UTC. It is what the engine stores as `last-sign-in`.
//! - api-reference/v1.0/api/user-list.md: signInActivity can be selected on the users list
//!   (not on users/delta); "the default and maximum page sizes are 100 and 999 user
//!   objects respectively, except when you specify $select=signInActivity or
//!   $filter=signInActivity. When signInActivity is selected or filtered on, the maximum
//!   page size is 500" — hence `$top=500`. Reading it needs AuditLog.Read.All besides
//!   User.Read.All.
//! - The tenant needs Microsoft Entra ID P1 or P2. Without, Graph refuses with 403 and
//!   error code `Authentication_RequestFromNonPremiumTenantOrB2CTenant` ("Neither tenant is
//!   B2C or tenant doesn't have premium license", the error Microsoft's Entra reporting
//!   documentation lists under "Common errors": howto-configure-prerequisites-for-reporting-api).

use serde::Deserialize;

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::organization::Page;
use crate::sources::unusable;
use crate::types::SyncError;

/// The page size: the documented maximum with signInActivity selected.
pub const PAGE_SIZE: u32 = 500;

pub const NEED: Need = Need {
    permission: "AuditLog.Read.All",
    feature: "sign-in-activity",
};

pub fn first_url(graph: &str) -> String {
    format!("{graph}/v1.0/users?$select=id,signInActivity&$top={PAGE_SIZE}")
}

/// The error code of Graph's answer for a tenant without Microsoft Entra ID P1/P2.
pub const NON_PREMIUM_CODE: &str = "Authentication_RequestFromNonPremiumTenantOrB2CTenant";

/// Is this failure Graph's "the tenant has no premium licence" answer?
pub fn is_non_premium(e: &SyncError) -> bool {
    let SyncError::Http(f) = e else {
        return false;
    };
    f.status == Some(403)
        && (f
            .graph_code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(NON_PREMIUM_CODE))
            || f.message.to_ascii_lowercase().contains("premium license"))
}

/// One user's last sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub id: String,
    /// `None` when the user never signed in (signInActivity or the property is null).
    pub last_sign_in: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    id: Option<String>,
    sign_in_activity: Option<RawActivity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawActivity {
    last_sign_in_date_time: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<RawUser>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

pub fn parse_page(body: &[u8], url: &str) -> Result<Page<SignIn>, BodyError> {
    let raw: RawPage = crate::graph::json::from_body(body)?;
    let value = raw.value.ok_or_else(|| {
        BodyError::Unusable(unusable(url, "it has no \"value\" list of users".into()))
    })?;
    let mut items = Vec::with_capacity(value.len());
    for (i, u) in value.into_iter().enumerate() {
        let Some(id) =
            u.id.filter(|id| !id.trim().is_empty())
                .map(crate::ids::normalize)
        else {
            return Err(BodyError::Unusable(unusable(
                url,
                format!("user #{} on the page has no id", i + 1),
            )));
        };
        items.push(SignIn {
            id,
            last_sign_in: u
                .sign_in_activity
                .and_then(|a| a.last_sign_in_date_time)
                .filter(|t| !t.trim().is_empty()),
        });
    }
    Ok(Page {
        items,
        next_link: raw.next_link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HttpFailure;

    #[test]
    fn parses_sign_in_activity() {
        let body = br#"{"@odata.nextLink": "https://g/v1.0/users?$skiptoken=a", "value": [
            {"id": "u1", "signInActivity": {"lastSignInDateTime": "2024-04-30T08:00:00Z",
             "lastSignInRequestId": "r", "lastNonInteractiveSignInDateTime": "2024-05-01T00:00:00Z"}},
            {"id": "u2", "signInActivity": null},
            {"id": "u3", "signInActivity": {"lastSignInDateTime": null}},
            {"id": "u4"}]}"#;
        let p = parse_page(body, "u").unwrap();
        assert_eq!(
            p.next_link.as_deref(),
            Some("https://g/v1.0/users?$skiptoken=a")
        );
        assert_eq!(
            p.items[0],
            SignIn {
                id: "u1".into(),
                last_sign_in: Some("2024-04-30T08:00:00Z".into())
            }
        );
        assert!(p.items[1..].iter().all(|s| s.last_sign_in.is_none()));
        assert!(parse_page(br#"{"value": [{"signInActivity": null}]}"#, "u").is_err());
        assert_eq!(
            first_url("https://g"),
            "https://g/v1.0/users?$select=id,signInActivity&$top=500"
        );
    }

    #[test]
    fn tells_the_non_premium_answer_apart() {
        let f = |status, code: Option<&str>, message: &str| {
            SyncError::Http(HttpFailure {
                url: "u".into(),
                status: Some(status),
                graph_code: code.map(str::to_owned),
                message: message.into(),
            })
        };
        assert!(is_non_premium(&f(403, Some(NON_PREMIUM_CODE), "x")));
        assert!(is_non_premium(&f(
            403,
            Some("Forbidden"),
            "Neither tenant is B2C or tenant doesn't have premium license"
        )));
        assert!(!is_non_premium(&f(403, Some("Forbidden"), "nope")));
        assert!(!is_non_premium(&f(400, Some(NON_PREMIUM_CODE), "x")));
    }
}
