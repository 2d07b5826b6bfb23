"""The action meter: cell counters in, exact hourly usage rows out."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx

from billing._cell_tls import CellTlsMaterial, ssl_context
from billing._exposition import CellCounters, read_cell_counters
from billing._kinds import action_kind, action_weight
from billing._usage_store import (
    ScrapeSource,
    SeriesKey,
    UsageKey,
    UsageStore,
    UsageUnitOfWork,
    utcnow,
)

logger = logging.getLogger(__name__)


class MeteredCell(NamedTuple):
    """A cell's metrics endpoint. A cell served by several processes lists one entry per
    process, each with its own id (``cell-1/frontend-0``): their deltas add up in the same usage
    rows. With ``tls`` (a registered cell) the URL must be https: the scrape verifies the cell's
    CA and presents its client certificate."""

    cell_id: str
    metrics_url: str
    tls: CellTlsMaterial | None = None


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
        self, unit_of_work: UsageUnitOfWork, cells: Sequence[MeteredCell]
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
        # Plain (cell id, URL) pairs are plaintext cells.
        cells = [MeteredCell(*cell) for cell in cells]
        texts = await asyncio.gather(*(self._fetch(cell) for cell in cells), return_exceptions=True)
        for (cell_id, url, _), text in zip(cells, texts, strict=True):
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
        unit_of_work: UsageUnitOfWork,
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

    async def _fetch(self, cell: MeteredCell) -> str:
        if cell.tls is None:
            response = await self._http.get(cell.metrics_url)
        else:
            if httpx.URL(cell.metrics_url).scheme != "https":
                raise ValueError(
                    f"cell {cell.cell_id} has TLS but its metrics URL {cell.metrics_url} is not "
                    "https; register the cell with an https metrics URL"
                )
            # The cell's own CA and client certificate: a client of its own, closed after the
            # scrape (one handshake a scrape interval).
            extensions = {"sni_hostname": cell.tls.server_name} if cell.tls.server_name else {}
            async with httpx.AsyncClient(
                verify=ssl_context(cell.tls), timeout=self._http.timeout
            ) as client:
                response = await client.get(cell.metrics_url, extensions=extensions)
        response.raise_for_status()
        return response.text

    async def _bill_cell(
        self,
        unit_of_work: UsageUnitOfWork,
        cell_id: str,
        counters: CellCounters,
        now: dt.datetime,
        report: ScrapeReport,
    ) -> None:
        async with unit_of_work() as store:
            version, seen = await _open_scrape(store, cell_id, counters, now, report)
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
            async with unit_of_work() as store:
                version = await _claim(store, cell_id, version, now)
                added = await _bill_batch(store, cell_id, batch, counters, hour_start)
            for key, quantity in added.items():
                report.added[key] = report.added.get(key, 0) + quantity


async def _open_scrape(
    store: UsageStore,
    cell_id: str,
    counters: CellCounters,
    now: dt.datetime,
    report: ScrapeReport,
) -> tuple[int, dict[SeriesKey, int]]:
    """Record the cell's counter total, and reset its cursors to zero if it restarted; returns
    the cell's scrape version after that and the cursors as they now stand.

    A restart is decided once per scrape, over all of the cell's series, and committed before
    any batch: a later scrape then sees cursors of the new process only, so batches committed
    before a crash are never counted again from zero.
    """
    source = await store.scrape_source(cell_id)
    cursors = await store.cursors(cell_id)
    if source is not None and _restarted(source, cursors, counters):
        report.restarted.append(cell_id)
        logger.info("cell %s restarted since its last scrape; counting from zero", cell_id)
        # Series the new process has not exported yet start again from zero too.
        await store.reset_cursors(cell_id)
        cursors = dict.fromkeys(cursors, 0)
    version = await store.record_scrape(cell_id, counters.counter_total, now)
    return version, cursors


async def _claim(store: UsageStore, cell_id: str, version: int, now: dt.datetime) -> int:
    """Bump the cell's scrape version, if it is still ``version``: the batch's writes commit
    only if no other meter committed a scrape of this cell since this one started."""
    claimed = await store.claim(cell_id, version, now)
    if claimed is None:
        raise ConcurrentScrape(f"another meter scraped cell {cell_id} meanwhile")
    return claimed


async def _bill_batch(
    store: UsageStore,
    cell_id: str,
    namespace_ids: Sequence[str],
    counters: CellCounters,
    hour_start: dt.datetime,
) -> dict[UsageKey, int]:
    """Advance the cursors of ``namespace_ids``' series on the cell and add their deltas to the
    usage rows of ``hour_start``; returns the deltas per (namespace id, kind)."""
    wanted = set(namespace_ids)
    values = {key: value for key, value in counters.actions.items() if key[0] in wanted}
    since = await store.advance_cursors(cell_id, values)
    deltas: dict[UsageKey, int] = {}
    for (namespace_id, action_type), value in values.items():
        previous = since.get((namespace_id, action_type), 0)
        kind = action_kind(action_type)
        if value > previous and kind is not None:
            key = (namespace_id, str(kind))
            deltas[key] = deltas.get(key, 0) + (value - previous) * action_weight(action_type)
    await store.add_usage(hour_start, deltas)
    return deltas


def _restarted(source: ScrapeSource, cursors: dict[SeriesKey, int], counters: CellCounters) -> bool:
    """Whether the cell's counters were reset since the cursors were written.

    A counter never shrinks or disappears while its process lives, so any series below its
    cursor, any series with a non-zero cursor that is gone, or a smaller sum over all of the
    cell's counters means a new process.
    """
    if counters.counter_total < source.counter_total:
        return True
    return any(counters.actions.get(key, 0) < value for key, value in cursors.items())
