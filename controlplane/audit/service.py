from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.audit.repository import AuditEventRepository
from controlplane.kit.authorization import require
from controlplane.kit.context import request_id_var
from controlplane.kit.errors import InvalidField
from controlplane.kit.fields import PageToken
from controlplane.models import AuditEvent

SYSTEM_ACTOR = "system:control-plane"
MAX_PAGE_SIZE = 500


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


async def page(
    session: AsyncSession, principal: Principal, *, page_size: int, page_token: str | None
) -> tuple[list[AuditEvent], str | None]:
    """One page of the caller's account's audit log, newest first, and the token of the next
    page (None on the last)."""
    require(principal, Action.AUDIT_LOG_READ, refusal="this credential may not read the audit log")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidField(f"page_size must be 1-{MAX_PAGE_SIZE}", field="page_size")
    before_id = None
    if page_token is not None:
        before_id = PageToken.decode(page_token)
    events = await AuditEventRepository(session, principal).page(
        before_id=before_id, limit=page_size + 1
    )
    if len(events) > page_size:
        return events[:page_size], PageToken.encode(events[page_size - 1].id)
    return events, None
