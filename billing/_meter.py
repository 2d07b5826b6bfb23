"""The action meter: cell counters in, exact hourly usage rows out."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing._exposition import CellCounters, read_cell_counters
from billing._kinds import action_kind
from controlplane.kit.db import utcnow
from controlplane.models import UsageCursor, UsageRecord, UsageSource
from controlplane.models.usage_record import month_of

logger = logging.getLogger(__name__)

CellEndpoint = tuple[str, str]
"""(cell id, metrics URL). A cell served by several processes lists one entry per process,
each with its own id (``cell-1/frontend-0``): their deltas add up in the same usage rows."""


@dataclass
class ScrapeReport:
    """What one ``scrape_once`` added, per (namespace id, kind); cells it could not read (with
    the reason) and cells it found restarted."""

    added: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour ``moment`` falls in."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


class Meter:
    """Turns every cell's ``action`` counter into usage rows.

    Each scrape bills, per series, what the counter gained since the cursor persisted by the
    previous committed scrape, and writes those deltas and the new cursors in the caller's
    transaction: a scrape that never commits bills nothing and the next one re-reads the same
    cursors, so nothing is lost or counted twice.
    """

    def __init__(
        self, http: httpx.AsyncClient, *, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        """``http`` is shared by every scrape and should carry an explicit timeout."""
        self._http = http
        self._clock = clock

    async def scrape_once(
        self, session: AsyncSession, cells: Sequence[CellEndpoint]
    ) -> ScrapeReport:
        """Scrape ``cells`` and add their deltas to the current hour's usage rows.

        Flushes but does not commit: the caller's commit makes the usage and the cursors
        durable together. A cell that cannot be read is skipped; its next successful scrape
        bills the whole gap.
        """
        now = self._clock()
        report = ScrapeReport()
        texts = await asyncio.gather(
            *(self._fetch(url) for _, url in cells), return_exceptions=True
        )
        for (cell_id, url), text in zip(cells, texts, strict=True):
            if isinstance(text, BaseException):
                if not isinstance(text, Exception):
                    raise text
                logger.warning("cannot scrape cell %s at %s: %s", cell_id, url, text)
                report.failed[cell_id] = f"{type(text).__name__}: {text}"
                continue
            await self._bill_cell(session, cell_id, read_cell_counters(text), now, report)
        await session.flush()
        return report

    async def run(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cells: Callable[[], Awaitable[Sequence[CellEndpoint]]],
        *,
        interval: float = 60.0,
    ) -> None:
        """Scrape ``cells()`` every ``interval`` seconds, one transaction per scrape, until
        cancelled. A failed scrape rolls back and the next one catches up."""
        while True:
            try:
                endpoints = await cells()
                async with sessionmaker() as session, session.begin():
                    await self.scrape_once(session, endpoints)
            except Exception:
                logger.exception("usage scrape failed; the next one bills the gap")
            await asyncio.sleep(interval)

    async def _fetch(self, url: str) -> str:
        response = await self._http.get(url)
        response.raise_for_status()
        return response.text

    async def _bill_cell(
        self,
        session: AsyncSession,
        cell_id: str,
        counters: CellCounters,
        now: dt.datetime,
        report: ScrapeReport,
    ) -> None:
        source = await session.get(UsageSource, cell_id)
        cursors = {
            (cursor.namespace_id, cursor.action_type): cursor
            for cursor in await session.scalars(
                select(UsageCursor).where(UsageCursor.cell_id == cell_id)
            )
        }
        restarted = _restarted(source, cursors, counters)
        if restarted:
            report.restarted.append(cell_id)
            logger.info("cell %s restarted since its last scrape; counting from zero", cell_id)

        deltas: dict[tuple[str, str], int] = {}
        for (namespace_id, action_type), value in counters.actions.items():
            cursor = cursors.pop((namespace_id, action_type), None)
            since = 0 if restarted or cursor is None else cursor.value
            if value > since:
                key = (namespace_id, str(action_kind(action_type)))
                deltas[key] = deltas.get(key, 0) + value - since
            if cursor is None:
                session.add(
                    UsageCursor(
                        cell_id=cell_id,
                        namespace_id=namespace_id,
                        action_type=action_type,
                        value=value,
                    )
                )
            elif cursor.value != value:
                cursor.value = value
        # Series the new process has not exported yet start again from zero.
        for cursor in cursors.values():
            if restarted and cursor.value:
                cursor.value = 0

        if source is None:
            session.add(
                UsageSource(cell_id=cell_id, counter_total=counters.counter_total, scraped_at=now)
            )
        else:
            source.counter_total = counters.counter_total
            source.scraped_at = now  # always dirty, so the version check always runs

        hour_start = hour_of(now)
        for (namespace_id, kind), quantity in deltas.items():
            await add_usage(session, namespace_id, hour_start, kind, quantity)
            report.added[(namespace_id, kind)] = (
                report.added.get((namespace_id, kind), 0) + quantity
            )


def _restarted(
    source: UsageSource | None,
    cursors: dict[tuple[str, str], UsageCursor],
    counters: CellCounters,
) -> bool:
    """Whether the cell's counters were reset since the cursors were written.

    A counter never shrinks or disappears while its process lives, so any series below its
    cursor, any series with a non-zero cursor that is gone, or a smaller sum over all of the
    cell's counters means a new process.
    """
    if source is not None and counters.counter_total < source.counter_total:
        return True
    return any(counters.actions.get(key, 0) < cursor.value for key, cursor in cursors.items())


async def _existing_or_new_row(
    session: AsyncSession, namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int
) -> UsageRecord | None:
    """The usage row of (namespace, hour, kind), or None after creating it with ``quantity``."""
    record = await session.scalar(
        select(UsageRecord).where(
            UsageRecord.namespace_id == namespace_id,
            UsageRecord.hour_start == hour_start,
            UsageRecord.kind == kind,
        )
    )
    if record is None:
        session.add(
            UsageRecord(
                namespace_id=namespace_id,
                account_id=namespace_id.rsplit(".", 1)[1],
                hour_start=hour_start,
                period_start=month_of(hour_start),
                kind=kind,
                quantity=quantity,
            )
        )
        # Flush now: the next write to the same row in this transaction must find it.
        await session.flush()
    return record


async def add_usage(
    session: AsyncSession, namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int
) -> None:
    """Add ``quantity`` to the usage row of (namespace, hour, kind), creating it if needed, in
    the caller's transaction. For counted kinds (actions): the meter and any backfill."""
    record = await _existing_or_new_row(session, namespace_id, hour_start, kind, quantity)
    if record is not None:
        # An SQL increment, so concurrent writers of one row (two processes of one cell) add up.
        record.quantity = UsageRecord.quantity + quantity


async def set_usage(
    session: AsyncSession, namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int
) -> None:
    """Set the usage row of (namespace, hour, kind) to ``quantity``, creating it if needed, in
    the caller's transaction. For kinds measured as a state (storage) rather than counted: the
    newest measurement of an hour replaces the previous one, so measuring twice bills once."""
    record = await _existing_or_new_row(session, namespace_id, hour_start, kind, quantity)
    if record is not None:
        record.quantity = quantity
