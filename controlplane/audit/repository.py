from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import AuditEvent


class AuditEventRepository(TenantRepository):
    """The caller's account's audit log (events are written by ``audit.record``)."""

    async def page(
        self,
        page: PageRequest,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Page[AuditEvent]:
        """Newest first (by id: ids grow with time); only the events of ``actor``, of
        ``action``, at or after ``since`` and before ``until`` when given."""
        statement = select(AuditEvent)
        if actor is not None:
            statement = statement.where(AuditEvent.actor == actor)
        if action is not None:
            statement = statement.where(AuditEvent.action == action)
        if since is not None:
            statement = statement.where(AuditEvent.at >= since)
        if until is not None:
            statement = statement.where(AuditEvent.at < until)
        return await fetch_page(
            self.session,
            self._scoped(statement, AuditEvent.account_id),
            page=page,
            order=(AuditEvent.id,),
            descending=True,
            list_name="audit-logs",
            account_id=self.account_id,
            filters={"actor": actor, "action": action, "since": since, "until": until},
        )
