"""What both baselines share: the SQLite schema and statements they write with (a rowid
table, as a hand-written connector would create it), the token scope, the command line,
and the figures line they print."""

import argparse
import json
import os
import resource
import sys

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


def arguments(name: str, description: str) -> tuple[argparse.Namespace, str] | None:
    """The command line both baselines take, and the client secret from the environment
    (None, after a message, when it is not set)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--login", required=True, help="login base URL, e.g. http://127.0.0.1:PORT")
    p.add_argument("--graph", required=True, help="Graph base URL (without /v1.0)")
    p.add_argument("--tenant", required=True, help="tenant id")
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret-env", required=True, help="name of the env var holding the secret")
    p.add_argument("--db", required=True, help="SQLite database file (created if missing)")
    a = p.parse_args()
    secret = os.environ.get(a.client_secret_env)
    if not secret:
        print(f"{name}: environment variable {a.client_secret_env} is not set", file=sys.stderr)
        return None
    return a, secret


def print_figures(users: int, requests: int, wall: float, cpu: float, startup_s: float, startup_cpu: float) -> None:
    """One JSON line in the shape of the Rust bench's `Figures`."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "users": users,
                "requests": requests,
                "wall_s": round(wall, 4),
                "cpu_s": round(cpu, 4),
                "peak_rss_kb": rss,
                "extra": [["startup_s", round(startup_s, 4)], ["startup_cpu_s", round(startup_cpu, 4)]],
            }
        ),
        flush=True,
    )
