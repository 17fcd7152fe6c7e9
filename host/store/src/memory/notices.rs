//! The memory store's notices ([`Notices`]): by tenant, kind name and key, so that they
//! list in the contract's order; each `set_notices` one step under the store's lock, its
//! events appended to the feed in that step (so commit order is cursor order).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::MemoryStore;
use crate::StoreError;
use crate::notices::{Notice, NoticeKind, Notices, plan_notices};

/// Every tenant's notices, by (tenant, kind name, key).
#[derive(Default)]
pub(super) struct NoticeRows {
    notices: BTreeMap<(String, &'static str, String), Notice>,
}

impl NoticeRows {
    /// `tenant`'s notices of `kind`, by key.
    fn of(&self, tenant: &str, kind: NoticeKind) -> Vec<Notice> {
        (self.notices.values())
            .filter(|n| n.tenant == tenant && n.kind == kind)
            .cloned()
            .collect()
    }
}

fn key(tenant: &str, kind: NoticeKind, key: &str) -> (String, &'static str, String) {
    (tenant.to_string(), kind.name(), key.to_string())
}

#[async_trait]
impl Notices for MemoryStore {
    async fn set_notices(
        &self,
        tenant: &str,
        kind: NoticeKind,
        notices: &[Notice],
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let mut shared = self.shared()?;
        let stored = shared.notices.of(tenant, kind);
        let plan = plan_notices(tenant, kind, notices, &stored, now_ms)?;
        let rows = &mut shared.notices.notices;
        for gone in &plan.delete {
            rows.remove(&key(tenant, kind, gone));
        }
        for notice in &plan.write {
            rows.insert(key(tenant, kind, &notice.key), notice.clone());
        }
        let appended = plan.appended();
        shared.feed.append(tenant, plan.events);
        Ok(appended)
    }

    async fn notices(&self, tenant: Option<&str>) -> Result<Vec<Notice>, StoreError> {
        let shared = self.shared()?;
        Ok((shared.notices.notices.values())
            .filter(|n| tenant.is_none_or(|t| n.tenant == t))
            .cloned()
            .collect())
    }
}
