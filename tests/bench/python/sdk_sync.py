#!/usr/bin/env python3
"""Baseline 2: "full sync, people + licences" with Microsoft's Graph SDK for Python.

msgraph-sdk (GraphServiceClient over kiota), paging with msgraph_core's PageIterator,
writing into SQLite exactly as plain_sync.py does (same tables, same columns, licences as
the same compact JSON, one transaction per page):

1. A client-credentials token from {login}/{tenant}/oauth2/v2.0/token with one plain
   httpx POST. azure-identity's ClientSecretCredential (the SDK's usual credential) refuses
   an authority that is not https, so it cannot talk to the simulator's http token
   endpoint; the token is fetched once and handed to the SDK as a static bearer token
   through kiota's public hooks: an AccessTokenProvider returning it, restricted by an
   AllowedHostsValidator to the Graph host, inside a BaseBearerTokenAuthenticationProvider.
   (Only kiota's azure-identity provider enforces https, and it exempts loopback anyway.)
2. client.users.get($select=..., $top=999), then PageIterator.iterate() over every page.
3. client.subscribed_skus.get().

The SDK's HTTP client is the one GraphClientFactory builds by default (with the same
middleware and options as GraphRequestAdapter's default), on an httpx.AsyncClient whose
transport counts every request it sends (retries by the middleware included) and whose
base_url is {graph}/v1.0; the request adapter's base_url is set to the same.

Prints one JSON line on stdout, like plain_sync.py:
  {"users": n, "requests": n, "wall_s": x, "cpu_s": x, "peak_rss_kb": n, "extra": [...]}
wall_s and cpu_s cover the work (token request to last commit); the interpreter's start and
the SDK's imports are given in "extra" as startup_s / startup_cpu_s. "requests" includes the
token request.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import httpx  # noqa: E402
from kiota_abstractions.authentication import (  # noqa: E402
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: E402
from kiota_http.kiota_client_factory import (  # noqa: E402
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
)
from msgraph import GraphRequestAdapter, GraphServiceClient  # noqa: E402
from msgraph import graph_request_adapter as _gra  # noqa: E402
from msgraph.generated.models.user import User  # noqa: E402
from msgraph.generated.users.users_request_builder import UsersRequestBuilder  # noqa: E402
from msgraph_core import GraphClientFactory  # noqa: E402
from msgraph_core.tasks.page_iterator import PageIterator  # noqa: E402

from common import (  # noqa: E402
    INSERT_PERSON,
    INSERT_SKU,
    SCHEMA,
    SCOPE,
    arguments,
    cpu_seconds,
    print_figures,
)

SELECT = [
    "id", "userPrincipalName", "mail", "givenName", "surname", "displayName", "department",
    "jobTitle", "companyName", "country", "usageLocation", "officeLocation",
    "accountEnabled", "userType", "assignedLicenses", "createdDateTime",
]


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(SCHEMA)
    return db


def write_page(db: sqlite3.Connection, sql: str, rows: list) -> None:
    db.execute("BEGIN")
    try:
        db.executemany(sql, rows)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class StaticTokenProvider(AccessTokenProvider):
    """Hands out one token, and only for URLs on the allowed hosts."""

    def __init__(self, token: str, allowed_hosts: list[str]) -> None:
        self._token = token
        self._validator = AllowedHostsValidator(allowed_hosts)

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] = {}
    ) -> str:
        if not self._validator.is_url_host_valid(uri):
            return ""
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator


class CountingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, counting the requests that reach the network."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await super().handle_async_request(request)


def uuid_text(v) -> str | None:
    return None if v is None else str(v)


def iso_z(dt) -> str | None:
    if dt is None:
        return None
    # Graph's form, as plain_sync.py stores it: 2021-11-05T20:30:18Z.
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def person_row(tenant: str, u: User) -> tuple:
    licences = [
        {
            "disabledPlans": [str(p) for p in (lic.disabled_plans or [])],
            "skuId": uuid_text(lic.sku_id),
        }
        for lic in (u.assigned_licenses or [])
    ]
    return (
        tenant,
        u.id,
        u.user_principal_name or "",
        u.mail,
        u.given_name,
        u.surname,
        u.display_name,
        u.department,
        u.job_title,
        u.company_name,
        u.country,
        u.usage_location,
        u.office_location,
        1 if u.account_enabled else 0,
        u.user_type,
        json.dumps(licences, separators=(",", ":")),
        iso_z(u.created_date_time),
    )


def sku_row(tenant: str, s) -> tuple:
    units = s.prepaid_units
    plans = [
        {
            "appliesTo": p.applies_to,
            "provisioningStatus": p.provisioning_status,
            "servicePlanId": uuid_text(p.service_plan_id),
            "servicePlanName": p.service_plan_name,
        }
        for p in (s.service_plans or [])
    ]
    return (
        tenant,
        uuid_text(s.sku_id),
        s.sku_part_number or "",
        s.capability_status,
        s.applies_to,
        (units.enabled if units else None) or 0,
        (units.suspended if units else None) or 0,
        (units.warning if units else None) or 0,
        (units.locked_out if units else None) or 0,
        s.consumed_units or 0,
        json.dumps(plans, separators=(",", ":")),
    )


async def fetch_token(login: str, tenant: str, client_id: str, secret: str) -> str:
    async with httpx.AsyncClient(timeout=httpx.Timeout(100.0, connect=30.0)) as c:
        resp = await c.post(
            f"{login.rstrip('/')}/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": SCOPE,
            },
        )
    if resp.status_code != 200:
        raise SystemExit(f"sdk_sync: token request -> HTTP {resp.status_code}: {resp.text[:500]}")
    return resp.json()["access_token"]


async def store_pages(first, adapter, db: sqlite3.Connection, sql: str, to_row) -> int:
    """Walks every page with PageIterator, committing each page in one transaction."""
    if not first or not first.value:
        return 0
    it = PageIterator(first, adapter)
    batch: list[tuple] = []
    stored = 0

    def on_item(item) -> bool:
        nonlocal stored
        batch.append(to_row(item))
        if item is it.current_page.value[-1]:  # the page's last item: commit the page
            write_page(db, sql, batch)
            stored += len(batch)
            batch.clear()
        return True

    await it.iterate(on_item)
    if batch:
        write_page(db, sql, batch)
        stored += len(batch)
    return stored


async def sync(a, secret: str) -> tuple[int, int]:
    access = await fetch_token(a.login, a.tenant, a.client_id, secret)
    requests = 1

    base_url = f"{a.graph.rstrip('/')}/v1.0"
    host = urlparse(base_url).hostname
    auth = BaseBearerTokenAuthenticationProvider(StaticTokenProvider(access, [host]))

    # GraphRequestAdapter's default client, built the same way but on a counting transport.
    transport = CountingTransport(http2=True)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(DEFAULT_REQUEST_TIMEOUT, connect=DEFAULT_CONNECTION_TIMEOUT),
        http2=True,
        transport=transport,
        base_url=base_url,
    )
    http = GraphClientFactory.create_with_default_middleware(client=http, options=_gra.options)
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = base_url
    client = GraphServiceClient(request_adapter=adapter)

    db = open_db(a.db)
    try:
        config = RequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                select=SELECT, top=999
            )
        )
        first = await client.users.get(request_configuration=config)
        users = await store_pages(first, adapter, db, INSERT_PERSON, lambda u: person_row(a.tenant, u))
        skus = await client.subscribed_skus.get()
        await store_pages(skus, adapter, db, INSERT_SKU, lambda s: sku_row(a.tenant, s))
    finally:
        db.close()
        await http.aclose()
    return users, requests + transport.requests


def main() -> int:
    parsed = arguments("sdk_sync", __doc__.splitlines()[0])
    if parsed is None:
        return 2
    a, secret = parsed

    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    startup_s = t0 - _T_START
    users, requests = asyncio.run(sync(a, secret))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    print_figures(users, requests, wall, cpu, startup_s, cpu0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
