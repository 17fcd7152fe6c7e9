//! What PostgreSQL cannot hold as given, refused before anything is sent (the shared rule:
//! never stored altered): a text with a NUL character (PostgreSQL's `text` cannot hold
//! one, where SQLite's can), and integers above `i64::MAX` ([`stored_integer`]). Errors
//! name the field; the caller names the change.

use m365sync_store::model::stored_integer;
use m365sync_wit::StorageError;
use m365sync_wit::types::{Change, ReportScope};

/// `value` unless it holds a NUL character, which PostgreSQL's text cannot store.
pub(crate) fn no_nul(field: &str, value: &str) -> Result<(), StorageError> {
    if value.contains('\0') {
        return Err(StorageError::Invalid(format!(
            "{field} contains a NUL character, which PostgreSQL cannot store"
        )));
    }
    Ok(())
}

/// Every value of `change` this store can hold as given (see the module's comment).
pub(crate) fn check_change(change: &Change) -> Result<(), StorageError> {
    let texts = |fields: &[(&str, Option<&str>)]| -> Result<(), StorageError> {
        for (field, value) in fields {
            if let Some(value) = value {
                no_nul(field, value)?;
            }
        }
        Ok(())
    };
    let lists = |field: &str, values: &[String]| -> Result<(), StorageError> {
        values.iter().try_for_each(|v| no_nul(field, v))
    };
    match change {
        Change::UpsertPerson(upsert) => {
            let p = &upsert.stored.person;
            texts(&[
                ("object_id", Some(&p.object_id)),
                ("user_principal_name", Some(&p.user_principal_name)),
                ("mail", p.mail.as_deref()),
                ("given_name", p.given_name.as_deref()),
                ("surname", p.surname.as_deref()),
                ("display_name", p.display_name.as_deref()),
                ("department", p.department.as_deref()),
                ("job_title", p.job_title.as_deref()),
                ("company_name", p.company_name.as_deref()),
                ("country", p.country.as_deref()),
                ("usage_location", p.usage_location.as_deref()),
                ("office_location", p.office_location.as_deref()),
                ("user_type", Some(&p.user_type)),
                ("created_at", p.created_at.as_deref()),
                ("manager_id", p.manager_id.as_deref()),
                ("hire_date", p.hire_date.as_deref()),
                ("last_sign_in", p.last_sign_in.as_deref()),
                ("fingerprint", Some(&upsert.stored.fingerprint)),
                ("previous_object_id", upsert.previous_object_id.as_deref()),
                ("email_key", upsert.email_key.as_deref()),
                ("upn_key", Some(&upsert.upn_key)),
            ])?;
            lists("licences", &p.licences)?;
            lists("proxy_addresses", &p.proxy_addresses)
        }
        Change::DeletePerson(id) | Change::DeleteGroup(id) => no_nul("object_id", id),
        Change::UpsertSubscription(s) => {
            texts(&[
                ("sku_id", Some(&s.sku_id)),
                ("sku_part_number", Some(&s.sku_part_number)),
                ("product_name", Some(&s.product_name)),
            ])?;
            lists("service_plans", &s.service_plans)
        }
        Change::UpsertGroup(g) => texts(&[
            ("object_id", Some(&g.object_id)),
            ("display_name", Some(&g.display_name)),
            ("mail", g.mail.as_deref()),
            ("kind", Some(&g.kind)),
        ]),
        Change::GroupMembers(m) => {
            no_nul("group_id", &m.group_id)?;
            lists("added", &m.added)?;
            lists("removed", &m.removed)
        }
        Change::UpsertOrganization(o) => {
            texts(&[
                ("tenant_id", Some(&o.tenant_id)),
                ("display_name", Some(&o.display_name)),
                ("country", o.country.as_deref()),
                ("default_domain", o.default_domain.as_deref()),
            ])?;
            lists("verified_domains", &o.verified_domains)
        }
        Change::UpsertDomain(d) => no_nul("name", &d.name),
        Change::UpsertMailbox(m) => {
            texts(&[
                ("object_id", Some(&m.object_id)),
                ("quota_status", Some(&m.quota_status)),
                ("last_activity", m.last_activity.as_deref()),
                ("report_refreshed", Some(&m.report_refreshed)),
            ])?;
            stored_integer("storage_used_bytes", m.storage_used_bytes)?;
            stored_integer("item_count", m.item_count).map(drop)
        }
        Change::UpsertUsage(u) => {
            // The counts are stored as JSON text, whose escapes carry any character.
            texts(&[
                ("object_id", Some(&u.object_id)),
                ("workload", Some(&u.workload)),
                ("last_activity", u.last_activity.as_deref()),
                ("report_refreshed", Some(&u.report_refreshed)),
            ])
        }
        Change::ReplaceReport(ReportScope::Usage(scope)) => no_nul("workload", &scope.workload),
        Change::ReplaceReport(ReportScope::Mailboxes) => Ok(()),
    }
}
