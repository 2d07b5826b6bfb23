"""The action meter: cell counters in, exact hourly usage rows out."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing._exposition import CellCounters, read_cell_counters
from billing._kinds import action_kind, action_weight
from controlplane.kit.db import utcnow
from controlplane.models import UsageCursor, UsageRecord, UsageSource
from controlplane.models.usage_record import month_of

logger = logging.getLogger(__name__)

UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""Opens one transaction that commits when its block ends and rolls back on an exception. The
meters receive it (the control plane passes ``functools.partial(unit_of_work, sessionmaker)``)
rather than opening sessions of their own."""

MeteredCell = tuple[str, str]
"""(cell id, metrics URL). A cell served by several processes lists one entry per process,
each with its own id (``cell-1/frontend-0``): their deltas add up in the same usage rows."""

# Namespaces billed per write transaction: small enough that the database's write lock (SQLite
# has one per file) is held for milliseconds, not for the whole cell.
DEFAULT_BATCH_NAMESPACES = 25


class ConcurrentScrape(Exception):
    """Another meter committed a scrape of the same cell while this one was writing."""


@dataclass
class ScrapeReport:
    """What one ``scrape_once`` committed, per (namespace id, kind); cells it could not read or
    bill in full (with the reason) and cells it found restarted."""

    added: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC hour ``moment`` falls in."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


class Meter:
    """Turns every cell's ``action`` counter into usage rows.

    A scrape reads every cell's metrics with no transaction open, then bills each cell in short
    transactions of at most ``batch_namespaces`` namespaces. Each transaction advances the
    cursors of its namespaces' series and adds their deltas to the usage rows together, so a
    crash between two batches leaves every series either billed up to its new cursor or not
    at all: the next scrape bills the rest from the persisted cursors, nothing lost or counted
    twice.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        batch_namespaces: int = DEFAULT_BATCH_NAMESPACES,
    ) -> None:
        """``http`` is shared by every scrape and should carry an explicit timeout."""
        if batch_namespaces < 1:
            raise ValueError("batch_namespaces must be at least 1")
        self._http = http
        self._clock = clock
        self._batch_namespaces = batch_namespaces

    async def scrape_once(
        self, unit_of_work: UnitOfWork, cells: Sequence[MeteredCell]
    ) -> ScrapeReport:
        """Scrape ``cells`` and add their deltas to the current hour's usage rows, committing
        as it goes.

        A cell that cannot be read is skipped; its next successful scrape bills the whole gap.
        A cell whose billing fails part-way (a database error, another meter scraping it at
        the same time) keeps what was committed and is reported in ``failed``: the next scrape
        bills the rest.
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
            # Parsing a large cell's exposition takes a while: off the event loop.
            counters = await asyncio.to_thread(read_cell_counters, text)
            try:
                await self._bill_cell(unit_of_work, cell_id, counters, now, report)
            except Exception as exc:
                logger.warning("billing cell %s stopped part-way: %s", cell_id, exc)
                report.failed[cell_id] = f"{type(exc).__name__}: {exc}"
        return report

    async def run(
        self,
        unit_of_work: UnitOfWork,
        cells: Callable[[], Awaitable[Sequence[MeteredCell]]],
        *,
        interval: float = 60.0,
    ) -> None:
        """Scrape ``cells()`` every ``interval`` seconds until cancelled. A failed scrape
        keeps what it committed and the next one catches up."""
        while True:
            try:
                await self.scrape_once(unit_of_work, await cells())
            except Exception:
                logger.exception("usage scrape failed; the next one bills the gap")
            await asyncio.sleep(interval)

    async def _fetch(self, url: str) -> str:
        response = await self._http.get(url)
        response.raise_for_status()
        return response.text

    async def _bill_cell(
        self,
        unit_of_work: UnitOfWork,
        cell_id: str,
        counters: CellCounters,
        now: dt.datetime,
        report: ScrapeReport,
    ) -> None:
        async with unit_of_work() as session:
            version, seen = await _open_scrape(session, cell_id, counters, now, report)
        # Only namespaces with a series that moved need a write; the batch re-reads its cursors
        # (the ones read above may be stale by then, which the version check detects).
        changed = sorted(
            {
                namespace_id
                for (namespace_id, action_type), value in counters.actions.items()
                if value != seen.get((namespace_id, action_type))
            }
        )
        hour_start = hour_of(now)
        for start in range(0, len(changed), self._batch_namespaces):
            batch = changed[start : start + self._batch_namespaces]
            async with unit_of_work() as session:
                version = await _claim(session, cell_id, version, now)
                added = await _bill_batch(session, cell_id, batch, counters, hour_start)
            for key, quantity in added.items():
                report.added[key] = report.added.get(key, 0) + quantity


async def _open_scrape(
    session: AsyncSession,
    cell_id: str,
    counters: CellCounters,
    now: dt.datetime,
    report: ScrapeReport,
) -> tuple[int, dict[tuple[str, str], int]]:
    """Record the cell's counter total, and reset its cursors to zero if it restarted; returns
    the version of the cell's ``UsageSource`` after that and the cursors as they now stand.

    A restart is decided once per scrape, over all of the cell's series, and committed before
    any batch: a later scrape then sees cursors of the new process only, so batches committed
    before a crash are never counted again from zero.
    """
    source = await session.get(UsageSource, cell_id)
    cursors = {
        (namespace_id, action_type): value
        for namespace_id, action_type, value in await session.execute(
            select(UsageCursor.namespace_id, UsageCursor.action_type, UsageCursor.value).where(
                UsageCursor.cell_id == cell_id
            )
        )
    }
    if source is None:
        source = UsageSource(cell_id=cell_id, counter_total=counters.counter_total, scraped_at=now)
        session.add(source)
    elif _restarted(source, cursors, counters):
        report.restarted.append(cell_id)
        logger.info("cell %s restarted since its last scrape; counting from zero", cell_id)
        # Series the new process has not exported yet start again from zero too.
        await session.execute(
            update(UsageCursor)
            .where(UsageCursor.cell_id == cell_id, UsageCursor.value != 0)
            .values(value=0)
        )
        cursors = dict.fromkeys(cursors, 0)
    source.counter_total = counters.counter_total
    source.scraped_at = now  # always dirty, so the version check always runs
    await session.flush()
    return source.version, cursors


async def _claim(session: AsyncSession, cell_id: str, version: int, now: dt.datetime) -> int:
    """Bump the cell's ``UsageSource`` version, if it is still ``version``: the batch's writes
    commit only if no other meter committed a scrape of this cell since this one started."""
    source = await session.get(UsageSource, cell_id)
    if source is None or source.version != version:
        raise ConcurrentScrape(f"another meter scraped cell {cell_id} meanwhile")
    source.scraped_at = now
    # The UPDATE is checked against the version read here (StaleDataError when it moved).
    await session.flush()
    return source.version


async def _bill_batch(
    session: AsyncSession,
    cell_id: str,
    namespace_ids: Sequence[str],
    counters: CellCounters,
    hour_start: dt.datetime,
) -> dict[tuple[str, str], int]:
    """Advance the cursors of ``namespace_ids``' series on the cell and add their deltas to the
    usage rows of ``hour_start``; returns the deltas per (namespace id, kind)."""
    cursors = {
        (cursor.namespace_id, cursor.action_type): cursor
        for cursor in await session.scalars(
            select(UsageCursor).where(
                UsageCursor.cell_id == cell_id, UsageCursor.namespace_id.in_(namespace_ids)
            )
        )
    }
    wanted = set(namespace_ids)
    deltas: dict[tuple[str, str], int] = {}
    for (namespace_id, action_type), value in counters.actions.items():
        if namespace_id not in wanted:
            continue
        cursor = cursors.get((namespace_id, action_type))
        since = 0 if cursor is None else cursor.value
        kind = action_kind(action_type)
        if value > since and kind is not None:
            key = (namespace_id, str(kind))
            deltas[key] = deltas.get(key, 0) + (value - since) * action_weight(action_type)
        if cursor is None:
            session.add(
                UsageCursor(
                    cell_id=cell_id, namespace_id=namespace_id, action_type=action_type, value=value
                )
            )
        elif cursor.value != value:
            cursor.value = value
    await _add_usage_rows(session, deltas, hour_start)
    return deltas


async def _add_usage_rows(
    session: AsyncSession, deltas: dict[tuple[str, str], int], hour_start: dt.datetime
) -> None:
    """``add_usage`` for many rows of one hour, reading the existing rows in one query."""
    if not deltas:
        return
    namespace_ids = {namespace_id for namespace_id, _ in deltas}
    existing = {
        (record.namespace_id, record.kind): record
        for record in await session.scalars(
            select(UsageRecord).where(
                UsageRecord.hour_start == hour_start, UsageRecord.namespace_id.in_(namespace_ids)
            )
        )
    }
    for (namespace_id, kind), quantity in deltas.items():
        record = existing.get((namespace_id, kind))
        if record is None:
            session.add(_new_row(namespace_id, hour_start, kind, quantity))
        else:
            # An SQL increment, so concurrent writers of one row (two processes of one cell)
            # add up.
            record.quantity = UsageRecord.quantity + quantity
    await session.flush()


def _restarted(
    source: UsageSource, cursors: dict[tuple[str, str], int], counters: CellCounters
) -> bool:
    """Whether the cell's counters were reset since the cursors were written.

    A counter never shrinks or disappears while its process lives, so any series below its
    cursor, any series with a non-zero cursor that is gone, or a smaller sum over all of the
    cell's counters means a new process.
    """
    if counters.counter_total < source.counter_total:
        return True
    return any(counters.actions.get(key, 0) < value for key, value in cursors.items())


def _new_row(namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int) -> UsageRecord:
    return UsageRecord(
        namespace_id=namespace_id,
        account_id=namespace_id.rsplit(".", 1)[1],
        hour_start=hour_start,
        period_start=month_of(hour_start),
        kind=kind,
        quantity=quantity,
    )


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
        session.add(_new_row(namespace_id, hour_start, kind, quantity))
        # Flush now: the next write to the same row in this transaction must find it.
        await session.flush()
    return record


async def add_usage(
    session: AsyncSession, namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int
) -> None:
    """Add ``quantity`` to the usage row of (namespace, hour, kind), creating it if needed, in
    the caller's transaction. For counted kinds (actions): any backfill."""
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
