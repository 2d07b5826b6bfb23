"""SQLite under concurrent writers: reads never queue for the write lock, a transaction takes
the lock at its first write (a savepoint included) so it waits for it instead of failing with
"database is locked", an unchanged gateway poll writes nothing, and concurrent writes through
the API while gateways poll all succeed (no 5xx)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import StratusUp, Tenant, new_tenant

from controlplane.gateway_routes import service as gateway_routes
from controlplane.kit.db import unit_of_work
from controlplane.kit.migrate import migrate
from controlplane.models import GatewayInstance

# About SQLite's write lock: the PostgreSQL variants of `stratus` and `database_url` are dropped.
pytestmark = pytest.mark.sqlite_only


@contextmanager
def other_writer(database: Path) -> Iterator[sqlite3.Connection]:
    """A connection of another process's kind that never waits for the lock."""
    connection = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def write_lock_is_free(database: Path) -> bool:
    with other_writer(database) as connection:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            return False
        connection.execute("ROLLBACK")
        return True


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (overrides the both-databases fixture): these tests are about SQLite's
    write lock."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'stratus.db'}"
    migrate(url)
    return url


async def test_reads_leave_the_write_lock_free_and_a_savepoint_takes_it(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """A read-only unit of work holds no lock; a savepoint opened before any write takes the
    write lock at once, so its later write cannot meet a stale snapshot."""
    database = tmp_path / "stratus.db"
    async with unit_of_work(sessions) as session:
        await session.execute(select(GatewayInstance))
        assert await asyncio.to_thread(write_lock_is_free, database)
    async with unit_of_work(sessions) as session, session.begin_nested():
        await session.execute(select(GatewayInstance))
        assert not await asyncio.to_thread(write_lock_is_free, database)
    assert await asyncio.to_thread(write_lock_is_free, database)


async def test_a_gateway_poll_writes_only_what_changed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Polls that report nothing new leave the row alone until last_seen_at is
    LAST_SEEN_REFRESH old; a new applied version or rejected set is written at once."""

    async def poll(version: int, rejected: str = "") -> GatewayInstance:
        async with unit_of_work(sessions) as session:
            await gateway_routes.record_gateway_poll(session, "gw-a", version, rejected)
        async with unit_of_work(sessions) as session:
            [instance] = await gateway_routes.list_gateways(session)
            return instance

    async def age(by: dt.timedelta) -> dt.datetime:
        """Pretend the last write was ``by`` ago; returns the back-dated last_seen_at."""
        async with unit_of_work(sessions) as session:
            [instance] = await gateway_routes.list_gateways(session)
            instance.last_seen_at -= by
            return instance.last_seen_at

    await poll(3)
    ten_seconds_ago = await age(dt.timedelta(seconds=10))
    assert (await poll(3)).last_seen_at == ten_seconds_ago
    moved = await poll(4)
    assert moved.applied_version == 4
    assert moved.last_seen_at > ten_seconds_ago
    assert (await poll(4, "ns-1")).rejected == "ns-1"
    stale = await age(gateway_routes.LAST_SEEN_REFRESH)
    assert (await poll(4, "ns-1")).last_seen_at - stale >= gateway_routes.LAST_SEEN_REFRESH


async def _poll_as_gateway(
    stratus: StratusUp, gateway_id: str, stop: asyncio.Event
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    headers = {
        "Authorization": f"Bearer {stratus.operator_key}",
        "X-Stratus-Gateway-Id": gateway_id,
    }
    applied = ""
    async with httpx.AsyncClient(base_url=stratus.api_url + "/api/v1", timeout=60) as client:
        while not stop.is_set():
            sent = {**headers, "If-None-Match": applied} if applied else headers
            response = await client.get("/internal/gateway-routes", headers=sent)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                applied = response.headers["ETag"]
    return statuses


def test_concurrent_writes_while_gateways_poll_answer_no_5xx(stratus: StratusUp) -> None:
    """20 writes at once (invitations, API keys created and disabled) while two gateways
    poll: every write succeeds, no poll answers 5xx."""
    tenant: Tenant = new_tenant(stratus, f"Concurrent{uuid.uuid4().hex[:6]}")
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    headers = {"Authorization": f"Bearer {tenant.api_key}"}

    async def write(index: int, client: httpx.AsyncClient) -> list[int]:
        if index % 2:
            email = f"concurrent-{index}-{uuid.uuid4().hex[:6]}@example.com"
            invited = await client.post(
                "/users", json={"email": email, "account_role": "developer"}
            )
            return [invited.status_code]
        created = await client.post("/api-keys", json={"display_name": "c", "expiry": expiry})
        if created.status_code != 201:
            return [created.status_code]
        key_id = created.json()["api_key"]["id"]
        disabled = await client.post(f"/api-keys/{key_id}/disable")
        return [created.status_code, disabled.status_code]

    async def scenario() -> tuple[list[list[int]], list[Counter[int]]]:
        stop = asyncio.Event()
        pollers = [
            asyncio.create_task(_poll_as_gateway(stratus, f"test-concurrency-{n}", stop))
            for n in range(2)
        ]
        try:
            async with httpx.AsyncClient(
                base_url=stratus.api_url + "/api/v1",
                headers=headers,
                timeout=60,
                limits=httpx.Limits(max_connections=20),
            ) as client:
                results = await asyncio.gather(*(write(n, client) for n in range(20)))
        finally:
            stop.set()
        return list(results), list(await asyncio.gather(*pollers))

    try:
        results, polls = asyncio.run(scenario())
    finally:
        with httpx.Client(
            base_url=stratus.api_url + "/api/v1",
            headers={"Authorization": f"Bearer {stratus.operator_key}"},
        ) as operator:
            for n in range(2):
                operator.delete(f"/internal/gateways/test-concurrency-{n}")
    assert results == [[201] if n % 2 else [201, 200] for n in range(20)]
    for statuses in polls:
        assert statuses
        assert set(statuses) <= {200, 304}, statuses
