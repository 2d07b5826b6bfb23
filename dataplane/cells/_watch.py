"""Watching cells: a cell that is down is started again, with backoff, and one that keeps
failing is reported.

The watcher is passive: its owner (the supervisor for the system cell, the control plane's
worker for account cells) calls :meth:`CellWatcher.check` with the cells that should run,
every ``interval`` seconds. Every decision goes through the provider's idempotent ``status`` and
``start``, so two watchers of one cell (worker replicas) at worst both call ``start``, which
starts one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dataplane.cells._provider import CellEndpoint, CellProvider, CellStatus

logger = logging.getLogger("stratus.cells")


class CellHealthState(enum.StrEnum):
    """What the watchers last saw of a cell (shared by the watcher, the database and /readyz)."""

    RUNNING = "running"
    # Down, and being started again (or waiting for its backoff).
    RESTARTING = "restarting"
    # Restarted ``failure_threshold`` times within ``failure_window``: an operator should look.
    FAILING = "failing"
    # Stopped on purpose: its account has had no namespace for the idle period.
    IDLE = "idle"


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff between restarts and what counts as "keeps failing"."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    # Running this long resets the backoff and forgets earlier restarts.
    healthy_after: float = 60.0
    failure_threshold: int = 5
    failure_window: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Delay before restart number ``attempt`` (0-based) of one outage series."""
        return min(self.max_backoff, self.initial_backoff * 2.0 ** min(attempt, 30))


@dataclass(frozen=True)
class CellReport:
    """One cell's health after a :meth:`CellWatcher.check` pass."""

    cell_id: str
    state: CellHealthState
    # Restarts this watcher made since it started, and those within the failure window.
    restarts: int
    recent_restarts: int
    last_error: str | None


@dataclass
class _Watched:
    attempt: int = 0
    restarts: int = 0
    recent: deque[float] = field(default_factory=deque)
    down_since: float | None = None
    running_since: float | None = None
    next_start_at: float | None = None
    starting: asyncio.Task[None] | None = None
    last_error: str | None = None
    failing: bool = False


class CellWatcher:
    """Restarts the cells it is shown when they are down, with exponential backoff."""

    def __init__(
        self,
        provider: CellProvider,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._policy = policy or RestartPolicy()
        self._clock = clock
        self._cells: dict[str, _Watched] = {}

    async def check(self, cells: Iterable[CellEndpoint]) -> list[CellReport]:
        """One pass over the cells that should run: each that is down is started again once
        its backoff has passed (in the background, so a slow start holds up no other cell)."""
        cells = list(cells)
        statuses = await asyncio.gather(*(self._status(cell) for cell in cells))
        return [self._decide(cell, status) for cell, status in zip(cells, statuses, strict=True)]

    async def _status(self, cell: CellEndpoint) -> CellStatus:
        try:
            return await self._provider.status(cell.cell_id)
        except Exception:
            logger.warning("status of cell %s failed", cell.cell_id, exc_info=True)
            return CellStatus.STOPPED

    def _decide(self, cell: CellEndpoint, status: CellStatus) -> CellReport:
        now = self._clock()
        policy = self._policy
        watched = self._cells.setdefault(cell.cell_id, _Watched())
        while watched.recent and now - watched.recent[0] > policy.failure_window:
            watched.recent.popleft()
        settled = watched.starting is not None and watched.starting.done()
        if settled:
            self._collect(cell.cell_id, watched, now)
        if watched.starting is not None or settled:
            # A start is in flight, or ended after ``status`` was read: the next pass decides.
            pass
        elif status == CellStatus.RUNNING:
            watched.down_since = watched.next_start_at = None
            if watched.running_since is None:
                watched.running_since = now
                if watched.restarts:
                    logger.info("cell %s is running again", cell.cell_id)
            if now - watched.running_since >= policy.healthy_after:
                watched.attempt = 0
                watched.recent.clear()
        else:
            watched.running_since = None
            if watched.down_since is None:
                watched.down_since = now
                watched.next_start_at = now + policy.backoff(watched.attempt)
                logger.warning(
                    "cell %s is down; restarting it in %.1fs",
                    cell.cell_id,
                    watched.next_start_at - now,
                )
            elif watched.next_start_at is None:
                # The last start failed: wait the next, longer backoff.
                watched.next_start_at = now + policy.backoff(watched.attempt)
            if now >= watched.next_start_at:
                watched.attempt += 1
                watched.restarts += 1
                watched.recent.append(now)
                watched.next_start_at = None
                watched.starting = asyncio.create_task(self._provider.start(cell))
        recent = len(watched.recent)
        failing = recent >= policy.failure_threshold
        if failing and not watched.failing:
            logger.error(
                "cell %s keeps failing: %d restarts in the last %.0fs (last error: %s); "
                "its namespaces are unavailable while it is down",
                cell.cell_id,
                recent,
                policy.failure_window,
                watched.last_error or "none; it crashed after starting",
            )
        elif watched.failing and not failing:
            logger.info("cell %s recovered", cell.cell_id)
        watched.failing = failing
        if failing:
            state = CellHealthState.FAILING
        elif watched.starting is not None or settled or status != CellStatus.RUNNING:
            state = CellHealthState.RESTARTING
        else:
            state = CellHealthState.RUNNING
        return CellReport(cell.cell_id, state, watched.restarts, recent, watched.last_error)

    def _collect(self, cell_id: str, watched: _Watched, now: float) -> None:
        task = watched.starting
        assert task is not None
        watched.starting = None
        error = task.exception() if not task.cancelled() else None
        if error is None:
            logger.info("cell %s restarted (restart #%d)", cell_id, watched.restarts)
            return
        # Keep the server's own words, short enough for a log line and a database column.
        watched.last_error = str(error)[-500:]
        watched.next_start_at = now + self._policy.backoff(watched.attempt)
        logger.warning(
            "restarting cell %s failed (next try in %.1fs): %s",
            cell_id,
            watched.next_start_at - now,
            watched.last_error,
        )

    def forget(self, cell_id: str) -> None:
        """Stop watching ``cell_id`` (stopped on purpose); its history starts afresh later."""
        watched = self._cells.pop(cell_id, None)
        if watched is not None and watched.starting is not None:
            watched.starting.cancel()

    async def aclose(self) -> None:
        """Cancel starts still in flight (before the owner stops the cells)."""
        tasks = [w.starting for w in self._cells.values() if w.starting is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
