"""What both baselines share: the SQLite schema and statements they write with (a rowid
table, as a hand-written connector would create it), the token scope, and CPU time."""

import resource

SCOPE = "https://graph.microsoft.com/.default"

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    tenant TEXT NOT NULL,
    object_id TEXT NOT NULL,
    user_principal_name TEXT NOT NULL,
    mail TEXT,
    given_name TEXT,
    surname TEXT,
    display_name TEXT,
    department TEXT,
    job_title TEXT,
    company_name TEXT,
    country TEXT,
    usage_location TEXT,
    office_location TEXT,
    account_enabled INTEGER NOT NULL,
    user_type TEXT,
    licences TEXT NOT NULL,
    created_at TEXT,
    PRIMARY KEY (tenant, object_id)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    sku_id TEXT NOT NULL,
    sku_part_number TEXT NOT NULL,
    capability_status TEXT,
    applies_to TEXT,
    enabled_units INTEGER NOT NULL,
    suspended_units INTEGER NOT NULL,
    warning_units INTEGER NOT NULL,
    locked_out_units INTEGER NOT NULL,
    consumed_units INTEGER NOT NULL,
    service_plans TEXT NOT NULL,
    PRIMARY KEY (tenant, sku_id)
);
"""

INSERT_PERSON = "INSERT OR REPLACE INTO people VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
INSERT_SKU = "INSERT OR REPLACE INTO subscriptions VALUES (?,?,?,?,?,?,?,?,?,?,?)"


def cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
