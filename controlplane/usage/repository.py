from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import UsageRecord


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

    async def has_namespace(self, namespace_id: str) -> bool:
        """Whether the account ever had usage in ``namespace_id`` (usage outlives a deleted
        namespace until it is invoiced)."""
        statement = self._scoped(
            select(UsageRecord.id).where(UsageRecord.namespace_id == namespace_id).limit(1),
            UsageRecord.account_id,
        )
        return (await self.session.execute(statement)).first() is not None
