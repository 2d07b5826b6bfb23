"""The gateways' throttled counts become hourly counts per namespace: each gateway's report is
cumulative, so only its increase is added; a count below the last one (the gateway restarted)
is new in full; an unchanged report writes nothing; two gateways add up. Runs on SQLite and
PostgreSQL (the increments are one UPDATE each)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from controlplane.gateway_routes.repository import ThrottledHourRepository
from controlplane.gateway_routes.service import record_gateway_poll
from controlplane.kit.db import unit_of_work, utcnow
from dataplane.gateway._routes import throttled_header


async def _poll(
    sessions: async_sessionmaker[AsyncSession], gateway: str, throttled: dict[str, int]
) -> None:
    async with unit_of_work(sessions) as session:
        await record_gateway_poll(session, gateway, 1, "", throttled_header(throttled))


async def _total(sessions: async_sessionmaker[AsyncSession], namespace_id: str) -> int:
    now = utcnow()
    async with unit_of_work(sessions) as session:
        return await ThrottledHourRepository(session).total(
            namespace_id, since=now - dt.timedelta(hours=2), until=now + dt.timedelta(hours=1)
        )


async def test_reports_add_their_increases(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _poll(sessions, "gw-a", {"busy.acct1": 5})
    await _poll(sessions, "gw-a", {"busy.acct1": 5})  # unchanged: nothing added
    await _poll(sessions, "gw-a", {"busy.acct1": 8, "calm.acct2": 1})
    await _poll(sessions, "gw-b", {"busy.acct1": 2})
    assert await _total(sessions, "busy.acct1") == 10
    assert await _total(sessions, "calm.acct2") == 1
    # gw-a restarted: its count starts again from 0.
    await _poll(sessions, "gw-a", {"busy.acct1": 3})
    assert await _total(sessions, "busy.acct1") == 13
    assert await _total(sessions, "other.acct3") == 0


def test_the_header_names_the_largest_counts_first_when_too_many() -> None:
    assert throttled_header({"b.x": 2, "a.x": 7}) == "a.x=7,b.x=2"
    many = {f"ns{n}.x": n for n in range(1, 251)}
    kept = throttled_header(many).split(",")
    assert len(kept) == 200
    assert "ns250.x=250" in kept
    assert "ns50.x=50" not in kept
