//! Conformance cases of the read models, on the two-tenant fixture
//! ([`two_tenants`](super::fixtures::two_tenants)): every export with its columns and
//! order, the licence views with and without usage data and at the cutoff, summaries.

use std::ops::ControlFlow;

use super::Subject;
use super::fixtures::*;
use crate::read::{
    Cell, ExportKind, InactiveLicence, LabelCount, LicenceLines, PeopleSummary, SkuLine,
    SubscriptionUnits, TenantSummary, WorkloadActivity,
};

/// Rows of text cells, with `None` for Null.
fn rows(rows: &[&[Option<&str>]]) -> Vec<Vec<Cell>> {
    (rows.iter())
        .map(|row| row.iter().map(|c| c.map_or(NULL, txt)).collect())
        .collect()
}

/// Column `i` of every row.
fn column(rows: &[Vec<Cell>], i: usize) -> Vec<Cell> {
    rows.iter().map(|row| row[i].clone()).collect()
}

fn texts(values: &[&str]) -> Vec<Cell> {
    values.iter().map(|v| txt(v)).collect()
}

pub async fn export_people_by_tenant_upn_and_object_id(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let all = export(store, ExportKind::People, None).await;
    assert_eq!(
        column(&all, 1),
        texts(&["c-2", "c-4", "c-3", "c-1", "c-6", "c-5", "f-1"]),
        "by tenant, user principal name (empty first), object id"
    );
    let bob = vec![
        txt("contoso"),
        txt("c-1"),
        txt("bob@contoso.com"),
        txt("Bob@contoso.com"),
        txt("Bob"),
        txt("Smith"),
        txt("Bob Smith"),
        txt("Sales"),
        txt("Manager"),
        txt("Contoso"),
        txt("NL"),
        txt("NL"),
        txt("Amsterdam"),
        n(1),
        txt("Member"),
        NULL,
        txt("2019-12-01T00:00:00Z"),
        txt("2020-01-01T00:00:00Z"),
        txt("2024-02-28T09:00:00Z"),
        txt("active"),
    ];
    assert_eq!(all[3], bob);
    let mut guest = vec![txt("contoso"), txt("c-2"), txt("")];
    guest.extend([NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL]);
    guest.extend([n(0), txt("Guest"), NULL, NULL, NULL, NULL, txt("active")]);
    assert_eq!(all[0], guest);
    assert_eq!((&all[1][7], &all[1][19]), (&txt("Sales"), &txt("removed")));
    assert_eq!((&all[2][15], &all[6][0]), (&txt("c-1"), &txt("fabrikam")));
    let fabrikam = export(store, ExportKind::People, Some("fabrikam")).await;
    assert_eq!(fabrikam, all[6..]);
}

pub async fn export_subscriptions_by_part_number_and_sku(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let c = || txt("contoso");
    let expected = vec![
        vec![
            c(),
            txt("sku-ems"),
            txt("EMS"),
            txt("Enterprise Mobility + Security E3"),
            n(10),
            n(2),
            n(0),
            n(1),
        ],
        vec![
            c(),
            txt("sku-a"),
            txt("ENTERPRISEPACK"),
            txt("Office 365 E3 (trial)"),
            n(5),
            n(0),
            n(0),
            n(1),
        ],
        vec![
            c(),
            txt("sku-e3"),
            txt("ENTERPRISEPACK"),
            txt("Office 365 E3"),
            n(25),
            n(0),
            n(1),
            n(3),
        ],
    ];
    assert_eq!(
        export(store, ExportKind::Subscriptions, None).await,
        expected
    );
    assert!(
        export(store, ExportKind::Subscriptions, Some("fabrikam"))
            .await
            .is_empty()
    );
}

pub async fn export_licences_in_their_stored_order(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let e3 = [
        Some("sku-e3"),
        Some("ENTERPRISEPACK"),
        Some("Office 365 E3"),
    ];
    let line = |tenant, id, upn, sku: [Option<&'static str>; 3]| {
        let mut row = vec![Some(tenant), Some(id), Some(upn)];
        row.extend(sku);
        row
    };
    let expected = [
        line("contoso", "c-4", "", e3),
        line("contoso", "c-3", "ann@contoso.com", e3),
        // A SKU without a subscription is named by its id; a person's licences keep
        // their stored order.
        line("contoso", "c-1", "bob@contoso.com", [Some("sku-orphan"); 3]),
        line("contoso", "c-1", "bob@contoso.com", e3),
        line(
            "contoso",
            "c-6",
            "dan@contoso.com",
            [
                Some("sku-ems"),
                Some("EMS"),
                Some("Enterprise Mobility + Security E3"),
            ],
        ),
        line("contoso", "c-5", "eve@contoso.com", e3),
        line("fabrikam", "f-1", "zed@fabrikam.com", [Some("sku-e3"); 3]),
    ];
    let expected: Vec<&[Option<&str>]> = expected.iter().map(Vec::as_slice).collect();
    assert_eq!(
        export(store, ExportKind::Licences, None).await,
        rows(&expected)
    );
    let fabrikam = export(store, ExportKind::Licences, Some("fabrikam")).await;
    assert_eq!(fabrikam, rows(&expected[6..]));
}

pub async fn export_usage_with_people_who_are_not_stored(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let row = |id: &str,
               upn: Option<&str>,
               workload: &str,
               period: i64,
               last: Option<&str>,
               counts: Cell,
               refreshed: &str| {
        vec![
            txt("contoso"),
            txt(id),
            upn.map_or(NULL, txt),
            txt(workload),
            n(period),
            last.map_or(NULL, txt),
            counts,
            txt(refreshed),
        ]
    };
    let none = || counts(&[]);
    let (ann, bob, eve) = (
        Some("ann@contoso.com"),
        Some("bob@contoso.com"),
        Some("eve@contoso.com"),
    );
    let expected = vec![
        row(
            "c-gone",
            None,
            "exchange",
            30,
            Some("2024-02-01"),
            counts(&[("send", u64::MAX)]),
            "2024-02-29",
        ),
        row(
            "c-3",
            ann,
            "exchange",
            30,
            Some("2024-01-31"),
            none(),
            "2024-03-01",
        ),
        row("c-3", ann, "teams", 7, None, none(), "2024-02-28"),
        row(
            "c-3",
            ann,
            "teams",
            30,
            Some("2024-01-15"),
            none(),
            "2024-03-01",
        ),
        row(
            "c-1",
            bob,
            "exchange",
            30,
            None,
            counts(&[("send", 5), ("receive", 7)]),
            "2024-03-01",
        ),
        row(
            "c-1",
            bob,
            "teams",
            30,
            Some("2024-02-20"),
            none(),
            "2024-03-01",
        ),
        row("c-5", eve, "exchange", 30, None, none(), "2024-03-01"),
        row(
            "c-5",
            eve,
            "teams",
            30,
            Some("2024-01-30"),
            none(),
            "2024-03-01",
        ),
    ];
    assert_eq!(export(store, ExportKind::Usage, None).await, expected);
    assert!(
        export(store, ExportKind::Usage, Some("fabrikam"))
            .await
            .is_empty()
    );
}

pub async fn export_mailboxes_with_people_who_are_not_stored(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let expected = vec![
        vec![
            txt("contoso"),
            txt("c-gone"),
            NULL,
            n(2048),
            n(20),
            txt("Warning Issued"),
            NULL,
            txt("2024-03-01"),
        ],
        vec![
            txt("contoso"),
            txt("c-1"),
            txt("bob@contoso.com"),
            n(1024),
            n(10),
            txt("Under Limit"),
            txt("2024-02-27"),
            txt("2024-03-01"),
        ],
    ];
    assert_eq!(export(store, ExportKind::Mailboxes, None).await, expected);
    assert_eq!(
        export(store, ExportKind::Mailboxes, Some("contoso")).await,
        expected
    );
}

pub async fn export_groups_with_their_member_counts(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let expected = vec![
        vec![
            txt("contoso"),
            txt("g-2"),
            txt("All staff"),
            NULL,
            txt("security"),
            n(1),
        ],
        vec![
            txt("contoso"),
            txt("g-1"),
            txt("Sales team"),
            txt("sales@contoso.com"),
            txt("microsoft-365"),
            n(3),
        ],
        vec![
            txt("fabrikam"),
            txt("g-1"),
            txt("Fabrikam all"),
            NULL,
            txt("security"),
            n(1),
        ],
    ];
    assert_eq!(export(store, ExportKind::Groups, None).await, expected);
    assert_eq!(
        export(store, ExportKind::Groups, Some("fabrikam")).await,
        expected[2..]
    );
}

pub async fn export_group_members_by_group_name_and_person(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let (all_staff, sales) = (Some("All staff"), Some("Sales team"));
    let expected = rows(&[
        &[
            Some("contoso"),
            Some("g-gone"),
            None,
            Some("c-1"),
            Some("bob@contoso.com"),
        ],
        &[
            Some("contoso"),
            Some("g-2"),
            all_staff,
            Some("c-2"),
            Some(""),
        ],
        &[Some("contoso"), Some("g-1"), sales, Some("c-gone"), None],
        &[
            Some("contoso"),
            Some("g-1"),
            sales,
            Some("c-3"),
            Some("ann@contoso.com"),
        ],
        &[
            Some("contoso"),
            Some("g-1"),
            sales,
            Some("c-1"),
            Some("bob@contoso.com"),
        ],
        &[
            Some("fabrikam"),
            Some("g-1"),
            Some("Fabrikam all"),
            Some("f-1"),
            Some("zed@fabrikam.com"),
        ],
    ]);
    assert_eq!(
        export(store, ExportKind::GroupMembers, None).await,
        expected
    );
    let contoso = export(store, ExportKind::GroupMembers, Some("contoso")).await;
    assert_eq!(contoso, expected[..5]);
}

pub async fn export_organizations_and_domains(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let organizations = vec![
        vec![
            txt("contoso"),
            txt("c0ffee00-0000-4000-8000-000000000001"),
            txt("Contoso Ltd"),
            txt("NL"),
            txt("contoso.com"),
            txt(r#"["contoso.com","contoso.onmicrosoft.com"]"#),
        ],
        vec![
            txt("fabrikam"),
            txt("fab00000-0000-4000-8000-000000000002"),
            txt("Fabrikam"),
            NULL,
            NULL,
            txt("[]"),
        ],
    ];
    assert_eq!(
        export(store, ExportKind::Organization, None).await,
        organizations
    );
    let fabrikam = export(store, ExportKind::Organization, Some("fabrikam")).await;
    assert_eq!(fabrikam, organizations[1..]);
    let domain = |name: &str, default, initial, verified| {
        vec![
            txt("contoso"),
            txt(name),
            n(default),
            n(initial),
            n(verified),
        ]
    };
    let domains = vec![
        domain("Contoso.NL", 0, 0, 0),
        domain("contoso.com", 1, 0, 1),
        domain("contoso.onmicrosoft.com", 0, 1, 1),
    ];
    assert_eq!(export(store, ExportKind::Domains, None).await, domains);
    assert!(
        export(store, ExportKind::Domains, Some("fabrikam"))
            .await
            .is_empty()
    );
}

pub async fn an_export_stops_when_the_sink_breaks(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let all = export(store, ExportKind::People, None).await;
    let mut taken = Vec::new();
    store
        .export(ExportKind::People, None, &mut |row| {
            taken.push(row);
            if taken.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .expect("a stopped export is no error");
    assert_eq!(taken, all[..2]);
    // The store goes on.
    assert_eq!(export(store, ExportKind::People, None).await, all);
}

fn sku(
    id: &str,
    part: &str,
    product: &str,
    units: (i64, i64),
    assigned: i64,
    inactive: i64,
) -> SkuLine {
    SkuLine {
        sku_id: id.to_string(),
        sku_part_number: part.to_string(),
        product_name: product.to_string(),
        enabled_units: units.0,
        consumed_units: units.1,
        assigned,
        inactive,
    }
}

fn inactive(upn: &str, part: &str, last: Option<&str>) -> InactiveLicence {
    InactiveLicence {
        user_principal_name: upn.to_string(),
        sku_part_number: part.to_string(),
        last_activity: last.map(str::to_string),
    }
}

/// Contoso's licence lines when `inactive_e3` of its three E3 holders are inactive.
fn contoso_lines(inactive_e3: i64) -> LicenceLines {
    LicenceLines {
        usage_as_of: Some("2024-03-01".to_string()),
        skus: vec![
            sku(
                "sku-e3",
                "ENTERPRISEPACK",
                "Office 365 E3",
                (25, 3),
                3,
                inactive_e3,
            ),
            sku(
                "sku-ems",
                "EMS",
                "Enterprise Mobility + Security E3",
                (10, 1),
                1,
                1,
            ),
            sku("sku-orphan", "sku-orphan", "sku-orphan", (0, 0), 1, 0),
        ],
    }
}

pub async fn licence_lines_count_assigned_and_inactive_licences(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    // Usage as of 2024-03-01, 30 days: inactive before 2024-01-31. Active people only
    // (c-4 is removed); dan has no usage at all; eve's last activity is 2024-01-30; the
    // usage of c-gone, who is not stored, counts for nobody.
    let lines = store
        .licence_lines("contoso", 30)
        .await
        .expect("licence lines");
    assert_eq!(lines, contoso_lines(1));
    let listed = store
        .inactive_licences("contoso", 30)
        .await
        .expect("inactive licences");
    assert_eq!(
        listed,
        vec![
            inactive("dan@contoso.com", "EMS", None),
            inactive("eve@contoso.com", "ENTERPRISEPACK", Some("2024-01-30")),
        ]
    );
}

pub async fn the_inactive_cutoff_day_counts_as_active(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    // ann's latest activity (2024-01-31, across exchange and teams) is the 30-day cutoff
    // exactly: active at 30 days, inactive at 29 (cutoff 2024-02-01).
    let at_29 = store
        .licence_lines("contoso", 29)
        .await
        .expect("licence lines");
    assert_eq!(at_29, contoso_lines(2));
    let listed = store
        .inactive_licences("contoso", 29)
        .await
        .expect("inactive licences");
    assert_eq!(
        listed,
        vec![
            inactive("dan@contoso.com", "EMS", None),
            inactive("ann@contoso.com", "ENTERPRISEPACK", Some("2024-01-31")),
            inactive("eve@contoso.com", "ENTERPRISEPACK", Some("2024-01-30")),
        ]
    );
    // bob was active 2024-02-20: the 10-day cutoff (2024 is a leap year), inactive at 9.
    let at_10 = store
        .licence_lines("contoso", 10)
        .await
        .expect("licence lines");
    assert_eq!((at_10.skus[0].inactive, at_10.skus[2].inactive), (2, 0));
    let at_9 = store
        .licence_lines("contoso", 9)
        .await
        .expect("licence lines");
    assert_eq!(
        (at_9.skus[0].inactive, at_9.skus[2].inactive),
        (3, 1),
        "bob's SKUs too"
    );
}

pub async fn licences_without_usage_data_are_never_inactive(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let lines = store
        .licence_lines("fabrikam", 30)
        .await
        .expect("licence lines");
    let expected = LicenceLines {
        usage_as_of: None,
        skus: vec![sku("sku-e3", "sku-e3", "sku-e3", (0, 0), 1, 0)],
    };
    assert_eq!(lines, expected);
    let listed = store
        .inactive_licences("fabrikam", 30)
        .await
        .expect("inactive licences");
    assert!(listed.is_empty());
}

fn label(label: Option<&str>, count: i64) -> LabelCount {
    LabelCount {
        label: label.map(str::to_string),
        count,
    }
}

fn units(sku: &str, product: &str, enabled: i64, consumed: i64) -> SubscriptionUnits {
    SubscriptionUnits {
        sku_id: sku.to_string(),
        product_name: product.to_string(),
        enabled_units: enabled,
        consumed_units: consumed,
    }
}

fn workload(
    name: &str,
    period: i64,
    active: i64,
    people: i64,
    refreshed: &str,
) -> WorkloadActivity {
    WorkloadActivity {
        workload: name.to_string(),
        period_days: period,
        active,
        people,
        report_refreshed: refreshed.to_string(),
    }
}

pub async fn tenant_summary_counts_and_orders(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    let expected = TenantSummary {
        people: PeopleSummary {
            total: 6,
            licensed: 5,
            guests: 1,
            disabled: 1,
            // Largest first, then by label with "none" first.
            by_department: vec![
                label(Some("Sales"), 3),
                label(None, 1),
                label(Some("Finance"), 1),
                label(Some("Marketing"), 1),
            ],
            by_country: vec![label(None, 3), label(Some("NL"), 2), label(Some("DE"), 1)],
        },
        subscriptions: vec![
            units("sku-e3", "Office 365 E3", 25, 3),
            units("sku-ems", "Enterprise Mobility + Security E3", 10, 1),
            units("sku-a", "Office 365 E3 (trial)", 5, 1),
        ],
        groups: 2,
        memberships: 5,
        // By period, then most active, then workload.
        workloads: vec![
            workload("teams", 7, 0, 1, "2024-02-28"),
            workload("teams", 30, 3, 3, "2024-03-01"),
            workload("exchange", 30, 2, 4, "2024-03-01"),
        ],
    };
    assert_eq!(
        store.tenant_summary("contoso").await.expect("summary"),
        expected
    );
    let fabrikam = TenantSummary {
        people: PeopleSummary {
            total: 1,
            licensed: 1,
            guests: 0,
            disabled: 0,
            by_department: vec![label(Some("Sales"), 1)],
            by_country: vec![label(Some("US"), 1)],
        },
        subscriptions: vec![],
        groups: 1,
        memberships: 1,
        workloads: vec![],
    };
    assert_eq!(
        store.tenant_summary("fabrikam").await.expect("summary"),
        fabrikam
    );
}

pub async fn tenants_with_people_are_listed_by_name(subject: &Subject) {
    let store = &*subject.store;
    assert!(
        store
            .tenants_with_people()
            .await
            .expect("listing")
            .is_empty()
    );
    two_tenants(store).await;
    // `empty` has a checkpoint and nobody.
    let tenants = store.tenants_with_people().await.expect("listing");
    assert_eq!(tenants, strings(&["contoso", "fabrikam"]));
}

pub async fn read_models_of_a_tenant_with_nothing_stored_are_empty(subject: &Subject) {
    let store = &*subject.store;
    two_tenants(store).await;
    for tenant in ["empty", "never-stored"] {
        for kind in ExportKind::ALL {
            assert!(
                export(store, kind, Some(tenant)).await.is_empty(),
                "{kind:?} of {tenant}"
            );
        }
        let lines = store
            .licence_lines(tenant, 30)
            .await
            .expect("licence lines");
        assert_eq!(lines, LicenceLines::default());
        let listed = store
            .inactive_licences(tenant, 30)
            .await
            .expect("inactive licences");
        assert!(listed.is_empty());
        let summary = store.tenant_summary(tenant).await.expect("summary");
        assert_eq!(summary, TenantSummary::default());
    }
}
