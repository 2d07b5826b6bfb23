from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal
from controlplane.kit.context import request_id_var
from controlplane.models import AuditEvent

SYSTEM_ACTOR = "system:control-plane"


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
