//! What onboarding keeps, in SQLite ([`Onboarding`]): consent requests and registered
//! tenants (schema 6, [`crate::schema::ONBOARDING_TABLES`]; a tenant's partner since schema
//! 7, [`crate::schema::REGISTERED_PARTNER`]). Every write is one short write transaction at
//! the file's gate (`SqliteStore::write`): a take deletes the request and reads it back in
//! one statement, so of two takes of one state only the first finds it; a registration
//! checks the name and upserts the directory's row in one transaction.

use async_trait::async_trait;
use m365sync_store::StoreError;
use m365sync_store::onboarding::{
    ConsentRequest, Onboarding, RegisteredTenant, features_from_stored, name_held, state_held,
    stored_features,
};
use m365sync_wit::types::Features;
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::queue::{Failed, bad_value};

/// Features read back from column `index` (`column` names it in errors).
fn features(row: &rusqlite::Row<'_>, index: usize, column: &str) -> rusqlite::Result<Features> {
    let stored: String = row.get(index)?;
    features_from_stored(column, &stored).map_err(|why| bad_value(index, why))
}

fn put(transaction: &Connection, request: &ConsentRequest) -> Result<(), Failed> {
    let inserted = transaction
        .prepare_cached(
            "INSERT INTO consent_requests
               (state, app, features, redirect_uri, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (state) DO NOTHING",
        )?
        .execute(params![
            request.state,
            request.app,
            stored_features(request.features),
            request.redirect_uri,
            request.created_ms,
            request.expires_ms,
        ])?;
    if inserted == 0 {
        return Err(state_held().into());
    }
    Ok(())
}

/// The request of `state`, deleted; then every expired request is deleted too.
fn take(
    transaction: &Connection,
    state: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<ConsentRequest>> {
    let taken = transaction
        .prepare_cached(
            "DELETE FROM consent_requests WHERE state = ?1
             RETURNING state, app, features, redirect_uri, created_ms, expires_ms",
        )?
        .query_row(params![state], |row| {
            Ok(ConsentRequest {
                state: row.get(0)?,
                app: row.get(1)?,
                features: features(row, 2, "consent_requests.features")?,
                redirect_uri: row.get(3)?,
                created_ms: row.get(4)?,
                expires_ms: row.get(5)?,
            })
        })
        .optional()?;
    transaction
        .prepare_cached("DELETE FROM consent_requests WHERE expires_ms <= ?1")?
        .execute(params![now_ms])?;
    Ok(taken.filter(|request| request.expires_ms > now_ms))
}

fn register(transaction: &Connection, tenant: &RegisteredTenant) -> Result<(), Failed> {
    let held: Option<String> = transaction
        .prepare_cached(
            "SELECT tenant_id FROM registered_tenants WHERE name = ?1 AND tenant_id <> ?2",
        )?
        .query_row(params![tenant.name, tenant.tenant_id], |row| row.get(0))
        .optional()?;
    if held.is_some() {
        return Err(name_held(tenant).into());
    }
    transaction
        .prepare_cached(
            "INSERT INTO registered_tenants
               (tenant_id, name, display_name, app, features, registered_ms, partner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (tenant_id) DO UPDATE SET
               name = excluded.name, display_name = excluded.display_name,
               app = excluded.app, features = excluded.features,
               registered_ms = excluded.registered_ms, partner = excluded.partner",
        )?
        .execute(params![
            tenant.tenant_id,
            tenant.name,
            tenant.display_name,
            tenant.app,
            stored_features(tenant.features),
            tenant.registered_ms,
            tenant.partner,
        ])?;
    Ok(())
}

fn registered(connection: &Connection) -> rusqlite::Result<Vec<RegisteredTenant>> {
    connection
        .prepare_cached(
            "SELECT name, tenant_id, display_name, app, features, registered_ms, partner
             FROM registered_tenants ORDER BY name",
        )?
        .query_map([], |row| {
            Ok(RegisteredTenant {
                name: row.get(0)?,
                tenant_id: row.get(1)?,
                display_name: row.get(2)?,
                app: row.get(3)?,
                features: features(row, 4, "registered_tenants.features")?,
                registered_ms: row.get(5)?,
                partner: row.get(6)?,
            })
        })?
        .collect()
}

#[async_trait]
impl Onboarding for SqliteStore {
    async fn put_consent_request(&self, request: &ConsentRequest) -> Result<(), StoreError> {
        self.write("keeping the consent request", |t| put(t, request))
            .await
    }

    async fn take_consent_request(
        &self,
        state: &str,
        now_ms: i64,
    ) -> Result<Option<ConsentRequest>, StoreError> {
        self.write("taking the consent request", |t| {
            Ok(take(t, state, now_ms)?)
        })
        .await
    }

    async fn register_tenant(&self, tenant: &RegisteredTenant) -> Result<(), StoreError> {
        self.write("registering the tenant", |t| register(t, tenant))
            .await
    }

    async fn registered_tenants(&self) -> Result<Vec<RegisteredTenant>, StoreError> {
        self.read("listing the registered tenants", registered)
    }
}
