//! What the conformance cases write and how they read it back: people, batches, runs, the
//! two-tenant fixture of the read-model cases, and small helpers that fail with a message
//! naming what they were doing.

use m365sync_wit::types::{
    Batch, Change, Checkpoint, DataSet, DataSetReport, Domain, Group, Mailbox, MembershipChange,
    Organization, Person, PersonKey, PersonStatus, PersonUpsert, ReasonCount, Subscription,
    SyncMode, SyncReport, UpsertKind, Usage, Warning,
};

use crate::model::{FailedRun, RunStatus, counts_json};
use crate::read::{Cell, ExportKind, export_table};
use crate::{Access, StoreBackend, TenantStore};

/// A stored person with only the fields every person has (and a fingerprint `fp-<id>`).
pub fn person(id: &str, upn: &str) -> m365sync_wit::types::StoredPerson {
    m365sync_wit::types::StoredPerson {
        person: Person {
            object_id: id.to_string(),
            user_principal_name: upn.to_string(),
            mail: None,
            given_name: None,
            surname: None,
            display_name: None,
            department: None,
            job_title: None,
            company_name: None,
            country: None,
            usage_location: None,
            office_location: None,
            account_enabled: true,
            user_type: "Member".to_string(),
            licences: vec![],
            created_at: None,
            manager_id: None,
            hire_date: None,
            proxy_addresses: vec![],
            last_sign_in: None,
        },
        status: PersonStatus::Active,
        fingerprint: format!("fp-{id}"),
    }
}

/// A person with every field set (and a status other than active), to see them all come
/// back as they went in.
pub fn full_person(id: &str) -> m365sync_wit::types::StoredPerson {
    let mut stored = person(id, &format!("Full.{id}@Contoso.example"));
    let p = &mut stored.person;
    p.mail = Some(format!("Full.{id}@Contoso.example"));
    p.given_name = Some("Zoë".to_string());
    p.surname = Some("Ångström".to_string());
    p.display_name = Some("Zoë Ångström".to_string());
    p.department = Some("R&D".to_string());
    p.job_title = Some("Engineer".to_string());
    p.company_name = Some("Contoso".to_string());
    p.country = Some("SE".to_string());
    p.usage_location = Some("SE".to_string());
    p.office_location = Some("Lund".to_string());
    p.account_enabled = false;
    p.user_type = "Guest".to_string();
    p.licences = vec!["sku-2".to_string(), "sku-1".to_string()];
    p.created_at = Some("2020-01-02T03:04:05Z".to_string());
    p.manager_id = Some("manager".to_string());
    p.hire_date = Some("2019-06-01T00:00:00Z".to_string());
    p.proxy_addresses = vec![
        "SMTP:full@contoso.example".to_string(),
        "smtp:z@x".to_string(),
    ];
    p.last_sign_in = Some("2024-02-29T23:59:59Z".to_string());
    stored.status = PersonStatus::Flagged;
    stored
}

/// Write `stored` with the engine's keys as given (`kind` create or update).
pub fn upsert(
    stored: m365sync_wit::types::StoredPerson,
    email_key: Option<&str>,
    upn_key: &str,
) -> Change {
    Change::UpsertPerson(person_upsert(stored, email_key, upn_key))
}

fn person_upsert(
    stored: m365sync_wit::types::StoredPerson,
    email_key: Option<&str>,
    upn_key: &str,
) -> PersonUpsert {
    PersonUpsert {
        licences_assigned: stored.person.licences.clone(),
        licences_removed: vec![],
        stored,
        kind: UpsertKind::Create,
        changed_fields: vec![],
        previous_object_id: None,
        email_key: email_key.map(str::to_string),
        upn_key: upn_key.to_string(),
    }
}

/// An update of the person stored under `stored`'s object id, with the engine's keys.
pub fn update(
    stored: m365sync_wit::types::StoredPerson,
    email_key: Option<&str>,
    upn_key: &str,
) -> Change {
    Change::UpsertPerson(PersonUpsert {
        kind: UpsertKind::Update,
        changed_fields: vec!["department".to_string()],
        ..person_upsert(stored, email_key, upn_key)
    })
}

/// A link: `stored` takes over the record stored under `previous`.
pub fn link(
    stored: m365sync_wit::types::StoredPerson,
    previous: &str,
    email_key: Option<&str>,
    upn_key: &str,
) -> Change {
    Change::UpsertPerson(PersonUpsert {
        kind: UpsertKind::Link,
        previous_object_id: Some(previous.to_string()),
        changed_fields: vec!["user_principal_name".to_string()],
        ..person_upsert(stored, email_key, upn_key)
    })
}

/// A person `<id>@x.test` (its UPN key), without an email key.
pub fn create(id: &str) -> Change {
    let upn = format!("{id}@x.test");
    upsert(person(id, &upn), None, &upn)
}

/// A batch without checkpoints: a back end may defer it.
pub fn batch(changes: Vec<Change>) -> Batch {
    Batch {
        changes,
        checkpoints: vec![],
        run: None,
    }
}

/// A batch that saves the checkpoint `key` = `value` with its changes.
pub fn saved_as(changes: Vec<Change>, key: &str, value: &str) -> Batch {
    Batch {
        checkpoints: vec![Checkpoint {
            key: key.to_string(),
            value: Some(value.to_string()),
        }],
        ..batch(changes)
    }
}

/// A batch that saves progress (checkpoint `users.delta-link`): committed at once.
pub fn saved(changes: Vec<Change>) -> Batch {
    saved_as(
        changes,
        "users.delta-link",
        "https://graph.test/users/delta?token=1",
    )
}

pub fn mailbox(id: &str, bytes: u64, items: u64) -> Change {
    Change::UpsertMailbox(Mailbox {
        object_id: id.to_string(),
        storage_used_bytes: bytes,
        item_count: items,
        quota_status: "Under Limit".to_string(),
        last_activity: Some("2024-02-27".to_string()),
        report_refreshed: "2024-03-01".to_string(),
    })
}

pub fn usage(
    id: &str,
    workload: &str,
    period_days: u16,
    last_activity: Option<&str>,
    report_refreshed: &str,
) -> Change {
    Change::UpsertUsage(Usage {
        object_id: id.to_string(),
        workload: workload.to_string(),
        period_days,
        last_activity: last_activity.map(str::to_string),
        counts: vec![],
        report_refreshed: report_refreshed.to_string(),
    })
}

/// A usage change with these counts.
pub fn with_counts(change: Change, counts: &[(&str, u64)]) -> Change {
    match change {
        Change::UpsertUsage(mut u) => {
            u.counts = counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            Change::UpsertUsage(u)
        }
        other => other,
    }
}

pub fn domain(name: &str, is_default: bool, is_initial: bool, is_verified: bool) -> Change {
    Change::UpsertDomain(Domain {
        name: name.to_string(),
        is_default,
        is_initial,
        is_verified,
    })
}

pub fn group(id: &str, name: &str, mail: Option<&str>, kind: &str) -> Change {
    Change::UpsertGroup(Group {
        object_id: id.to_string(),
        display_name: name.to_string(),
        mail: mail.map(str::to_string),
        kind: kind.to_string(),
    })
}

pub fn members(group: &str, added: &[&str], removed: &[&str]) -> Change {
    Change::GroupMembers(MembershipChange {
        group_id: group.to_string(),
        added: added.iter().map(|m| m.to_string()).collect(),
        removed: removed.iter().map(|m| m.to_string()).collect(),
    })
}

#[allow(clippy::too_many_arguments)]
pub fn subscription(
    sku: &str,
    part: &str,
    product: &str,
    enabled: u32,
    suspended: u32,
    warning: u32,
    consumed: u32,
) -> Change {
    Change::UpsertSubscription(Subscription {
        sku_id: sku.to_string(),
        sku_part_number: part.to_string(),
        product_name: product.to_string(),
        enabled_units: enabled,
        suspended_units: suspended,
        warning_units: warning,
        consumed_units: consumed,
        service_plans: vec!["EXCHANGE_S_ENTERPRISE".to_string()],
    })
}

/// The report of a successful full run of `tenant`.
pub fn sync_report(tenant: &str) -> SyncReport {
    SyncReport {
        tenant_key: tenant.to_string(),
        mode: SyncMode::Full,
        started_at: "2025-01-01T00:00:00.000Z".to_string(),
        elapsed_ms: 10,
        requests: 3,
        retries: 1,
        retry_wait_ms: 250,
        data_sets: vec![DataSetReport {
            data_set: DataSet::Users,
            pages: 1,
            read: 2,
            written: 2,
            created: 2,
            updated: 0,
            unchanged: 0,
            linked: 0,
            removed: 0,
            conflicts: 0,
            filtered_out: vec![ReasonCount {
                reason: "disabled".to_string(),
                count: 1,
            }],
        }],
        warnings: vec![Warning {
            code: "reports-concealed".to_string(),
            message: "user names in reports are concealed".to_string(),
        }],
        conflicts: vec![],
        organization: None,
        dry_run: false,
    }
}

/// A run that failed signing in.
pub fn failed_run() -> FailedRun {
    FailedRun {
        status: RunStatus::Failed,
        started_at: "2025-01-02T00:00:00.000Z".to_string(),
        mode: "incremental".to_string(),
        elapsed_ms: 5,
        report: None,
        dry_run: false,
        error_kind: "auth".to_string(),
        error: "sign-in failed".to_string(),
    }
}

/// `tenant` opened for a sync (its lock taken).
pub async fn open(store: &dyn StoreBackend, tenant: &str) -> Box<dyn TenantStore> {
    match store.open_tenant(tenant, Access::Sync).await {
        Ok(opened) => opened,
        Err(error) => panic!("opening tenant {tenant} for a sync: {error}"),
    }
}

/// `tenant` opened read-only.
pub async fn read_only(store: &dyn StoreBackend, tenant: &str) -> Box<dyn TenantStore> {
    match store.open_tenant(tenant, Access::ReadOnly).await {
        Ok(opened) => opened,
        Err(error) => panic!("opening tenant {tenant} read-only: {error}"),
    }
}

/// Commit `batches` to `tenant` in one sync, and finish it.
pub async fn commit_all(store: &dyn StoreBackend, tenant: &str, batches: Vec<Batch>) {
    let mut opened = open(store, tenant).await;
    for (n, batch) in batches.into_iter().enumerate() {
        if let Err(error) = opened.commit(batch).await {
            panic!("committing batch {n} of tenant {tenant}: {error:?}");
        }
    }
    opened.finish().await.expect("finishing the sync");
}

/// Every stored person's object id, in the store's order.
pub async fn ids(tenant: &mut dyn TenantStore) -> Vec<String> {
    tenant
        .list_people_ids(None, 10_000)
        .await
        .expect("listing people")
}

/// Every stored person's object id of `tenant`, read through a fresh read-only store.
pub async fn ids_of(store: &dyn StoreBackend, tenant: &str) -> Vec<String> {
    ids(&mut *read_only(store, tenant).await).await
}

/// The object ids of the people `keys` find (None for a miss), in the keys' order.
pub async fn found(tenant: &mut dyn TenantStore, keys: &[PersonKey]) -> Vec<Option<String>> {
    let people = tenant.find_people(keys).await.expect("finding people");
    assert_eq!(people.len(), keys.len(), "one answer per key");
    people
        .into_iter()
        .map(|p| p.map(|p| p.person.object_id))
        .collect()
}

/// A checkpoint of `tenant`, read through a fresh read-only store.
pub async fn checkpoint_of(store: &dyn StoreBackend, tenant: &str, key: &str) -> Option<String> {
    let mut opened = read_only(store, tenant).await;
    opened
        .get_checkpoint(key)
        .await
        .expect("reading a checkpoint")
}

pub fn id(id: &str) -> PersonKey {
    PersonKey::ObjectId(id.to_string())
}

pub fn email(key: &str) -> PersonKey {
    PersonKey::Email(key.to_string())
}

pub fn upn(key: &str) -> PersonKey {
    PersonKey::UserPrincipalName(key.to_string())
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// A text cell.
pub fn txt(value: &str) -> Cell {
    Cell::Text(value.to_string())
}

/// An integer cell.
pub fn n(value: i64) -> Cell {
    Cell::Integer(value)
}

pub const NULL: Cell = Cell::Null;

/// An export's rows. A JSON cell (usage `counts`, `verified_domains`) is made canonical JSON, so back ends that
/// keep JSON in their own format compare alike.
pub async fn export(
    store: &dyn StoreBackend,
    kind: ExportKind,
    tenant: Option<&str>,
) -> Vec<Vec<Cell>> {
    let table = match export_table(store, kind, tenant).await {
        Ok(table) => table,
        Err(error) => panic!("exporting {kind:?} of {tenant:?}: {error}"),
    };
    let json: Vec<usize> = (kind.columns().iter().enumerate())
        .filter(|(_, c)| matches!(**c, "counts" | "verified_domains"))
        .map(|(i, _)| i)
        .collect();
    table
        .rows
        .into_iter()
        .map(|mut row| {
            assert_eq!(
                row.len(),
                kind.columns().len(),
                "{kind:?}: one cell per column"
            );
            for i in &json {
                if let Some(Cell::Text(text)) = row.get_mut(*i) {
                    *text = canonical_json(text);
                }
            }
            row
        })
        .collect()
}

/// JSON text in one canonical form (keys in order, no spaces).
pub fn canonical_json(text: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("counts {text:?} are not JSON: {e}"));
    value.to_string()
}

/// Usage counts as the export gives them.
pub fn counts(counts: &[(&str, u64)]) -> Cell {
    let counts: Vec<(String, u64)> = counts.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Cell::Text(canonical_json(&counts_json(&counts)))
}

/// The two tenants every read-model case reads (the rows each case expects are spelled
/// out in it): contoso, with its organization and domains, people with and without a user principal name, active and
/// removed, licences with and without a subscription, usage and a mailbox of a person who
/// is not stored, groups with members, a membership of a group that is not stored; and
/// fabrikam, with an organization of few fields, one licensed person (of a SKU it has no subscription of), one group
/// whose id is one of contoso's, and no usage data. A third tenant, `empty`, has only a
/// checkpoint.
pub async fn two_tenants(store: &dyn StoreBackend) {
    let with = |id: &str, upn: &str, edit: &dyn Fn(&mut Person)| {
        let mut stored = person(id, upn);
        edit(&mut stored.person);
        let key = upn.to_lowercase();
        upsert(stored, None, &key)
    };
    let licences = |skus: &[&str]| skus.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let bob = {
        let mut stored = person("c-1", "bob@contoso.com");
        let p = &mut stored.person;
        p.mail = Some("Bob@contoso.com".to_string());
        p.given_name = Some("Bob".to_string());
        p.surname = Some("Smith".to_string());
        p.display_name = Some("Bob Smith".to_string());
        p.department = Some("Sales".to_string());
        p.job_title = Some("Manager".to_string());
        p.company_name = Some("Contoso".to_string());
        p.country = Some("NL".to_string());
        p.usage_location = Some("NL".to_string());
        p.office_location = Some("Amsterdam".to_string());
        p.licences = licences(&["sku-orphan", "sku-e3"]);
        p.created_at = Some("2020-01-01T00:00:00Z".to_string());
        p.hire_date = Some("2019-12-01T00:00:00Z".to_string());
        p.proxy_addresses = vec!["SMTP:Bob@contoso.com".to_string()];
        p.last_sign_in = Some("2024-02-28T09:00:00Z".to_string());
        upsert(stored, Some("bob@contoso.com"), "bob@contoso.com")
    };
    let guest = with("c-2", "", &|p| {
        p.account_enabled = false;
        p.user_type = "Guest".to_string();
    });
    let removed = {
        let mut stored = person("c-4", "");
        stored.person.department = Some("Sales".to_string());
        stored.person.licences = licences(&["sku-e3"]);
        stored.status = PersonStatus::Removed;
        upsert(stored, None, "")
    };
    // c-4 before c-2: their user principal names tie (empty), their object ids decide.
    let people = vec![
        bob,
        removed,
        guest,
        with("c-3", "ann@contoso.com", &|p| {
            p.department = Some("Sales".to_string());
            p.country = Some("DE".to_string());
            p.licences = licences(&["sku-e3"]);
            p.manager_id = Some("c-1".to_string());
        }),
        with("c-5", "eve@contoso.com", &|p| {
            p.department = Some("Marketing".to_string());
            p.country = Some("NL".to_string());
            p.licences = licences(&["sku-e3"]);
            p.manager_id = Some("c-1".to_string());
        }),
        with("c-6", "dan@contoso.com", &|p| {
            p.department = Some("Finance".to_string());
            p.licences = licences(&["sku-ems"]);
        }),
    ];
    let exchange = |id: &str, last: Option<&str>, refreshed: &str, counts: &[(&str, u64)]| {
        with_counts(usage(id, "exchange", 30, last, refreshed), counts)
    };
    let reports = vec![
        exchange("c-1", None, "2024-03-01", &[("send", 5), ("receive", 7)]),
        usage("c-1", "teams", 30, Some("2024-02-20"), "2024-03-01"),
        exchange("c-3", Some("2024-01-31"), "2024-03-01", &[]),
        usage("c-3", "teams", 7, None, "2024-02-28"),
        usage("c-3", "teams", 30, Some("2024-01-15"), "2024-03-01"),
        exchange("c-5", None, "2024-03-01", &[]),
        usage("c-5", "teams", 30, Some("2024-01-30"), "2024-03-01"),
        exchange(
            "c-gone",
            Some("2024-02-01"),
            "2024-02-29",
            &[("send", u64::MAX)],
        ),
        mailbox("c-1", 1024, 10),
        Change::UpsertMailbox(Mailbox {
            object_id: "c-gone".to_string(),
            storage_used_bytes: 2048,
            item_count: 20,
            quota_status: "Warning Issued".to_string(),
            last_activity: None,
            report_refreshed: "2024-03-01".to_string(),
        }),
    ];
    let directory = vec![
        Change::UpsertOrganization(Organization {
            tenant_id: "c0ffee00-0000-4000-8000-000000000001".to_string(),
            display_name: "Contoso Ltd".to_string(),
            country: Some("NL".to_string()),
            default_domain: Some("contoso.com".to_string()),
            verified_domains: vec![
                "contoso.com".to_string(),
                "contoso.onmicrosoft.com".to_string(),
            ],
        }),
        domain("contoso.onmicrosoft.com", false, true, true),
        domain("contoso.com", true, false, true),
        domain("Contoso.NL", false, false, false),
        subscription("sku-e3", "ENTERPRISEPACK", "Office 365 E3", 25, 0, 1, 3),
        subscription(
            "sku-a",
            "ENTERPRISEPACK",
            "Office 365 E3 (trial)",
            5,
            0,
            0,
            1,
        ),
        subscription(
            "sku-ems",
            "EMS",
            "Enterprise Mobility + Security E3",
            10,
            2,
            0,
            1,
        ),
        group(
            "g-1",
            "Sales team",
            Some("sales@contoso.com"),
            "microsoft-365",
        ),
        group("g-2", "All staff", None, "security"),
        members("g-1", &["c-1", "c-3", "c-gone"], &[]),
        members("g-2", &["c-2"], &[]),
        members("g-gone", &["c-1"], &[]),
    ];
    commit_all(
        store,
        "contoso",
        vec![batch(people), batch(reports), saved(directory)],
    )
    .await;
    let zed = with("f-1", "zed@fabrikam.com", &|p| {
        p.department = Some("Sales".to_string());
        p.country = Some("US".to_string());
        p.licences = licences(&["sku-e3"]);
    });
    commit_all(
        store,
        "fabrikam",
        vec![saved(vec![
            Change::UpsertOrganization(Organization {
                tenant_id: "fab00000-0000-4000-8000-000000000002".to_string(),
                display_name: "Fabrikam".to_string(),
                country: None,
                default_domain: None,
                verified_domains: vec![],
            }),
            zed,
            group("g-1", "Fabrikam all", None, "security"),
            members("g-1", &["f-1"], &[]),
        ])],
    )
    .await;
    commit_all(store, "empty", vec![saved(vec![])]).await;
}
