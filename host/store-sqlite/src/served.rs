//! The rows `serve` keeps besides jobs, in SQLite: served tenants and their states, the
//! workers (and the one-process rule of `join`), and webhook delivery positions. Each
//! function runs in the caller's transaction (see `queue.rs`) and decides by the shared
//! rules ([`m365sync_store::queue::rules`]).

use std::collections::{BTreeMap, HashMap};

use m365sync_store::model::stored_integer;
use m365sync_store::queue::rules;
use m365sync_store::queue::{
    JobState, RunEnd, ServedTenant, TenantState, WebhookState, WorkerInfo,
};
use m365sync_store::time::unix_now_ms;
use rusqlite::{Connection, OptionalExtension, params};

use crate::feed::last_cursor;
use crate::queue::{Failed, jobs_in, update_job};

const TENANT_COLUMNS: &str = "tenant, app, paused, consecutive_failures, attention, \
    next_run_ms, last_run_id, last_run_ms, last_run_ok";

/// A tenant's state as stored (`running` is not: see [`with_running`]).
fn tenant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TenantState> {
    Ok(TenantState {
        tenant: row.get(0)?,
        app: row.get(1)?,
        paused: row.get(2)?,
        consecutive_failures: row.get(3)?,
        attention: row.get(4)?,
        next_run_ms: row.get(5)?,
        last_run_id: row.get(6)?,
        last_run_ms: row.get(7)?,
        last_run_ok: row.get(8)?,
        running: false,
    })
}

/// A served tenant's stored state.
pub(crate) fn state(
    connection: &Connection,
    tenant: &str,
) -> rusqlite::Result<Option<TenantState>> {
    connection
        .prepare_cached(&format!(
            "SELECT {TENANT_COLUMNS} FROM served_tenants WHERE tenant = ?1"
        ))?
        .query_row(params![tenant], tenant_from_row)
        .optional()
}

/// `states` with `running` as read at `now_ms`.
fn with_running(
    connection: &Connection,
    mut states: Vec<TenantState>,
    now_ms: i64,
) -> rusqlite::Result<Vec<TenantState>> {
    let running = jobs_in(connection, JobState::Running)?;
    for state in &mut states {
        state.running =
            (running.iter()).any(|j| j.tenant == state.tenant && rules::running_live(j, now_ms));
    }
    Ok(states)
}

/// A served tenant's state at `now_ms`.
pub(crate) fn state_at(
    connection: &Connection,
    tenant: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<TenantState>> {
    let states: Vec<TenantState> = state(connection, tenant)?.into_iter().collect();
    Ok(with_running(connection, states, now_ms)?.pop())
}

/// Every served tenant's state at `now_ms`, by name.
pub(crate) fn states(connection: &Connection, now_ms: i64) -> rusqlite::Result<Vec<TenantState>> {
    let states = connection
        .prepare_cached(&format!(
            "SELECT {TENANT_COLUMNS} FROM served_tenants ORDER BY tenant"
        ))?
        .query_map([], tenant_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    with_running(connection, states, now_ms)
}

/// Whether each served tenant is paused.
pub(crate) fn paused(connection: &Connection) -> rusqlite::Result<HashMap<String, bool>> {
    connection
        .prepare_cached("SELECT tenant, paused FROM served_tenants")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

/// Write a tenant's state (inserting it when new).
fn put_state(connection: &Connection, state: &TenantState) -> rusqlite::Result<()> {
    connection
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO served_tenants ({TENANT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?
        .execute(params![
            state.tenant,
            state.app,
            state.paused,
            state.consecutive_failures,
            state.attention,
            state.next_run_ms,
            state.last_run_id,
            state.last_run_ms,
            state.last_run_ok,
        ])
        .map(drop)
}

/// Make `tenants` the served ones (see `Queue::serve_tenants`).
pub(crate) fn serve_tenants(
    transaction: &Connection,
    tenants: &[ServedTenant],
) -> rusqlite::Result<()> {
    // The last entry of a tenant named twice wins.
    let served: BTreeMap<&str, &str> = tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.app.as_str()))
        .collect();
    let known: Vec<String> = transaction
        .prepare_cached("SELECT tenant FROM served_tenants")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for tenant in known.iter().filter(|t| !served.contains_key(t.as_str())) {
        transaction
            .prepare_cached("DELETE FROM served_tenants WHERE tenant = ?1")?
            .execute(params![tenant])?;
    }
    for (tenant, app) in &served {
        let state = match state(transaction, tenant)? {
            Some(known) => TenantState {
                app: app.to_string(),
                ..known
            },
            None => rules::new_tenant(tenant, app),
        };
        put_state(transaction, &state)?;
    }
    let now_ms = unix_now_ms();
    for job in jobs_in(transaction, JobState::Queued)? {
        if !served.contains_key(job.tenant.as_str()) {
            update_job(transaction, &rules::cancelled(&job, now_ms))?;
        }
    }
    Ok(())
}

pub(crate) fn set_paused(
    transaction: &Connection,
    tenant: &str,
    paused: bool,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached("UPDATE served_tenants SET paused = ?2 WHERE tenant = ?1")?
        .execute(params![tenant, paused])
        .map(drop)
}

/// Compare-and-set of the next run (`IS` compares NULLs as equal).
pub(crate) fn set_next_run(
    transaction: &Connection,
    tenant: &str,
    expected: Option<i64>,
    next: Option<i64>,
) -> rusqlite::Result<bool> {
    transaction
        .prepare_cached(
            "UPDATE served_tenants SET next_run_ms = ?3 WHERE tenant = ?1 AND next_run_ms IS ?2",
        )?
        .execute(params![tenant, expected, next])
        .map(|changed| changed == 1)
}

pub(crate) fn record_run_end(
    transaction: &Connection,
    tenant: &str,
    end: &RunEnd,
) -> rusqlite::Result<()> {
    match state(transaction, tenant)? {
        Some(state) => put_state(transaction, &rules::run_ended(&state, end)),
        // A tenant not served is not recorded.
        None => Ok(()),
    }
}

fn worker_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorkerInfo> {
    Ok(WorkerInfo {
        id: row.get(0)?,
        pid: row.get(1)?,
        host: row.get(2)?,
        started_ms: row.get(3)?,
        heartbeat_ms: row.get(4)?,
    })
}

/// Every registered worker, by id.
pub(crate) fn workers(connection: &Connection) -> rusqlite::Result<Vec<WorkerInfo>> {
    connection
        .prepare_cached("SELECT id, pid, host, started_ms, heartbeat_ms FROM workers ORDER BY id")?
        .query_map([], worker_from_row)?
        .collect()
}

/// Register `worker` (or refresh it), unless another live worker serves the store
/// (described as `store`): one process serves a SQLite store. Workers that are gone are
/// removed.
pub(crate) fn join(
    transaction: &Connection,
    store: &str,
    worker: &WorkerInfo,
) -> Result<(), Failed> {
    for other in workers(transaction)?.iter().filter(|w| w.id != worker.id) {
        if rules::worker_live(other, worker.heartbeat_ms) {
            return Err(rules::served_by_another(store, other).into());
        }
        leave(transaction, &other.id)?;
    }
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO workers (id, pid, host, started_ms, heartbeat_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            worker.id,
            worker.pid,
            worker.host,
            worker.started_ms,
            worker.heartbeat_ms
        ])?;
    Ok(())
}

pub(crate) fn leave(transaction: &Connection, worker_id: &str) -> rusqlite::Result<()> {
    transaction
        .prepare_cached("DELETE FROM workers WHERE id = ?1")?
        .execute(params![worker_id])
        .map(drop)
}

/// The webhook's state; a webhook seen for the first time is stored, at the feed's end.
pub(crate) fn webhook(transaction: &Connection, name: &str) -> Result<WebhookState, Failed> {
    let stored = transaction
        .prepare_cached(
            "SELECT name, cursor, delivered, failures, last_error, last_delivered_ms, worker,
                    lease_until_ms
             FROM webhooks WHERE name = ?1",
        )?
        .query_row(params![name], |row| {
            Ok(WebhookState {
                name: row.get(0)?,
                cursor: row.get(1)?,
                delivered: row.get(2)?,
                failures: row.get(3)?,
                last_error: row.get(4)?,
                last_delivered_ms: row.get(5)?,
                worker: row.get(6)?,
                lease_until_ms: row.get(7)?,
            })
        })
        .optional()?;
    if let Some(stored) = stored {
        return Ok(stored);
    }
    let state = rules::new_webhook(name, last_cursor(transaction)?);
    put_webhook(transaction, &state)?;
    Ok(state)
}

pub(crate) fn put_webhook(transaction: &Connection, state: &WebhookState) -> Result<(), Failed> {
    let delivered = stored_integer("the webhook's delivered count", state.delivered)
        .map_err(m365sync_store::StoreError::Storage)?;
    transaction
        .prepare_cached(
            "INSERT OR REPLACE INTO webhooks (name, cursor, delivered, failures, last_error,
                 last_delivered_ms, worker, lease_until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            state.name,
            state.cursor,
            delivered,
            state.failures,
            state.last_error,
            state.last_delivered_ms,
            state.worker,
            state.lease_until_ms,
        ])?;
    Ok(())
}
