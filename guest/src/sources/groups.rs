//! Groups and their members, read with Graph's delta query (`GET /v1.0/groups/delta`).
//!
//! Per Microsoft's documentation (microsoft-graph-docs-contrib):
//! - api-reference/v1.0/api/group-delta.md: "You can use `$select=members` to get
//!   membership changes"; query parameters go into the first request only and travel
//!   inside the next and delta links; by default a replayed group carries "the same
//!   properties as selected in the initial delta query" (changed or not; a property never
//!   set is left out).
//! - concepts/delta-query-groups.md: membership comes as `members@delta`, a list of
//!   `{"@odata.type": "#microsoft.graph.user", "id": ...}` references; a member that left
//!   (or was deleted) carries `"@removed": {"reason": ...}`. "Paging through members in a
//!   large group": Graph may return the same group object again on later pages, each time
//!   with another part of its member list, and "the same group could show up anywhere in
//!   the nextLink sequence" — so the engine merges each group's entries over a whole
//!   round (see `crate::sync::groups`).
//! - A deleted group is `{"id": ..., "@removed": {"reason": "changed" | "deleted"}}`, as
//!   for every delta resource (concepts/delta-query-overview.md).
//! - Page size: `$top` is not supported by groups/delta either; the engine sends the same
//!   `Prefer: odata.maxpagesize=999` as for users.

use serde::{Deserialize, Deserializer};

use crate::graph::Need;
use crate::graph::client::BodyError;
use crate::sources::{DeltaPage, unusable};
use crate::types::Group;

/// The group properties the engine stores, and the members relationship.
pub const SELECT: &str = "displayName,mail,groupTypes,mailEnabled,securityEnabled,members";

/// The `Prefer` header of every groups delta request.
pub const PREFER: (&str, &str) = ("Prefer", "odata.maxpagesize=999");

/// What reading groups and their members needs.
pub const NEED: Need = Need {
    permission: "GroupMember.Read.All",
    feature: "groups",
};

/// What a page is, for error messages.
pub const WHAT: &str = "page of groups";

/// The OData type of a user reference in `members@delta`.
const USER_TYPE: &str = "#microsoft.graph.user";

/// The initial delta request on the Graph endpoint `graph` (no trailing slash).
pub fn first_url(graph: &str) -> String {
    format!("{graph}/v1.0/groups/delta?$select={SELECT}")
}

/// One object of a groups delta page.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A group that exists, with (part of) its membership changes.
    Group(GroupEntry),
    /// A deleted group.
    Removed { id: String },
}

impl Entry {
    pub fn id(&self) -> &str {
        match self {
            Entry::Group(g) => &g.id,
            Entry::Removed { id } => id,
        }
    }
}

/// A group object of a delta page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupEntry {
    pub id: String,
    /// `None` when the object does not carry displayName (then it only carries members).
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub kind: &'static str,
    /// User members added (references without `@removed`).
    pub added: Vec<String>,
    /// User members removed (references with `@removed`).
    pub removed: Vec<String>,
    /// Member references of other types (groups, devices, contacts, service principals),
    /// which the engine does not store.
    pub other_members: u64,
}

impl GroupEntry {
    /// The group record, when the object carries the group's properties.
    pub fn group(&self) -> Option<Group> {
        let name = self.display_name.clone()?;
        Some(Group {
            object_id: self.id.clone(),
            display_name: name,
            mail: self.mail.clone(),
            kind: self.kind.to_owned(),
        })
    }
}

/// The WIT kind of a group (group.md: groupTypes "Unified" is a Microsoft 365 group;
/// otherwise mailEnabled and securityEnabled tell a mail-enabled security group, a
/// security group and a distribution group apart). A group that is neither mail- nor
/// security-enabled (not a combination Graph creates) counts as a security group.
pub fn kind(group_types: &[String], mail_enabled: bool, security_enabled: bool) -> &'static str {
    if group_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case("Unified"))
    {
        "microsoft-365"
    } else if mail_enabled && security_enabled {
        "mail-enabled-security"
    } else if mail_enabled {
        "distribution"
    } else {
        "security"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGroup {
    id: Option<String>,
    #[serde(rename = "@removed", default, deserialize_with = "present")]
    removed: Option<Option<serde::de::IgnoredAny>>,
    display_name: Option<String>,
    mail: Option<String>,
    group_types: Option<Vec<String>>,
    mail_enabled: Option<bool>,
    security_enabled: Option<bool>,
    #[serde(rename = "members@delta", default)]
    members: Option<Vec<RawMember>>,
}

#[derive(Deserialize)]
struct RawMember {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    id: Option<String>,
    #[serde(rename = "@removed", default, deserialize_with = "present")]
    removed: Option<Option<serde::de::IgnoredAny>>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RawPage {
    value: Option<Vec<RawGroup>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// Parses one groups delta page read from `url`.
pub fn parse_page(body: &[u8], url: &str) -> Result<DeltaPage<Entry>, BodyError> {
    let raw: RawPage = crate::graph::json::from_body(body)?;
    let Some(value) = raw.value else {
        return Err(BodyError::Unusable(unusable(
            url,
            "the page has no \"value\" list of groups".into(),
        )));
    };
    let mut entries = Vec::with_capacity(value.len());
    for (i, g) in value.into_iter().enumerate() {
        let id = match g.id {
            Some(id) if !id.trim().is_empty() => crate::ids::normalize(id),
            _ => {
                return Err(BodyError::Unusable(unusable(
                    url,
                    format!("group #{} on the page has no id", i + 1),
                )));
            }
        };
        if g.removed.is_some() {
            entries.push(Entry::Removed { id });
            continue;
        }
        let mut entry = GroupEntry {
            kind: kind(
                g.group_types.as_deref().unwrap_or_default(),
                g.mail_enabled.unwrap_or(false),
                g.security_enabled.unwrap_or(false),
            ),
            id,
            display_name: g.display_name,
            mail: g.mail,
            ..GroupEntry::default()
        };
        for m in g.members.unwrap_or_default() {
            let Some(member) =
                m.id.filter(|id| !id.trim().is_empty())
                    .map(crate::ids::normalize)
            else {
                return Err(BodyError::Unusable(unusable(
                    url,
                    format!(
                        "a member reference of group {} on the page has no id",
                        entry.id
                    ),
                )));
            };
            // A reference without a type is taken as a user (the documented examples
            // always carry one).
            let is_user = m
                .odata_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case(USER_TYPE));
            if !is_user {
                entry.other_members += 1;
            } else if m.removed.is_some() {
                entry.removed.push(member);
            } else {
                entry.added.push(member);
            }
        }
        entries.push(Entry::Group(entry));
    }
    Ok(DeltaPage {
        entries,
        next_link: raw.next_link,
        delta_link: raw.delta_link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_group_types_and_flags() {
        let unified = vec!["Unified".to_owned()];
        assert_eq!(kind(&unified, true, false), "microsoft-365");
        assert_eq!(kind(&["unified".into()], true, true), "microsoft-365");
        assert_eq!(kind(&[], true, true), "mail-enabled-security");
        assert_eq!(kind(&[], false, true), "security");
        assert_eq!(kind(&["DynamicMembership".into()], false, true), "security");
        assert_eq!(kind(&[], true, false), "distribution");
        assert_eq!(kind(&[], false, false), "security");
    }

    #[test]
    fn parses_groups_members_and_removals() {
        let body = br##"{
          "@odata.nextLink": "https://g/v1.0/groups/delta?$skiptoken=x",
          "value": [
            {"id": "g1", "displayName": "All Company", "mail": "all@contoso.com",
             "groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false,
             "members@delta": [
               {"@odata.type": "#microsoft.graph.user", "id": "u1"},
               {"@odata.type": "#microsoft.graph.user", "id": "u2", "@removed": {"reason": "deleted"}},
               {"@odata.type": "#microsoft.graph.group", "id": "g9"},
               {"@odata.type": "#microsoft.graph.device", "id": "d1", "@removed": {"reason": "changed"}},
               {"id": "u3"}
             ]},
            {"id": "g2", "displayName": "Sec", "groupTypes": [], "mailEnabled": false,
             "securityEnabled": true},
            {"id": "g3", "@removed": {"reason": "changed"}},
            {"id": "g4", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u4"}]}
          ]}"##;
        let p = parse_page(body, "https://g/v1.0/groups/delta").unwrap();
        assert_eq!(
            p.next_link.as_deref(),
            Some("https://g/v1.0/groups/delta?$skiptoken=x")
        );
        let Entry::Group(g1) = &p.entries[0] else {
            panic!()
        };
        assert_eq!(g1.kind, "microsoft-365");
        assert_eq!(g1.added, vec!["u1", "u3"]);
        assert_eq!(g1.removed, vec!["u2"]);
        assert_eq!(g1.other_members, 2);
        assert_eq!(
            g1.group(),
            Some(Group {
                object_id: "g1".into(),
                display_name: "All Company".into(),
                mail: Some("all@contoso.com".into()),
                kind: "microsoft-365".into()
            })
        );
        let Entry::Group(g2) = &p.entries[1] else {
            panic!()
        };
        assert_eq!(g2.kind, "security");
        assert!(g2.added.is_empty() && g2.removed.is_empty());
        assert_eq!(p.entries[2], Entry::Removed { id: "g3".into() });
        let Entry::Group(g4) = &p.entries[3] else {
            panic!()
        };
        assert_eq!(g4.group(), None, "members only: no properties to store");
        assert_eq!(g4.added, vec!["u4"]);
    }

    #[test]
    fn bad_pages_name_what_is_wrong() {
        let url = "https://g/v1.0/groups/delta?$skiptoken=SECRET";
        for (body, expect) in [
            (&br#"{"x": 1}"#[..], "no \"value\""),
            (br#"{"value": [{"displayName": "x"}]}"#, "group #1"),
            (
                br##"{"value": [{"id": "g", "members@delta": [{"@odata.type": "#microsoft.graph.user"}]}]}"##,
                "member reference of group g",
            ),
        ] {
            let Err(BodyError::Unusable(crate::types::SyncError::BadResponse(f))) =
                parse_page(body, url)
            else {
                panic!("{body:?}")
            };
            assert!(f.message.contains(expect), "{}", f.message);
            assert!(!f.message.contains("SECRET"));
        }
        assert!(matches!(
            parse_page(b"{\"value\": [", url),
            Err(BodyError::Json(_))
        ));
    }
}
