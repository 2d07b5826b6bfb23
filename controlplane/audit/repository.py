from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import AuditEvent


class AuditEventRepository(TenantRepository):
    """The caller's account's audit log (events are written by ``audit.record``)."""

    async def page(
        self,
        *,
        before_id: int | None,
        limit: int,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[AuditEvent]:
        """Newest first; only events older than ``before_id`` when given, and only those of
        ``actor``, of ``action``, at or after ``since`` and before ``until`` when given."""
        statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if before_id is not None:
            statement = statement.where(AuditEvent.id < before_id)
        if actor is not None:
            statement = statement.where(AuditEvent.actor == actor)
        if action is not None:
            statement = statement.where(AuditEvent.action == action)
        if since is not None:
            statement = statement.where(AuditEvent.at >= since)
        if until is not None:
            statement = statement.where(AuditEvent.at < until)
        statement = self._scoped(statement, AuditEvent.account_id)
        return list((await self.session.execute(statement)).scalars())
