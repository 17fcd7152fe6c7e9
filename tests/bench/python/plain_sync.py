#!/usr/bin/env python3
"""Baseline 1: a hand-written Python connector doing "full sync, people + licences".

One httpx.Client (keep-alive), the json module and sqlite3, the way a script written
against the Graph REST docs does it:

1. POST the client-credentials token request to {login}/{tenant}/oauth2/v2.0/token.
2. GET {graph}/v1.0/users?$select=...&$top=999 and follow @odata.nextLink to the end,
   writing each page into SQLite (table `people`, licences as JSON text) in one
   transaction per page.
3. GET {graph}/v1.0/subscribedSkus into table `subscriptions`.

Prints one JSON line on stdout:
  {"users": n, "requests": n, "wall_s": x, "cpu_s": x, "peak_rss_kb": n, "extra": [...]}
wall_s and cpu_s cover the work (token request to last commit), not the interpreter's start
and imports, which are given in "extra" as startup_s / startup_cpu_s; peak_rss_kb is the
process's (getrusage RUSAGE_SELF ru_maxrss, KiB on Linux). "requests" counts every HTTP
request sent, the token request included.
"""

import time

_T_START = time.perf_counter()

import json  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402

import httpx  # noqa: E402

from common import (  # noqa: E402
    INSERT_PERSON,
    INSERT_SKU,
    SCHEMA,
    SCOPE,
    arguments,
    cpu_seconds,
    print_figures,
)

SELECT = (
    "id,userPrincipalName,mail,givenName,surname,displayName,department,jobTitle,"
    "companyName,country,usageLocation,officeLocation,accountEnabled,userType,"
    "assignedLicenses,createdDateTime"
)

RETRY_STATUSES = {429, 503, 504}
MAX_TRIES = 5


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SCHEMA)
    return db


class Graph:
    """One keep-alive client; counts requests; waits out 429/503/504 (Retry-After)."""

    def __init__(self) -> None:
        self.client = httpx.Client(timeout=httpx.Timeout(100.0, connect=30.0))
        self.requests = 0

    def send(self, method: str, url: str, **kw) -> httpx.Response:
        for attempt in range(1, MAX_TRIES + 1):
            self.requests += 1
            resp = self.client.request(method, url, **kw)
            if resp.status_code in RETRY_STATUSES and attempt < MAX_TRIES:
                try:
                    wait = float(resp.headers.get("Retry-After", "1"))
                except ValueError:
                    wait = 1.0
                time.sleep(min(max(wait, 0.0), 60.0))
                continue
            if resp.status_code >= 400:
                raise SystemExit(
                    f"plain_sync: {method} {url} -> HTTP {resp.status_code}: {resp.text[:500]}"
                )
            return resp
        raise AssertionError("unreachable")


def token(graph: Graph, login: str, tenant: str, client_id: str, secret: str) -> str:
    resp = graph.send(
        "POST",
        f"{login.rstrip('/')}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": SCOPE,
        },
    )
    return resp.json()["access_token"]


def person_row(tenant: str, u: dict) -> tuple:
    return (
        tenant,
        u["id"],
        u.get("userPrincipalName") or "",
        u.get("mail"),
        u.get("givenName"),
        u.get("surname"),
        u.get("displayName"),
        u.get("department"),
        u.get("jobTitle"),
        u.get("companyName"),
        u.get("country"),
        u.get("usageLocation"),
        u.get("officeLocation"),
        1 if u.get("accountEnabled") else 0,
        u.get("userType"),
        json.dumps(u.get("assignedLicenses") or [], separators=(",", ":")),
        u.get("createdDateTime"),
    )


def sku_row(tenant: str, s: dict) -> tuple:
    units = s.get("prepaidUnits") or {}
    return (
        tenant,
        s["skuId"],
        s.get("skuPartNumber") or "",
        s.get("capabilityStatus"),
        s.get("appliesTo"),
        units.get("enabled") or 0,
        units.get("suspended") or 0,
        units.get("warning") or 0,
        units.get("lockedOut") or 0,
        s.get("consumedUnits") or 0,
        json.dumps(s.get("servicePlans") or [], separators=(",", ":")),
    )


def write_page(db: sqlite3.Connection, sql: str, rows: list) -> None:
    db.execute("BEGIN")
    try:
        db.executemany(sql, rows)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def main() -> int:
    parsed = arguments("plain_sync", __doc__.splitlines()[0])
    if parsed is None:
        return 2
    a, secret = parsed

    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    startup_s = t0 - _T_START

    graph = Graph()
    db = open_db(a.db)
    access = token(graph, a.login, a.tenant, a.client_id, secret)
    graph.client.headers["Authorization"] = f"Bearer {access}"

    base = a.graph.rstrip("/")
    url = f"{base}/v1.0/users?$select={SELECT}&$top=999"
    users = 0
    while url:
        page = graph.send("GET", url).json()
        rows = [person_row(a.tenant, u) for u in page.get("value", [])]
        write_page(db, INSERT_PERSON, rows)
        users += len(rows)
        url = page.get("@odata.nextLink")

    url = f"{base}/v1.0/subscribedSkus"
    while url:
        page = graph.send("GET", url).json()
        write_page(db, INSERT_SKU, [sku_row(a.tenant, s) for s in page.get("value", [])])
        url = page.get("@odata.nextLink")

    db.close()
    graph.client.close()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    print_figures(users, graph.requests, wall, cpu, startup_s, cpu0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
