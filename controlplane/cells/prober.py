"""The periodic health probe of registered cells: ``GetSystemInfo`` over each cell's TLS, the
outcome recorded on the cell (``GET /cells``, ``stratus_cell_up`` on the API's ``/metrics``).

A cell turns unhealthy only after ``failures_to_unhealthy`` consecutive failed probes (one lost
packet must not cut a cluster's traffic) and healthy again after one success. When it turns,
its routes are republished, so every gateway learns it on its next poll and answers its
namespaces UNAVAILABLE instead of sending traffic. The count of consecutive failures is this
prober's own (each worker replica counts what it saw).
Local cells are kept by the :class:`~controlplane.cells.keeper.TenantCellKeeper` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import SecretBox
from controlplane.gateway_routes import service as routes
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.models import Cell
from controlplane.states import CellProbeState
from dataplane.cells import CellProviderKind, CellTls, ProbeResult, probe

logger = logging.getLogger("stratus.cells")

Probe = Callable[..., Awaitable[ProbeResult]]
DEFAULT_FAILURES_TO_UNHEALTHY = 3


class CellProber:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        timeout: float = 5.0,
        failures_to_unhealthy: int = DEFAULT_FAILURES_TO_UNHEALTHY,
        probe: Probe = probe,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._box = box
        self._timeout = timeout
        self._failures_to_unhealthy = failures_to_unhealthy
        self._probe = probe
        # Consecutive failed probes per cell since its last success.
        self._failures: dict[str, int] = {}

    async def tick(self) -> dict[str, ProbeResult]:
        """Probe every registered cell once, concurrently; returns the results by cell id."""
        async with unit_of_work(self._sessionmaker) as session:
            statement = select(Cell).where(Cell.provider == CellProviderKind.EXTERNAL.value)
            cells = list((await session.execute(statement)).scalars())
            targets: list[tuple[str, str, CellTls | None]] = [
                (cell.id, cell.address, cell.tls(self._box.open)) for cell in cells
            ]
        outcomes = await asyncio.gather(
            *(self._probe(address, tls, timeout=self._timeout) for _, address, tls in targets)
        )
        results = {
            cell_id: result for (cell_id, _, _), result in zip(targets, outcomes, strict=True)
        }
        for gone in self._failures.keys() - results.keys():  # deregistered
            del self._failures[gone]
        async with unit_of_work(self._sessionmaker) as session:
            for cell_id, result in results.items():
                cell = await session.get(Cell, cell_id)
                if cell is None:  # deregistered meanwhile
                    continue
                cell.health_checked_at = utcnow()
                if result.reachable:
                    self._failures.pop(cell_id, None)
                    state = CellProbeState.HEALTHY
                else:
                    failures = self._failures.get(cell_id, 0) + 1
                    self._failures[cell_id] = failures
                    if failures < self._failures_to_unhealthy:
                        logger.info(
                            "cell %s failed a probe (%d of %d before it counts as unhealthy): %s",
                            cell_id,
                            failures,
                            self._failures_to_unhealthy,
                            result.reason,
                        )
                        await session.flush()
                        continue
                    state = CellProbeState.UNHEALTHY
                flipped = (cell.health_state == CellProbeState.UNHEALTHY) != (
                    state == CellProbeState.UNHEALTHY
                )
                if flipped or cell.health_state != state:
                    logger.warning(
                        "cell %s is %s%s",
                        cell_id,
                        state.value,
                        f": {result.reason}" if result.reason else "",
                    )
                cell.health_state = state
                cell.health_reason = result.reason
                if result.server_version:
                    cell.server_version = result.server_version[:64]
                await session.flush()
                if flipped:
                    await routes.republish_cell(session, cell_id)
        return results

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("probing the registered cells failed; retrying")
            await asyncio.sleep(interval)
