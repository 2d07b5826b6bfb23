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


async def test_a_namespace_left_out_of_a_report_is_not_counted_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A report may leave out the less busy namespaces: when one comes back, only what it
    gained since its own last report is added."""
    await _poll(sessions, "gw-c", {"quiet.acct4": _latency(0.2), "loud.acct4": _latency(0.2)})
    await _poll(sessions, "gw-c", {"loud.acct4": _latency(0.2, 0.2)})
    await _poll(sessions, "gw-c", {"quiet.acct4": _latency(0.2, 0.2), "loud.acct4": _latency(0.2)})
    assert (await _counts(sessions, "quiet.acct4"))["0.25"] == 2
    # loud's count went down: gw-c restarted, its one call is new.
    assert (await _counts(sessions, "loud.acct4"))["0.25"] == 3


def test_the_header_keeps_the_busiest_namespaces_when_not_all_fit() -> None:
    assert latency_header({"a.x": _latency(0.01)}) == "a.x=10000:0:1:0:0:0:0:0:0:0:0:0:0"
    many = {f"namespace-{n}.account": _latency(*[0.001] * n) for n in range(1, 301)}
    header = latency_header(many)
    assert len(header) <= 6000
    kept = [entry.split("=")[0] for entry in header.split(",")]
    assert "namespace-300.account" in kept
    assert "namespace-1.account" not in kept
