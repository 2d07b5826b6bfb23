"""The account's audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.audit import service
from controlplane.audit.schemas import AuditEventOut, AuditEventPage
from controlplane.kit.deps import SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute

router = APIRouter(route_class=ApiRoute, prefix="/audit-logs", tags=["audit"])


@router.get("", response_model=AuditEventPage, responses={400: {}, 401: {}, 403: {}})
async def list_audit_logs(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.AUDIT_LOG_READ))],
    page: PageDep,
    actor: Annotated[str | None, Query(description="Only this actor's events")] = None,
    action: Annotated[str | None, Query(description="Only this action, e.g. user.invite")] = None,
    since: Annotated[
        dt.datetime | None, Query(description="Only events at or after this time (ISO 8601)")
    ] = None,
    until: Annotated[
        dt.datetime | None, Query(description="Only events before this time (ISO 8601)")
    ] = None,
) -> AuditEventPage:
    """Every mutation in the account (who, what, target, when, request id, outcome), newest
    first; pass ``next_page_token`` back as ``page_token`` (with the same filters) for the next
    page."""
    found = await service.page(
        session,
        principal,
        page,
        actor=actor,
        action=action,
        since=since,
        until=until,
    )
    return AuditEventPage(
        audit_logs=[AuditEventOut.model_validate(event) for event in found.rows],
        next_page_token=found.next_page_token,
    )
