//! A batch as SQL statements: its changes, in order, with consecutive changes of one kind
//! folded into one bulk statement (`INSERT ... SELECT ... FROM UNNEST(...)`, `= ANY(...)`),
//! then its checkpoints and its run record. The tenant store sends them all at once
//! (pipelined), so a batch of a thousand people is one statement and one round trip, not a
//! thousand.
//!
//! Folding keeps the batch's meaning: only consecutive changes of one kind share a
//! statement, and within one the last change of a key wins (what applying them one by one
//! leaves). A link is never folded: it re-keys the stored record first (SQLite's
//! `upsert_person`), then writes the person.
//!
//! Values a PostgreSQL column cannot hold as given are refused before anything is sent,
//! naming the change (`values.rs`).

use std::collections::HashSet;

use m365sync_store::model::{change_error, change_name, json_list};
use m365sync_wit::StorageError;
use m365sync_wit::types::{Batch, Change, PersonUpsert, ReportScope, UpsertKind};
use tokio_postgres::types::ToSql;

use crate::bulk::{
    checkpoint_statement, domains_statement, groups_statement, mailboxes_statement,
    people_statement, run_statement, subscriptions_statement, usage_statement,
};
use crate::values::check_change;

/// A statement parameter, owned by the statement until it is sent.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// One statement of a batch.
pub(crate) struct Statement {
    pub sql: &'static str,
    pub params: Vec<Param>,
    /// What it applies, for errors ("applying person X of tenant T").
    pub what: String,
}

impl Statement {
    pub(crate) fn new(sql: &'static str, params: Vec<Param>, what: String) -> Statement {
        Statement { sql, params, what }
    }

    /// Its parameters as the driver takes them.
    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub(crate) fn param<T: ToSql + Sync + Send + 'static>(value: T) -> Param {
    Box::new(value)
}

/// The statements that apply `batch` for `tenant`, in order; or the first change whose
/// values cannot be stored, named.
pub(crate) fn statements(tenant: &str, batch: &Batch) -> Result<Vec<Statement>, StorageError> {
    for change in &batch.changes {
        check_change(change).map_err(|e| change_error(change, e))?;
    }
    let mut statements = Vec::new();
    for run in batch
        .changes
        .chunk_by(|a, b| kind(a) == kind(b) && kind(a).folds())
    {
        add_changes(&mut statements, tenant, run)?;
    }
    for checkpoint in &batch.checkpoints {
        statements.push(checkpoint_statement(tenant, checkpoint)?);
    }
    if let Some(run) = &batch.run {
        statements.push(run_statement(tenant, run)?);
    }
    Ok(statements)
}

/// What a change writes, for folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    People,
    Link,
    DeletePeople,
    Subscriptions,
    Groups,
    DeleteGroups,
    Members,
    Organization,
    Domains,
    Mailboxes,
    Usage,
    Replace,
}

impl Kind {
    /// Whether consecutive changes of this kind share one statement.
    fn folds(self) -> bool {
        !matches!(
            self,
            Kind::Link | Kind::Members | Kind::Organization | Kind::Replace
        )
    }
}

fn kind(change: &Change) -> Kind {
    match change {
        Change::UpsertPerson(p) if is_link(p) => Kind::Link,
        Change::UpsertPerson(_) => Kind::People,
        Change::DeletePerson(_) => Kind::DeletePeople,
        Change::UpsertSubscription(_) => Kind::Subscriptions,
        Change::UpsertGroup(_) => Kind::Groups,
        Change::DeleteGroup(_) => Kind::DeleteGroups,
        Change::GroupMembers(_) => Kind::Members,
        Change::UpsertOrganization(_) => Kind::Organization,
        Change::UpsertDomain(_) => Kind::Domains,
        Change::UpsertMailbox(_) => Kind::Mailboxes,
        Change::UpsertUsage(_) => Kind::Usage,
        Change::ReplaceReport(_) => Kind::Replace,
    }
}

/// A link that re-keys a record (a link to the id it is stored under is an update).
fn is_link(upsert: &PersonUpsert) -> bool {
    upsert.kind == UpsertKind::Link
        && upsert
            .previous_object_id
            .as_ref()
            .is_some_and(|previous| *previous != upsert.stored.person.object_id)
}

/// What a run of folded changes applies, for errors.
fn what(tenant: &str, run: &[Change]) -> String {
    match run {
        [one] => format!("applying {} of tenant {tenant}", change_name(one)),
        [first, .., last] => format!(
            "applying {} changes ({} to {}) of tenant {tenant}",
            run.len(),
            change_name(first),
            change_name(last)
        ),
        [] => format!("applying no change of tenant {tenant}"),
    }
}

/// The last change of each key, in the order they came (later ones replace earlier ones).
fn last_of_each<'a, T, K: std::hash::Hash + Eq>(
    items: impl DoubleEndedIterator<Item = &'a T>,
    key: impl Fn(&T) -> K,
) -> Vec<&'a T>
where
    T: 'a,
{
    let mut seen = HashSet::new();
    let mut kept: Vec<&T> = items.rev().filter(|item| seen.insert(key(item))).collect();
    kept.reverse();
    kept
}

fn add_changes(
    statements: &mut Vec<Statement>,
    tenant: &str,
    run: &[Change],
) -> Result<(), StorageError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let what = what(tenant, run);
    let tenant_param = || param(tenant.to_string());
    match kind(first) {
        Kind::People => {
            let people = last_of_each(
                run.iter().filter_map(|c| match c {
                    Change::UpsertPerson(p) => Some(p),
                    _ => None,
                }),
                |p| p.stored.person.object_id.clone(),
            );
            statements.push(people_statement(tenant, &people, what));
        }
        Kind::Link => {
            for change in run {
                let Change::UpsertPerson(upsert) = change else {
                    continue;
                };
                let (new_id, previous) = (
                    upsert.stored.person.object_id.clone(),
                    upsert.previous_object_id.clone().unwrap_or_default(),
                );
                // The record keeps its identity and takes the new id; a row already under
                // the new id gives way to it, so the tenant never holds both.
                statements.push(Statement::new(
                    "DELETE FROM people WHERE tenant = $1 AND object_id = $3
                     AND EXISTS (SELECT 1 FROM people WHERE tenant = $1 AND object_id = $2)",
                    vec![
                        tenant_param(),
                        param(previous.clone()),
                        param(new_id.clone()),
                    ],
                    what.clone(),
                ));
                statements.push(Statement::new(
                    "UPDATE people SET object_id = $3 WHERE tenant = $1 AND object_id = $2",
                    vec![tenant_param(), param(previous), param(new_id)],
                    what.clone(),
                ));
                statements.push(people_statement(tenant, &[upsert], what.clone()));
            }
        }
        Kind::DeletePeople => {
            let ids: Vec<String> = run
                .iter()
                .filter_map(|c| match c {
                    Change::DeletePerson(id) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            // A deleted person takes everything stored about them along.
            for sql in [
                "DELETE FROM mailboxes WHERE tenant = $1 AND object_id = ANY($2::text[])",
                "DELETE FROM usage WHERE tenant = $1 AND object_id = ANY($2::text[])",
                "DELETE FROM group_members WHERE tenant = $1 AND member_id = ANY($2::text[])",
                "DELETE FROM people WHERE tenant = $1 AND object_id = ANY($2::text[])",
            ] {
                statements.push(Statement::new(
                    sql,
                    vec![tenant_param(), param(ids.clone())],
                    what.clone(),
                ));
            }
        }
        Kind::Subscriptions => {
            let rows = last_of_each(
                run.iter().filter_map(|c| match c {
                    Change::UpsertSubscription(s) => Some(s),
                    _ => None,
                }),
                |s| s.sku_id.clone(),
            );
            statements.push(subscriptions_statement(tenant, &rows, what));
        }
        Kind::Groups => {
            let rows = last_of_each(
                run.iter().filter_map(|c| match c {
                    Change::UpsertGroup(g) => Some(g),
                    _ => None,
                }),
                |g| g.object_id.clone(),
            );
            statements.push(groups_statement(tenant, &rows, what));
        }
        Kind::DeleteGroups => {
            let ids: Vec<String> = run
                .iter()
                .filter_map(|c| match c {
                    Change::DeleteGroup(id) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            for sql in [
                "DELETE FROM group_members WHERE tenant = $1 AND group_id = ANY($2::text[])",
                "DELETE FROM groups WHERE tenant = $1 AND object_id = ANY($2::text[])",
            ] {
                statements.push(Statement::new(
                    sql,
                    vec![tenant_param(), param(ids.clone())],
                    what.clone(),
                ));
            }
        }
        Kind::Members => {
            for change in run {
                let Change::GroupMembers(m) = change else {
                    continue;
                };
                // Added first, then removed (as SQLite applies them).
                if !m.added.is_empty() {
                    statements.push(Statement::new(
                        "INSERT INTO group_members (tenant, group_id, member_id)
                         SELECT $1, $2, m FROM UNNEST($3::text[]) AS m
                         ON CONFLICT DO NOTHING",
                        vec![
                            tenant_param(),
                            param(m.group_id.clone()),
                            param(m.added.clone()),
                        ],
                        what.clone(),
                    ));
                }
                if !m.removed.is_empty() {
                    statements.push(Statement::new(
                        "DELETE FROM group_members
                         WHERE tenant = $1 AND group_id = $2 AND member_id = ANY($3::text[])",
                        vec![
                            tenant_param(),
                            param(m.group_id.clone()),
                            param(m.removed.clone()),
                        ],
                        what.clone(),
                    ));
                }
            }
        }
        Kind::Organization => {
            for change in run {
                let Change::UpsertOrganization(o) = change else {
                    continue;
                };
                statements.push(Statement::new(
                    "INSERT INTO organizations
                       (tenant, tenant_id, display_name, country, default_domain, verified_domains)
                     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
                     ON CONFLICT (tenant) DO UPDATE SET
                       tenant_id = EXCLUDED.tenant_id, display_name = EXCLUDED.display_name,
                       country = EXCLUDED.country, default_domain = EXCLUDED.default_domain,
                       verified_domains = EXCLUDED.verified_domains",
                    vec![
                        tenant_param(),
                        param(o.tenant_id.clone()),
                        param(o.display_name.clone()),
                        param(o.country.clone()),
                        param(o.default_domain.clone()),
                        param(json_list(&o.verified_domains)),
                    ],
                    what.clone(),
                ));
            }
        }
        Kind::Domains => {
            let rows = last_of_each(
                run.iter().filter_map(|c| match c {
                    Change::UpsertDomain(d) => Some(d),
                    _ => None,
                }),
                |d| d.name.clone(),
            );
            statements.push(domains_statement(tenant, &rows, what));
        }
        Kind::Mailboxes => {
            let rows = last_of_each(
                run.iter().filter_map(|c| match c {
                    Change::UpsertMailbox(m) => Some(m),
                    _ => None,
                }),
                |m| m.object_id.clone(),
            );
            statements.push(mailboxes_statement(tenant, &rows, what)?);
        }
        Kind::Usage => {
            let rows = last_of_each(
                run.iter().filter_map(|c| match c {
                    Change::UpsertUsage(u) => Some(u),
                    _ => None,
                }),
                |u| (u.object_id.clone(), u.workload.clone(), u.period_days),
            );
            statements.push(usage_statement(tenant, &rows, what));
        }
        Kind::Replace => {
            for change in run {
                let Change::ReplaceReport(scope) = change else {
                    continue;
                };
                statements.push(match scope {
                    ReportScope::Mailboxes => Statement::new(
                        "DELETE FROM mailboxes WHERE tenant = $1",
                        vec![tenant_param()],
                        what.clone(),
                    ),
                    ReportScope::Usage(scope) => Statement::new(
                        "DELETE FROM usage WHERE tenant = $1 AND workload = $2 AND period_days = $3",
                        vec![
                            tenant_param(),
                            param(scope.workload.clone()),
                            param(i32::from(scope.period_days)),
                        ],
                        what.clone(),
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use m365sync_store::conformance::fixtures::{self, create};
    use m365sync_wit::types::{Batch, Change, Mailbox};

    use super::statements;
    use crate::bulk::UPSERT_PEOPLE;

    /// A link of `<id>@x.test` onto the record stored under `previous`.
    fn link(id: &str, previous: &str) -> Change {
        let upn = format!("{id}@x.test");
        fixtures::link(fixtures::person(id, &upn), previous, None, &upn)
    }

    fn sqls(changes: Vec<Change>) -> Vec<String> {
        let batch = Batch {
            changes,
            checkpoints: vec![],
            run: None,
        };
        statements("t", &batch)
            .expect("statements")
            .iter()
            .map(|s| {
                if s.sql == UPSERT_PEOPLE.as_str() {
                    "people".to_string()
                } else {
                    s.sql
                        .split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            })
            .collect()
    }

    #[test]
    fn consecutive_changes_of_a_kind_share_a_statement_in_order() {
        assert_eq!(
            sqls((0..1000).map(|i| create(&format!("p{i}"))).collect()),
            ["people"]
        );
        assert_eq!(
            sqls(vec![
                create("a"),
                create("b"),
                Change::DeletePerson("a".into()),
                Change::DeletePerson("c".into()),
                create("a"),
            ]),
            [
                "people",
                "DELETE FROM mailboxes",
                "DELETE FROM usage",
                "DELETE FROM group_members",
                "DELETE FROM people",
                "people"
            ]
        );
    }

    #[test]
    fn a_link_rekeys_then_writes_and_is_never_folded() {
        assert_eq!(
            sqls(vec![
                create("a"),
                link("new", "old"),
                create("b"),
                // A link to the id it is stored under is an update.
                link("b", "b"),
            ]),
            [
                "people",
                "DELETE FROM people",
                "UPDATE people SET",
                "people",
                "people"
            ]
        );
    }

    #[test]
    fn the_last_write_of_a_key_wins_within_a_statement() {
        let batch = Batch {
            changes: vec![create("a"), create("b"), create("a")],
            checkpoints: vec![],
            run: None,
        };
        let statements = statements("t", &batch).expect("statements");
        assert_eq!(statements.len(), 1);
        assert!(
            statements[0]
                .what
                .contains("3 changes (person a to person a)")
        );
    }

    #[test]
    fn a_value_above_i64_max_is_refused_naming_the_change() {
        let batch = Batch {
            changes: vec![Change::UpsertMailbox(Mailbox {
                object_id: "m".into(),
                storage_used_bytes: u64::MAX,
                item_count: 1,
                quota_status: "ok".into(),
                last_activity: None,
                report_refreshed: "2024-01-01".into(),
            })],
            checkpoints: vec![],
            run: None,
        };
        let error = statements("t", &batch).err().expect("refused");
        let m365sync_wit::StorageError::Invalid(message) = error else {
            panic!("{error:?}");
        };
        assert!(
            message.starts_with("applying mailbox of m: storage_used_bytes"),
            "{message}"
        );
    }
}
