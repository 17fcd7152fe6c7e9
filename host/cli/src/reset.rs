//! `m365sync reset --tenant NAME --yes`: delete everything the store holds for one tenant
//! (its people, groups, licences, organization, domains, mailboxes, usage, checkpoints
//! including the directory binding, and its organization-match decision), so that the next
//! sync starts it afresh, e.g. after the tenant's key was pointed at another directory
//! (the engine's `tenant-mismatch`). The sync log is kept, with the reset noted in it, and
//! so are the platform's organizations, which all tenants share. Refused without `--yes`,
//! and while a sync of the tenant holds its lock.

use anyhow::anyhow;

use super::{Failure, Output, ResetArgs};
use m365sync_config::ConfigFile;
use m365sync_store::StoreError;

pub async fn run(args: ResetArgs, output: Output) -> Result<(), Failure> {
    let config = match &args.config {
        Some(path) => Some(ConfigFile::load(path).map_err(Failure::usage)?),
        None => None,
    };
    let db = super::store_location(args.db.as_deref(), config.as_ref());
    let store = super::open_existing_store(&db).await?;
    if !args.yes {
        return Err(Failure::usage(anyhow!(
            "`m365sync reset` deletes everything {db} holds for tenant {} (people, groups, licences, usage, checkpoints, its organization decision); run it again with --yes to do so",
            args.tenant
        )));
    }
    let outcome = store
        .reset_tenant(&args.tenant)
        .await
        .map_err(|error| match error {
            held @ StoreError::Locked { .. } => {
                Failure::run(anyhow!("{held}; nothing was deleted"))
            }
            other => Failure::run(other),
        })?;
    if output.json {
        outln!(
            "{}",
            serde_json::json!({
                "tenant": args.tenant,
                "deleted": outcome
                    .deleted
                    .iter()
                    .map(|(table, n)| (table.clone(), serde_json::json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "log_run_id": outcome.run_id,
            })
        );
        return Ok(());
    }
    let total: u64 = outcome.deleted.iter().map(|(_, n)| n).sum();
    outln!(
        "Reset tenant {} in {db}: {total} rows deleted.",
        args.tenant
    );
    for (table, n) in outcome.deleted.iter().filter(|(_, n)| *n > 0) {
        outln!("  {table:<16} {n}");
    }
    outln!(
        "The sync log is kept (the reset is run #{}); the next sync reads the tenant in full.",
        outcome.run_id
    );
    Ok(())
}
