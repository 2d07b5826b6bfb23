from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.audit.repository import AuditEventRepository
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.context import request_id_var
from controlplane.kit.errors import InvalidField
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import AuditEvent

SYSTEM_ACTOR = "system:control-plane"
READ_REFUSAL = "this credential may not read the audit log"


def record(
    session: AsyncSession,
    principal: Principal | None,
    *,
    action: str,
    target: str,
    account_id: str | None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the current unit of work (it commits or rolls back with it)."""
    event = AuditEvent(
        account_id=account_id,
        actor=principal.display if principal else SYSTEM_ACTOR,
        action=action,
        target=target,
        request_id=request_id_var.get(),
        outcome=outcome,
        details=details or {},
    )
    session.add(event)
    return event


def _utc(moment: dt.datetime | None, field: str) -> dt.datetime | None:
    if moment is None:
        return None
    fields.day(moment.date(), field=field)  # far from the ends of Python's datetimes
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


async def page(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page[AuditEvent]:
    """One page of the caller's account's audit log, newest first, and the token of the next
    page ("" on the last). ``actor`` and ``action`` match exactly; ``since`` (inclusive) and
    ``until`` (exclusive) bound the time, UTC when they name no zone. The filters are sent
    again with the next page's token."""
    require(principal, Action.AUDIT_LOG_READ, refusal=READ_REFUSAL)
    since, until = _utc(since, "since"), _utc(until, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidField(f"until ({until}) is not after since ({since})", field="until")
    return await AuditEventRepository(session, principal).page(
        page,
        actor=fields.free_text(actor, field="actor", max_length=200) if actor else None,
        action=fields.free_text(action, field="action", max_length=64) if action else None,
        since=since,
        until=until,
    )
