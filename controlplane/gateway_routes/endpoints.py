from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, Field

from auth import Action, Principal, data_plane_permission
from controlplane.api.deps import requires
from controlplane.api_keys import service as api_keys
from controlplane.gateway_routes import service
from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.gateway_routes.schemas import GatewayList, GatewayOut
from controlplane.kit.deps import SecretBoxDep, SessionDep
from controlplane.kit.errors import Unauthenticated
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.namespaces.repository import SystemNamespaceRepository
from dataplane.gateway import (
    APPLIED_VERSION_HEADER,
    GATEWAY_ID_HEADER,
    GATEWAY_LATENCY_HEADER,
    GATEWAY_REJECTED_HEADER,
    GATEWAY_THROTTLED_HEADER,
    RouteDocument,
    RouteEntry,
)

router = APIRouter(route_class=ApiRoute, prefix="/internal", tags=["internal"])


@router.get(
    "/gateway-routes",
    response_model=RouteDocument,
    responses={304: {"description": f"Unchanged since the version in {APPLIED_VERSION_HEADER}"}},
)
async def list_gateway_routes(
    session: SessionDep,
    box: SecretBoxDep,
    _principal: Annotated[Principal, Depends(requires(Action.GATEWAY_ROUTES_READ))],
    response: Response,
    applied_version: Annotated[
        str | None, Header(alias=APPLIED_VERSION_HEADER, max_length=32)
    ] = None,
    gateway_id: Annotated[
        str | None, Header(alias=GATEWAY_ID_HEADER, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    ] = None,
    rejected: Annotated[
        str | None,
        Header(alias=GATEWAY_REJECTED_HEADER, max_length=8192, pattern=r"^(\*|[a-z0-9.,-]*)$"),
    ] = None,
    throttled: Annotated[
        str | None,
        Header(alias=GATEWAY_THROTTLED_HEADER, max_length=16384, pattern=r"^[a-z0-9.,=-]*$"),
    ] = None,
    latency: Annotated[
        str | None,
        Header(alias=GATEWAY_LATENCY_HEADER, max_length=16384, pattern=r"^[a-z0-9.,=:-]*$"),
    ] = None,
) -> RouteDocument | Response:
    """The gateway's routing table (operator credential). Polled with ``If-None-Match``, which
    also tells which version the polling gateway has applied, and
    ``X-Stratus-Gateway-Rejected``, the namespaces of that version it could not serve."""
    repository = GatewayRouteRepository(session)
    version = await repository.table_version()
    etag = f'"{version}"'
    document = None
    if applied_version != etag:
        routes = [RouteEntry.model_validate(route) for route in await repository.active()]
        cells = await service.cell_entries(
            session, {route.cell_id for route in routes if route.cell_id}, box.open
        )
        document = RouteDocument(version=version, routes=routes, cells=cells)
    if gateway_id:
        # Last, after the reads: a write holds SQLite's write lock until the request commits.
        applied = applied_version.strip('"') if applied_version else ""
        await service.record_gateway_poll(
            session,
            gateway_id,
            int(applied) if applied.isdigit() else 0,
            rejected or "",
            throttled or "",
            latency or "",
        )
    if document is None:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return document


@router.get("/gateways", response_model=GatewayList)
async def list_gateways(
    session: SessionDep,
    _principal: Annotated[Principal, Depends(requires(Action.GATEWAY_MANAGE))],
    page: PageDep,
) -> GatewayList:
    """Every registered gateway (operator), by id, a page at a time: namespaces become ACTIVE
    only once all of these serve them, so a gateway that is gone for good must be
    deregistered."""
    found = await service.page_gateways(session, page)
    return GatewayList(
        gateways=[
            GatewayOut(
                id=instance.id,
                applied_version=instance.applied_version,
                last_seen_at=instance.last_seen_at,
                rejected=[name for name in instance.rejected.split(",") if name],
            )
            for instance in found.rows
        ],
        next_page_token=found.next_page_token,
    )


@router.delete(
    "/gateways/{gateway_id}",
    status_code=204,
    responses={404: {"description": "No gateway registered with this id"}},
)
async def deregister_gateway(
    gateway_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")],
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GATEWAY_MANAGE))],
) -> Response:
    """Deregister a gateway (operator; a gateway stopping cleanly does this itself)."""
    await service.deregister(session, principal, gateway_id)
    return Response(status_code=204)


class ApiKeyVerify(BaseModel):
    token: str = Field(max_length=512)


class VerifiedApiKeyOut(BaseModel):
    key_id: str
    principal: str
    account_id: str
    # namespace id → "read" | "write" | "admin" for the namespaces the key may use at all.
    namespace_permissions: dict[str, str]


@router.post(
    "/api-keys/verify",
    response_model=VerifiedApiKeyOut,
    responses={401: {"description": "Unknown, malformed, expired, disabled or deleted key"}},
)
async def verify_api_key(
    body: ApiKeyVerify,
    session: SessionDep,
    _principal: Annotated[Principal, Depends(requires(Action.GATEWAY_API_KEYS_VERIFY))],
) -> VerifiedApiKeyOut:
    """For gateways (operator credential): who a worker's API key is and what it may do on
    each namespace of its account. Gateways cache the answer for at most a second."""
    holder = await api_keys.authenticate(session, body.token)
    if holder.account_id is None or holder.api_key_id is None:
        raise Unauthenticated("operator keys cannot be used by workers")
    permissions: dict[str, str] = {}
    for namespace in await SystemNamespaceRepository(session).list_for_account(holder.account_id):
        permission = data_plane_permission(holder, namespace.id, namespace.account_id)
        if permission is not None:
            permissions[namespace.id] = permission.value
    return VerifiedApiKeyOut(
        key_id=holder.api_key_id,
        principal=holder.display,
        account_id=holder.account_id,
        namespace_permissions=permissions,
    )
