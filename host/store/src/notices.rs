//! Notices: what the host learned about a tenant outside a sync that an admin must act on
//! before it breaks the tenant's syncs — a client secret or certificate ending (read from
//! the config or from the app registration in Graph), a partner's delegated admin
//! relationship with the customer ending or ended. `serve` looks again daily and sets each
//! tenant's notices of a kind to what it found; `status`, the API and `/metrics` show
//! them, and the change feed says when one is raised.
//!
//! The rules every back end keeps:
//! - `set_notices(tenant, kind, notices, now_ms)` replaces the tenant's notices of `kind`
//!   by `notices` (by `key`, unique per tenant and kind): those not in `notices` are
//!   deleted (the secret was rotated, the relationship extended), the others written.
//! - In the same transaction it appends one change-feed event (`kind`'s event, object id
//!   the notice's key, detail: the notice's stage as `status`, `ends` and `message`) for
//!   each notice that is new, or whose stage changed (ending → ended): setting the same
//!   notices again appends nothing. Such an event is ordered in the feed as a batch's
//!   events are (cursors grow in commit order).
//! - A notice keeps `raised_ms` from when it was first set at its stage; a new stage
//!   takes `now_ms`.
//! - It returns how many events it appended.
//! - `notices(tenant)` lists by tenant, then kind name, then key; `None`: every tenant.
//!
//! Where the rules leave things open, every back end does this (the functions at the end
//! of this module): a call whose notices name another tenant or kind, or one key twice, is
//! refused (`invalid`) and changes nothing ([`plan_notices`], which also decides what is
//! written, deleted and appended); the events are appended in the order the notices were
//! given; the kind and stage are stored by their names, and a name this m365sync does not
//! know reads back as an error naming its column ([`stored_notice_kind`],
//! [`stored_notice_stage`]). A tenant's reset keeps its notices (they are what `serve`
//! keeps of it, as its state: a credential's end is not the tenant's synced data).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use m365sync_wit::StorageError;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::feed::{ChangeKind, EventDetail, NewEvent};
use crate::queue::rules::unknown_value;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NoticeKind {
    /// A credential the tenant signs in with ends (or has ended).
    #[serde(rename = "secret-expiring")]
    SecretExpiring,
    /// The partner's delegated admin relationship with the customer ends (or has ended).
    #[serde(rename = "relationship-ending")]
    RelationshipEnding,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 2] = [NoticeKind::SecretExpiring, NoticeKind::RelationshipEnding];

    /// The kind's name, as stored and shown; also its change-feed event's name.
    pub fn name(self) -> &'static str {
        self.event().name()
    }

    pub fn from_name(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The change-feed event a notice of this kind raises.
    pub fn event(self) -> ChangeKind {
        match self {
            NoticeKind::SecretExpiring => ChangeKind::SecretExpiring,
            NoticeKind::RelationshipEnding => ChangeKind::RelationshipEnding,
        }
    }
}

/// How far along the thing noticed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NoticeStage {
    /// It ends soon (within the warning window).
    #[serde(rename = "ending")]
    Ending,
    /// It has ended.
    #[serde(rename = "ended")]
    Ended,
}

impl NoticeStage {
    pub fn name(self) -> &'static str {
        match self {
            NoticeStage::Ending => "ending",
            NoticeStage::Ended => "ended",
        }
    }

    pub fn from_name(name: &str) -> Option<NoticeStage> {
        [NoticeStage::Ending, NoticeStage::Ended]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// One notice of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notice {
    pub tenant: String,
    pub kind: NoticeKind,
    /// Which thing, unique per tenant and kind (`config:client-secret`,
    /// `app:{name}:{keyId}`, `relationship:{id}`); never a secret.
    pub key: String,
    pub stage: NoticeStage,
    /// When it ends or ended: YYYY-MM-DD or RFC 3339.
    pub ends: String,
    /// What ends, and what to do, in words.
    pub message: String,
    /// When it was first set at this stage, Unix milliseconds (set by the store).
    pub raised_ms: i64,
}

impl Notice {
    /// The change-feed event that says this notice was raised.
    pub fn event(&self) -> NewEvent {
        NewEvent {
            kind: self.kind.event(),
            object_id: self.key.clone(),
            detail: EventDetail {
                status: Some(self.stage.name().to_string()),
                ends: Some(self.ends.clone()),
                message: Some(self.message.clone()),
                ..EventDetail::default()
            },
        }
    }
}

#[async_trait]
pub trait Notices: Send + Sync {
    /// Replace `tenant`'s notices of `kind` by `notices` and append an event for each new
    /// one or new stage; the number of events appended.
    async fn set_notices(
        &self,
        tenant: &str,
        kind: NoticeKind,
        notices: &[Notice],
        now_ms: i64,
    ) -> Result<u32, StoreError>;

    /// The notices of `tenant`, or of every tenant.
    async fn notices(&self, tenant: Option<&str>) -> Result<Vec<Notice>, StoreError>;
}

/// What `set_notices` writes: decided by [`plan_notices`], the same in every back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePlan {
    /// The tenant's notices of the kind once the call is done, as given, with their
    /// `raised_ms` (kept, or `now_ms`): each to be upserted by its key.
    pub write: Vec<Notice>,
    /// The keys of the stored notices of the kind that are not in the new set.
    pub delete: Vec<String>,
    /// The events to append, in the order the notices were given.
    pub events: Vec<NewEvent>,
}

impl NoticePlan {
    /// How many events `set_notices` appends (its answer).
    pub fn appended(&self) -> u32 {
        u32::try_from(self.events.len()).unwrap_or(u32::MAX)
    }
}

/// What `set_notices(tenant, kind, given, now_ms)` does to `stored` (the tenant's stored
/// notices of `kind`): every given notice is written, keeping the `raised_ms` of a stored
/// one at the same stage, else taking `now_ms` and raising an event; every stored notice
/// not given is deleted. Refused (`invalid`) when a given notice names another tenant or
/// kind, or a key is given twice.
pub fn plan_notices(
    tenant: &str,
    kind: NoticeKind,
    given: &[Notice],
    stored: &[Notice],
    now_ms: i64,
) -> Result<NoticePlan, StoreError> {
    let invalid = |why: String| Err(StoreError::Storage(StorageError::Invalid(why)));
    let mut keys = HashSet::new();
    for notice in given {
        if notice.tenant != tenant || notice.kind != kind {
            return invalid(format!(
                "cannot set notice {} of tenant {} ({}) among the {} notices of tenant {tenant}",
                notice.key,
                notice.tenant,
                notice.kind.name(),
                kind.name()
            ));
        }
        if !keys.insert(notice.key.as_str()) {
            return invalid(format!(
                "the {} notices of tenant {tenant} name {} twice: a key is unique per tenant \
                 and kind",
                kind.name(),
                notice.key
            ));
        }
    }
    let before: HashMap<&str, &Notice> = stored.iter().map(|n| (n.key.as_str(), n)).collect();
    let mut plan = NoticePlan {
        write: Vec::with_capacity(given.len()),
        delete: (stored.iter())
            .filter(|n| !keys.contains(n.key.as_str()))
            .map(|n| n.key.clone())
            .collect(),
        events: Vec::new(),
    };
    for notice in given {
        let kept = (before.get(notice.key.as_str())).filter(|n| n.stage == notice.stage);
        let notice = Notice {
            raised_ms: kept.map_or(now_ms, |n| n.raised_ms),
            ..notice.clone()
        };
        if kept.is_none() {
            plan.events.push(notice.event());
        }
        plan.write.push(notice);
    }
    Ok(plan)
}

/// A notice kind as stored (`notices.kind`), or what is wrong with it.
pub fn stored_notice_kind(name: &str) -> Result<NoticeKind, String> {
    NoticeKind::from_name(name).ok_or_else(|| unknown_value("notices.kind", name))
}

/// A notice stage as stored (`notices.stage`), or what is wrong with it.
pub fn stored_notice_stage(name: &str) -> Result<NoticeStage, String> {
    NoticeStage::from_name(name).ok_or_else(|| unknown_value("notices.stage", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(tenant: &str, kind: NoticeKind, key: &str, stage: NoticeStage) -> Notice {
        Notice {
            tenant: tenant.to_string(),
            kind,
            key: key.to_string(),
            stage,
            ends: "2025-06-30".to_string(),
            message: format!("{key} ends"),
            raised_ms: 0,
        }
    }

    const SECRET: NoticeKind = NoticeKind::SecretExpiring;

    #[test]
    fn names_round_trip_and_unknown_ones_name_their_column() {
        for kind in NoticeKind::ALL {
            assert_eq!(stored_notice_kind(kind.name()), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(kind.event().name(), kind.name());
        }
        for stage in [NoticeStage::Ending, NoticeStage::Ended] {
            assert_eq!(stored_notice_stage(stage.name()), Ok(stage));
        }
        assert_eq!(
            stored_notice_kind("licence-ending"),
            Err(
                r#"notices.kind holds "licence-ending", which this m365sync does not know"#
                    .to_string()
            )
        );
        assert!(
            stored_notice_stage("over")
                .unwrap_err()
                .contains("notices.stage")
        );
    }

    #[test]
    fn a_plan_keeps_the_time_of_an_unchanged_stage_and_raises_new_ones() {
        let stored = vec![
            Notice {
                raised_ms: 10,
                ..notice("t", SECRET, "a", NoticeStage::Ending)
            },
            Notice {
                raised_ms: 20,
                ..notice("t", SECRET, "b", NoticeStage::Ending)
            },
            Notice {
                raised_ms: 30,
                ..notice("t", SECRET, "gone", NoticeStage::Ended)
            },
        ];
        let given = vec![
            notice("t", SECRET, "c", NoticeStage::Ending),
            notice("t", SECRET, "b", NoticeStage::Ended),
            Notice {
                message: "reworded".to_string(),
                raised_ms: 99,
                ..notice("t", SECRET, "a", NoticeStage::Ending)
            },
        ];
        let plan = plan_notices("t", SECRET, &given, &stored, 1_000).expect("a plan");
        let written: Vec<(&str, i64, &str)> = (plan.write.iter())
            .map(|n| (n.key.as_str(), n.raised_ms, n.message.as_str()))
            .collect();
        assert_eq!(
            written,
            [
                ("c", 1_000, "c ends"),
                ("b", 1_000, "b ends"),
                ("a", 10, "reworded")
            ]
        );
        assert_eq!(plan.delete, ["gone"]);
        assert_eq!(
            plan.events,
            vec![plan.write[0].event(), plan.write[1].event()]
        );
        assert_eq!(plan.appended(), 2);
    }

    #[test]
    fn a_plan_refuses_another_tenant_another_kind_and_a_key_twice() {
        let refused = |given: Vec<Notice>| match plan_notices("t", SECRET, &given, &[], 0) {
            Err(StoreError::Storage(StorageError::Invalid(message))) => message,
            other => panic!("refused as invalid: {other:?}"),
        };
        let other_tenant = refused(vec![notice("u", SECRET, "a", NoticeStage::Ending)]);
        assert!(other_tenant.contains("tenant u"), "{other_tenant}");
        let other_kind = refused(vec![notice(
            "t",
            NoticeKind::RelationshipEnding,
            "a",
            NoticeStage::Ending,
        )]);
        assert!(other_kind.contains("relationship-ending"), "{other_kind}");
        let twice = refused(vec![
            notice("t", SECRET, "a", NoticeStage::Ending),
            notice("t", SECRET, "a", NoticeStage::Ended),
        ]);
        assert!(twice.contains("twice"), "{twice}");
    }
}
