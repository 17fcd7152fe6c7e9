//! The platform's organizations in PostgreSQL: create, import, list (the rules are the
//! store model's: `m365sync_store::model`).

use deadpool_postgres::{GenericClient, Object};
use m365sync_store::model::{
    OrganizationImport, OrganizationRow, organization_exists, organization_to_create,
    plan_organization_import,
};
use m365sync_wit::StorageError;
use m365sync_wit::types::PlatformOrganization;

use crate::error::{refused, unavailable};

/// Create a platform organization: with `id`, or a fresh one.
pub(crate) async fn create(
    client: &impl GenericClient,
    name: &str,
    id: Option<&str>,
) -> Result<PlatformOrganization, StorageError> {
    let organization = organization_to_create(name, id)?;
    let inserted = client
        .execute(
            "INSERT INTO platform_organizations (id, name) VALUES ($1, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&organization.id, &organization.name],
        )
        .await
        .map_err(|e| refused("creating an organization", &e))?;
    if inserted == 0 {
        return Err(organization_exists(&organization.id));
    }
    Ok(organization)
}

/// Every platform organization, by name (byte-wise), then id.
pub(crate) async fn list(
    client: &impl GenericClient,
) -> Result<Vec<PlatformOrganization>, StorageError> {
    let what = "listing organizations";
    let rows = client
        .query(
            "SELECT id, name FROM platform_organizations
             ORDER BY name COLLATE \"C\", id COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(|e| unavailable(what, &e))?;
    rows.iter()
        .map(|row| {
            Ok(PlatformOrganization {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| unavailable(what, &e))
}

/// Import organizations in one transaction, all rows or none, as the model plans it
/// ([`plan_organization_import`]). The table is locked against other writers for the
/// transaction, so what was planned from is what the import changes (two imports at once
/// run one after the other).
pub(crate) async fn import(
    client: &mut Object,
    rows: &[OrganizationRow],
) -> Result<OrganizationImport, StorageError> {
    let failed = |what: &'static str| move |e: tokio_postgres::Error| unavailable(what, &e);
    let transaction = client
        .transaction()
        .await
        .map_err(failed("starting the import"))?;
    transaction
        .batch_execute("LOCK TABLE platform_organizations IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(failed("locking the organizations for the import"))?;
    let existing = list(&transaction).await?;
    let plan = plan_organization_import(rows, &existing)?;
    for organization in &plan.created {
        create(&transaction, &organization.name, Some(&organization.id)).await?;
    }
    for organization in &plan.renamed {
        transaction
            .execute(
                "UPDATE platform_organizations SET name = $2 WHERE id = $1",
                &[&organization.id, &organization.name],
            )
            .await
            .map_err(|e| refused("renaming an organization", &e))?;
    }
    transaction
        .commit()
        .await
        .map_err(failed("committing the import"))?;
    Ok(plan)
}
