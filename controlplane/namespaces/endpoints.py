from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from auth import Action, Principal
from controlplane.api.deps import StarterDep, requires
from controlplane.kit.deps import ReadSessionDep, SessionDep, SettingsDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute, json_response
from controlplane.namespaces import service
from controlplane.namespaces.schemas import (
    NamespaceCreate,
    NamespaceLimits,
    NamespaceList,
    NamespaceOperation,
    NamespaceOut,
    NamespaceUpdate,
)
from controlplane.operations.schemas import AsyncOperationOut

router = APIRouter(route_class=ApiRoute, prefix="/namespaces", tags=["namespaces"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


def _out(namespace: object, operation: object) -> NamespaceOperation:
    return NamespaceOperation(
        namespace=NamespaceOut.model_validate(namespace),
        async_operation=AsyncOperationOut.model_validate(operation),
    )


@router.post("", status_code=202, response_model=NamespaceOperation, responses=Problems)
async def create_namespace(
    body: NamespaceCreate,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_CREATE))],
) -> NamespaceOperation:
    """Create a namespace. Returns at once (state ACTIVATING) with the async operation that
    provisions it on the cell the placement policy chose (503 ``no-cell-capacity`` when no cell
    has room)."""
    namespace, operation = await service.create(
        session,
        principal,
        starter,
        name=body.name,
        retention_days=body.retention_days,
        accepted_client_ca=body.accepted_client_ca,
        certificate_filters=body.certificate_filters,
        async_operation_id=body.async_operation_id,
        auth_method=body.auth_method,
        placement=settings.cell_placement,
        provider=settings.cell_provider,
    )
    return _out(namespace, operation)


@router.get("", response_model=NamespaceList, responses=Problems)
async def list_namespaces(
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_READ, read_only=True))],
    page: PageDep,
    name: Annotated[
        str | None, Query(description="Only namespaces whose name starts with this")
    ] = None,
) -> NamespaceList:
    """The namespaces the caller may read, by name, a page at a time."""
    found = await service.page(session, principal, page, name=name)
    return NamespaceList(
        namespaces=[NamespaceOut.model_validate(ns) for ns in found.rows],
        next_page_token=found.next_page_token,
    )


@router.get("/{namespace_id}", response_model=NamespaceOut, responses=Problems)
async def get_namespace(
    namespace_id: str,
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_READ, read_only=True))],
) -> Response:
    # Serialized once, here: the hottest read skips FastAPI's second validation of the model
    # (response_model still documents it).
    namespace = NamespaceOut.model_validate(await service.get(session, principal, namespace_id))
    return json_response(namespace)


@router.post(
    "/{namespace_id}", status_code=202, response_model=NamespaceOperation, responses=Problems
)
async def update_namespace(
    namespace_id: str,
    body: NamespaceUpdate,
    session: SessionDep,
    starter: StarterDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_UPDATE))],
) -> NamespaceOperation:
    """Update retention, accepted client CAs and/or certificate filters (fields left out keep
    their value). Returns at once (state UPDATING, new resource_version) with the async
    operation that applies the change to the cell and the gateways."""
    namespace, operation = await service.update(
        session,
        principal,
        starter,
        namespace_id=namespace_id,
        resource_version=body.resource_version,
        retention_days=body.retention_days,
        accepted_client_ca=body.accepted_client_ca,
        certificate_filters=body.certificate_filters,
        async_operation_id=body.async_operation_id,
        auth_method=body.auth_method,
    )
    return _out(namespace, operation)


@router.delete(
    "/{namespace_id}", status_code=202, response_model=NamespaceOperation, responses=Problems
)
async def delete_namespace(
    namespace_id: str,
    session: SessionDep,
    starter: StarterDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_DELETE))],
    resource_version: Annotated[str | None, Query()] = None,
    async_operation_id: Annotated[str | None, Query()] = None,
) -> NamespaceOperation:
    """Delete a namespace: traffic stops at the gateway first, then the cell drops it."""
    namespace, operation = await service.delete(
        session,
        principal,
        starter,
        namespace_id=namespace_id,
        resource_version=resource_version,
        async_operation_id=async_operation_id,
    )
    return _out(namespace, operation)


@router.post(
    "/{namespace_id}/limits",
    status_code=202,
    response_model=NamespaceOperation,
    responses=Problems,
)
async def set_namespace_limits(
    namespace_id: str,
    body: NamespaceLimits,
    session: SessionDep,
    starter: StarterDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_LIMITS_SET))],
) -> NamespaceOperation:
    """Operator only: set the namespace's requests/s and actions/s, enforced by the gateway."""
    namespace, operation = await service.set_limits(
        session,
        principal,
        starter,
        namespace_id=namespace_id,
        requests_per_second=body.requests_per_second,
        actions_per_second=body.actions_per_second,
        async_operation_id=body.async_operation_id,
    )
    return _out(namespace, operation)
