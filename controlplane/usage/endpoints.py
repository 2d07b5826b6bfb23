"""Usage API: per namespace, UTC day and kind, like Temporal Cloud's GetUsage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.kit.deps import SessionDep
from controlplane.kit.routing import ApiRoute
from controlplane.usage import service
from controlplane.usage.schemas import UsageOut

router = APIRouter(route_class=ApiRoute, prefix="/usage", tags=["usage"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


@router.get("", response_model=UsageOut, responses=Problems)
async def get_usage(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.USAGE_READ))],
    start: Annotated[
        str | None, Query(description="First UTC day, YYYY-MM-DD (inclusive); required")
    ] = None,
    end: Annotated[
        str | None,
        Query(description="Last UTC day, YYYY-MM-DD (inclusive, at most 90 days); required"),
    ] = None,
    namespace_id: Annotated[str | None, Query(description="Only this namespace")] = None,
) -> UsageOut:
    """The account's usage summed per namespace, UTC day and billable kind. Owners and
    finance admins only."""
    first, last, usage = await service.daily(
        session, principal, start=start, end=end, namespace_id=namespace_id
    )
    return UsageOut(start=first, end=last, usage=usage)
