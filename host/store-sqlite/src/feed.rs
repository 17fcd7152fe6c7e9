//! The change feed in SQLite: a batch's events, written by its own transaction (so they
//! are committed exactly when the batch is, and rolled back with it), and read by cursor.
//! The cursor is the rowid (see [`crate::schema::SERVE_TABLES`] for why that is commit
//! order).

use async_trait::async_trait;
use m365sync_store::StoreError;
use m365sync_store::feed::{ChangeEvent, ChangeFeed, EventDetail, NewEvent};
use m365sync_store::queue::rules::stored_change_kind;
use m365sync_store::time::now_rfc3339;
use rusqlite::types::Type;
use rusqlite::{Connection, params};

use crate::{SqliteStore, read_error};

/// Append `events` of `tenant` in the open transaction.
pub(crate) fn insert_events(
    transaction: &Connection,
    tenant: &str,
    events: &[NewEvent],
) -> rusqlite::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let at = now_rfc3339();
    let mut insert = transaction.prepare_cached(
        "INSERT INTO change_events (tenant, at, kind, object_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for event in events {
        insert.execute(params![
            tenant,
            at,
            event.kind.name(),
            event.object_id,
            event.detail.to_stored()
        ])?;
    }
    Ok(())
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeEvent> {
    let kind: String = row.get(3)?;
    let kind = stored_change_kind(&kind)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, e.into()))?;
    let detail: String = row.get(5)?;
    Ok(ChangeEvent {
        cursor: row.get(0)?,
        tenant: row.get(1)?,
        at: row.get(2)?,
        kind,
        object_id: row.get(4)?,
        detail: EventDetail::from_stored(&detail),
    })
}

/// The events after `after`, of `tenant` or all, at most `limit`.
fn changes(
    connection: &Connection,
    after: i64,
    limit: u32,
    tenant: Option<&str>,
) -> rusqlite::Result<Vec<ChangeEvent>> {
    const COLUMNS: &str = "cursor, tenant, at, kind, object_id, detail";
    match tenant {
        None => connection
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM change_events WHERE cursor > ?1 ORDER BY cursor LIMIT ?2"
            ))?
            .query_map(params![after, limit], event_from_row)?
            .collect(),
        Some(tenant) => connection
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM change_events WHERE tenant = ?3 AND cursor > ?1
                 ORDER BY cursor LIMIT ?2"
            ))?
            .query_map(params![after, limit, tenant], event_from_row)?
            .collect(),
    }
}

/// The cursor of the last event (0: none).
pub(crate) fn last_cursor(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row(
        "SELECT COALESCE(MAX(cursor), 0) FROM change_events",
        [],
        |row| row.get(0),
    )
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn changes(
        &self,
        after: i64,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let connection = self.read_connection()?;
        changes(&connection, after, limit, tenant).map_err(read_error("reading the change feed"))
    }

    async fn last_cursor(&self) -> Result<i64, StoreError> {
        let connection = self.read_connection()?;
        last_cursor(&connection).map_err(read_error("reading the change feed"))
    }
}
