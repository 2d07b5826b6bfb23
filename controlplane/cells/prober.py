"""The periodic health probe of registered cells: ``GetSystemInfo`` over each cell's TLS, the
outcome recorded on the cell (``GET /cells``, ``stratus_cell_up`` on the API's ``/metrics``).

When a cell turns unhealthy (or healthy again) its routes are republished, so every gateway
learns it on its next poll and answers its namespaces UNAVAILABLE instead of sending traffic.
Local cells are kept by the :class:`~controlplane.cells.keeper.TenantCellKeeper` instead.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import SecretBox
from controlplane.gateway_routes import service as routes
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.models import Cell
from controlplane.states import CellProbeState
from dataplane.cells import CellProviderKind, CellTls, ProbeResult, probe

logger = logging.getLogger("stratus.cells")


class CellProber:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._box = box
        self._timeout = timeout

    async def tick(self) -> dict[str, ProbeResult]:
        """Probe every registered cell once, concurrently; returns the results by cell id."""
        async with unit_of_work(self._sessionmaker) as session:
            statement = select(Cell).where(Cell.provider == CellProviderKind.EXTERNAL.value)
            cells = list((await session.execute(statement)).scalars())
            targets: list[tuple[str, str, CellTls | None]] = [
                (cell.id, cell.address, cell.tls(self._box.open)) for cell in cells
            ]
        outcomes = await asyncio.gather(
            *(probe(address, tls, timeout=self._timeout) for _, address, tls in targets)
        )
        results = {
            cell_id: result for (cell_id, _, _), result in zip(targets, outcomes, strict=True)
        }
        async with unit_of_work(self._sessionmaker) as session:
            for cell_id, result in results.items():
                cell = await session.get(Cell, cell_id)
                if cell is None:  # deregistered meanwhile
                    continue
                state = CellProbeState.HEALTHY if result.reachable else CellProbeState.UNHEALTHY
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
                cell.health_checked_at = utcnow()
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
