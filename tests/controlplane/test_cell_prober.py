"""What the worker runs over cells, below the processes. Probe hysteresis, with the probe's
outcomes scripted: a registered cell turns unhealthy only after ``failures_to_unhealthy``
consecutive failed probes (a single lost probe cuts no traffic), healthy again after one
success, and only a turn republishes its routes. And the keeper and provisioning under the
external provider."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from auth import SecretBox
from controlplane.cells.keeper import TenantCellKeeper
from controlplane.cells.prober import CellProber
from controlplane.cells.repository import CellHealthRepository
from controlplane.gateway_routes import service as routes
from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.kit.db import unit_of_work
from controlplane.models import Account, Cell, Namespace, NamespaceState
from controlplane.namespaces.activities import NamespaceActivities
from controlplane.states import CellPlacement, CellProbeState
from dataplane.cells import CellTls, ExternalCellProvider, ProbeResult
from dataplane.gateway import RouteEntry

Sessions = async_sessionmaker[AsyncSession]
UP = ProbeResult(reachable=True, server_version="1.29.1")
DOWN = ProbeResult(reachable=False, reason="unreachable: connection refused")


class ScriptedProbe:
    """Answers each probe with the next scripted outcome (the probe sequence, injected)."""

    def __init__(self) -> None:
        self.outcomes: Iterator[ProbeResult] = iter(())
        self.calls = 0

    async def __call__(self, address: str, tls: CellTls | None, *, timeout: float) -> ProbeResult:
        self.calls += 1
        return next(self.outcomes)


async def _state(sessions: Sessions) -> tuple[CellProbeState, str, int]:
    async with unit_of_work(sessions) as session:
        cell = await session.get(Cell, "shared-a")
        assert cell is not None
        version = await GatewayRouteRepository(session).table_version()
        return cell.health_state, cell.health_reason, version


async def test_a_cell_turns_unhealthy_after_n_consecutive_failures_and_back_after_one_success(
    sessions: Sessions,
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            Cell(
                id="shared-a",
                provider="external",
                address="127.0.0.1:1",
                metrics_url="",
                placement=CellPlacement.SHARED,
                max_namespaces=9,
                health_state=CellProbeState.HEALTHY,
                health_reason="",
            )
        )
        await session.flush()
        await routes.publish(
            session,
            RouteEntry(
                namespace_id="one.acct-a",
                cell_address="127.0.0.1:1",
                cell_id="shared-a",
                accepted_client_ca="",
            ),
        )
    probe = ScriptedProbe()
    prober = CellProber(sessions, SecretBox(os.urandom(32)), failures_to_unhealthy=3, probe=probe)
    healthy, _, version = await _state(sessions)
    assert healthy == CellProbeState.HEALTHY

    async def tick(outcome: ProbeResult) -> tuple[CellProbeState, str, int]:
        probe.outcomes = iter([outcome])
        await prober.tick()
        return await _state(sessions)

    # Two failures, a success, two failures: never three in a row, so it stays healthy and
    # its routes are never republished (gateways keep sending traffic).
    for outcome in (DOWN, DOWN, UP, DOWN, DOWN):
        assert await tick(outcome) == (CellProbeState.HEALTHY, "", version)
    # The third consecutive failure turns it, with the reason, and tells the gateways.
    assert await tick(DOWN) == (
        CellProbeState.UNHEALTHY,
        "unreachable: connection refused",
        version + 1,
    )
    # Staying down changes nothing more.
    assert await tick(DOWN) == (
        CellProbeState.UNHEALTHY,
        "unreachable: connection refused",
        version + 1,
    )
    # One success turns it healthy again, and the count starts over.
    assert await tick(UP) == (CellProbeState.HEALTHY, "", version + 2)
    assert await tick(DOWN) == (CellProbeState.HEALTHY, "", version + 2)
    assert probe.calls == 9


async def test_a_worker_with_the_external_provider_keeps_no_cell(sessions: Sessions) -> None:
    """Its keeper starts nothing, not even a local cell left from before the switch (its
    provider runs none): registered cells are watched by the prober."""
    async with unit_of_work(sessions) as session:
        session.add(Account(id="acct-l", name="acct-l"))
        session.add(
            Cell(
                id="cell-acct-l",
                account_id="acct-l",
                provider="local",
                address="127.0.0.1:1",
                metrics_url="",
            )
        )
    provider = ExternalCellProvider()
    keeper = TenantCellKeeper(sessions, provider, idle_stop_after=None)
    assert await keeper.tick() == []
    async with unit_of_work(sessions) as session:
        assert await CellHealthRepository(session).list_all() == []


async def test_provisioning_under_the_external_provider_fails_at_once(sessions: Sessions) -> None:
    """A namespace with no cell reaching ``ensure_cell`` (placement refuses it first; this is the
    backstop): the operation fails now with the reason, it is not retried."""
    async with unit_of_work(sessions) as session:
        session.add(Account(id="acct-p", name="acct-p"))
        session.add(
            Namespace(
                id="orders.acct-p",
                account_id="acct-p",
                name="orders",
                retention_days=1,
                accepted_client_ca="",
                state=NamespaceState.ACTIVATING,
                resource_version="1",
            )
        )
    activities = NamespaceActivities(sessions, ExternalCellProvider())
    with pytest.raises(ApplicationError) as failed:
        await activities.ensure_cell("orders.acct-p")
    assert failed.value.non_retryable
    assert failed.value.type == "OperationAborted"
    assert failed.value.message == (
        "cannot provision cell cell-acct-p: external cells are registered with "
        "`stratus cell register`, not provisioned (STRATUS_CELL_PROVIDER=external runs no "
        "cell of its own)"
    )
