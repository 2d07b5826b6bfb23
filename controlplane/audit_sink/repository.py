from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import AuditEvent, AuditSink


class AuditSinkRepository(TenantRepository):
    """The caller's account's audit log sink."""

    async def get(self) -> AuditSink | None:
        statement = self._scoped(select(AuditSink), AuditSink.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, sink: AuditSink) -> None:
        self._add(sink)

    async def delete(self, sink: AuditSink) -> None:
        await self._delete(sink)


class SystemAuditSinkRepository:
    """Every account's audit sink and events: for the exporter in the worker."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all_account_ids(self) -> list[str]:
        statement = select(AuditSink.account_id).order_by(AuditSink.account_id)
        return list((await self.session.execute(statement)).scalars())

    async def get(self, account_id: str) -> AuditSink | None:
        return await self.session.get(AuditSink, account_id)

    async def events(
        self, account_id: str, since: dt.datetime, until: dt.datetime
    ) -> list[AuditEvent]:
        """The account's events at or after ``since`` and before ``until``, oldest first."""
        statement = (
            select(AuditEvent)
            .where(
                AuditEvent.account_id == account_id,
                AuditEvent.at >= since,
                AuditEvent.at < until,
            )
            .order_by(AuditEvent.id)
        )
        return list((await self.session.execute(statement)).scalars())
