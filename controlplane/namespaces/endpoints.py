from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from auth import Action, Principal
from controlplane.api.deps import Reading, StarterDep, reading, requires
from controlplane.config import ApiSettings
from controlplane.kit.deps import ReadSessionDep, SessionDep, SettingsDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute, json_response
from controlplane.models import Namespace
from controlplane.models.namespace import NamespaceView
from controlplane.namespaces import service, spec
from controlplane.namespaces.schemas import (
    CodecServerSpec,
    Endpoints,
    Lifecycle,
    NamespaceCreate,
    NamespaceLimits,
    NamespaceList,
    NamespaceOperation,
    NamespaceOut,
    NamespaceTagsUpdate,
    NamespaceUpdate,
)
from controlplane.operations.schemas import AsyncOperationOut

router = APIRouter(route_class=ApiRoute, prefix="/namespaces", tags=["namespaces"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


def namespace_out(namespace: NamespaceView, settings: ApiSettings) -> NamespaceOut:
    """The namespace as the API shows it: its row, its spec's nested parts and endpoints."""
    codec = namespace.codec_server
    return NamespaceOut.model_validate(
        {
            **{name: getattr(namespace, name) for name in _ROW_FIELDS},
            "lifecycle": Lifecycle(enable_delete_protection=namespace.delete_protection),
            "codec_server": CodecServerSpec.model_validate(codec) if codec else None,
            "endpoints": Endpoints.model_validate(spec.endpoints(settings, namespace)),
        }
    )


_ROW_FIELDS = tuple(
    name
    for name in NamespaceOut.model_fields
    if name not in ("lifecycle", "codec_server", "endpoints")
)


def _codec(body: CodecServerSpec | None) -> service.CodecServer | None:
    return service.CodecServer(**body.model_dump()) if body is not None else None


def _out(namespace: Namespace, operation: object, settings: ApiSettings) -> NamespaceOperation:
    return NamespaceOperation(
        namespace=namespace_out(namespace, settings),
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
        delete_protection=body.lifecycle.enable_delete_protection,
        tags=body.tags,
        search_attributes={name: kind.value for name, kind in body.search_attributes.items()},
        codec_server=_codec(body.codec_server),
    )
    return _out(namespace, operation, settings)


@router.get("", response_model=NamespaceList, responses=Problems)
async def list_namespaces(
    session: ReadSessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_READ, read_only=True))],
    page: PageDep,
    name: Annotated[
        str | None, Query(description="Only namespaces whose name starts with this")
    ] = None,
    tag: Annotated[
        str | None, Query(description="Only namespaces with this tag, as key:value")
    ] = None,
) -> NamespaceList:
    """The namespaces the caller may read, by name, a page at a time."""
    found = await service.page(session, principal, page, name=name, tag=tag)
    return NamespaceList(
        namespaces=[namespace_out(ns, settings) for ns in found.rows],
        next_page_token=found.next_page_token,
    )


@router.get("/{namespace_id}", response_model=NamespaceOut, responses=Problems)
async def get_namespace(
    namespace_id: str,
    read: Annotated[Reading, Depends(reading(Action.NAMESPACE_READ))],
) -> Response:
    # Serialized once, here: the hottest read skips FastAPI's second validation of the model
    # (response_model still documents it).
    found = await service.view(read.session, read.principal, namespace_id)
    return json_response(namespace_out(found, read.settings))


@router.post(
    "/{namespace_id}", status_code=202, response_model=NamespaceOperation, responses=Problems
)
async def update_namespace(
    namespace_id: str,
    body: NamespaceUpdate,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_UPDATE))],
) -> NamespaceOperation:
    """Update retention, accepted client CAs, certificate filters, auth method, delete
    protection, custom search attributes and/or the codec server (fields left out keep their
    value). Returns at once (state UPDATING, new resource_version) with the async operation
    that applies the change to the cell and the gateways."""
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
        delete_protection=(
            body.lifecycle.enable_delete_protection if body.lifecycle is not None else None
        ),
        search_attributes=(
            {name: kind.value for name, kind in body.search_attributes.items()}
            if body.search_attributes is not None
            else None
        ),
        rename_search_attributes=body.rename_search_attributes,
        codec_server=_codec(body.codec_server),
        remove_codec_server=body.remove_codec_server,
    )
    return _out(namespace, operation, settings)


@router.delete(
    "/{namespace_id}", status_code=202, response_model=NamespaceOperation, responses=Problems
)
async def delete_namespace(
    namespace_id: str,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_DELETE))],
    resource_version: Annotated[str | None, Query()] = None,
    async_operation_id: Annotated[str | None, Query()] = None,
) -> NamespaceOperation:
    """Delete a namespace: traffic stops at the gateway first, then the cell drops it. Refused
    (409 ``delete-protected``) while its delete protection is on."""
    namespace, operation = await service.delete(
        session,
        principal,
        starter,
        namespace_id=namespace_id,
        resource_version=resource_version,
        async_operation_id=async_operation_id,
    )
    return _out(namespace, operation, settings)


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
    settings: SettingsDep,
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
    return _out(namespace, operation, settings)


@router.post("/{namespace_id}/tags", response_model=NamespaceOut, responses=Problems)
async def update_namespace_tags(
    namespace_id: str,
    body: NamespaceTagsUpdate,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_UPDATE))],
) -> NamespaceOut:
    """Set (``tags_to_upsert``) and remove (``tags_to_remove``) tags. Takes effect at once:
    tags live in the control plane (and its usage exports), never on the cell."""
    namespace = await service.update_tags(
        session,
        principal,
        namespace_id=namespace_id,
        upsert=body.tags_to_upsert,
        remove=body.tags_to_remove,
    )
    return namespace_out(namespace, settings)
