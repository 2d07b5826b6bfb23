from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.models import (
    GatewayInstance,
    GatewayLatencyBucket,
    GatewayRoute,
    ThrottledHour,
)

# The advisory lock key of the route table's changes (any constant unique to Stratus).
ROUTE_TABLE_LOCK = 0x5374726174757301


class GatewayRouteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def table_version(self) -> int:
        result = await self.session.execute(select(func.max(GatewayRoute.version)))
        return int(result.scalar_one_or_none() or 0)

    async def lock_for_change(self) -> None:
        """Serialize changes of the route table until this transaction ends, so versions are
        handed out in commit order: without it a change that read the table's version before
        another committed could commit an older version after it (a gateway that had applied
        the newer one never fetches the older: its change is missed), or reuse a version a
        route had moved on from. PostgreSQL: a transaction-scoped advisory lock; SQLite: the
        database's write lock (a write statement opens the transaction with BEGIN IMMEDIATE)."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROUTE_TABLE_LOCK}
            )
        else:
            await self.session.execute(
                update(GatewayRoute).where(GatewayRoute.version < 0).values(removed=True)
            )

    async def active(self) -> list[GatewayRoute]:
        result = await self.session.execute(
            select(GatewayRoute)
            .where(GatewayRoute.removed.is_(False))
            .order_by(GatewayRoute.namespace_id)
        )
        return list(result.scalars())

    async def get(self, namespace_id: str) -> GatewayRoute | None:
        return await self.session.get(GatewayRoute, namespace_id)

    def add(self, route: GatewayRoute) -> None:
        self.session.add(route)


class GatewayInstanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, gateway_id: str) -> GatewayInstance | None:
        return await self.session.get(GatewayInstance, gateway_id)

    def add(self, instance: GatewayInstance) -> None:
        self.session.add(instance)

    async def page(self, page: PageRequest) -> Page[GatewayInstance]:
        """A page of the registered gateways by id."""
        return await fetch_page(
            self.session,
            select(GatewayInstance),
            page=page,
            order=(GatewayInstance.id,),
            list_name="gateways",
            account_id=None,
        )

    async def all(self) -> list[GatewayInstance]:
        result = await self.session.execute(select(GatewayInstance).order_by(GatewayInstance.id))
        return list(result.scalars())

    async def delete(self, instance: GatewayInstance) -> None:
        await self.session.delete(instance)


class ThrottledHourRepository:
    """The gateways' RESOURCE_EXHAUSTED answers per namespace and UTC hour (every namespace:
    the gateways' polls and the insights job)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, hour_start: dt.datetime, answers: Mapping[str, int]) -> None:
        for namespace_id, count in sorted(answers.items()):
            added = await self.session.execute(
                update(ThrottledHour)
                .where(
                    ThrottledHour.namespace_id == namespace_id,
                    ThrottledHour.hour_start == hour_start,
                )
                .values(answers=ThrottledHour.answers + count)
            )
            if getattr(added, "rowcount", 0) == 0:
                self.session.add(
                    ThrottledHour(namespace_id=namespace_id, hour_start=hour_start, answers=count)
                )

    async def total(self, namespace_id: str, *, since: dt.datetime, until: dt.datetime) -> int:
        """The answers counted in the hours that start in [since, until)."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(ThrottledHour.answers), 0)).where(
                ThrottledHour.namespace_id == namespace_id,
                ThrottledHour.hour_start >= since,
                ThrottledHour.hour_start < until,
            )
        )
        return int(total or 0)


class GatewayLatencyRepository:
    """The gateways' latency counts per namespace and bucket (every namespace: the gateways'
    polls)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, increases: Mapping[tuple[str, str], int]) -> None:
        """Add each (namespace id, bucket)'s increase to its row."""
        for (namespace_id, bucket), count in sorted(increases.items()):
            added = await self.session.execute(
                update(GatewayLatencyBucket)
                .where(
                    GatewayLatencyBucket.namespace_id == namespace_id,
                    GatewayLatencyBucket.bucket == bucket,
                )
                .values(count=GatewayLatencyBucket.count + count)
            )
            if getattr(added, "rowcount", 0) == 0:
                self.session.add(
                    GatewayLatencyBucket(namespace_id=namespace_id, bucket=bucket, count=count)
                )
