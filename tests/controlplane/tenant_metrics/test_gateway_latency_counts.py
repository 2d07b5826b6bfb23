"""The gateways' latency reports become per-namespace bucket counts: each report is cumulative,
so only its increase is added; a report below the last one (the gateway restarted) is new in
full; two gateways add up; the header keeps the busiest namespaces when there are too many.
Runs on SQLite and PostgreSQL (the increments are one UPDATE each)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from controlplane.gateway_routes.service import record_gateway_poll
from controlplane.kit.db import unit_of_work
from controlplane.models import GatewayLatencyBucket
from controlplane.models.gateway_latency import SUM_BUCKET
from dataplane.gateway._metrics import NamespaceLatency
from dataplane.gateway._routes import latency_header


def _latency(*seconds: float) -> NamespaceLatency:
    latency = NamespaceLatency()
    for value in seconds:
        latency.observe(value)
    return latency


async def _poll(
    sessions: async_sessionmaker[AsyncSession], gateway: str, latency: dict[str, NamespaceLatency]
) -> None:
    async with unit_of_work(sessions) as session:
        await record_gateway_poll(session, gateway, 1, "", "", latency_header(latency))


async def _counts(sessions: async_sessionmaker[AsyncSession], namespace_id: str) -> dict[str, int]:
    async with unit_of_work(sessions) as session:
        rows = await session.execute(
            select(GatewayLatencyBucket.bucket, GatewayLatencyBucket.count).where(
                GatewayLatencyBucket.namespace_id == namespace_id
            )
        )
        return {bucket: count for bucket, count in rows}


async def test_reports_add_their_increases(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _poll(sessions, "gw-a", {"busy.acct1": _latency(0.004, 0.3)})
    await _poll(sessions, "gw-a", {"busy.acct1": _latency(0.004, 0.3)})  # unchanged
    await _poll(sessions, "gw-a", {"busy.acct1": _latency(0.004, 0.3, 0.3)})
    await _poll(sessions, "gw-b", {"busy.acct1": _latency(20.0)})
    assert await _counts(sessions, "busy.acct1") == {
        "0.005": 1,
        "0.5": 2,
        "+Inf": 1,
        SUM_BUCKET: 4_000 + 300_000 + 300_000 + 20_000_000,
    }
    # gw-a restarted: its counts start again from 0.
    await _poll(sessions, "gw-a", {"busy.acct1": _latency(0.004)})
    assert (await _counts(sessions, "busy.acct1"))["0.005"] == 2
    assert await _counts(sessions, "other.acct3") == {}


def test_the_header_keeps_the_busiest_namespaces_when_too_many() -> None:
    assert latency_header({"a.x": _latency(0.01)}) == "a.x=10000:0:1:0:0:0:0:0:0:0:0:0:0"
    many = {f"ns{n}.x": _latency(*[0.001] * n) for n in range(1, 151)}
    kept = [entry.split("=")[0] for entry in latency_header(many).split(",")]
    assert len(kept) == 100
    assert "ns150.x" in kept
    assert "ns10.x" not in kept
