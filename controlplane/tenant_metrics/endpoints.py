"""The tenant OpenMetrics endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.kit.deps import ReadSessionDep
from controlplane.kit.routing import ApiRoute
from controlplane.tenant_metrics import service

router = APIRouter(route_class=ApiRoute, prefix="/metrics", tags=["metrics"])
Problems: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}}


@router.get(
    "",
    response_class=Response,
    responses={**Problems, 200: {"content": {service.CONTENT_TYPE: {}}}},
)
async def get_metrics(
    request: Request,
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(requires(Action.METRICS_READ, read_only=True))],
    namespace_id: Annotated[str | None, Query(description="Only this namespace")] = None,
) -> Response:
    """OpenMetrics text of the account's namespaces the caller may read metrics of (every one
    for owners, admins and the metrics_read role; else those it holds read on), every series
    labelled ``namespace``. For Prometheus with an API key (docs/teams.md)."""
    body = await service.exposition(
        session, principal, request.app.state.tenant_metrics, namespace_id=namespace_id
    )
    return Response(body, media_type=service.CONTENT_TYPE)
