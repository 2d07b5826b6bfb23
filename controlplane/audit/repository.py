from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal
from controlplane.kit.tenancy import scoped
from controlplane.models import AuditEvent


class AuditEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page_scoped(
        self, principal: Principal, *, before_id: int | None, limit: int
    ) -> list[AuditEvent]:
        """Newest first; only events older than ``before_id`` when given."""
        statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if before_id is not None:
            statement = statement.where(AuditEvent.id < before_id)
        statement = scoped(statement, AuditEvent.account_id, principal)
        return list((await self.session.execute(statement)).scalars())
