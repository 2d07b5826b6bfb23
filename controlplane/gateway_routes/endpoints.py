from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel

from auth import Action, Principal
from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.kit.deps import SessionDep, requires

router = APIRouter(prefix="/internal", tags=["internal"])


class RouteOut(BaseModel):
    namespace_id: str
    cell_address: str
    accepted_client_ca: str


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
) -> RouteTableOut | Response:
    """The gateway's routing table (operator credential). Polled with ``If-None-Match``."""
    repository = GatewayRouteRepository(session)
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
            )
            for r in routes
        ],
    )
