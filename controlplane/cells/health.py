"""Cell health as the operator sees it: ``/readyz`` and the ``stratus_cell_*`` metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from controlplane.cells.repository import CellHealthRepository
from controlplane.kit.db import unit_of_work
from controlplane.kit.errors import StratusError
from controlplane.kit.migrate import current_revisions
from controlplane.models import Cell, CellHealth
from controlplane.states import CellProbeState
from dataplane.cells import CellHealthState, CellProviderKind


class NotReady(StratusError):
    """Something Stratus needs is down for good (a cell that keeps failing), unreachable (the
    database, the system cell) or not migrated."""

    status = 503
    slug = "not-ready"
    title = "Stratus is not ready"

    def __init__(self, message: str, *, failing_cells: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.failing_cells = failing_cells or []

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body = super().problem(instance)
        body["failing_cells"] = self.failing_cells
        return body


async def check_ready(
    session: AsyncSession, *, migration_heads: set[str], unmet: list[str] | None = None
) -> None:
    """Raise ``NotReady`` naming everything that is not ready: the database cannot be read or
    is not at ``migration_heads`` (this code's; nothing is migrated here), cells that keep
    failing, and what the caller found ``unmet`` (e.g. the system cell not answering)."""
    reasons = list(unmet or [])
    try:
        failing = await CellHealthRepository(session).failing()
        connection = await session.connection()
        current = await connection.run_sync(current_revisions)
    except SQLAlchemyError as error:
        reasons.insert(0, f"the database cannot be read: {type(error).__name__}")
        raise NotReady("; ".join(reasons)) from None
    if current != migration_heads:
        reasons.append(
            f"the database is at migration {', '.join(sorted(current)) or 'none'}, "
            f"not {', '.join(sorted(migration_heads))} (run `stratus migrate`)"
        )
    if failing:
        names = ", ".join(
            f"{row.cell_id} ({row.recent_restarts} restarts recently)" for row in failing
        )
        reasons.append(f"cells keep failing: {names}")
    if reasons:
        raise NotReady(
            "; ".join(reasons),
            failing_cells=[
                {
                    "cell_id": row.cell_id,
                    "recent_restarts": row.recent_restarts,
                    "last_error": row.last_error,
                }
                for row in failing
            ],
        )


class CellHealthMetrics:
    """``stratus_cell_restarts_total`` and ``stratus_cell_state`` from ``cell_health``, read
    afresh before each scrape of the API's ``/metrics``."""

    def __init__(self) -> None:
        self._rows: list[CellHealth] = []
        self._registered: list[tuple[str, CellProbeState]] = []

    async def refresh(self, request: Request) -> None:
        sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with unit_of_work(sessionmaker) as session:
            self._rows = await CellHealthRepository(session).list_all()
            statement = select(Cell.id, Cell.health_state).where(
                Cell.provider == CellProviderKind.EXTERNAL.value
            )
            self._registered = [(row[0], row[1]) for row in await session.execute(statement)]

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "stratus_cell_restarts",
            "Restarts of a cell by its current watcher",
            labels=["cell"],
        )
        state = GaugeMetricFamily(
            "stratus_cell_state",
            "1 for the state the cell's watcher last saw (running, restarting, failing, idle)",
            labels=["cell", "state"],
        )
        for row in self._rows:
            restarts.add_metric([row.cell_id], row.restarts)
            for value in CellHealthState:
                state.add_metric([row.cell_id, value.value], 1.0 if row.state == value else 0.0)
        up = GaugeMetricFamily(
            "stratus_cell_up",
            "1 when the last probe of a registered cell's frontend (GetSystemInfo over its TLS) "
            "succeeded, 0 when it failed or has not run yet",
            labels=["cell"],
        )
        for cell_id, probed in self._registered:
            up.add_metric([cell_id], 1.0 if probed == CellProbeState.HEALTHY else 0.0)
        yield restarts
        yield state
        yield up
