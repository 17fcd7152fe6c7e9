//! The least-privileged Microsoft Graph application permissions each feature needs (all
//! read-only), with the endpoints that need them, per Microsoft's Graph permissions
//! reference and the Permissions table of each API page. Also which broader permissions
//! imply them, so that a permission check does not report a permission as missing when
//! the app holds a superset of it.

use crate::types::{Features, Permission, PermissionCheck, PermissionDenied};

/// One row of the table: a feature needs a permission for some endpoints.
struct Row {
    feature: Features,
    permission: &'static str,
    endpoints: &'static [&'static str],
}

const TABLE: &[Row] = &[
    Row {
        feature: Features::USERS,
        permission: "User.Read.All",
        endpoints: &["GET /v1.0/users", "GET /v1.0/users/delta"],
    },
    Row {
        feature: Features::MANAGERS,
        permission: "User.Read.All",
        endpoints: &["GET /v1.0/users/delta?$select=manager"],
    },
    // user-list.md: reading signInActivity needs AuditLog.Read.All besides the permission
    // to list users.
    Row {
        feature: Features::SIGN_IN_ACTIVITY,
        permission: "AuditLog.Read.All",
        endpoints: &["GET /v1.0/users?$select=id,signInActivity"],
    },
    Row {
        feature: Features::SIGN_IN_ACTIVITY,
        permission: "User.Read.All",
        endpoints: &["GET /v1.0/users?$select=id,signInActivity"],
    },
    Row {
        feature: Features::GROUPS,
        permission: "GroupMember.Read.All",
        endpoints: &["GET /v1.0/groups/delta?$select=...,members (members@delta)"],
    },
    Row {
        feature: Features::LICENCES,
        permission: "Organization.Read.All",
        endpoints: &["GET /v1.0/subscribedSkus"],
    },
    Row {
        feature: Features::ORGANIZATION,
        permission: "Organization.Read.All",
        endpoints: &["GET /v1.0/organization"],
    },
    Row {
        feature: Features::ORGANIZATION,
        permission: "Domain.Read.All",
        endpoints: &["GET /v1.0/domains"],
    },
    Row {
        feature: Features::MAILBOXES,
        permission: "Reports.Read.All",
        endpoints: &["GET /v1.0/reports/getMailboxUsageDetail"],
    },
    Row {
        feature: Features::USAGE_REPORTS,
        permission: "Reports.Read.All",
        endpoints: &[
            "GET /v1.0/reports/getM365AppUserDetail",
            "GET /v1.0/reports/getEmailActivityUserDetail",
            "GET /v1.0/reports/getTeamsUserActivityUserDetail",
            "GET /v1.0/reports/getOneDriveActivityUserDetail",
            "GET /v1.0/reports/getSharePointActivityUserDetail",
            "GET /v1.0/reports/getYammerActivityUserDetail",
            "GET /v1.0/reports/getSkypeForBusinessActivityUserDetail",
        ],
    },
];

/// Broader application permissions that also grant a least-privileged one ("higher
/// privileged permissions" in the API pages). The engine never asks for these.
const IMPLIED_BY: &[(&str, &[&str])] = &[
    (
        "User.Read.All",
        &[
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
    ),
    (
        "GroupMember.Read.All",
        &[
            "Group.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
    ),
    (
        "Organization.Read.All",
        &[
            "Organization.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
    ),
    (
        "Domain.Read.All",
        &[
            "Domain.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
    ),
];

/// Every feature flag with its WIT name, in WIT order.
pub const FEATURE_NAMES: &[(Features, &str)] = &[
    (Features::USERS, "users"),
    (Features::MANAGERS, "managers"),
    (Features::SIGN_IN_ACTIVITY, "sign-in-activity"),
    (Features::GROUPS, "groups"),
    (Features::LICENCES, "licences"),
    (Features::ORGANIZATION, "organization"),
    (Features::MAILBOXES, "mailboxes"),
    (Features::USAGE_REPORTS, "usage-reports"),
];

/// The feature flag of a WIT feature name.
pub fn feature_flag(name: &str) -> Option<Features> {
    FEATURE_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(flag, _)| *flag)
}

/// The WIT names of the features set in `f`, comma-separated.
pub fn feature_names(f: Features) -> String {
    FEATURE_NAMES
        .iter()
        .filter(|(flag, _)| f.contains(*flag))
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The permissions the features need, one entry per permission (features OR'ed, endpoints
/// in table order), sorted by name.
pub fn required(features: Features) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::new();
    for row in TABLE.iter().filter(|r| features.contains(r.feature)) {
        let i = match out.iter().position(|p| p.name == row.permission) {
            Some(i) => i,
            None => {
                out.push(Permission {
                    name: row.permission.into(),
                    features: Features::empty(),
                    endpoints: Vec::new(),
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        p.features |= row.feature;
        for e in row.endpoints {
            if !p.endpoints.iter().any(|x| x == e) {
                p.endpoints.push((*e).into());
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Does the set of granted roles grant `permission` (itself or a superset)?
pub fn is_granted(granted: &[String], permission: &str) -> bool {
    let implied = IMPLIED_BY
        .iter()
        .find(|(p, _)| *p == permission)
        .map(|(_, by)| *by)
        .unwrap_or(&[]);
    granted.iter().any(|g| {
        g.eq_ignore_ascii_case(permission) || implied.iter().any(|i| g.eq_ignore_ascii_case(i))
    })
}

/// Compares granted roles with what the features need: one `missing` entry per feature
/// and permission it lacks.
pub fn check(granted: Vec<String>, features: Features, client_id: &str) -> PermissionCheck {
    let mut granted = granted;
    granted.sort();
    granted.dedup();
    let mut missing = Vec::new();
    for p in required(features) {
        if is_granted(&granted, &p.name) {
            continue;
        }
        for (flag, feature) in FEATURE_NAMES {
            if !p.features.contains(*flag) {
                continue;
            }
            missing.push(PermissionDenied {
                permission: p.name.clone(),
                feature: (*feature).into(),
                message: format!(
                    "Feature {feature} needs the Microsoft Graph application permission {} \
                     (for {}). Add it to app {client_id} under API permissions > Microsoft \
                     Graph > Application permissions, then grant admin consent.",
                    p.name,
                    TABLE
                        .iter()
                        .filter(|r| r.permission == p.name && r.feature == *flag)
                        .flat_map(|r| r.endpoints.iter().copied())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    PermissionCheck { granted, missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_need_user_read_all() {
        let r = required(Features::USERS);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "User.Read.All");
        assert_eq!(r[0].features, Features::USERS);
        assert_eq!(
            r[0].endpoints,
            vec!["GET /v1.0/users", "GET /v1.0/users/delta"]
        );
        assert!(required(Features::empty()).is_empty());
    }

    #[test]
    fn shared_permissions_merge_and_sort() {
        let r = required(Features::all());
        let names: Vec<_> = r.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "AuditLog.Read.All",
                "Domain.Read.All",
                "GroupMember.Read.All",
                "Organization.Read.All",
                "Reports.Read.All",
                "User.Read.All"
            ]
        );
        let user = r.iter().find(|p| p.name == "User.Read.All").unwrap();
        assert_eq!(
            user.features,
            Features::USERS | Features::MANAGERS | Features::SIGN_IN_ACTIVITY
        );
        assert_eq!(user.endpoints.len(), 4);
        let reports = r.iter().find(|p| p.name == "Reports.Read.All").unwrap();
        assert_eq!(
            reports.features,
            Features::MAILBOXES | Features::USAGE_REPORTS
        );
        assert_eq!(reports.endpoints.len(), 8);
        let org = r
            .iter()
            .find(|p| p.name == "Organization.Read.All")
            .unwrap();
        assert_eq!(org.features, Features::LICENCES | Features::ORGANIZATION);
        // Read-only, all of them.
        assert!(r.iter().all(|p| p.name.contains(".Read.")));
        assert!(
            r.iter()
                .flat_map(|p| &p.endpoints)
                .all(|e| e.starts_with("GET "))
        );
    }

    #[test]
    fn check_reports_missing_per_feature_and_accepts_supersets() {
        let c = check(
            vec![
                "Reports.Read.All".into(),
                "User.Read.All".into(),
                "User.Read.All".into(),
            ],
            Features::USERS | Features::MAILBOXES | Features::ORGANIZATION,
            "app-1",
        );
        assert_eq!(c.granted, vec!["Reports.Read.All", "User.Read.All"]);
        let missing: Vec<_> = c
            .missing
            .iter()
            .map(|m| (m.permission.as_str(), m.feature.as_str()))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("Domain.Read.All", "organization"),
                ("Organization.Read.All", "organization")
            ]
        );
        assert!(c.missing[0].message.contains("GET /v1.0/domains"));
        assert!(c.missing[0].message.contains("app-1"));

        let c = check(
            vec!["Directory.Read.All".into()],
            Features::USERS | Features::GROUPS,
            "a",
        );
        assert!(c.missing.is_empty());
        let c = check(vec![], Features::USERS | Features::MANAGERS, "a");
        let missing: Vec<_> = c.missing.iter().map(|m| m.feature.as_str()).collect();
        assert_eq!(missing, vec!["users", "managers"]);
    }

    #[test]
    fn feature_names_follow_wit() {
        assert_eq!(
            feature_names(Features::USERS | Features::USAGE_REPORTS),
            "users, usage-reports"
        );
        assert_eq!(FEATURE_NAMES.len(), 8);
        let all = FEATURE_NAMES
            .iter()
            .fold(Features::empty(), |a, (f, _)| a | *f);
        assert_eq!(all, Features::all());
        for (flag, name) in FEATURE_NAMES {
            assert_eq!(feature_flag(name), Some(*flag));
        }
        assert_eq!(feature_flag("nope"), None);
    }
}
