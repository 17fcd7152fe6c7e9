//! The read models of the memory store (see [`crate::read`]): the same rows in the same
//! orders as the SQL back ends, computed in Rust. Rust orders `String`s byte-wise and
//! `None` before `Some`, which is exactly the contract's order (NULL first).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use async_trait::async_trait;
use m365sync_wit::names::WitName;

use super::MemoryStore;
use super::rows::{PersonRow, TenantRows};
use crate::StoreError;
use crate::model::{counts_json, json_list};
use crate::read::{
    Cell, ExportKind, InactiveLicence, LabelCount, LicenceLines, PeopleSummary, ReadModels,
    RowSink, SkuLine, SubscriptionUnits, TenantSummary, WorkloadActivity, inactive_cutoff,
};

fn text(value: &str) -> Cell {
    Cell::Text(value.to_string())
}

fn optional(value: Option<&String>) -> Cell {
    value.map_or(Cell::Null, |v| text(v))
}

fn flag(value: bool) -> Cell {
    Cell::Integer(i64::from(value))
}

/// A number of rows, as the read models count.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A subscription's part number and product name, or the SKU id twice without one.
fn sku_names<'a>(rows: &'a TenantRows, sku_id: &'a str) -> (&'a str, &'a str) {
    rows.subscriptions
        .get(sku_id)
        .map_or((sku_id, sku_id), |s| {
            (s.sku_part_number.as_str(), s.product_name.as_str())
        })
}

/// The stored people, by user principal name, then object id.
fn people_by_upn(rows: &TenantRows) -> Vec<&PersonRow> {
    let mut people: Vec<&PersonRow> = rows.people.values().collect();
    people.sort_by(|a, b| {
        let (a, b) = (&a.stored.person, &b.stored.person);
        (&a.user_principal_name, &a.object_id).cmp(&(&b.user_principal_name, &b.object_id))
    });
    people
}

/// The user principal name of a stored person, if stored.
fn upn_of<'a>(rows: &'a TenantRows, object_id: &str) -> Option<&'a String> {
    rows.people
        .get(object_id)
        .map(|p| &p.stored.person.user_principal_name)
}

/// One tenant's rows of an export, in the export's order.
fn export_rows(kind: ExportKind, tenant: &str, rows: &TenantRows) -> Vec<Vec<Cell>> {
    let t = || text(tenant);
    match kind {
        ExportKind::People => people_by_upn(rows)
            .into_iter()
            .map(|row| {
                let p = &row.stored.person;
                vec![
                    t(),
                    text(&p.object_id),
                    text(&p.user_principal_name),
                    optional(p.mail.as_ref()),
                    optional(p.given_name.as_ref()),
                    optional(p.surname.as_ref()),
                    optional(p.display_name.as_ref()),
                    optional(p.department.as_ref()),
                    optional(p.job_title.as_ref()),
                    optional(p.company_name.as_ref()),
                    optional(p.country.as_ref()),
                    optional(p.usage_location.as_ref()),
                    optional(p.office_location.as_ref()),
                    flag(p.account_enabled),
                    text(&p.user_type),
                    optional(p.manager_id.as_ref()),
                    optional(p.hire_date.as_ref()),
                    optional(p.created_at.as_ref()),
                    optional(p.last_sign_in.as_ref()),
                    text(row.stored.status.name()),
                ]
            })
            .collect(),
        ExportKind::Subscriptions => {
            let mut subscriptions: Vec<_> = rows.subscriptions.values().collect();
            subscriptions.sort_by(|a, b| {
                (&a.sku_part_number, &a.sku_id).cmp(&(&b.sku_part_number, &b.sku_id))
            });
            subscriptions
                .into_iter()
                .map(|s| {
                    vec![
                        t(),
                        text(&s.sku_id),
                        text(&s.sku_part_number),
                        text(&s.product_name),
                        Cell::Integer(s.enabled_units.into()),
                        Cell::Integer(s.suspended_units.into()),
                        Cell::Integer(s.warning_units.into()),
                        Cell::Integer(s.consumed_units.into()),
                    ]
                })
                .collect()
        }
        ExportKind::Licences => people_by_upn(rows)
            .into_iter()
            .flat_map(|row| {
                let p = &row.stored.person;
                p.licences.iter().map(move |sku_id| {
                    let (part, product) = sku_names(rows, sku_id);
                    vec![
                        t(),
                        text(&p.object_id),
                        text(&p.user_principal_name),
                        text(sku_id),
                        text(part),
                        text(product),
                    ]
                })
            })
            .collect(),
        ExportKind::Usage => {
            let mut usage: Vec<_> = rows
                .usage
                .values()
                .map(|u| (upn_of(rows, &u.object_id), u))
                .collect();
            usage.sort_by(|(a_upn, a), (b_upn, b)| {
                (a_upn, &a.object_id, &a.workload, a.period_days).cmp(&(
                    b_upn,
                    &b.object_id,
                    &b.workload,
                    b.period_days,
                ))
            });
            usage
                .into_iter()
                .map(|(upn, u)| {
                    vec![
                        t(),
                        text(&u.object_id),
                        optional(upn),
                        text(&u.workload),
                        Cell::Integer(u.period_days.into()),
                        optional(u.last_activity.as_ref()),
                        Cell::Text(counts_json(&u.counts)),
                        text(&u.report_refreshed),
                    ]
                })
                .collect()
        }
        ExportKind::Mailboxes => {
            let mut mailboxes: Vec<_> = rows
                .mailboxes
                .iter()
                .map(|(id, m)| (upn_of(rows, id), id, m))
                .collect();
            mailboxes
                .sort_by(|(a_upn, a_id, _), (b_upn, b_id, _)| (a_upn, a_id).cmp(&(b_upn, b_id)));
            mailboxes
                .into_iter()
                .map(|(upn, id, m)| {
                    vec![
                        t(),
                        text(id),
                        optional(upn),
                        Cell::Integer(m.storage_used_bytes),
                        Cell::Integer(m.item_count),
                        text(&m.quota_status),
                        optional(m.last_activity.as_ref()),
                        text(&m.report_refreshed),
                    ]
                })
                .collect()
        }
        ExportKind::Groups => {
            let mut groups: Vec<_> = rows.groups.values().collect();
            groups.sort_by(|a, b| {
                (&a.display_name, &a.object_id).cmp(&(&b.display_name, &b.object_id))
            });
            groups
                .into_iter()
                .map(|g| {
                    let members = rows.members.get(&g.object_id).map_or(0, BTreeSet::len);
                    vec![
                        t(),
                        text(&g.object_id),
                        text(&g.display_name),
                        optional(g.mail.as_ref()),
                        text(&g.kind),
                        Cell::Integer(count(members)),
                    ]
                })
                .collect()
        }
        ExportKind::Organization => (rows.organization.iter())
            .map(|o| {
                vec![
                    t(),
                    text(&o.tenant_id),
                    text(&o.display_name),
                    optional(o.country.as_ref()),
                    optional(o.default_domain.as_ref()),
                    Cell::Text(json_list(&o.verified_domains)),
                ]
            })
            .collect(),
        ExportKind::Domains => (rows.domains.values())
            .map(|d| {
                vec![
                    t(),
                    text(&d.name),
                    flag(d.is_default),
                    flag(d.is_initial),
                    flag(d.is_verified),
                ]
            })
            .collect(),
        ExportKind::GroupMembers => {
            let mut memberships: Vec<_> = rows
                .members
                .iter()
                .flat_map(|(group, members)| {
                    let name = rows.groups.get(group).map(|g| &g.display_name);
                    members
                        .iter()
                        .map(move |member| (name, group, upn_of(rows, member), member))
                })
                .collect();
            memberships.sort();
            memberships
                .into_iter()
                .map(|(name, group, upn, member)| {
                    vec![
                        t(),
                        text(group),
                        optional(name),
                        text(member),
                        optional(upn),
                    ]
                })
                .collect()
        }
    }
}

/// Who holds which licence, and who is inactive, in one tenant's rows.
struct LicenceView<'a> {
    usage_as_of: Option<String>,
    /// The first day a licence holder must have been active on (None without usage data).
    cutoff: Option<String>,
    /// Each active person's latest activity in any workload.
    activity: HashMap<&'a str, &'a str>,
    /// (person, SKU id) of every licence of an active person, each once.
    licensed: Vec<(&'a PersonRow, &'a str)>,
}

impl<'a> LicenceView<'a> {
    fn new(rows: &'a TenantRows, days: u32) -> Result<LicenceView<'a>, StoreError> {
        let usage_as_of = rows
            .usage
            .values()
            .map(|u| &u.report_refreshed)
            .max()
            .cloned();
        let cutoff = usage_as_of
            .as_deref()
            .map(|as_of| inactive_cutoff(as_of, days))
            .transpose()?;
        let mut activity: HashMap<&str, &str> = HashMap::new();
        for u in rows.usage.values() {
            if let Some(last) = &u.last_activity {
                let latest = activity.entry(&u.object_id).or_insert(last);
                if last.as_str() > *latest {
                    *latest = last;
                }
            }
        }
        let licensed = rows
            .people
            .values()
            .filter(|p| p.stored.status == m365sync_wit::types::PersonStatus::Active)
            .flat_map(|p| {
                let skus: BTreeSet<&str> = p
                    .stored
                    .person
                    .licences
                    .iter()
                    .map(String::as_str)
                    .collect();
                skus.into_iter().map(move |sku| (p, sku))
            })
            .collect();
        Ok(LicenceView {
            usage_as_of,
            cutoff,
            activity,
            licensed,
        })
    }

    /// The person's latest activity, if any.
    fn last_activity(&self, person: &PersonRow) -> Option<&'a str> {
        self.activity
            .get(person.stored.person.object_id.as_str())
            .copied()
    }

    /// Whether the person's licences count as inactive (never without usage data).
    fn inactive(&self, person: &PersonRow) -> bool {
        self.cutoff
            .as_deref()
            .is_some_and(|cutoff| self.last_activity(person).is_none_or(|last| last < cutoff))
    }
}

fn licence_lines(rows: &TenantRows, days: u32) -> Result<LicenceLines, StoreError> {
    let view = LicenceView::new(rows, days)?;
    // SKU id → (assigned, inactive).
    let mut per_sku: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (person, sku) in &view.licensed {
        let counts = per_sku.entry(sku).or_default();
        counts.0 += 1;
        counts.1 += i64::from(view.inactive(person));
    }
    let mut skus: Vec<SkuLine> = per_sku
        .into_iter()
        .map(|(sku_id, (assigned, inactive))| {
            let subscription = rows.subscriptions.get(sku_id);
            let (part, product) = sku_names(rows, sku_id);
            SkuLine {
                sku_id: sku_id.to_string(),
                sku_part_number: part.to_string(),
                product_name: product.to_string(),
                enabled_units: subscription.map_or(0, |s| s.enabled_units.into()),
                consumed_units: subscription.map_or(0, |s| s.consumed_units.into()),
                assigned,
                inactive,
            }
        })
        .collect();
    skus.sort_by(|a, b| {
        b.assigned
            .cmp(&a.assigned)
            .then_with(|| a.sku_id.cmp(&b.sku_id))
    });
    Ok(LicenceLines {
        usage_as_of: view.usage_as_of,
        skus,
    })
}

fn inactive_licences(rows: &TenantRows, days: u32) -> Result<Vec<InactiveLicence>, StoreError> {
    let view = LicenceView::new(rows, days)?;
    let mut inactive: Vec<(&str, &str, &str, &str, Option<&str>)> = view
        .licensed
        .iter()
        .filter(|(person, _)| view.inactive(person))
        .map(|(person, sku)| {
            let p = &person.stored.person;
            let (part, _) = sku_names(rows, sku);
            (
                part,
                p.user_principal_name.as_str(),
                p.object_id.as_str(),
                *sku,
                view.last_activity(person),
            )
        })
        .collect();
    inactive.sort();
    Ok(inactive
        .into_iter()
        .map(|(part, upn, _, _, last)| InactiveLicence {
            user_principal_name: upn.to_string(),
            sku_part_number: part.to_string(),
            last_activity: last.map(str::to_string),
        })
        .collect())
}

/// People per value of one field, largest first, then by value (None first).
fn label_counts<'a>(values: impl Iterator<Item = Option<&'a String>>) -> Vec<LabelCount> {
    let mut counts: BTreeMap<Option<&String>, i64> = BTreeMap::new();
    for value in values {
        *counts.entry(value).or_default() += 1;
    }
    let mut labels: Vec<LabelCount> = counts
        .into_iter()
        .map(|(label, count)| LabelCount {
            label: label.cloned(),
            count,
        })
        .collect();
    // Stable: equal counts keep the map's order, by label.
    labels.sort_by_key(|l| std::cmp::Reverse(l.count));
    labels
}

fn tenant_summary(rows: &TenantRows) -> TenantSummary {
    let people = rows.people.values().map(|p| &p.stored.person);
    let people = PeopleSummary {
        total: count(rows.people.len()),
        licensed: count(people.clone().filter(|p| !p.licences.is_empty()).count()),
        guests: count(people.clone().filter(|p| p.user_type == "Guest").count()),
        disabled: count(people.clone().filter(|p| !p.account_enabled).count()),
        by_department: label_counts(people.clone().map(|p| p.department.as_ref())),
        by_country: label_counts(people.map(|p| p.country.as_ref())),
    };
    let mut subscriptions: Vec<SubscriptionUnits> = rows
        .subscriptions
        .values()
        .map(|s| SubscriptionUnits {
            sku_id: s.sku_id.clone(),
            product_name: s.product_name.clone(),
            enabled_units: s.enabled_units.into(),
            consumed_units: s.consumed_units.into(),
        })
        .collect();
    subscriptions.sort_by(|a, b| {
        (b.consumed_units.cmp(&a.consumed_units))
            .then_with(|| (&a.product_name, &a.sku_id).cmp(&(&b.product_name, &b.sku_id)))
    });
    // (workload, period) → (active, people, newest refresh).
    let mut reports: BTreeMap<(&str, u16), (i64, i64, &str)> = BTreeMap::new();
    for u in rows.usage.values() {
        let report =
            reports
                .entry((&u.workload, u.period_days))
                .or_insert((0, 0, &u.report_refreshed));
        report.0 += i64::from(u.last_activity.is_some());
        report.1 += 1;
        report.2 = report.2.max(u.report_refreshed.as_str());
    }
    let mut workloads: Vec<WorkloadActivity> = reports
        .into_iter()
        .map(
            |((workload, period), (active, people, refreshed))| WorkloadActivity {
                workload: workload.to_string(),
                period_days: period.into(),
                active,
                people,
                report_refreshed: refreshed.to_string(),
            },
        )
        .collect();
    workloads.sort_by(|a, b| {
        (a.period_days.cmp(&b.period_days))
            .then_with(|| b.active.cmp(&a.active))
            .then_with(|| a.workload.cmp(&b.workload))
    });
    TenantSummary {
        people,
        subscriptions,
        groups: count(rows.groups.len()),
        memberships: count(rows.members.values().map(BTreeSet::len).sum()),
        workloads,
    }
}

impl MemoryStore {
    /// Read one tenant's rows (a tenant with nothing stored reads as empty).
    fn read_tenant<T>(
        &self,
        tenant: &str,
        read: impl FnOnce(&TenantRows) -> T,
    ) -> Result<T, StoreError> {
        Ok(self.shared()?.read_tenant(tenant, read))
    }
}

#[async_trait]
impl ReadModels for MemoryStore {
    async fn tenants_with_people(&self) -> Result<Vec<String>, StoreError> {
        let shared = self.shared()?;
        Ok((shared.tenants.iter())
            .filter(|(_, rows)| !rows.people.is_empty())
            .map(|(tenant, _)| tenant.clone())
            .collect())
    }

    async fn export(
        &self,
        kind: ExportKind,
        tenant: Option<&str>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), StoreError> {
        // Rows are made under the store's lock and handed over after it is released: the
        // sink may take its time (a slow reader) without holding up the store.
        let rows: Vec<Vec<Cell>> = {
            let shared = self.shared()?;
            (shared.tenants.iter())
                .filter(|(name, _)| tenant.is_none_or(|t| t == name.as_str()))
                .flat_map(|(name, rows)| export_rows(kind, name, rows))
                .collect()
        };
        for row in rows {
            if let ControlFlow::Break(()) = sink(row) {
                break;
            }
        }
        Ok(())
    }

    async fn licence_lines(&self, tenant: &str, days: u32) -> Result<LicenceLines, StoreError> {
        self.read_tenant(tenant, |rows| licence_lines(rows, days))?
    }

    async fn inactive_licences(
        &self,
        tenant: &str,
        days: u32,
    ) -> Result<Vec<InactiveLicence>, StoreError> {
        self.read_tenant(tenant, |rows| inactive_licences(rows, days))?
    }

    async fn tenant_summary(&self, tenant: &str) -> Result<TenantSummary, StoreError> {
        self.read_tenant(tenant, tenant_summary)
    }
}
