from __future__ import annotations

from sqlalchemy import select

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import AuditEvent


class AuditEventRepository(TenantRepository):
    """The caller's account's audit log (events are written by ``audit.record``)."""

    async def page(self, *, before_id: int | None, limit: int) -> list[AuditEvent]:
        """Newest first; only events older than ``before_id`` when given."""
        statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if before_id is not None:
            statement = statement.where(AuditEvent.id < before_id)
        statement = self._scoped(statement, AuditEvent.account_id)
        return list((await self.session.execute(statement)).scalars())
