//! The PostgreSQL schema: its tables and indexes, the versioned migrations that build them
//! (recorded in `m365sync_schema_versions`), applied on open in one transaction under an
//! advisory lock keyed by the schema's name.
//!
//! Every table name is unqualified: the store lives in the connection's current schema
//! (the first existing schema of its `search_path`, `public` by default), so one database
//! can hold several stores (tests isolate themselves in schemas this way).
//!
//! Schema versions:
//! - 1: the tables of SQLite's schema 4 (people, checkpoints, subscriptions, groups,
//!   group_members, organizations, domains, mailboxes, usage, runs,
//!   platform_organizations, match_decisions, tenant_locks) in PostgreSQL types. Every
//!   text column is `COLLATE "C"`: ids and names compare and sort byte-wise as the
//!   contract orders them (and as `list-people-ids` pages), and the indexes serve those
//!   orders. Lists are `jsonb` arrays (their order kept); usage counts are the JSON text
//!   every back end exports; dates and timestamps are text exactly as the engine handed
//!   them. `tenant_locks.token` names one holding of a lock (see `lock.rs`).
//! - 2: what `m365sync serve` shares (`served_tenants`, `jobs`, `workers`, `webhooks`,
//!   as SQLite's schema 5) and the change feed (`change_events`, its `bigserial` cursor
//!   drawn at commit: see `feed.rs`). `jobs.priority` is the kind's claim priority
//!   (`JobKind::priority`), stored so that claims order by an index.
//! - 3: what onboarding keeps (`consent_requests`, `registered_tenants`, as SQLite's schema
//!   6; see `onboarding.rs`). `features` is a `jsonb` list of the features' names;
//!   registered tenants are keyed by directory id, their names unique (an index, whose
//!   violation `onboarding.rs` turns into the contract's refusal).
//! - 4: a registered tenant's partner (`registered_tenants.partner`, NULL for the rows of
//!   schema 3) and what an admin must act on (`notices`, as SQLite's schema 7; see
//!   `notices.rs`), the kind and stage stored by their names.

use deadpool_postgres::Object;
use m365sync_store::StoreError;

use crate::connect::Target;

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 4;

/// The table that records the migrations applied.
const VERSIONS_TABLE: &str = "m365sync_schema_versions";

/// A migration: its version, what it does, and its SQL (run as one batch in the open
/// transaction).
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "the first schema",
        sql: SCHEMA_1,
    },
    Migration {
        version: 2,
        description: "what m365sync serve shares, and the change feed",
        sql: SCHEMA_2,
    },
    Migration {
        version: 3,
        description: "what onboarding keeps",
        sql: SCHEMA_3,
    },
    Migration {
        version: 4,
        description: "a registered tenant's partner, and notices",
        sql: SCHEMA_4,
    },
];

const SCHEMA_1: &str = r#"
CREATE TABLE m365sync_schema_versions (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at text NOT NULL
);

CREATE TABLE people (
    tenant text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    user_principal_name text COLLATE "C" NOT NULL,
    mail text COLLATE "C",
    given_name text COLLATE "C",
    surname text COLLATE "C",
    display_name text COLLATE "C",
    department text COLLATE "C",
    job_title text COLLATE "C",
    company_name text COLLATE "C",
    country text COLLATE "C",
    usage_location text COLLATE "C",
    office_location text COLLATE "C",
    account_enabled boolean NOT NULL,
    user_type text COLLATE "C" NOT NULL,
    licences jsonb NOT NULL,
    created_at text COLLATE "C",
    manager_id text COLLATE "C",
    hire_date text COLLATE "C",
    proxy_addresses jsonb NOT NULL,
    last_sign_in text COLLATE "C",
    status text COLLATE "C" NOT NULL,
    fingerprint text COLLATE "C" NOT NULL,
    email_key text COLLATE "C",
    upn_key text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, object_id)
);
-- The engine's lookups: by its email and UPN keys, and direct reports by manager.
CREATE INDEX people_email ON people (tenant, email_key);
CREATE INDEX people_upn ON people (tenant, upn_key);
CREATE INDEX people_manager ON people (tenant, manager_id);

CREATE TABLE checkpoints (
    tenant text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, key)
);

CREATE TABLE subscriptions (
    tenant text COLLATE "C" NOT NULL,
    sku_id text COLLATE "C" NOT NULL,
    sku_part_number text COLLATE "C" NOT NULL,
    product_name text COLLATE "C" NOT NULL,
    enabled_units bigint NOT NULL,
    suspended_units bigint NOT NULL,
    warning_units bigint NOT NULL,
    consumed_units bigint NOT NULL,
    service_plans jsonb NOT NULL,
    PRIMARY KEY (tenant, sku_id)
);

CREATE TABLE groups (
    tenant text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    display_name text COLLATE "C" NOT NULL,
    mail text COLLATE "C",
    kind text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, object_id)
);

CREATE TABLE group_members (
    tenant text COLLATE "C" NOT NULL,
    group_id text COLLATE "C" NOT NULL,
    member_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, group_id, member_id)
);
-- A deleted person's memberships go with them.
CREATE INDEX group_members_member ON group_members (tenant, member_id);

CREATE TABLE organizations (
    tenant text COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id text COLLATE "C" NOT NULL,
    display_name text COLLATE "C" NOT NULL,
    country text COLLATE "C",
    default_domain text COLLATE "C",
    verified_domains jsonb NOT NULL
);

CREATE TABLE domains (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    is_default boolean NOT NULL,
    is_initial boolean NOT NULL,
    is_verified boolean NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE mailboxes (
    tenant text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    storage_used_bytes bigint NOT NULL,
    item_count bigint NOT NULL,
    quota_status text COLLATE "C" NOT NULL,
    last_activity text COLLATE "C",
    report_refreshed text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, object_id)
);

CREATE TABLE usage (
    tenant text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    workload text COLLATE "C" NOT NULL,
    period_days integer NOT NULL,
    last_activity text COLLATE "C",
    counts text COLLATE "C" NOT NULL,
    report_refreshed text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, object_id, workload, period_days)
);
-- `replace-report` deletes one report's rows.
CREATE INDEX usage_report ON usage (tenant, workload, period_days);

CREATE TABLE runs (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    started_at text COLLATE "C" NOT NULL,
    mode text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL
        CHECK (status IN ('ok', 'failed', 'interrupted', 'refused', 'reset')),
    elapsed_ms bigint,
    requests bigint,
    retries bigint,
    dry_run boolean NOT NULL,
    error_kind text COLLATE "C",
    error text COLLATE "C",
    report text COLLATE "C"
);
CREATE INDEX runs_tenant ON runs (tenant, id);

-- The platform's own organizations, shared by every tenant.
CREATE TABLE platform_organizations (
    id text COLLATE "C" NOT NULL PRIMARY KEY,
    name text COLLATE "C" NOT NULL
);
CREATE INDEX platform_organizations_name ON platform_organizations (name);

CREATE TABLE match_decisions (
    tenant text COLLATE "C" NOT NULL PRIMARY KEY,
    action text COLLATE "C" NOT NULL,
    organization_id text COLLATE "C",
    decided_at text COLLATE "C" NOT NULL
);

CREATE TABLE tenant_locks (
    tenant text COLLATE "C" NOT NULL PRIMARY KEY,
    pid bigint NOT NULL,
    host text COLLATE "C" NOT NULL,
    since text COLLATE "C" NOT NULL,
    heartbeat bigint NOT NULL,
    token text COLLATE "C" NOT NULL
);
"#;

const SCHEMA_2: &str = r#"
CREATE TABLE served_tenants (
    tenant text COLLATE "C" NOT NULL PRIMARY KEY,
    app text COLLATE "C" NOT NULL,
    paused boolean NOT NULL,
    consecutive_failures bigint NOT NULL,
    attention text COLLATE "C",
    next_run_ms bigint,
    last_run_id bigint,
    last_run_ms bigint,
    last_run_ok boolean
);

CREATE TABLE jobs (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    app text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    priority integer NOT NULL,
    state text COLLATE "C" NOT NULL,
    run_after_ms bigint NOT NULL,
    attempt bigint NOT NULL,
    worker text COLLATE "C",
    lease_until_ms bigint,
    created_ms bigint NOT NULL,
    started_ms bigint,
    finished_ms bigint,
    run_id bigint,
    error text COLLATE "C"
);
-- At most one queued job per tenant.
CREATE UNIQUE INDEX jobs_one_queued ON jobs (tenant) WHERE state = 'queued';
-- Claims walk the queued and running jobs in claim order.
CREATE INDEX jobs_claim_order ON jobs (priority, run_after_ms, id)
    WHERE state IN ('queued', 'running');

CREATE TABLE workers (
    id text COLLATE "C" NOT NULL PRIMARY KEY,
    pid bigint NOT NULL,
    host text COLLATE "C" NOT NULL,
    started_ms bigint NOT NULL,
    heartbeat_ms bigint NOT NULL
);

CREATE TABLE webhooks (
    name text COLLATE "C" NOT NULL PRIMARY KEY,
    cursor bigint NOT NULL,
    delivered bigint NOT NULL,
    failures bigint NOT NULL,
    last_error text COLLATE "C",
    last_delivered_ms bigint,
    worker text COLLATE "C",
    lease_until_ms bigint
);

-- `detail` is JSON as text: jsonb could not hold an escaped NUL of a field name.
CREATE TABLE change_events (
    cursor bigserial PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    at text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    object_id text COLLATE "C" NOT NULL,
    detail text COLLATE "C" NOT NULL
);
CREATE INDEX change_events_tenant ON change_events (tenant, cursor);
"#;

const SCHEMA_3: &str = r#"
CREATE TABLE consent_requests (
    state text COLLATE "C" NOT NULL PRIMARY KEY,
    app text COLLATE "C" NOT NULL,
    features jsonb NOT NULL,
    redirect_uri text COLLATE "C" NOT NULL,
    created_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
);
-- Takes delete the expired requests.
CREATE INDEX consent_requests_expiry ON consent_requests (expires_ms);

CREATE TABLE registered_tenants (
    tenant_id text COLLATE "C" NOT NULL PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    display_name text COLLATE "C" NOT NULL,
    app text COLLATE "C" NOT NULL,
    features jsonb NOT NULL,
    registered_ms bigint NOT NULL
);
-- A name is held by one directory (`onboarding.rs` names this index).
CREATE UNIQUE INDEX registered_tenants_name ON registered_tenants (name);
"#;

const SCHEMA_4: &str = r#"
ALTER TABLE registered_tenants ADD COLUMN partner text COLLATE "C";

CREATE TABLE notices (
    tenant text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    stage text COLLATE "C" NOT NULL,
    ends text COLLATE "C" NOT NULL,
    message text COLLATE "C" NOT NULL,
    raised_ms bigint NOT NULL,
    PRIMARY KEY (tenant, kind, key)
);
"#;

/// Where the store is, for messages: the target and, when it is not `public`, its schema.
fn place(target: &Target, schema: &str) -> String {
    if schema == "public" {
        target.described.clone()
    } else {
        format!("{} (schema {schema})", target.described)
    }
}

fn failed(target: &Target, what: &str, error: tokio_postgres::Error) -> StoreError {
    StoreError::Open(format!("{what} {}: {error}", target.described))
}

/// The connection's current schema, or why there is none.
async fn current_schema(client: &Object, target: &Target) -> Result<String, StoreError> {
    let row = client
        .query_one("SELECT current_schema()", &[])
        .await
        .map_err(|e| failed(target, "cannot read the current schema of", e))?;
    let schema: Option<String> = row
        .try_get(0)
        .map_err(|e| failed(target, "cannot read the current schema of", e))?;
    schema.ok_or_else(|| {
        StoreError::Open(format!(
            "the search_path of the connection to {} names no existing schema: create it, \
             or fix the URL's `options=-c search_path=...`",
            target.described
        ))
    })
}

/// The schema version the store in the current schema has (0: none yet).
async fn version(client: &Object, target: &Target) -> Result<i32, StoreError> {
    let exists = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                            WHERE schemaname = current_schema() AND tablename = $1)",
            &[&VERSIONS_TABLE],
        )
        .await
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(|e| failed(target, "cannot read the schema of", e))?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM m365sync_schema_versions",
            &[],
        )
        .await
        .and_then(|row| row.try_get::<_, i32>(0))
        .map_err(|e| failed(target, "cannot read the schema version of", e))
}

fn too_new(place: &str, found: i32) -> StoreError {
    StoreError::Open(format!(
        "{place} has schema version {found}, newer than this m365sync knows ({SCHEMA_VERSION}): \
         upgrade m365sync"
    ))
}

/// Create the schema in the current schema, or migrate it to [`SCHEMA_VERSION`]. The
/// version is read again under a transaction-scoped advisory lock keyed by the schema's
/// name, so two processes opening a new database at once create it once, and stores in
/// different schemas never wait on each other.
pub(crate) async fn migrate(client: &mut Object, target: &Target) -> Result<(), StoreError> {
    let schema = current_schema(client, target).await?;
    let place = place(target, &schema);
    let found = version(client, target).await?;
    if found > SCHEMA_VERSION {
        return Err(too_new(&place, found));
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let migrating = |e| failed(target, "cannot create or upgrade the tables of", e);
    let transaction = client.transaction().await.map_err(migrating)?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('m365sync schema ' || $1, 0))",
            &[&schema],
        )
        .await
        .map_err(migrating)?;
    // Read again under the lock: another process may have migrated meanwhile.
    let exists: bool = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                            WHERE schemaname = current_schema() AND tablename = $1)",
            &[&VERSIONS_TABLE],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(migrating)?;
    let found: i32 = if exists {
        transaction
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM m365sync_schema_versions",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(migrating)?
    } else {
        0
    };
    if found > SCHEMA_VERSION {
        return Err(too_new(&place, found));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let step = |e: tokio_postgres::Error| {
            StoreError::Open(format!(
                "cannot upgrade {place} from schema version {found} to {} ({}): {e}",
                migration.version, migration.description
            ))
        };
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(step)?;
        transaction
            .execute(
                "INSERT INTO m365sync_schema_versions (version, description, applied_at)
                 VALUES ($1, $2, $3)",
                &[
                    &migration.version,
                    &migration.description,
                    &m365sync_store::time::now_rfc3339(),
                ],
            )
            .await
            .map_err(step)?;
    }
    transaction.commit().await.map_err(migrating)
}

/// Check that the current schema holds m365sync's tables at a version this build reads,
/// creating nothing.
pub(crate) async fn check_existing(client: &Object, target: &Target) -> Result<(), StoreError> {
    let schema = current_schema(client, target).await?;
    let place = place(target, &schema);
    match version(client, target).await? {
        0 => Err(StoreError::Empty(place)),
        found if found > SCHEMA_VERSION => Err(too_new(&place, found)),
        _ => Ok(()),
    }
}
