//! The rows `serve` keeps besides jobs, in PostgreSQL: served tenants and their states,
//! the workers (any number: a server database is shared by many), and webhook delivery
//! positions. Writes that depend on what they read lock those rows (`FOR UPDATE`) in a
//! transaction and decide by the shared rules ([`m365sync_store::queue::rules`]).

use std::collections::BTreeMap;

use deadpool_postgres::{GenericClient, Object};
use m365sync_store::queue::rules;
use m365sync_store::queue::{
    JobState, RunEnd, ServedTenant, TenantState, WebhookState, WorkerInfo,
};
use m365sync_store::time::unix_now_ms;
use tokio_postgres::Row;

use crate::feed::last_cursor;
use crate::queue::{Failed, count, get, jobs_in, stored_count, update_job};

const TENANT_COLUMNS: &str = "tenant, app, paused, consecutive_failures, attention, \
    next_run_ms, last_run_id, last_run_ms, last_run_ok";

/// A tenant's state as stored (`running` is not: see [`states`]).
fn tenant_from_row(row: &Row) -> Result<TenantState, Failed> {
    Ok(TenantState {
        tenant: get(row, 0)?,
        app: get(row, 1)?,
        paused: get(row, 2)?,
        consecutive_failures: count(row, 3, "served_tenants.consecutive_failures")?,
        attention: get(row, 4)?,
        next_run_ms: get(row, 5)?,
        last_run_id: get(row, 6)?,
        last_run_ms: get(row, 7)?,
        last_run_ok: get(row, 8)?,
        running: false,
    })
}

/// A served tenant's stored state; `for_update` locks its row until the transaction ends.
pub(crate) async fn state(
    client: &impl GenericClient,
    tenant: &str,
    for_update: bool,
) -> Result<Option<TenantState>, Failed> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {TENANT_COLUMNS} FROM served_tenants WHERE tenant = $1{lock}");
    let rows = client.query(&sql, &[&tenant]).await?;
    rows.first().map(tenant_from_row).transpose()
}

/// The served tenants' states at `now_ms` (of `tenant`, or all), by name.
pub(crate) async fn states(
    client: &Object,
    tenant: Option<&str>,
    now_ms: i64,
) -> Result<Vec<TenantState>, Failed> {
    let rows = match tenant {
        Some(tenant) => {
            let sql = format!("SELECT {TENANT_COLUMNS} FROM served_tenants WHERE tenant = $1");
            client.query(&sql, &[&tenant]).await?
        }
        None => {
            let sql = format!("SELECT {TENANT_COLUMNS} FROM served_tenants ORDER BY tenant");
            client.query(&sql, &[]).await?
        }
    };
    let mut states: Vec<TenantState> =
        rows.iter().map(tenant_from_row).collect::<Result<_, _>>()?;
    let running = jobs_in(client, JobState::Running, false).await?;
    for state in &mut states {
        state.running =
            (running.iter()).any(|j| j.tenant == state.tenant && rules::running_live(j, now_ms));
    }
    Ok(states)
}

/// Write a tenant's state (inserting it when new).
async fn put_state(client: &impl GenericClient, state: &TenantState) -> Result<(), Failed> {
    let failures = stored_count(state.consecutive_failures, "consecutive failures")?;
    client
        .execute(
            &format!(
                "INSERT INTO served_tenants ({TENANT_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (tenant) DO UPDATE SET app = EXCLUDED.app,
                   paused = EXCLUDED.paused,
                   consecutive_failures = EXCLUDED.consecutive_failures,
                   attention = EXCLUDED.attention, next_run_ms = EXCLUDED.next_run_ms,
                   last_run_id = EXCLUDED.last_run_id, last_run_ms = EXCLUDED.last_run_ms,
                   last_run_ok = EXCLUDED.last_run_ok"
            ),
            &[
                &state.tenant,
                &state.app,
                &state.paused,
                &failures,
                &state.attention,
                &state.next_run_ms,
                &state.last_run_id,
                &state.last_run_ms,
                &state.last_run_ok,
            ],
        )
        .await?;
    Ok(())
}

/// Make `tenants` the served ones (see `Queue::serve_tenants`), in one transaction that
/// locks the served rows first (as an enqueue does), then the queued jobs.
pub(crate) async fn serve_tenants(
    client: &mut Object,
    tenants: &[ServedTenant],
) -> Result<(), Failed> {
    // The last entry of a tenant named twice wins.
    let served: BTreeMap<&str, &str> = tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.app.as_str()))
        .collect();
    let transaction = client.transaction().await?;
    let rows = transaction
        .query(
            &format!("SELECT {TENANT_COLUMNS} FROM served_tenants ORDER BY tenant FOR UPDATE"),
            &[],
        )
        .await?;
    let mut known: BTreeMap<String, TenantState> = BTreeMap::new();
    for row in &rows {
        let state = tenant_from_row(row)?;
        known.insert(state.tenant.clone(), state);
    }
    let dropped: Vec<&String> = known
        .keys()
        .filter(|t| !served.contains_key(t.as_str()))
        .collect();
    if !dropped.is_empty() {
        transaction
            .execute(
                "DELETE FROM served_tenants WHERE tenant = ANY($1::text[])",
                &[&dropped],
            )
            .await?;
    }
    for (tenant, app) in &served {
        let state = match known.get(*tenant) {
            Some(known) => TenantState {
                app: app.to_string(),
                ..known.clone()
            },
            None => rules::new_tenant(tenant, app),
        };
        put_state(&transaction, &state).await?;
    }
    let now_ms = unix_now_ms();
    for job in jobs_in(&transaction, JobState::Queued, true).await? {
        if !served.contains_key(job.tenant.as_str()) {
            update_job(&transaction, &rules::cancelled(&job, now_ms)).await?;
        }
    }
    transaction.commit().await?;
    Ok(())
}

pub(crate) async fn set_paused(client: &Object, tenant: &str, paused: bool) -> Result<(), Failed> {
    client
        .execute(
            "UPDATE served_tenants SET paused = $2 WHERE tenant = $1",
            &[&tenant, &paused],
        )
        .await?;
    Ok(())
}

/// Compare-and-set of the next run (`IS NOT DISTINCT FROM` compares NULLs as equal).
pub(crate) async fn set_next_run(
    client: &Object,
    tenant: &str,
    expected: Option<i64>,
    next: Option<i64>,
) -> Result<bool, Failed> {
    let changed = client
        .execute(
            "UPDATE served_tenants SET next_run_ms = $3
             WHERE tenant = $1 AND next_run_ms IS NOT DISTINCT FROM $2",
            &[&tenant, &expected, &next],
        )
        .await?;
    Ok(changed == 1)
}

pub(crate) async fn record_run_end(
    client: &mut Object,
    tenant: &str,
    end: &RunEnd,
) -> Result<(), Failed> {
    let transaction = client.transaction().await?;
    // A tenant not served is not recorded.
    if let Some(state) = state(&transaction, tenant, true).await? {
        put_state(&transaction, &rules::run_ended(&state, end)).await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Register `worker`, or refresh it: a server database is served by many workers.
pub(crate) async fn join(client: &Object, worker: &WorkerInfo) -> Result<(), Failed> {
    client
        .execute(
            "INSERT INTO workers (id, pid, host, started_ms, heartbeat_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, host = EXCLUDED.host,
               started_ms = EXCLUDED.started_ms, heartbeat_ms = EXCLUDED.heartbeat_ms",
            &[
                &worker.id,
                &i64::from(worker.pid),
                &worker.host,
                &worker.started_ms,
                &worker.heartbeat_ms,
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn leave(client: &Object, worker_id: &str) -> Result<(), Failed> {
    client
        .execute("DELETE FROM workers WHERE id = $1", &[&worker_id])
        .await?;
    Ok(())
}

/// Every registered worker, by id.
pub(crate) async fn workers(client: &Object) -> Result<Vec<WorkerInfo>, Failed> {
    let rows = client
        .query(
            "SELECT id, pid, host, started_ms, heartbeat_ms FROM workers ORDER BY id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(WorkerInfo {
                id: get(row, 0)?,
                pid: count(row, 1, "workers.pid")?,
                host: get(row, 2)?,
                started_ms: get(row, 3)?,
                heartbeat_ms: get(row, 4)?,
            })
        })
        .collect()
}

const WEBHOOK_COLUMNS: &str =
    "name, cursor, delivered, failures, last_error, last_delivered_ms, worker, lease_until_ms";

fn webhook_from_row(row: &Row) -> Result<WebhookState, Failed> {
    Ok(WebhookState {
        name: get(row, 0)?,
        cursor: get(row, 1)?,
        delivered: count(row, 2, "webhooks.delivered")?,
        failures: count(row, 3, "webhooks.failures")?,
        last_error: get(row, 4)?,
        last_delivered_ms: get(row, 5)?,
        worker: get(row, 6)?,
        lease_until_ms: get(row, 7)?,
    })
}

/// The webhook's state, its row locked until the transaction ends; a webhook seen for the
/// first time is stored, at the feed's end.
async fn webhook(client: &impl GenericClient, name: &str) -> Result<WebhookState, Failed> {
    let select = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE name = $1 FOR UPDATE");
    if let Some(row) = client.query_opt(&select, &[&name]).await? {
        return webhook_from_row(&row);
    }
    let fresh = rules::new_webhook(name, last_cursor(client).await?);
    // Another worker may add it at the same moment: its row is then the one.
    client
        .execute(
            "INSERT INTO webhooks (name, cursor, delivered, failures)
             VALUES ($1, $2, 0, 0) ON CONFLICT (name) DO NOTHING",
            &[&fresh.name, &fresh.cursor],
        )
        .await?;
    let row = client.query_one(&select, &[&name]).await?;
    webhook_from_row(&row)
}

async fn put_webhook(client: &impl GenericClient, state: &WebhookState) -> Result<(), Failed> {
    let delivered = stored_count(state.delivered, "the webhook's delivered count")?;
    let failures = stored_count(state.failures, "the webhook's failures")?;
    client
        .execute(
            "UPDATE webhooks SET cursor = $2, delivered = $3, failures = $4, last_error = $5,
               last_delivered_ms = $6, worker = $7, lease_until_ms = $8
             WHERE name = $1",
            &[
                &state.name,
                &state.cursor,
                &delivered,
                &failures,
                &state.last_error,
                &state.last_delivered_ms,
                &state.worker,
                &state.lease_until_ms,
            ],
        )
        .await?;
    Ok(())
}

/// The webhook's state (stored at the feed's end when new).
pub(crate) async fn webhook_state(client: &mut Object, name: &str) -> Result<WebhookState, Failed> {
    let transaction = client.transaction().await?;
    let state = webhook(&transaction, name).await?;
    transaction.commit().await?;
    Ok(state)
}

/// Change the webhook's state as `change` says (None: it changes nothing); whether it did.
pub(crate) async fn update_webhook(
    client: &mut Object,
    name: &str,
    change: impl FnOnce(&WebhookState) -> Option<WebhookState> + Send,
) -> Result<bool, Failed> {
    let transaction = client.transaction().await?;
    let state = webhook(&transaction, name).await?;
    let changed = change(&state);
    if let Some(changed) = &changed {
        put_webhook(&transaction, changed).await?;
    }
    transaction.commit().await?;
    Ok(changed.is_some())
}
