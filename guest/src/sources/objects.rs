//! Plain lists of directory objects by id (and display name), for the data a group
//! attribute filter tests against: `GET /v1.0/groups?$select=id,displayName` and
//! `GET /v1.0/groups/{id}/members?$select=id`.
//!
//! api-reference/v1.0/api/group-list.md and group-list-members.md: both are paged
//! collections (`value`, `@odata.nextLink`); members may be users, groups, devices,
//! service principals or org contacts, each with its `id`. Only direct members are read:
//! a filter on a group takes the accounts in it, not those of groups nested inside.

use serde::Deserialize;

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::organization::Page;
use crate::sources::unusable;
use crate::url::path_segment_encode;

/// Reading group names and members needs GroupMember.Read.All (the least privileged
/// application permission of both calls).
pub const NEED: Need = Need {
    permission: "GroupMember.Read.All",
    feature: "filter on groups",
};

/// A directory object: its id and, for groups, its display name.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: String,
    pub display_name: String,
}

pub fn groups_url(graph: &str) -> String {
    format!("{graph}/v1.0/groups?$select=id,displayName&$top=999")
}

pub fn members_url(graph: &str, group_id: &str) -> String {
    format!(
        "{graph}/v1.0/groups/{}/members?$select=id&$top=999",
        path_segment_encode(group_id)
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    id: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<Raw>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

pub fn parse_page(body: &[u8], url: &str) -> Result<Page<Object>, BodyError> {
    let raw: RawPage = crate::graph::json::from_body(body)?;
    let value = raw
        .value
        .ok_or_else(|| BodyError::Unusable(unusable(url, "it has no \"value\" list".into())))?;
    let mut items = Vec::with_capacity(value.len());
    for (i, o) in value.into_iter().enumerate() {
        let id = o.id.map(crate::ids::normalize).unwrap_or_default();
        if id.is_empty() {
            return Err(BodyError::Unusable(unusable(
                url,
                format!("object #{} has no id", i + 1),
            )));
        }
        items.push(Object {
            id,
            display_name: o.display_name.unwrap_or_default(),
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

    #[test]
    fn parses_ids_and_names_and_refuses_objects_without_id() {
        let page = parse_page(
            br#"{"value":[{"id":"g1","displayName":"Sales"},{"id":"u1"}],"@odata.nextLink":"n"}"#,
            "u",
        )
        .unwrap();
        assert_eq!(page.items[0].display_name, "Sales");
        assert_eq!(page.items[1].id, "u1");
        assert_eq!(page.next_link.as_deref(), Some("n"));
        assert!(matches!(
            parse_page(br#"{"value":[{"displayName":"x"}]}"#, "u"),
            Err(BodyError::Unusable(_))
        ));
        assert!(matches!(
            parse_page(b"{}", "u"),
            Err(BodyError::Unusable(_))
        ));
    }

    #[test]
    fn member_urls_encode_the_group_id() {
        assert_eq!(
            members_url("https://g", "a/b"),
            "https://g/v1.0/groups/a%2Fb/members?$select=id&$top=999"
        );
    }
}
