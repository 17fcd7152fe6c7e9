//! The memory store's change feed: the events of every committed batch, appended under the
//! store's one lock by the tenant store's `commit` (so commit order is cursor order), and
//! read by cursor.

use async_trait::async_trait;

use super::MemoryStore;
use crate::StoreError;
use crate::feed::{ChangeEvent, ChangeFeed, NewEvent};
use crate::time::now_rfc3339;

/// The feed's events, oldest first; an event's cursor is its position from 1.
#[derive(Default)]
pub(super) struct Feed {
    events: Vec<ChangeEvent>,
}

impl Feed {
    /// The cursor of the last event (0: none yet).
    pub(super) fn last_cursor(&self) -> i64 {
        i64::try_from(self.events.len()).unwrap_or(i64::MAX)
    }

    /// Append a committed batch's events of `tenant`.
    pub(super) fn append(&mut self, tenant: &str, events: Vec<NewEvent>) {
        let at = now_rfc3339();
        for event in events {
            let cursor = self.last_cursor().saturating_add(1);
            self.events.push(ChangeEvent {
                cursor,
                tenant: tenant.to_string(),
                at: at.clone(),
                kind: event.kind,
                object_id: event.object_id,
                detail: event.detail,
            });
        }
    }

    fn after(&self, after: i64, limit: u32, tenant: Option<&str>) -> Vec<ChangeEvent> {
        // Cursors are positions from 1: the events after `after` start at index `after`.
        let start = usize::try_from(after.max(0)).unwrap_or(usize::MAX);
        (self.events.iter().skip(start))
            .filter(|e| tenant.is_none_or(|t| e.tenant == t))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn changes(
        &self,
        after: i64,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        Ok(self.shared()?.feed.after(after, limit, tenant))
    }

    async fn last_cursor(&self) -> Result<i64, StoreError> {
        Ok(self.shared()?.feed.last_cursor())
    }
}
