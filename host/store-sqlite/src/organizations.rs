//! The platform's organizations in SQLite: create, import, list (the rules are the
//! store model's: `m365sync_store::model`).

use m365sync_store::model::{
    OrganizationImport, OrganizationRow, organization_exists, organization_to_create,
    plan_organization_import,
};
use m365sync_wit::StorageError;
use m365sync_wit::types::PlatformOrganization;
use rusqlite::{Connection, params};

use crate::tenant::unavailable;

/// Create a platform organization: with `id`, or a fresh one.
pub fn create_organization(
    connection: &Connection,
    name: &str,
    id: Option<&str>,
) -> Result<PlatformOrganization, StorageError> {
    let organization = organization_to_create(name, id)?;
    let inserted = connection
        .prepare_cached("INSERT OR IGNORE INTO platform_organizations (id, name) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![organization.id, organization.name]))
        .map_err(|e| unavailable("creating an organization", e))?;
    if inserted == 0 {
        return Err(organization_exists(&organization.id));
    }
    Ok(organization)
}

/// Import organizations in one transaction (all rows or none), as the store model's plan
/// says ([`plan_organization_import`]): the plan is made from the organizations read in
/// the transaction, so a concurrent import cannot slip between.
pub fn import_organizations(
    connection: &mut Connection,
    rows: &[OrganizationRow],
) -> Result<OrganizationImport, StorageError> {
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| unavailable("starting a transaction", e))?;
    let existing =
        list_organizations(&transaction).map_err(|e| unavailable("reading organizations", e))?;
    let plan = plan_organization_import(rows, &existing)?;
    for organization in &plan.created {
        create_organization(&transaction, &organization.name, Some(&organization.id))?;
    }
    for organization in &plan.renamed {
        transaction
            .prepare_cached("UPDATE platform_organizations SET name = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![organization.id, organization.name]))
            .map_err(|e| unavailable("renaming an organization", e))?;
    }
    transaction
        .commit()
        .map_err(|e| unavailable("committing the import", e))?;
    Ok(plan)
}

/// Every platform organization, by name.
pub fn list_organizations(connection: &Connection) -> rusqlite::Result<Vec<PlatformOrganization>> {
    connection
        .prepare_cached("SELECT id, name FROM platform_organizations ORDER BY name, id")?
        .query_map([], |row| {
            Ok(PlatformOrganization {
                id: row.get(0)?,
                name: row.get(1)?,
            })
        })?
        .collect()
}
