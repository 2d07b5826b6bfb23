"""The audit log page: the account's events newest first, filtered by actor, action and UTC
days, a page at a time, read through ``controlplane.audit.service`` as the API's
``GET /audit-logs`` is. Details are tenant-controlled strings: shown as escaped JSON text."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from auth import Action
from controlplane.audit import service as audit
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import InvalidField
from controlplane.kit.paging import PageRequest

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


def _day(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return fields.day(dt.date.fromisoformat(value), field=field)
    except ValueError:
        raise InvalidField(f"{field} must be a date as YYYY-MM-DD", field=field) from None


def _midnight(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@router.get("/audit")
async def audit_page(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    actor: Annotated[str, Query()] = "",
    action: Annotated[str, Query()] = "",
    since: Annotated[str, Query(alias="from")] = "",
    until: Annotated[str, Query(alias="to")] = "",
    page: Annotated[str | None, Query()] = None,
) -> Response:
    """Newest first; ``from`` and ``to`` are UTC days, both inclusive."""
    # The policy first: a caller who may not read the log is refused whatever it typed.
    require(viewer.principal, Action.AUDIT_LOG_READ, refusal=audit.READ_REFUSAL)
    values = {"actor": actor, "action": action, "from": since, "to": until}
    filters = {name: value for name, value in values.items() if value}
    try:
        first, last = _day(since, "from"), _day(until, "to")
        if first is not None and last is not None and last < first:
            raise InvalidField(f"to ({last}) is before from ({first})", field="to")
        found = await audit.page(
            session,
            viewer.principal,
            PageRequest(box=request.app.state.secret_box, size=PAGE_SIZE, token=page or ""),
            actor=actor.strip() or None,
            action=action.strip() or None,
            since=_midnight(first),
            until=_midnight(last + dt.timedelta(days=1) if last else None),
        )
    except InvalidField as invalid:
        return render(
            request,
            "audit.html",
            status_code=invalid.status,
            events=[],
            values=values,
            error=invalid,
            next_page=None,
            first_page=None,
        )
    rows = [
        (
            event,
            json.dumps(event.details, ensure_ascii=False, sort_keys=True) if event.details else "",
        )
        for event in found.rows
    ]
    return render(
        request,
        "audit.html",
        events=rows,
        values=values,
        error=None,
        next_page=f"/audit?{urlencode({**filters, 'page': found.next_page_token})}"
        if found.next_page_token
        else None,
        first_page=f"/audit?{urlencode(filters)}" if page else None,
    )
