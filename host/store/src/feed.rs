//! The change feed: every change a sync commits that a platform acts on (a person created,
//! updated with the fields that changed, linked, removed; a group membership added or
//! removed; a licence assigned or taken away), appended by the store in the same transaction
//! as the change, under a monotonic cursor. Consumers page it by cursor (`after`), keep
//! their cursor, and get every event at least once, in commit order (so in order per
//! tenant).
//!
//! [`events_of`] is the one rule that turns a batch into its events; every back end calls
//! it in `commit` and stores what it returns. What a back end must guarantee: an event is
//! visible exactly when the change it describes is (same transaction), and cursors grow in
//! commit order — a reader that has seen cursor N never later finds an event below N (a
//! database with concurrent writers must order cursor assignment by commit, e.g. assign them
//! at commit time under a lock).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use m365sync_wit::types::{Batch, Change, PersonStatus, PersonUpsert, UpsertKind};

use crate::StoreError;

/// The feed's read side (the write side is every back end's `commit`, and
/// `Notices::set_notices`).
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The events after cursor `after`, in cursor order, at most `limit`, of one tenant or
    /// of all.
    async fn changes(
        &self,
        after: i64,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<ChangeEvent>, StoreError>;
    /// The cursor of the feed's last event (0 when it has none).
    async fn last_cursor(&self) -> Result<i64, StoreError>;
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChangeKind {
    #[serde(rename = "person.created")]
    PersonCreated,
    /// `fields` names the fields that changed (platform fields where the field map maps
    /// them, else Graph properties); `status` is set when the person came back.
    #[serde(rename = "person.updated")]
    PersonUpdated,
    /// A new account took over the record of `previous_object_id` (the record stays).
    #[serde(rename = "person.linked")]
    PersonLinked,
    /// The account is gone: `status` says how the record was left (removed, flagged,
    /// inactive), or none when it was deleted.
    #[serde(rename = "person.removed")]
    PersonRemoved,
    #[serde(rename = "group.member-added")]
    GroupMemberAdded,
    #[serde(rename = "group.member-removed")]
    GroupMemberRemoved,
    #[serde(rename = "licence.assigned")]
    LicenceAssigned,
    #[serde(rename = "licence.removed")]
    LicenceRemoved,
    /// A credential the tenant signs in with ends soon or has ended (a notice, see
    /// `notices.rs`): `object_id` is the notice's key, `status` its stage.
    #[serde(rename = "secret-expiring")]
    SecretExpiring,
    /// The partner's delegated admin relationship with the customer ends soon or has ended.
    #[serde(rename = "relationship-ending")]
    RelationshipEnding,
}

impl ChangeKind {
    /// Every kind, in the order above.
    pub const ALL: [ChangeKind; 10] = [
        ChangeKind::PersonCreated,
        ChangeKind::PersonUpdated,
        ChangeKind::PersonLinked,
        ChangeKind::PersonRemoved,
        ChangeKind::GroupMemberAdded,
        ChangeKind::GroupMemberRemoved,
        ChangeKind::LicenceAssigned,
        ChangeKind::LicenceRemoved,
        ChangeKind::SecretExpiring,
        ChangeKind::RelationshipEnding,
    ];

    /// The kind's name, as stored and shown (`person.created`).
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::PersonCreated => "person.created",
            ChangeKind::PersonUpdated => "person.updated",
            ChangeKind::PersonLinked => "person.linked",
            ChangeKind::PersonRemoved => "person.removed",
            ChangeKind::GroupMemberAdded => "group.member-added",
            ChangeKind::GroupMemberRemoved => "group.member-removed",
            ChangeKind::LicenceAssigned => "licence.assigned",
            ChangeKind::LicenceRemoved => "licence.removed",
            ChangeKind::SecretExpiring => "secret-expiring",
            ChangeKind::RelationshipEnding => "relationship-ending",
        }
    }

    /// The kind of a stored name.
    pub fn from_name(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an event says beyond its kind and object; stored as JSON (`EventDetail::to_stored`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    /// `person.updated`, `person.linked`: the fields that changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// `person.linked`: the object id the record was stored under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_object_id: Option<String>,
    /// `person.removed`, `person.updated`: the record's status now (`removed`, `flagged`,
    /// `inactive`, `active`); none for a deleted record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `group.*`: the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// `licence.*`: the SKU id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<String>,
    /// Notices (`secret-expiring`, `relationship-ending`): when it ends or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    /// Notices: what ends, and what to do, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl EventDetail {
    /// The JSON a back end stores.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// A stored detail (an unreadable one reads as empty: the event still says what and who).
    pub fn from_stored(text: &str) -> EventDetail {
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// An event as a batch makes it, before the store gives it a cursor and a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: ChangeKind,
    /// The person, or for `group.*` the member.
    pub object_id: String,
    pub detail: EventDetail,
}

/// An event of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeEvent {
    /// Its place in the feed: every later-committed event has a greater one.
    pub cursor: i64,
    pub tenant: String,
    /// When the store committed it, RFC 3339 UTC.
    pub at: String,
    pub kind: ChangeKind,
    pub object_id: String,
    #[serde(flatten)]
    pub detail: EventDetail,
}

/// The events of `batch`'s changes, in the batch's order (a person's own event before the
/// licences it assigns or takes away). Changes platforms do not act on (subscriptions,
/// groups themselves, the organization, reports) make none, nor does a dry run, which
/// commits nothing.
pub fn events_of(batch: &Batch) -> Vec<NewEvent> {
    let mut events = Vec::new();
    for change in &batch.changes {
        match change {
            Change::UpsertPerson(upsert) => person_events(upsert, &mut events),
            Change::DeletePerson(object_id) => events.push(NewEvent {
                kind: ChangeKind::PersonRemoved,
                object_id: object_id.clone(),
                detail: EventDetail::default(),
            }),
            Change::GroupMembers(members) => {
                for (kind, ids) in [
                    (ChangeKind::GroupMemberAdded, &members.added),
                    (ChangeKind::GroupMemberRemoved, &members.removed),
                ] {
                    events.extend(ids.iter().map(|member| NewEvent {
                        kind,
                        object_id: member.clone(),
                        detail: EventDetail {
                            group_id: Some(members.group_id.clone()),
                            ..EventDetail::default()
                        },
                    }));
                }
            }
            _ => {}
        }
    }
    events
}

fn person_events(upsert: &PersonUpsert, events: &mut Vec<NewEvent>) {
    let object_id = &upsert.stored.person.object_id;
    let status = upsert.stored.status;
    let status_changed = upsert.changed_fields.iter().any(|f| f == "status");
    let (kind, detail) = match upsert.kind {
        UpsertKind::Create => (ChangeKind::PersonCreated, EventDetail::default()),
        UpsertKind::Link => (
            ChangeKind::PersonLinked,
            EventDetail {
                fields: upsert.changed_fields.clone(),
                previous_object_id: upsert.previous_object_id.clone(),
                ..EventDetail::default()
            },
        ),
        // The removal policy left the record of a gone account as removed, flagged or
        // inactive.
        UpsertKind::Update if status != PersonStatus::Active && status_changed => (
            ChangeKind::PersonRemoved,
            EventDetail {
                status: Some(status_name(status).to_string()),
                ..EventDetail::default()
            },
        ),
        UpsertKind::Update => (
            ChangeKind::PersonUpdated,
            EventDetail {
                fields: upsert.changed_fields.clone(),
                // Back after a removal.
                status: status_changed.then(|| status_name(status).to_string()),
                ..EventDetail::default()
            },
        ),
    };
    events.push(NewEvent {
        kind,
        object_id: object_id.clone(),
        detail,
    });
    for (kind, skus) in [
        (ChangeKind::LicenceAssigned, &upsert.licences_assigned),
        (ChangeKind::LicenceRemoved, &upsert.licences_removed),
    ] {
        events.extend(skus.iter().map(|sku| NewEvent {
            kind,
            object_id: object_id.clone(),
            detail: EventDetail {
                sku_id: Some(sku.clone()),
                ..EventDetail::default()
            },
        }));
    }
}

fn status_name(status: PersonStatus) -> &'static str {
    use m365sync_wit::names::WitName;
    status.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use m365sync_wit::types::{MembershipChange, Person, StoredPerson};

    fn person(id: &str, status: PersonStatus, licences: &[&str]) -> StoredPerson {
        StoredPerson {
            person: Person {
                object_id: id.to_string(),
                user_principal_name: format!("{id}@x.test"),
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
                account_enabled: true,
                user_type: "Member".to_string(),
                licences: licences.iter().map(|s| s.to_string()).collect(),
                created_at: None,
                manager_id: None,
                hire_date: None,
                proxy_addresses: vec![],
                last_sign_in: None,
            },
            status,
            fingerprint: String::new(),
        }
    }

    fn upsert(
        stored: StoredPerson,
        kind: UpsertKind,
        fields: &[&str],
        assigned: &[&str],
        removed: &[&str],
    ) -> Change {
        Change::UpsertPerson(PersonUpsert {
            stored,
            kind,
            changed_fields: fields.iter().map(|s| s.to_string()).collect(),
            previous_object_id: (kind == UpsertKind::Link).then(|| "old".to_string()),
            email_key: None,
            upn_key: String::new(),
            licences_assigned: assigned.iter().map(|s| s.to_string()).collect(),
            licences_removed: removed.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn kinds(batch: &Batch) -> Vec<(&'static str, String, EventDetail)> {
        events_of(batch)
            .into_iter()
            .map(|e| (e.kind.name(), e.object_id, e.detail))
            .collect()
    }

    #[test]
    fn each_change_a_platform_acts_on_makes_its_events_in_order() {
        let active = PersonStatus::Active;
        let batch = Batch {
            changes: vec![
                upsert(
                    person("a", active, &["e3"]),
                    UpsertKind::Create,
                    &[],
                    &["e3"],
                    &[],
                ),
                upsert(
                    person("b", active, &[]),
                    UpsertKind::Update,
                    &["department"],
                    &[],
                    &["e3"],
                ),
                upsert(
                    person("c", active, &[]),
                    UpsertKind::Link,
                    &["mail"],
                    &[],
                    &[],
                ),
                upsert(
                    person("d", PersonStatus::Flagged, &[]),
                    UpsertKind::Update,
                    &["status"],
                    &[],
                    &[],
                ),
                upsert(
                    person("e", active, &[]),
                    UpsertKind::Update,
                    &["status"],
                    &[],
                    &[],
                ),
                Change::DeletePerson("f".into()),
                Change::GroupMembers(MembershipChange {
                    group_id: "g".into(),
                    added: vec!["a".into()],
                    removed: vec!["b".into()],
                }),
                Change::DeleteGroup("g2".into()),
            ],
            checkpoints: vec![],
            run: None,
        };
        let detail = |f: fn(&mut EventDetail)| {
            let mut d = EventDetail::default();
            f(&mut d);
            d
        };
        assert_eq!(
            kinds(&batch),
            vec![
                ("person.created", "a".into(), EventDetail::default()),
                (
                    "licence.assigned",
                    "a".into(),
                    detail(|d| d.sku_id = Some("e3".into()))
                ),
                (
                    "person.updated",
                    "b".into(),
                    detail(|d| d.fields = vec!["department".into()])
                ),
                (
                    "licence.removed",
                    "b".into(),
                    detail(|d| d.sku_id = Some("e3".into()))
                ),
                (
                    "person.linked",
                    "c".into(),
                    detail(|d| {
                        d.fields = vec!["mail".into()];
                        d.previous_object_id = Some("old".into());
                    })
                ),
                (
                    "person.removed",
                    "d".into(),
                    detail(|d| d.status = Some("flagged".into()))
                ),
                (
                    "person.updated",
                    "e".into(),
                    detail(|d| {
                        d.fields = vec!["status".into()];
                        d.status = Some("active".into());
                    })
                ),
                ("person.removed", "f".into(), EventDetail::default()),
                (
                    "group.member-added",
                    "a".into(),
                    detail(|d| d.group_id = Some("g".into()))
                ),
                (
                    "group.member-removed",
                    "b".into(),
                    detail(|d| d.group_id = Some("g".into()))
                ),
            ]
        );
    }

    #[test]
    fn kinds_and_details_round_trip_as_stored() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        let detail = EventDetail {
            fields: vec!["x".into()],
            sku_id: Some("s".into()),
            ..EventDetail::default()
        };
        assert_eq!(EventDetail::from_stored(&detail.to_stored()), detail);
        assert_eq!(EventDetail::from_stored("not json"), EventDetail::default());
    }
}
