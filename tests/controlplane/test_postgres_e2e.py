"""`stratus up` on PostgreSQL (STRATUS_DATABASE_URL=postgresql+psycopg://...): the whole path
of a new tenant, from account to a workflow run through the gateway; and a quota that holds
when two API processes take concurrent requests on the one database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from identity_support import expiry, invite, issue_user_key
from support import (
    StratusUp,
    create_active_namespace,
    free_port,
    http,
    new_tenant,
    run_greeting,
    wait_until,
)

from infra.postgres import PostgresServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stratus_on_postgres(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StratusUp]:
    """A `stratus up` whose control plane keeps its state in a new PostgreSQL database."""
    name = postgres.unique_database("stratus_up")
    up = StratusUp(
        tmp_path_factory.mktemp("stratus-pg"),
        free_port(),
        free_port(),
        extra_env={"STRATUS_DATABASE_URL": postgres.database_url(name)},
    )
    try:
        up.start()
        yield up
    finally:
        up.cleanup()
        postgres.drop_database(name)


@pytest.fixture
def second_api(stratus_on_postgres: StratusUp) -> Iterator[str]:
    """Another API process beside the supervisor's, on the same database and settings (its
    environment, read from /proc, on another port); yields its URL."""
    pid = int((stratus_on_postgres.data_dir / "run" / "api.pid").read_text())
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item]
    env = {os.fsdecode(key): os.fsdecode(value) for key, value in pairs}
    port = free_port()
    env["STRATUS_API_PORT"] = str(port)
    log = stratus_on_postgres.data_dir / "second-api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane.app"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_account_namespace_and_workflow_on_postgres(stratus_on_postgres: StratusUp) -> None:
    """On PostgreSQL the operator creates an account, its namespace becomes ACTIVE, a worker
    runs a workflow through the gateway; no SQLite database is created beside it, and no
    process logged a traceback."""
    stratus = stratus_on_postgres
    tenant = new_tenant(stratus, "Pgco")
    namespace_id = create_active_namespace(stratus, tenant, "orders")
    result = await run_greeting(stratus, namespace_id, tenant.client_cert, "pg-first-workflow")
    assert result == "Hello, Stratus!"
    assert not (stratus.data_dir / "stratus.db").exists()
    for log in stratus.data_dir.rglob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log


async def test_api_keys_per_user_hold_across_two_api_processes(
    stratus_on_postgres: StratusUp, second_api: str
) -> None:
    """Twelve concurrent key creates by one user, split between two API processes on one
    PostgreSQL database, leave exactly the quota's number of keys: the account row lock
    serializes the count across processes, not only inside one."""
    stratus = stratus_on_postgres
    tenant = new_tenant(stratus, "Keyrace")
    with http(stratus, stratus.operator_key) as operator:
        quota = {"api_keys_per_principal": 4}
        set_quota = operator.post(f"/accounts/{tenant.account_id}/quotas", json=quota)
        assert set_quota.status_code == 200, set_quota.text
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    body = {"display_name": "k", "expiry": expiry()}

    async def create(base_url: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
            return await client.post("/api/v1/api-keys", json=body)

    urls = [stratus.api_url, second_api] * 6
    responses = await asyncio.gather(*(create(url) for url in urls))
    # The owner's bootstrap key is the first of four.
    assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 9
    with http(stratus, tenant.api_key) as owner:
        listed: dict[str, Any] = owner.get("/api-keys").json()
    assert len(listed["api_keys"]) == 4


async def _until_waiting_on_locks(url: str, count: int) -> None:
    """Until ``count`` other sessions of the database wait on a lock."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.02)


async def test_last_owner_guard_holds_across_two_api_processes(
    stratus_on_postgres: StratusUp, second_api: str
) -> None:
    """Five accounts with two owners each; in every account both owners step down at once,
    each through another API process, held at a barrier (a lock on the audit table, written
    after the guard) until all ten wait. Every account keeps an owner: one demotion passes,
    the other is refused 409 last-owner."""
    stratus = stratus_on_postgres
    requests: list[tuple[str, str, str, dict[str, str]]] = []
    tenants = []
    for i in range(5):
        tenant = new_tenant(stratus, f"Owners{i}")
        tenants.append(tenant)
        second = invite(stratus, tenant.api_key, f"second@owners{i}.example", "owner")
        second_key = await asyncio.to_thread(issue_user_key, stratus, second["id"])
        with http(stratus, tenant.api_key) as client:
            users = client.get("/users").json()["users"]
        first = next(user for user in users if user["id"] != second["id"])
        # Each owner steps down, through its own API process.
        for base_url, key, user in (
            (stratus.api_url, tenant.api_key, first),
            (second_api, second_key, second),
        ):
            body = {"resource_version": user["resource_version"], "account_role": "admin"}
            requests.append((base_url, key, f"/api/v1/users/{user['id']}", body))

    async def demote(base_url: str, key: str, path: str, body: dict[str, str]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
            return await client.post(path, json=body)

    # The barrier: until every demotion waits on a lock, no transaction can write its audit
    # event, which comes after the guard's count. Without the account lock each would have
    # counted two owners by then; with it, the second of each account waits for the first.
    url = stratus.database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(url) as barrier:
        await barrier.execute("LOCK TABLE audit_events IN SHARE MODE")
        sent = [asyncio.create_task(demote(*request)) for request in requests]
        await asyncio.wait_for(_until_waiting_on_locks(url, len(requests)), 60)
    responses = await asyncio.gather(*sent)
    for pair in zip(responses[::2], responses[1::2], strict=True):
        statuses = sorted(response.status_code for response in pair)
        assert statuses == [200, 409], [response.text for response in pair]
        refused = next(response for response in pair if response.status_code == 409)
        assert refused.json()["type"].endswith("/last-owner")
    for tenant in tenants:
        with http(stratus, tenant.api_key) as client:
            roles = [user["account_role"] for user in client.get("/users").json()["users"]]
        assert sorted(roles) == ["admin", "owner"]
