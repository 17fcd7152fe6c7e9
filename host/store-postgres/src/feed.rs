//! The change feed in PostgreSQL: how a tenant store's commit inserts its batches' events,
//! and reading the feed by cursor.
//!
//! Cursors must grow in COMMIT order: a reader that has seen cursor N must never later
//! find a smaller one. A `bigserial` drawn when a batch is applied would not do: a sync's
//! transaction stays open across a delta round, so a later writer could commit cursor 101
//! while 100 waits uncommitted, and a reader paging by cursor would skip 100 forever. So
//! a tenant store keeps its transaction's events (they are only committed with it anyway,
//! and dropped on a rollback) and inserts them at the commit itself: one pipeline takes a
//! transaction-level advisory lock (keyed by the schema, as the migration lock is, with
//! another key), inserts the events and commits. The lock is held only while committing,
//! and released after the commit is visible, so the next writer's cursors come after these
//! and are visible after them. `set_notices` appends its events the same way, in its own
//! short transaction ([`insert_before_commit`]).

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};
use m365sync_store::StoreError;
use m365sync_store::feed::{ChangeEvent, ChangeFeed, EventDetail, NewEvent};
use m365sync_store::queue::rules::stored_change_kind;
use m365sync_store::time::now_rfc3339;
use m365sync_wit::StorageError;
use tokio_postgres::Row;

use crate::PostgresStore;
use crate::error::{refused, store_unavailable, unavailable};
use crate::pipeline::{self, Step};

/// The lock that orders the feed's writers, one per schema (see the module's comment).
const FEED_LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('m365sync feed ' || current_schema(), 0))";

/// The events of one commit, in order (`WITH ORDINALITY`: the cursors follow the batch).
const INSERT_EVENTS_SQL: &str = "INSERT INTO change_events (tenant, at, kind, object_id, detail)
     SELECT $1, $2, e.kind, e.object_id, e.detail
     FROM UNNEST($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(kind, object_id, detail, n)
     ORDER BY e.n";

/// Commit the open transaction of `tenant`'s store with its `events`: without events a
/// plain `COMMIT`; with some, the feed's lock, their insert and `COMMIT` in one round trip.
/// A failed insert aborts the transaction, so its `COMMIT` rolls back (nothing of it lands).
pub(crate) async fn commit_with_events(
    client: &Object,
    tenant: &str,
    events: &[NewEvent],
) -> Result<(), StorageError> {
    let committing = format!("committing the batches of tenant {tenant}");
    if events.is_empty() {
        return client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| unavailable(&committing, &e));
    }
    let insert = client
        .prepare_cached(INSERT_EVENTS_SQL)
        .await
        .map_err(|e| unavailable("preparing the change feed's insert", &e))?;
    let at = now_rfc3339();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    let objects: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
    let details: Vec<String> = events.iter().map(|e| e.detail.to_stored()).collect();
    let what = format!("writing the change feed of tenant {tenant}");
    let steps: Vec<Step<'_, ()>> = vec![
        Box::pin(async {
            client
                .batch_execute(FEED_LOCK_SQL)
                .await
                .map_err(|e| unavailable("taking the change feed's lock", &e))
        }),
        Box::pin(async {
            client
                .execute(&insert, &[&tenant, &at, &kinds, &objects, &details])
                .await
                .map(drop)
                .map_err(|e| refused(&what, &e))
        }),
        Box::pin(async {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| unavailable(&committing, &e))
        }),
    ];
    pipeline::in_order(steps).await.map(drop)
}

/// Append `tenant`'s `events` in an open transaction that the caller commits right after
/// (`Notices::set_notices`): the feed's lock, then their insert, as
/// [`commit_with_events`] does, the lock held until that commit. Without events nothing is
/// sent (no lock is taken).
pub(crate) async fn insert_before_commit(
    client: &impl GenericClient,
    tenant: &str,
    events: &[NewEvent],
) -> Result<(), tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    client.batch_execute(FEED_LOCK_SQL).await?;
    let insert = client.prepare_cached(INSERT_EVENTS_SQL).await?;
    let at = now_rfc3339();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    let objects: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
    let details: Vec<String> = events.iter().map(|e| e.detail.to_stored()).collect();
    client
        .execute(&insert, &[&tenant, &at, &kinds, &objects, &details])
        .await
        .map(drop)
}

fn event_from_row(row: &Row) -> Result<ChangeEvent, String> {
    let read = |e: tokio_postgres::Error| e.to_string();
    let kind: String = row.try_get(3).map_err(read)?;
    let detail: String = row.try_get(5).map_err(read)?;
    Ok(ChangeEvent {
        cursor: row.try_get(0).map_err(read)?,
        tenant: row.try_get(1).map_err(read)?,
        at: row.try_get(2).map_err(read)?,
        kind: stored_change_kind(&kind)?,
        object_id: row.try_get(4).map_err(read)?,
        detail: EventDetail::from_stored(&detail),
    })
}

/// The cursor of the feed's last committed event (0: none).
pub(crate) async fn last_cursor(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT COALESCE(MAX(cursor), 0)::bigint FROM change_events",
            &[],
        )
        .await?
        .try_get(0)
}

#[async_trait]
impl ChangeFeed for PostgresStore {
    async fn changes(
        &self,
        after: i64,
        limit: u32,
        tenant: Option<&str>,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let what = "reading the change feed";
        let client = self.client(what).await?;
        let limit = i64::from(limit);
        const COLUMNS: &str = "cursor, tenant, at, kind, object_id, detail";
        // Two statements rather than `$3 IS NULL OR ...`, so each plan seeks its index.
        let rows = match tenant {
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM change_events WHERE cursor > $1 ORDER BY cursor LIMIT $2"
                );
                client.query(&sql, &[&after, &limit]).await
            }
            Some(tenant) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM change_events WHERE tenant = $3 AND cursor > $1
                     ORDER BY cursor LIMIT $2"
                );
                client.query(&sql, &[&after, &limit, &tenant]).await
            }
        }
        .map_err(|e| store_unavailable(what, &e))?;
        rows.iter()
            .map(|row| {
                event_from_row(row).map_err(|why| {
                    StoreError::Storage(StorageError::Unavailable(format!(
                        "{what} of {}: {why}",
                        self.target.described
                    )))
                })
            })
            .collect()
    }

    async fn last_cursor(&self) -> Result<i64, StoreError> {
        let what = "reading the change feed";
        let client = self.client(what).await?;
        last_cursor(&client)
            .await
            .map_err(|e| store_unavailable(what, &e))
    }
}
