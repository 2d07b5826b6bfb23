from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import ColumnElement, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import flag_modified

from billing import ScrapeSource, SeriesKey, UsageKey, UsageStore, UsageUnitOfWork
from controlplane.kit.db import unit_of_work
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import UsageCursor, UsageRecord, UsageSource
from controlplane.models.usage_record import month_of


class UsageRepository(TenantRepository):
    """The caller's account's usage."""

    async def hourly(
        self, *, since: dt.datetime, until: dt.datetime, namespace_id: str | None
    ) -> list[UsageRecord]:
        """The account's usage rows with ``since <= hour_start < until``."""
        statement = select(UsageRecord).where(
            UsageRecord.hour_start >= since, UsageRecord.hour_start < until
        )
        if namespace_id is not None:
            statement = statement.where(UsageRecord.namespace_id == namespace_id)
        statement = self._scoped(statement, UsageRecord.account_id)
        return list((await self.session.execute(statement)).scalars())

    async def daily_totals(
        self, *, since: dt.datetime, until: dt.datetime, namespace_id: str | None
    ) -> list[tuple[dt.date, str, str, int]]:
        """The account's usage with ``since <= hour_start < until`` summed per UTC day,
        namespace and kind, sorted so: the database adds the hours up (a month of an
        account with many namespaces is hundreds of thousands of hourly rows)."""
        day = self._utc_day()
        statement = select(
            day, UsageRecord.namespace_id, UsageRecord.kind, func.sum(UsageRecord.quantity)
        ).where(UsageRecord.hour_start >= since, UsageRecord.hour_start < until)
        if namespace_id is not None:
            statement = statement.where(UsageRecord.namespace_id == namespace_id)
        statement = self._scoped(statement, UsageRecord.account_id)
        grouped = statement.group_by(day, UsageRecord.namespace_id, UsageRecord.kind)
        # Sorted here: the database's collation may order the names otherwise.
        return sorted(
            (on if isinstance(on, dt.date) else dt.date.fromisoformat(on), ns, kind, int(total))
            for on, ns, kind, total in await self.session.execute(grouped)
        )

    def _utc_day(self) -> ColumnElement[dt.date]:
        """``hour_start``'s UTC day: SQLite stores the UTC time as text (``date()`` answers
        'YYYY-MM-DD'), PostgreSQL a timestamptz (its day in the session's zone unless asked)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return func.date(func.timezone("UTC", UsageRecord.hour_start))
        return func.date(UsageRecord.hour_start)

    async def has_namespace(self, namespace_id: str) -> bool:
        """Whether the account ever had usage in ``namespace_id`` (usage outlives a deleted
        namespace until it is invoiced)."""
        statement = self._scoped(
            select(UsageRecord.id).where(UsageRecord.namespace_id == namespace_id).limit(1),
            UsageRecord.account_id,
        )
        return (await self.session.execute(statement)).first() is not None


class SystemUsageStore:
    """Every account's usage rows and the meters' per-cell bookkeeping (``usage_sources``,
    ``usage_cursors``): billing's :class:`billing.UsageStore` over one session, for the
    worker's meters (and for tests and backfills that write usage directly)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def scrape_source(self, cell_id: str) -> ScrapeSource | None:
        source = await self.session.get(UsageSource, cell_id)
        if source is None:
            return None
        return ScrapeSource(counter_total=source.counter_total, version=source.version)

    async def cursors(self, cell_id: str) -> dict[SeriesKey, int]:
        rows = await self.session.execute(
            select(UsageCursor.namespace_id, UsageCursor.action_type, UsageCursor.value).where(
                UsageCursor.cell_id == cell_id
            )
        )
        return {(namespace_id, action_type): value for namespace_id, action_type, value in rows}

    async def reset_cursors(self, cell_id: str) -> None:
        await self.session.execute(
            update(UsageCursor)
            .where(UsageCursor.cell_id == cell_id, UsageCursor.value != 0)
            .values(value=0)
        )

    async def record_scrape(self, cell_id: str, counter_total: int, at: dt.datetime) -> int:
        source = await self.session.get(UsageSource, cell_id)
        if source is None:
            source = UsageSource(cell_id=cell_id, counter_total=counter_total, scraped_at=at)
            self.session.add(source)
        source.counter_total = counter_total
        source.scraped_at = at
        _always_written(source)
        await self.session.flush()
        return source.version

    async def claim(self, cell_id: str, version: int, at: dt.datetime) -> int | None:
        source = await self.session.get(UsageSource, cell_id)
        if source is None or source.version != version:
            return None
        source.scraped_at = at
        # The UPDATE is checked against the version read here (StaleDataError when it moved).
        _always_written(source)
        await self.session.flush()
        return source.version

    async def advance_cursors(
        self, cell_id: str, values: Mapping[SeriesKey, int]
    ) -> dict[SeriesKey, int]:
        namespace_ids = {namespace_id for namespace_id, _ in values}
        cursors = {
            (cursor.namespace_id, cursor.action_type): cursor
            for cursor in await self.session.scalars(
                select(UsageCursor).where(
                    UsageCursor.cell_id == cell_id, UsageCursor.namespace_id.in_(namespace_ids)
                )
            )
        }
        previous: dict[SeriesKey, int] = {}
        for (namespace_id, action_type), value in values.items():
            cursor = cursors.get((namespace_id, action_type))
            if cursor is None:
                self.session.add(
                    UsageCursor(
                        cell_id=cell_id,
                        namespace_id=namespace_id,
                        action_type=action_type,
                        value=value,
                    )
                )
                continue
            previous[(namespace_id, action_type)] = cursor.value
            if cursor.value != value:
                cursor.value = value
        return previous

    async def add_usage(self, hour_start: dt.datetime, quantities: Mapping[UsageKey, int]) -> None:
        if not quantities:
            return
        namespace_ids = {namespace_id for namespace_id, _ in quantities}
        existing = {
            (record.namespace_id, record.kind): record
            for record in await self.session.scalars(
                select(UsageRecord).where(
                    UsageRecord.hour_start == hour_start,
                    UsageRecord.namespace_id.in_(namespace_ids),
                )
            )
        }
        for (namespace_id, kind), quantity in quantities.items():
            record = existing.get((namespace_id, kind))
            if record is None:
                self.session.add(_new_row(namespace_id, hour_start, kind, quantity))
            else:
                # An SQL increment, so concurrent writers of one row add up.
                record.quantity = UsageRecord.quantity + quantity
        # Flush now: the next write to the same rows in this transaction must find them.
        await self.session.flush()

    async def set_usage(
        self, namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int
    ) -> None:
        record = await self.session.scalar(
            select(UsageRecord).where(
                UsageRecord.namespace_id == namespace_id,
                UsageRecord.hour_start == hour_start,
                UsageRecord.kind == kind,
            )
        )
        if record is None:
            self.session.add(_new_row(namespace_id, hour_start, kind, quantity))
            await self.session.flush()
        else:
            record.quantity = quantity

    async def latest_usage(
        self, namespace_id: str, kind: str, before: dt.datetime
    ) -> tuple[dt.datetime, int] | None:
        latest = await self.session.scalar(
            select(UsageRecord)
            .where(
                UsageRecord.namespace_id == namespace_id,
                UsageRecord.kind == kind,
                UsageRecord.hour_start < before,
            )
            .order_by(UsageRecord.hour_start.desc())
            .limit(1)
        )
        return None if latest is None else (latest.hour_start, latest.quantity)


def _always_written(source: UsageSource) -> None:
    """Make the flush UPDATE the source (checking and bumping its version) even when no value
    changed: a claim sets the same ``scraped_at`` as its scrape's first write, and an UPDATE
    skipped for that left the batch unguarded (the row unlocked, the version unbumped), so two
    meters billed the same batch (test_meter_race_postgres)."""
    if inspect(source).persistent:
        flag_modified(source, "scraped_at")


def _new_row(namespace_id: str, hour_start: dt.datetime, kind: str, quantity: int) -> UsageRecord:
    return UsageRecord(
        namespace_id=namespace_id,
        account_id=namespace_id.rsplit(".", 1)[1],
        hour_start=hour_start,
        period_start=month_of(hour_start),
        kind=kind,
        quantity=quantity,
    )


def usage_unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> UsageUnitOfWork:
    """What the meters receive: each call opens one unit of work as a
    :class:`SystemUsageStore`."""

    @asynccontextmanager
    async def open_store() -> AsyncIterator[UsageStore]:
        async with unit_of_work(sessionmaker) as session:
            yield SystemUsageStore(session)

    return open_store
