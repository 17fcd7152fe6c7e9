//! The bulk statements of a batch, one per table: rows arrive as one array per column and
//! are written with `INSERT ... SELECT ... FROM UNNEST(...) ON CONFLICT ... DO UPDATE`,
//! so a thousand rows are one statement. Each takes its rows already folded (each key
//! once, see `batch.rs`) and its values already checked (`values.rs`); lists go in as the
//! model's JSON text and are stored as `jsonb`.

use std::sync::LazyLock;

use m365sync_store::log_entry::RunReport;
use m365sync_store::model::{counts_json, json_list, stored_integer};
use m365sync_wit::StorageError;
use m365sync_wit::names::WitName;
use m365sync_wit::types::{
    Checkpoint, Domain, Group, Mailbox, PersonUpsert, Subscription, SyncReport, Usage,
};

use crate::batch::{Param, Statement, param};
use crate::values::no_nul;

/// The people table's columns, in the order the statements below bind them.
pub(crate) const PEOPLE_COLUMNS: &str = "object_id, user_principal_name, mail, given_name, \
    surname, display_name, department, job_title, company_name, country, usage_location, \
    office_location, account_enabled, user_type, licences, created_at, manager_id, hire_date, \
    proxy_addresses, last_sign_in, status, fingerprint, email_key, upn_key";

/// Insert the people, or update every column of the rows stored under their object ids.
/// Lists arrive as JSON text and are stored as `jsonb`.
pub(crate) static UPSERT_PEOPLE: LazyLock<String> = LazyLock::new(|| {
    let updates: Vec<String> = PEOPLE_COLUMNS
        .split(", ")
        .filter(|c| *c != "object_id")
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO people (tenant, {PEOPLE_COLUMNS})
         SELECT $1, p.object_id, p.user_principal_name, p.mail, p.given_name, p.surname,
                p.display_name, p.department, p.job_title, p.company_name, p.country,
                p.usage_location, p.office_location, p.account_enabled, p.user_type,
                p.licences::jsonb, p.created_at, p.manager_id, p.hire_date,
                p.proxy_addresses::jsonb, p.last_sign_in, p.status, p.fingerprint, p.email_key,
                p.upn_key
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                     $14::bool[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],
                     $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[])
              AS p({PEOPLE_COLUMNS})
         ON CONFLICT (tenant, object_id) DO UPDATE SET {}",
        updates.join(", ")
    )
});

/// One statement writing `people` (each object id once).
pub(crate) fn people_statement(tenant: &str, people: &[&PersonUpsert], what: String) -> Statement {
    fn text(people: &[&PersonUpsert], f: impl Fn(&PersonUpsert) -> String) -> Param {
        param(people.iter().map(|p| f(p)).collect::<Vec<String>>())
    }
    fn maybe(people: &[&PersonUpsert], f: impl Fn(&PersonUpsert) -> Option<String>) -> Param {
        param(people.iter().map(|p| f(p)).collect::<Vec<Option<String>>>())
    }
    let params = vec![
        param(tenant.to_string()),
        text(people, |p| p.stored.person.object_id.clone()),
        text(people, |p| p.stored.person.user_principal_name.clone()),
        maybe(people, |p| p.stored.person.mail.clone()),
        maybe(people, |p| p.stored.person.given_name.clone()),
        maybe(people, |p| p.stored.person.surname.clone()),
        maybe(people, |p| p.stored.person.display_name.clone()),
        maybe(people, |p| p.stored.person.department.clone()),
        maybe(people, |p| p.stored.person.job_title.clone()),
        maybe(people, |p| p.stored.person.company_name.clone()),
        maybe(people, |p| p.stored.person.country.clone()),
        maybe(people, |p| p.stored.person.usage_location.clone()),
        maybe(people, |p| p.stored.person.office_location.clone()),
        param(
            people
                .iter()
                .map(|p| p.stored.person.account_enabled)
                .collect::<Vec<bool>>(),
        ),
        text(people, |p| p.stored.person.user_type.clone()),
        text(people, |p| json_list(&p.stored.person.licences)),
        maybe(people, |p| p.stored.person.created_at.clone()),
        maybe(people, |p| p.stored.person.manager_id.clone()),
        maybe(people, |p| p.stored.person.hire_date.clone()),
        text(people, |p| json_list(&p.stored.person.proxy_addresses)),
        maybe(people, |p| p.stored.person.last_sign_in.clone()),
        text(people, |p| p.stored.status.name().to_string()),
        text(people, |p| p.stored.fingerprint.clone()),
        // The engine's keys, stored as given: the store never normalises.
        maybe(people, |p| p.email_key.clone()),
        text(people, |p| p.upn_key.clone()),
    ];
    Statement::new(UPSERT_PEOPLE.as_str(), params, what)
}

pub(crate) fn subscriptions_statement(
    tenant: &str,
    rows: &[&Subscription],
    what: String,
) -> Statement {
    let units = |f: fn(&Subscription) -> u32| {
        param(rows.iter().map(|s| i64::from(f(s))).collect::<Vec<i64>>())
    };
    Statement::new(
        "INSERT INTO subscriptions (tenant, sku_id, sku_part_number, product_name, enabled_units,
                                    suspended_units, warning_units, consumed_units, service_plans)
         SELECT $1, s.sku_id, s.sku_part_number, s.product_name, s.enabled_units,
                s.suspended_units, s.warning_units, s.consumed_units, s.service_plans::jsonb
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[],
                     $8::int8[], $9::text[])
              AS s(sku_id, sku_part_number, product_name, enabled_units, suspended_units,
                   warning_units, consumed_units, service_plans)
         ON CONFLICT (tenant, sku_id) DO UPDATE SET
           sku_part_number = EXCLUDED.sku_part_number, product_name = EXCLUDED.product_name,
           enabled_units = EXCLUDED.enabled_units, suspended_units = EXCLUDED.suspended_units,
           warning_units = EXCLUDED.warning_units, consumed_units = EXCLUDED.consumed_units,
           service_plans = EXCLUDED.service_plans",
        vec![
            param(tenant.to_string()),
            param(rows.iter().map(|s| s.sku_id.clone()).collect::<Vec<_>>()),
            param(
                rows.iter()
                    .map(|s| s.sku_part_number.clone())
                    .collect::<Vec<_>>(),
            ),
            param(
                rows.iter()
                    .map(|s| s.product_name.clone())
                    .collect::<Vec<_>>(),
            ),
            units(|s| s.enabled_units),
            units(|s| s.suspended_units),
            units(|s| s.warning_units),
            units(|s| s.consumed_units),
            param(
                rows.iter()
                    .map(|s| json_list(&s.service_plans))
                    .collect::<Vec<_>>(),
            ),
        ],
        what,
    )
}

pub(crate) fn groups_statement(tenant: &str, rows: &[&Group], what: String) -> Statement {
    Statement::new(
        "INSERT INTO groups (tenant, object_id, display_name, mail, kind)
         SELECT $1, g.object_id, g.display_name, g.mail, g.kind
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[])
              AS g(object_id, display_name, mail, kind)
         ON CONFLICT (tenant, object_id) DO UPDATE SET
           display_name = EXCLUDED.display_name, mail = EXCLUDED.mail, kind = EXCLUDED.kind",
        vec![
            param(tenant.to_string()),
            param(rows.iter().map(|g| g.object_id.clone()).collect::<Vec<_>>()),
            param(
                rows.iter()
                    .map(|g| g.display_name.clone())
                    .collect::<Vec<_>>(),
            ),
            param(rows.iter().map(|g| g.mail.clone()).collect::<Vec<_>>()),
            param(rows.iter().map(|g| g.kind.clone()).collect::<Vec<_>>()),
        ],
        what,
    )
}

pub(crate) fn domains_statement(tenant: &str, rows: &[&Domain], what: String) -> Statement {
    let flags = |f: fn(&Domain) -> bool| param(rows.iter().map(|d| f(d)).collect::<Vec<bool>>());
    Statement::new(
        "INSERT INTO domains (tenant, name, is_default, is_initial, is_verified)
         SELECT $1, d.name, d.is_default, d.is_initial, d.is_verified
         FROM UNNEST($2::text[], $3::bool[], $4::bool[], $5::bool[])
              AS d(name, is_default, is_initial, is_verified)
         ON CONFLICT (tenant, name) DO UPDATE SET
           is_default = EXCLUDED.is_default, is_initial = EXCLUDED.is_initial,
           is_verified = EXCLUDED.is_verified",
        vec![
            param(tenant.to_string()),
            param(rows.iter().map(|d| d.name.clone()).collect::<Vec<_>>()),
            flags(|d| d.is_default),
            flags(|d| d.is_initial),
            flags(|d| d.is_verified),
        ],
        what,
    )
}

pub(crate) fn mailboxes_statement(
    tenant: &str,
    rows: &[&Mailbox],
    what: String,
) -> Result<Statement, StorageError> {
    // Checked with each change already (`check_change`); an error here cannot happen.
    let integers = |field: &str, f: fn(&Mailbox) -> u64| {
        rows.iter()
            .map(|m| stored_integer(field, f(m)))
            .collect::<Result<Vec<i64>, _>>()
    };
    Ok(Statement::new(
        "INSERT INTO mailboxes (tenant, object_id, storage_used_bytes, item_count, quota_status,
                                last_activity, report_refreshed)
         SELECT $1, m.object_id, m.storage_used_bytes, m.item_count, m.quota_status,
                m.last_activity, m.report_refreshed
         FROM UNNEST($2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[])
              AS m(object_id, storage_used_bytes, item_count, quota_status, last_activity,
                   report_refreshed)
         ON CONFLICT (tenant, object_id) DO UPDATE SET
           storage_used_bytes = EXCLUDED.storage_used_bytes, item_count = EXCLUDED.item_count,
           quota_status = EXCLUDED.quota_status, last_activity = EXCLUDED.last_activity,
           report_refreshed = EXCLUDED.report_refreshed",
        vec![
            param(tenant.to_string()),
            param(rows.iter().map(|m| m.object_id.clone()).collect::<Vec<_>>()),
            param(integers("storage_used_bytes", |m| m.storage_used_bytes)?),
            param(integers("item_count", |m| m.item_count)?),
            param(
                rows.iter()
                    .map(|m| m.quota_status.clone())
                    .collect::<Vec<_>>(),
            ),
            param(
                rows.iter()
                    .map(|m| m.last_activity.clone())
                    .collect::<Vec<_>>(),
            ),
            param(
                rows.iter()
                    .map(|m| m.report_refreshed.clone())
                    .collect::<Vec<_>>(),
            ),
        ],
        what,
    ))
}

pub(crate) fn usage_statement(tenant: &str, rows: &[&Usage], what: String) -> Statement {
    Statement::new(
        "INSERT INTO usage (tenant, object_id, workload, period_days, last_activity, counts,
                            report_refreshed)
         SELECT $1, u.object_id, u.workload, u.period_days, u.last_activity, u.counts,
                u.report_refreshed
         FROM UNNEST($2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[])
              AS u(object_id, workload, period_days, last_activity, counts, report_refreshed)
         ON CONFLICT (tenant, object_id, workload, period_days) DO UPDATE SET
           last_activity = EXCLUDED.last_activity, counts = EXCLUDED.counts,
           report_refreshed = EXCLUDED.report_refreshed",
        vec![
            param(tenant.to_string()),
            param(rows.iter().map(|u| u.object_id.clone()).collect::<Vec<_>>()),
            param(rows.iter().map(|u| u.workload.clone()).collect::<Vec<_>>()),
            param(
                rows.iter()
                    .map(|u| i32::from(u.period_days))
                    .collect::<Vec<i32>>(),
            ),
            param(
                rows.iter()
                    .map(|u| u.last_activity.clone())
                    .collect::<Vec<_>>(),
            ),
            param(
                rows.iter()
                    .map(|u| counts_json(&u.counts))
                    .collect::<Vec<_>>(),
            ),
            param(
                rows.iter()
                    .map(|u| u.report_refreshed.clone())
                    .collect::<Vec<_>>(),
            ),
        ],
        what,
    )
}

pub(crate) fn checkpoint_statement(
    tenant: &str,
    checkpoint: &Checkpoint,
) -> Result<Statement, StorageError> {
    let what = format!("writing checkpoint {} of tenant {tenant}", checkpoint.key);
    let invalid = |e: StorageError| m365sync_store::model::at_origin(&what, e);
    no_nul("the checkpoint's key", &checkpoint.key).map_err(invalid)?;
    Ok(match &checkpoint.value {
        Some(value) => {
            no_nul("the checkpoint's value", value).map_err(invalid)?;
            Statement::new(
                "INSERT INTO checkpoints (tenant, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, key) DO UPDATE SET value = EXCLUDED.value",
                vec![
                    param(tenant.to_string()),
                    param(checkpoint.key.clone()),
                    param(value.clone()),
                ],
                what,
            )
        }
        None => Statement::new(
            "DELETE FROM checkpoints WHERE tenant = $1 AND key = $2",
            vec![param(tenant.to_string()), param(checkpoint.key.clone())],
            what,
        ),
    })
}

pub(crate) fn run_statement(tenant: &str, run: &SyncReport) -> Result<Statement, StorageError> {
    let what = format!("recording the run of tenant {tenant}");
    let invalid = |e: StorageError| m365sync_store::model::at_origin(&what, e);
    no_nul("the run's start", &run.started_at).map_err(invalid)?;
    let elapsed_ms = stored_integer("the run's elapsed_ms", run.elapsed_ms).map_err(invalid)?;
    Ok(Statement::new(
        "INSERT INTO runs (tenant, started_at, mode, status, elapsed_ms, requests, retries,
                           dry_run, error_kind, error, report)
         VALUES ($1, $2, $3, 'ok', $4, $5, $6, $7, NULL, NULL, $8)",
        vec![
            param(tenant.to_string()),
            param(run.started_at.clone()),
            param(run.mode.name().to_string()),
            param(elapsed_ms),
            param(i64::from(run.requests)),
            param(i64::from(run.retries)),
            param(run.dry_run),
            param(RunReport::from(run).to_stored()),
        ],
        what,
    ))
}
