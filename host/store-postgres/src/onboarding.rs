//! What onboarding keeps, in PostgreSQL ([`Onboarding`]): consent requests and registered
//! tenants (schema 3; a tenant's partner since schema 4):
//! - a take is `DELETE ... WHERE state = $1 RETURNING ...`: of concurrent takes of one
//!   state, the first deletes the row and the others wait on its row lock and then find
//!   nothing; its expiry is checked on what it returned. Before it, the expired requests
//!   are deleted (those no other call holds);
//! - a registration is an upsert on the directory id; a name another directory holds
//!   violates the unique index on `name` (`registered_tenants_name`), which is the
//!   contract's refusal ([`name_held`]), however two registrations interleave.

use async_trait::async_trait;
use m365sync_store::StoreError;
use m365sync_store::onboarding::{
    ConsentRequest, Onboarding, RegisteredTenant, features_from_stored, name_held, state_held,
    stored_features,
};
use m365sync_wit::StorageError;
use m365sync_wit::types::Features;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::PostgresStore;
use crate::values::no_nul;

/// The unique index of registered tenants' names (schema 3).
const NAME_INDEX: &str = "registered_tenants_name";

/// Why a call failed.
enum Failed {
    Sql(tokio_postgres::Error),
    /// A value read back that is not what it may be.
    Bad(String),
}

impl From<tokio_postgres::Error> for Failed {
    fn from(error: tokio_postgres::Error) -> Self {
        Failed::Sql(error)
    }
}

impl PostgresStore {
    /// The error of `what` on this store.
    fn onboarding_error(&self, what: &str, failed: Failed) -> StoreError {
        let what = format!("{what} in {}", self.target.described);
        StoreError::Storage(match failed {
            Failed::Sql(error) => crate::error::refused(&what, &error),
            Failed::Bad(why) => StorageError::Unavailable(format!("{what}: {why}")),
        })
    }
}

/// Every text of `fields` one PostgreSQL can hold (see `values.rs`).
fn check_texts(fields: &[(&str, &str)]) -> Result<(), StoreError> {
    for (field, value) in fields {
        no_nul(field, value).map_err(StoreError::Storage)?;
    }
    Ok(())
}

/// Features read back from column `index` (`column` names it in errors).
fn features(row: &Row, index: usize, column: &str) -> Result<Features, Failed> {
    let stored: String = row.try_get(index)?;
    features_from_stored(column, &stored).map_err(Failed::Bad)
}

fn request_from_row(row: &Row) -> Result<ConsentRequest, Failed> {
    Ok(ConsentRequest {
        state: row.try_get(0)?,
        app: row.try_get(1)?,
        features: features(row, 2, "consent_requests.features")?,
        redirect_uri: row.try_get(3)?,
        created_ms: row.try_get(4)?,
        expires_ms: row.try_get(5)?,
    })
}

fn tenant_from_row(row: &Row) -> Result<RegisteredTenant, Failed> {
    Ok(RegisteredTenant {
        name: row.try_get(0)?,
        tenant_id: row.try_get(1)?,
        display_name: row.try_get(2)?,
        app: row.try_get(3)?,
        features: features(row, 4, "registered_tenants.features")?,
        registered_ms: row.try_get(5)?,
        partner: row.try_get(6)?,
    })
}

/// Whether `error` is a second directory's registration under a held name.
fn name_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && error
            .as_db_error()
            .and_then(|db| db.constraint())
            .is_some_and(|constraint| constraint == NAME_INDEX)
}

#[async_trait]
impl Onboarding for PostgresStore {
    async fn put_consent_request(&self, request: &ConsentRequest) -> Result<(), StoreError> {
        let what = "keeping the consent request";
        check_texts(&[
            ("the consent request's state", &request.state),
            ("the consent request's app", &request.app),
            ("the consent request's redirect URI", &request.redirect_uri),
        ])?;
        let client = self.client(what).await?;
        let inserted = client
            .execute(
                "INSERT INTO consent_requests
                   (state, app, features, redirect_uri, created_ms, expires_ms)
                 VALUES ($1, $2, $3::text::jsonb, $4, $5, $6)
                 ON CONFLICT (state) DO NOTHING",
                &[
                    &request.state,
                    &request.app,
                    &stored_features(request.features),
                    &request.redirect_uri,
                    &request.created_ms,
                    &request.expires_ms,
                ],
            )
            .await
            .map_err(|e| self.onboarding_error(what, e.into()))?;
        if inserted == 0 {
            return Err(state_held());
        }
        Ok(())
    }

    async fn take_consent_request(
        &self,
        state: &str,
        now_ms: i64,
    ) -> Result<Option<ConsentRequest>, StoreError> {
        let what = "taking the consent request";
        if state.contains('\0') {
            // No state PostgreSQL can hold: none was put.
            return Ok(None);
        }
        let client = self.client(what).await?;
        // The expired requests first, skipping rows another call holds (so this statement
        // never waits, and two calls never wait on each other); then the take, which
        // waits only on the row of its state.
        client
            .execute(
                "DELETE FROM consent_requests WHERE state IN (
                   SELECT state FROM consent_requests WHERE expires_ms <= $1
                   FOR UPDATE SKIP LOCKED)",
                &[&now_ms],
            )
            .await
            .map_err(|e| self.onboarding_error(what, e.into()))?;
        let rows = client
            .query(
                "DELETE FROM consent_requests WHERE state = $1
                 RETURNING state, app, features::text, redirect_uri, created_ms, expires_ms",
                &[&state],
            )
            .await
            .map_err(|e| self.onboarding_error(what, e.into()))?;
        let taken = (rows.first().map(request_from_row).transpose())
            .map_err(|failed| self.onboarding_error(what, failed))?;
        Ok(taken.filter(|request| request.expires_ms > now_ms))
    }

    async fn register_tenant(&self, tenant: &RegisteredTenant) -> Result<(), StoreError> {
        let what = "registering the tenant";
        check_texts(&[
            ("the tenant's name", &tenant.name),
            ("the tenant's directory id", &tenant.tenant_id),
            ("the tenant's display name", &tenant.display_name),
            ("the tenant's app", &tenant.app),
            (
                "the tenant's partner",
                tenant.partner.as_deref().unwrap_or_default(),
            ),
        ])?;
        let client = self.client(what).await?;
        let registered = client
            .execute(
                "INSERT INTO registered_tenants
                   (tenant_id, name, display_name, app, features, registered_ms, partner)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7)
                 ON CONFLICT (tenant_id) DO UPDATE SET
                   name = EXCLUDED.name, display_name = EXCLUDED.display_name,
                   app = EXCLUDED.app, features = EXCLUDED.features,
                   registered_ms = EXCLUDED.registered_ms, partner = EXCLUDED.partner",
                &[
                    &tenant.tenant_id,
                    &tenant.name,
                    &tenant.display_name,
                    &tenant.app,
                    &stored_features(tenant.features),
                    &tenant.registered_ms,
                    &tenant.partner,
                ],
            )
            .await;
        match registered {
            Ok(_) => Ok(()),
            Err(error) if name_violation(&error) => Err(name_held(tenant)),
            Err(error) => Err(self.onboarding_error(what, error.into())),
        }
    }

    async fn registered_tenants(&self) -> Result<Vec<RegisteredTenant>, StoreError> {
        let what = "listing the registered tenants";
        let client = self.client(what).await?;
        let rows = client
            .query(
                "SELECT name, tenant_id, display_name, app, features::text, registered_ms,
                   partner
                 FROM registered_tenants ORDER BY name",
                &[],
            )
            .await
            .map_err(|e| self.onboarding_error(what, e.into()))?;
        (rows.iter().map(tenant_from_row).collect::<Result<_, _>>())
            .map_err(|failed| self.onboarding_error(what, failed))
    }
}
