//! Resetting a tenant: deleting every row the store holds for it but its sync log (which
//! notes the reset) and the platform's organizations, refused while a sync holds the
//! tenant's lock.

use deadpool_postgres::Object;
use m365sync_store::StoreError;
use m365sync_store::model::ResetOutcome;
use m365sync_store::time::now_rfc3339;
use m365sync_wit::StorageError;

use crate::error::message;
use crate::lock::{is_live, read_holder};

/// The tables a reset empties for the tenant, in the order (and with the names) SQLite's
/// reset reports them: every table with a `tenant` column but the sync log (`runs`), the
/// locks (`tenant_locks`) and the platform's organizations, by name.
const RESET_TABLES: &[&str] = &[
    "checkpoints",
    "domains",
    "group_members",
    "groups",
    "mailboxes",
    "match_decisions",
    "organizations",
    "people",
    "subscriptions",
    "usage",
];

/// Delete `tenant`'s rows in one transaction and note the reset in the sync log (status
/// `reset`). The lock row is read `FOR UPDATE` first: a run cannot take the lock while the
/// reset deletes, and a live holder refuses the reset.
pub(crate) async fn reset_tenant(
    client: &mut Object,
    place: &str,
    tenant: &str,
) -> Result<ResetOutcome, StoreError> {
    let failed = |e: tokio_postgres::Error| {
        StoreError::Storage(StorageError::Unavailable(format!(
            "cannot reset tenant {tenant} in {place}: {}",
            message(&e)
        )))
    };
    let transaction = client.transaction().await.map_err(failed)?;
    transaction
        .batch_execute("SET LOCAL lock_timeout = '5s'")
        .await
        .map_err(failed)?;
    if let Some((holder, token)) = read_holder(&transaction, tenant, true)
        .await
        .map_err(failed)?
        && is_live(&holder, &token)
    {
        return Err(StoreError::Locked {
            tenant: tenant.to_string(),
            holder,
        });
    }
    let mut deleted = Vec::with_capacity(RESET_TABLES.len());
    for table in RESET_TABLES {
        // The table names are this module's constants, never input.
        let n = transaction
            .execute(
                &format!("DELETE FROM {table} WHERE tenant = $1"),
                &[&tenant],
            )
            .await
            .map_err(failed)?;
        deleted.push((table.to_string(), n));
    }
    let note = ResetOutcome::note(&deleted);
    let row = transaction
        .query_one(
            "INSERT INTO runs (tenant, started_at, mode, status, dry_run, error_kind, error)
             VALUES ($1, $2, 'reset', 'reset', false, 'reset', $3)
             RETURNING id",
            &[&tenant, &now_rfc3339(), &note],
        )
        .await
        .map_err(failed)?;
    let run_id: i64 = row.try_get(0).map_err(failed)?;
    transaction.commit().await.map_err(failed)?;
    Ok(ResetOutcome { deleted, run_id })
}
