//! What an admin must act on, in SQLite ([`Notices`]): the `notices` table (schema 7,
//! [`crate::schema::NOTICES_TABLE`]). `set_notices` is one write transaction at the file's
//! gate (`SqliteStore::write`): it reads the tenant's notices of the kind, decides by the
//! shared rule ([`plan_notices`]), deletes, upserts and appends the events with the
//! change feed's own insert ([`crate::feed::insert_events`]), so they are committed with
//! the notices and their cursors (rowids) follow commit order, as a batch's do.

use async_trait::async_trait;
use m365sync_store::StoreError;
use m365sync_store::notices::{
    Notice, NoticeKind, Notices, plan_notices, stored_notice_kind, stored_notice_stage,
};
use rusqlite::{Connection, params};

use crate::SqliteStore;
use crate::queue::{Failed, bad_value};

const COLUMNS: &str = "tenant, kind, key, stage, ends, message, raised_ms";

fn notice_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Notice> {
    let kind: String = row.get(1)?;
    let stage: String = row.get(3)?;
    Ok(Notice {
        tenant: row.get(0)?,
        kind: stored_notice_kind(&kind).map_err(|why| bad_value(1, why))?,
        key: row.get(2)?,
        stage: stored_notice_stage(&stage).map_err(|why| bad_value(3, why))?,
        ends: row.get(4)?,
        message: row.get(5)?,
        raised_ms: row.get(6)?,
    })
}

/// `tenant`'s notices of `kind`, by key.
fn stored_of(
    connection: &Connection,
    tenant: &str,
    kind: NoticeKind,
) -> rusqlite::Result<Vec<Notice>> {
    connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notices WHERE tenant = ?1 AND kind = ?2 ORDER BY key"
        ))?
        .query_map(params![tenant, kind.name()], notice_from_row)?
        .collect()
}

fn set(
    transaction: &Connection,
    tenant: &str,
    kind: NoticeKind,
    notices: &[Notice],
    now_ms: i64,
) -> Result<u32, Failed> {
    let stored = stored_of(transaction, tenant, kind)?;
    let plan = plan_notices(tenant, kind, notices, &stored, now_ms)?;
    let mut delete = transaction
        .prepare_cached("DELETE FROM notices WHERE tenant = ?1 AND kind = ?2 AND key = ?3")?;
    for key in &plan.delete {
        delete.execute(params![tenant, kind.name(), key])?;
    }
    let mut upsert = transaction.prepare_cached(&format!(
        "INSERT INTO notices ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, kind, key) DO UPDATE SET
           stage = excluded.stage, ends = excluded.ends, message = excluded.message,
           raised_ms = excluded.raised_ms"
    ))?;
    for notice in &plan.write {
        upsert.execute(params![
            tenant,
            kind.name(),
            notice.key,
            notice.stage.name(),
            notice.ends,
            notice.message,
            notice.raised_ms,
        ])?;
    }
    crate::feed::insert_events(transaction, tenant, &plan.events)?;
    Ok(plan.appended())
}

/// The notices of `tenant`, or of every tenant, by tenant, kind name and key.
fn listed(connection: &Connection, tenant: Option<&str>) -> rusqlite::Result<Vec<Notice>> {
    match tenant {
        None => connection
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notices ORDER BY tenant, kind, key"
            ))?
            .query_map([], notice_from_row)?
            .collect(),
        Some(tenant) => connection
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notices WHERE tenant = ?1 ORDER BY kind, key"
            ))?
            .query_map(params![tenant], notice_from_row)?
            .collect(),
    }
}

#[async_trait]
impl Notices for SqliteStore {
    async fn set_notices(
        &self,
        tenant: &str,
        kind: NoticeKind,
        notices: &[Notice],
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        self.write("setting the notices", |t| {
            set(t, tenant, kind, notices, now_ms)
        })
        .await
    }

    async fn notices(&self, tenant: Option<&str>) -> Result<Vec<Notice>, StoreError> {
        self.read("listing the notices", |c| listed(c, tenant))
    }
}
