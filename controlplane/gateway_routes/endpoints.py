from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel

from auth import Action, Principal
from controlplane.gateway_routes import service
from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.kit.deps import SessionDep, requires

router = APIRouter(prefix="/internal", tags=["internal"])


class RouteOut(BaseModel):
    namespace_id: str
    cell_address: str
    accepted_client_ca: str
    cell_namespace_id: str
    certificate_filters: list[dict[str, str]]
    requests_per_second: int
    actions_per_second: int


class RouteTableOut(BaseModel):
    version: int
    routes: list[RouteOut]


@router.get(
    "/gateway-routes",
    response_model=RouteTableOut,
    responses={304: {"description": "Unchanged since the version in If-None-Match"}},
)
async def list_gateway_routes(
    session: SessionDep,
    _principal: Annotated[Principal, Depends(requires(Action.GATEWAY_ROUTES_READ))],
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
    x_stratus_gateway_id: Annotated[str | None, Header(max_length=64)] = None,
) -> RouteTableOut | Response:
    """The gateway's routing table (operator credential). Polled with ``If-None-Match``, which
    also tells which version the polling gateway has applied."""
    repository = GatewayRouteRepository(session)
    if x_stratus_gateway_id:
        applied = if_none_match.strip('"') if if_none_match else ""
        await service.record_gateway_poll(
            session, x_stratus_gateway_id, int(applied) if applied.isdigit() else 0
        )
    version = await repository.table_version()
    etag = f'"{version}"'
    if if_none_match == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    routes = await repository.active()
    return RouteTableOut(
        version=version,
        routes=[
            RouteOut(
                namespace_id=r.namespace_id,
                cell_address=r.cell_address,
                accepted_client_ca=r.accepted_client_ca,
                cell_namespace_id=r.cell_namespace_id,
                certificate_filters=r.certificate_filters,
                requests_per_second=r.requests_per_second,
                actions_per_second=r.actions_per_second,
            )
            for r in routes
        ],
    )
