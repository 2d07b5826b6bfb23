"""Keeping cells up: the owner of each cell runs a :class:`~dataplane.cells.CellWatcher` over
it and records what it saw in ``cell_health`` (read by ``/readyz`` and ``/metrics``).

The supervisor watches the system cell; the control plane's worker runs the
:class:`TenantCellKeeper` over account cells, which also stops the cell of an account that has
had no namespace for the idle period (the next namespace create starts it again:
``ensure_cell`` starts the cell whatever its state).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from controlplane.audit import service as audit
from controlplane.cells.repository import CellHealthRepository, CellRepository
from controlplane.config import WorkerSettings
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.models import Account, Cell, CellHealth
from dataplane.cells import (
    CellEndpoint,
    CellHealthState,
    CellProvider,
    CellProviderKind,
    CellReport,
    CellStatus,
    CellWatcher,
    RestartPolicy,
)

logger = logging.getLogger("stratus.cells")

Clock = Callable[[], dt.datetime]


def restart_policy(settings: WorkerSettings) -> RestartPolicy:
    return RestartPolicy(
        failure_threshold=settings.cell_restart_failure_threshold,
        failure_window=settings.cell_restart_failure_window_seconds,
    )


@dataclass(frozen=True)
class _Seen:
    state: CellHealthState
    restarts: int
    recent_restarts: int
    last_error: str | None
    idle_since: dt.datetime | None


class HealthRecorder:
    """Writes watcher reports to ``cell_health``, only when something changed."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], now: Clock = utcnow):
        self._sessionmaker = sessionmaker
        self._now = now
        self._written: dict[str, _Seen] = {}

    async def record(
        self,
        reports: Sequence[CellReport],
        *,
        idle: Sequence[str] = (),
        idle_since: dict[str, dt.datetime | None] | None = None,
    ) -> None:
        """Store each report (and each cell of ``idle``, stopped for idleness) that changed."""
        idle_since = idle_since or {}
        seen = {
            report.cell_id: _Seen(
                report.state,
                report.restarts,
                report.recent_restarts,
                report.last_error,
                idle_since.get(report.cell_id),
            )
            for report in reports
        }
        for cell_id in idle:
            seen[cell_id] = _Seen(CellHealthState.IDLE, 0, 0, None, idle_since.get(cell_id))
        changed = {k: v for k, v in seen.items() if self._written.get(k) != v}
        if not changed:
            return
        try:
            async with unit_of_work(self._sessionmaker) as session:
                repository = CellHealthRepository(session)
                rows = await repository.by_cell()
                for cell_id, value in changed.items():
                    row = rows.get(cell_id)
                    if row is None:
                        row = CellHealth(cell_id=cell_id)
                        repository.add(row)
                    row.state = value.state
                    row.restarts = value.restarts
                    row.recent_restarts = value.recent_restarts
                    row.last_error = value.last_error
                    row.idle_since = value.idle_since
                    row.updated_at = self._now()
        except SQLAlchemyError:
            # The watching goes on without the database; the next change is written again.
            logger.warning("could not record cell health", exc_info=True)
            return
        self._written.update(changed)


class TenantCellKeeper:
    """Keeps every account's cell running, and stops the cells of idle accounts.

    Every decision is idempotent (start of a running cell, stop of a stopped one), so keepers in
    several worker replicas agree: the idle clock and the idle state live in the database.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: CellProvider,
        *,
        idle_stop_after: dt.timedelta | None,
        policy: RestartPolicy | None = None,
        now: Clock = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._provider = provider
        self._idle_stop_after = idle_stop_after
        self._now = now
        self.watcher = CellWatcher(provider, policy=policy)
        self._recorder = HealthRecorder(sessionmaker, now)

    async def remove_deleted_accounts_data(self) -> list[str]:
        """Stop and remove the cells of deleted accounts whose data retention has passed
        (``data_removal_after``); returns their ids. The account row records when
        (``data_removed_at``) and the audit log keeps it."""
        now = self._now()
        async with unit_of_work(self._sessionmaker) as session:
            due = await CellRepository(session).of_accounts_due_for_removal(now)
        removed = []
        for account, cells in due:
            for cell in cells:
                self.watcher.forget(cell.id)
                await self._provider.remove(cell.id)
                removed.append(cell.id)
            async with unit_of_work(self._sessionmaker) as session:
                row = await session.get(Account, account.id)
                if row is None or row.data_removed_at is not None:
                    continue
                row.data_removed_at = now
                audit.record(
                    session,
                    None,
                    action="account.data_removed",
                    target=account.id,
                    account_id=account.id,
                    details={"cells": [cell.id for cell in cells]},
                )
        return removed

    async def tick(self) -> list[CellReport]:
        """One pass: remove deleted accounts' cells past their retention, stop idle cells,
        start the others that are down (with backoff)."""
        if self._provider.kind != CellProviderKind.LOCAL:
            # The external provider runs no cell: registered cells are the prober's to watch.
            return []
        removed = await self.remove_deleted_accounts_data()
        async with unit_of_work(self._sessionmaker) as session:
            repository = CellRepository(session)
            gone = {*removed, *await repository.removed()}
            cells = [cell for cell in await repository.list_local() if cell.id not in gone]
            counts = await repository.namespace_counts()
            health = await CellHealthRepository(session).by_cell()
        now = self._now()
        wanted: list[CellEndpoint] = []
        idle_since: dict[str, dt.datetime | None] = {}
        to_stop: list[tuple[Cell, dt.timedelta]] = []
        stays_idle: list[str] = []
        # Idle cells found running (another keeper restarted one as it was being stopped).
        strays: list[tuple[Cell, dt.timedelta]] = []
        for cell in cells:
            row = health.get(cell.id)
            if counts.get(cell.account_id or "", 0) > 0:
                idle_since[cell.id] = None
                wanted.append(cell.endpoint)
                continue
            since = row.idle_since if row is not None and row.idle_since else now
            idle_since[cell.id] = since
            if row is not None and row.state == CellHealthState.IDLE:
                stays_idle.append(cell.id)
                strays.append((cell, now - since))
            elif self._idle_stop_after is not None and now - since >= self._idle_stop_after:
                to_stop.append((cell, now - since))
            else:
                wanted.append(cell.endpoint)
        stopped: list[str] = []
        for cell, idle_for in to_stop:
            if await self._stop_idle(cell, idle_for, since=now - idle_for):
                stopped.append(cell.id)
            else:
                wanted.append(cell.endpoint)
        for cell, idle_for in strays:
            if await self._provider.status(cell.id) == CellStatus.RUNNING:
                await self._stop_idle(cell, idle_for, since=now - idle_for)
        reports = await self.watcher.check(wanted)
        await self._recorder.record(reports, idle=[*stays_idle, *stopped], idle_since=idle_since)
        return reports

    async def _stop_idle(self, cell: Cell, idle_for: dt.timedelta, *, since: dt.datetime) -> bool:
        # Count again right before stopping: a namespace created since the pass began keeps
        # the cell (and if one slips in after this, the next pass starts the cell again). The
        # IDLE state commits before the stop, so no other keeper restarts the cell meanwhile.
        async with unit_of_work(self._sessionmaker) as session:
            counts = await CellRepository(session).namespace_counts()
            if counts.get(cell.account_id or "", 0) > 0:
                return False
            health = CellHealthRepository(session)
            row = (await health.by_cell()).get(cell.id)
            if row is None:
                row = CellHealth(cell_id=cell.id)
                health.add(row)
            row.state = CellHealthState.IDLE
            row.restarts = row.recent_restarts = 0
            row.last_error = None
            row.idle_since = since
            row.updated_at = self._now()
            audit.record(
                session,
                None,
                action="cell.idle_stop",
                target=cell.id,
                account_id=cell.account_id,
                details={"idle_seconds": int(idle_for.total_seconds())},
            )
        self.watcher.forget(cell.id)
        await self._provider.stop(cell.id)
        logger.info(
            "stopped cell %s: account %s has had no namespace for %ds; its next namespace "
            "starts it again",
            cell.id,
            cell.account_id,
            idle_for.total_seconds(),
        )
        return True

    async def run(self, interval: float) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    logger.exception("watching the account cells failed; retrying")
                await asyncio.sleep(interval)
        finally:
            await self.watcher.aclose()
