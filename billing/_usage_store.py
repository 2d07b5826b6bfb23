"""The storage the meters need, declared here and implemented by whoever holds the database.

Billing owns the rules (what a counter delta is, when a cell restarted, which hour a sample
fills); the control plane owns the tables. It implements :class:`UsageStore` over its own
session and hands the meters a :data:`UsageUnitOfWork`, so nothing in ``billing`` imports the
control plane.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

SeriesKey = tuple[str, str]
"""One counter series of a cell: (namespace id, Temporal action type)."""

UsageKey = tuple[str, str]
"""One usage row of an hour: (namespace id, kind)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ScrapeSource:
    """What the store holds of a cell's last committed scrape: the sum of all its counters
    then, and the version every committed scrape bumps (two meters scraping one cell at once
    cannot both commit)."""

    counter_total: int
    version: int


class UsageStore(Protocol):
    """One transaction's access to the usage rows and the meters' bookkeeping of each cell.

    Everything a store does commits or rolls back with the unit of work that opened it. Usage
    rows belong to the account of their namespace (the suffix of ``<name>.<account id>``) and
    to the UTC month of their hour."""

    async def scrape_source(self, cell_id: str) -> ScrapeSource | None:
        """The cell's last committed scrape, None before the first."""
        ...

    async def cursors(self, cell_id: str) -> dict[SeriesKey, int]:
        """The last billed value of each of the cell's series."""
        ...

    async def reset_cursors(self, cell_id: str) -> None:
        """Set every cursor of the cell to zero (its process restarted)."""
        ...

    async def record_scrape(self, cell_id: str, counter_total: int, at: dt.datetime) -> int:
        """Record a scrape of the cell (creating its source on the first one), always bumping
        the version; returns the new version."""
        ...

    async def claim(self, cell_id: str, version: int, at: dt.datetime) -> int | None:
        """Bump the cell's version if it is still ``version`` (no other meter committed a
        scrape of it meanwhile) and return the new one; None if it moved. The bump is checked
        again when written: a concurrent commit makes this unit of work fail."""
        ...

    async def advance_cursors(
        self, cell_id: str, values: Mapping[SeriesKey, int]
    ) -> dict[SeriesKey, int]:
        """Set the cell's cursors of ``values``' series to those values; returns the values
        they had (a series seen for the first time is absent)."""
        ...

    async def add_usage(self, hour_start: dt.datetime, quantities: Mapping[UsageKey, int]) -> None:
        """Add each quantity to its usage row of ``hour_start``, creating the row if needed.
        Concurrent writers of one row (two processes of one cell) add up."""
        ...

    async def set_usage(
        self, namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int
    ) -> None:
        """Set the usage row of (namespace, hour, kind) to ``quantity``, creating it if needed:
        for kinds measured as a state (storage), where the newest measurement of an hour
        replaces the previous one."""
        ...

    async def latest_usage(
        self, namespace_id: str, kind: str, before: dt.datetime
    ) -> tuple[dt.datetime, int] | None:
        """The (hour, quantity) of the namespace's latest row of ``kind`` before ``before``."""
        ...


UsageUnitOfWork = Callable[[], AbstractAsyncContextManager[UsageStore]]
"""Opens one transaction, as a :class:`UsageStore`, that commits when its block ends and rolls
back on an exception. The meters receive it rather than opening transactions of their own."""
