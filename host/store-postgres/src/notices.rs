//! What an admin must act on, in PostgreSQL ([`Notices`]): the `notices` table (schema 4).
//! `set_notices` is one transaction:
//! - a transaction-level advisory lock keyed by the schema, the tenant and the kind (as
//!   the feed's lock is keyed, with another prefix) first, so that two workers setting one
//!   tenant's notices of a kind at once take turns: the second reads what the first wrote
//!   and raises nothing the first raised;
//! - the stored notices of the kind read, the shared rule ([`plan_notices`]) deciding what
//!   is deleted, upserted and appended;
//! - the events appended as a commit appends a batch's ([`feed::insert_before_commit`]:
//!   the feed's lock, their insert, then the commit), so their cursors follow commit order.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use m365sync_store::StoreError;
use m365sync_store::notices::{
    Notice, NoticeKind, Notices, plan_notices, stored_notice_kind, stored_notice_stage,
};
use tokio_postgres::Row;

use crate::PostgresStore;
use crate::feed;
use crate::queue::Failed;
use crate::values::no_nul;

/// The lock that makes the setters of one tenant's notices of one kind take turns.
const NOTICES_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtextextended(
    'm365sync notices ' || current_schema() || ' ' || $2 || ' ' || $1, 0))";

const COLUMNS: &str = "tenant, kind, key, stage, ends, message, raised_ms";

/// The given notices' rows, one statement (`UNNEST`): inserted, or replacing the stored
/// notice of their key.
const UPSERT_SQL: &str = "INSERT INTO notices (tenant, kind, key, stage, ends, message, raised_ms)
     SELECT $1, $2, n.key, n.stage, n.ends, n.message, n.raised_ms
     FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
       AS n(key, stage, ends, message, raised_ms)
     ON CONFLICT (tenant, kind, key) DO UPDATE SET
       stage = EXCLUDED.stage, ends = EXCLUDED.ends, message = EXCLUDED.message,
       raised_ms = EXCLUDED.raised_ms";

impl PostgresStore {
    /// The error of `what` on this store.
    fn notices_error(&self, what: &str, failed: Failed) -> StoreError {
        failed.into_store(what, &self.target.described)
    }
}

fn notice_from_row(row: &Row) -> Result<Notice, Failed> {
    let kind: String = row.try_get(1)?;
    let stage: String = row.try_get(3)?;
    Ok(Notice {
        tenant: row.try_get(0)?,
        kind: stored_notice_kind(&kind).map_err(Failed::Bad)?,
        key: row.try_get(2)?,
        stage: stored_notice_stage(&stage).map_err(Failed::Bad)?,
        ends: row.try_get(4)?,
        message: row.try_get(5)?,
        raised_ms: row.try_get(6)?,
    })
}

/// Every text of `tenant` and `notices` one PostgreSQL can hold (see `values.rs`).
fn check_texts(tenant: &str, notices: &[Notice]) -> Result<(), StoreError> {
    let check = |field: &str, value: &str| no_nul(field, value).map_err(StoreError::Storage);
    check("the tenant's name", tenant)?;
    for notice in notices {
        check("a notice's key", &notice.key)?;
        check("a notice's end", &notice.ends)?;
        check("a notice's message", &notice.message)?;
    }
    Ok(())
}

async fn set(
    client: &mut deadpool_postgres::Object,
    tenant: &str,
    kind: NoticeKind,
    notices: &[Notice],
    now_ms: i64,
) -> Result<u32, Failed> {
    let transaction = client.transaction().await?;
    transaction
        .execute(NOTICES_LOCK_SQL, &[&tenant, &kind.name()])
        .await?;
    let rows = transaction
        .query(
            &format!("SELECT {COLUMNS} FROM notices WHERE tenant = $1 AND kind = $2 ORDER BY key"),
            &[&tenant, &kind.name()],
        )
        .await?;
    let stored: Vec<Notice> = rows.iter().map(notice_from_row).collect::<Result<_, _>>()?;
    let plan = plan_notices(tenant, kind, notices, &stored, now_ms)?;
    if !plan.delete.is_empty() {
        transaction
            .execute(
                "DELETE FROM notices WHERE tenant = $1 AND kind = $2 AND key = ANY($3::text[])",
                &[&tenant, &kind.name(), &plan.delete],
            )
            .await?;
    }
    if !plan.write.is_empty() {
        let keys: Vec<&str> = plan.write.iter().map(|n| n.key.as_str()).collect();
        let stages: Vec<&str> = plan.write.iter().map(|n| n.stage.name()).collect();
        let ends: Vec<&str> = plan.write.iter().map(|n| n.ends.as_str()).collect();
        let messages: Vec<&str> = plan.write.iter().map(|n| n.message.as_str()).collect();
        let raised: Vec<i64> = plan.write.iter().map(|n| n.raised_ms).collect();
        let upsert = transaction.prepare_cached(UPSERT_SQL).await?;
        transaction
            .execute(
                &upsert,
                &[
                    &tenant,
                    &kind.name(),
                    &keys,
                    &stages,
                    &ends,
                    &messages,
                    &raised,
                ],
            )
            .await?;
    }
    feed::insert_before_commit(&transaction, tenant, &plan.events).await?;
    transaction.commit().await?;
    Ok(plan.appended())
}

#[async_trait]
impl Notices for PostgresStore {
    async fn set_notices(
        &self,
        tenant: &str,
        kind: NoticeKind,
        notices: &[Notice],
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let what = format!("setting the {} notices of tenant {tenant}", kind.name());
        check_texts(tenant, notices)?;
        let mut client = self.client(&what).await?;
        set(&mut client, tenant, kind, notices, now_ms)
            .await
            .map_err(|failed| self.notices_error(&what, failed))
    }

    async fn notices(&self, tenant: Option<&str>) -> Result<Vec<Notice>, StoreError> {
        let what = "listing the notices";
        let client = self.client(what).await?;
        let rows = match tenant {
            // No tenant PostgreSQL can hold: none has notices.
            Some(tenant) if tenant.contains('\0') => return Ok(Vec::new()),
            Some(tenant) => {
                let sql =
                    format!("SELECT {COLUMNS} FROM notices WHERE tenant = $1 ORDER BY kind, key");
                client.query(&sql, &[&tenant]).await
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM notices ORDER BY tenant, kind, key");
                client.query(&sql, &[]).await
            }
        }
        .map_err(|e| self.notices_error(what, e.into()))?;
        (rows.iter().map(notice_from_row).collect::<Result<_, _>>())
            .map_err(|failed| self.notices_error(what, failed))
    }
}
