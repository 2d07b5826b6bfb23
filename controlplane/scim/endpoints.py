"""``/scim/v2``: the account's SCIM 2.0 service provider (authenticated by its SCIM token,
which names the account), and ``/api/v1/scim-token`` to manage that token."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from auth import Action, Principal
from controlplane.api.deps import refuse_writes_while_suspended, requires
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import NotFound
from controlplane.kit.routing import ApiRoute
from controlplane.models import User
from controlplane.scim import resources, service, tokens
from controlplane.scim.errors import SCIM_CONTENT_TYPE, InvalidSyntax
from controlplane.scim.schemas import ScimTokenCreated, ScimTokenOut
from controlplane.scim.service import SearchRequest

SCIM_BASE = "/scim/v2"
# A resource of one SCIM resource type.
R = TypeVar("R", User, service.GroupView)


async def _scim_principal(request: Request, session: SessionDep) -> Principal:
    principal = await tokens.authenticate(session, request.headers.get("authorization"))
    await refuse_writes_while_suspended(request, session, principal)
    return principal


ScimPrincipal = Annotated[Principal, Depends(_scim_principal)]
StartIndex = Annotated[int | None, Query(alias="startIndex")]
Count = Annotated[int | None, Query()]
Filter = Annotated[str | None, Query(alias="filter")]
Attributes = Annotated[str | None, Query()]
Excluded = Annotated[str | None, Query(alias="excludedAttributes")]

# Not in the OpenAPI document: SCIM describes itself (ServiceProviderConfig, ResourceTypes,
# Schemas) and answers SCIM errors, not the problem+json every /api/v1 route documents.
router = APIRouter(prefix=SCIM_BASE, tags=["scim"], include_in_schema=False)


def scim_base_url(request: Request) -> str:
    """The SCIM base URL as identity providers know it (resources' ``meta.location``, the
    token's answer): the configured public URL, never the request's Host header (the console
    shows the same)."""
    base: str = request.app.state.settings.public_base_url
    return base + SCIM_BASE


def _scim(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=SCIM_CONTENT_TYPE, headers=headers)


async def _document(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as error:
        raise InvalidSyntax(f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidSyntax("the body must be a JSON object")
    lowered: dict[str, Any] = service.lowered(body)
    return lowered


async def _operations(request: Request) -> list[dict[str, Any]]:
    body = await _document(request)
    operations = body.get("operations")
    if not isinstance(operations, list):
        raise InvalidSyntax("a PATCH body is a PatchOp with a list of Operations")
    return operations


# Discovery


@router.get("/ServiceProviderConfig")
async def service_provider_config(request: Request, _: ScimPrincipal) -> Response:
    return _scim(resources.service_provider_config(scim_base_url(request)))


@router.get("/ResourceTypes")
async def resource_types(request: Request, _: ScimPrincipal) -> Response:
    found = resources.resource_types(scim_base_url(request))
    return _scim(resources.list_response(found, len(found), 1))


@router.get("/ResourceTypes/{name}")
async def resource_type(name: str, request: Request, _: ScimPrincipal) -> Response:
    for found in resources.resource_types(scim_base_url(request)):
        if found["id"] == name:
            return _scim(found)
    raise NotFound(f"no resource type {name}")


@router.get("/Schemas")
async def schemas(request: Request, _: ScimPrincipal) -> Response:
    found = resources.schemas(scim_base_url(request))
    return _scim(resources.list_response(found, len(found), 1))


@router.get("/Schemas/{schema_id}")
async def schema(schema_id: str, request: Request, _: ScimPrincipal) -> Response:
    for found in resources.schemas(scim_base_url(request)):
        if found["id"] == schema_id:
            return _scim(found)
    raise NotFound(f"no schema {schema_id}")


def _resource(row: User | service.GroupView, base: str) -> dict[str, Any]:
    if isinstance(row, User):
        return resources.user_resource(row, base)
    return resources.group_resource(row, base)


def _listed(
    request: Request,
    found: service.Page[User]
    | service.Page[service.GroupView]
    | service.Page[User | service.GroupView],
    attributes: str | None,
    excluded: str | None,
) -> Response:
    base = scim_base_url(request)
    rows = [resources.project(_resource(row, base), attributes, excluded) for row in found.rows]
    return _scim(resources.list_response(rows, found.total, found.start_index))


@router.post("/.search")
async def search_everything(
    request: Request, session: SessionDep, principal: ScimPrincipal
) -> Response:
    """RFC 7644 §3.4.3 at the root: the account's users, then its groups."""
    query = service.search_request(await _document(request))
    found = await service.search(session, principal, query)
    return _listed(request, found, query.attributes, query.excluded)


# Users and Groups: the same routes serve both resource types.


def _list_query(
    filter_text: Filter = None,
    start_index: StartIndex = None,
    count: Count = None,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> SearchRequest:
    """A GET list's query parameters: the query a ``POST .search`` body gives."""
    return SearchRequest(filter_text, start_index, count, attributes, excluded)


ListQuery = Annotated[SearchRequest, Depends(_list_query)]


def _projection(
    attributes: Attributes = None, excluded: Excluded = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A GET of one resource: what ``attributes`` and ``excludedAttributes`` keep of it."""
    return partial(resources.project, attributes=attributes, excluded=excluded)


Projection = Annotated[Callable[[dict[str, Any]], dict[str, Any]], Depends(_projection)]


def _resource_id(request: Request) -> str:
    """The id of a ``/Users/{user_id}`` or ``/Groups/{group_id}`` path (its one parameter)."""
    (value,) = request.path_params.values()
    return str(value)


ResourceId = Annotated[str, Depends(_resource_id)]


def _add_routes(
    noun: str, kind: service.Operations[R], render: Callable[[R, str], dict[str, Any]]
) -> None:
    """Register the list, search, create, get, replace, patch and delete routes of the resource
    type ``noun`` (``user``: at ``/Users`` and ``/Users/{user_id}``), which call ``kind`` and
    answer ``render`` of its resources."""
    endpoint = f"/{noun.capitalize()}s"
    one = f"{endpoint}/{{{noun}_id}}"
    plural = f"{noun}s"

    async def list_resources(
        request: Request, session: SessionDep, principal: ScimPrincipal, query: ListQuery
    ) -> Response:
        found = await kind.page(session, principal, query)
        return _listed(request, found, query.attributes, query.excluded)

    async def search_resources(
        request: Request, session: SessionDep, principal: ScimPrincipal
    ) -> Response:
        """RFC 7644 §3.4.3: the list's query in a SearchRequest body."""
        return await list_resources(
            request, session, principal, service.search_request(await _document(request))
        )

    async def create_resource(
        request: Request, session: SessionDep, principal: ScimPrincipal
    ) -> Response:
        row = await kind.create(session, principal, await _document(request))
        body = render(row, scim_base_url(request))
        return _scim(body, 201, {"Location": body["meta"]["location"]})

    async def get_resource(
        resource_id: ResourceId,
        request: Request,
        session: SessionDep,
        principal: ScimPrincipal,
        project: Projection,
    ) -> Response:
        row = await kind.get(session, principal, resource_id)
        return _scim(project(render(row, scim_base_url(request))))

    async def replace_resource(
        resource_id: ResourceId, request: Request, session: SessionDep, principal: ScimPrincipal
    ) -> Response:
        row = await kind.replace(session, principal, resource_id, await _document(request))
        return _scim(render(row, scim_base_url(request)))

    async def patch_resource(
        resource_id: ResourceId, request: Request, session: SessionDep, principal: ScimPrincipal
    ) -> Response:
        row = await kind.patch(session, principal, resource_id, await _operations(request))
        return _scim(render(row, scim_base_url(request)))

    async def delete_resource(
        resource_id: ResourceId, session: SessionDep, principal: ScimPrincipal
    ) -> Response:
        await kind.delete(session, principal, resource_id)
        return Response(status_code=204)

    router.get(endpoint, name=f"list_{plural}")(list_resources)
    router.post(f"{endpoint}/.search", name=f"search_{plural}")(search_resources)
    router.post(endpoint, name=f"create_{noun}")(create_resource)
    router.get(one, name=f"get_{noun}")(get_resource)
    router.put(one, name=f"replace_{noun}")(replace_resource)
    router.patch(one, name=f"patch_{noun}")(patch_resource)
    router.delete(one, name=f"delete_{noun}", status_code=204)(delete_resource)


_add_routes("user", service.USERS, resources.user_resource)
_add_routes("group", service.GROUPS, resources.group_resource)


# The SCIM routes authenticate with the SCIM token themselves (no account principal).
SCIM_PATHS = frozenset(getattr(route, "path", "") for route in router.routes)


# /api/v1/scim-token

token_router = APIRouter(route_class=ApiRoute, prefix="/scim-token", tags=["scim"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


@token_router.post("", status_code=201, response_model=ScimTokenCreated, responses=Problems)
async def create_scim_token(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SCIM_TOKEN_MANAGE))],
) -> ScimTokenCreated:
    """A new SCIM token (in this answer only); the previous one stops working at once."""
    row, token = await tokens.create(session, principal)
    return ScimTokenCreated(
        exists=True,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        scim_base_url=scim_base_url(request),
        token=token,
    )


@token_router.get("", response_model=ScimTokenOut, responses=Problems)
async def get_scim_token(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SCIM_TOKEN_MANAGE))],
) -> ScimTokenOut:
    """Whether the account has a SCIM token, when it was made and last used (never the token)."""
    row = await tokens.get(session, principal)
    if row is None:
        return ScimTokenOut(exists=False, scim_base_url=scim_base_url(request))
    return ScimTokenOut(
        exists=True,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        scim_base_url=scim_base_url(request),
    )


@token_router.delete("", status_code=204, responses=Problems)
async def delete_scim_token(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SCIM_TOKEN_MANAGE))],
) -> Response:
    """Turn SCIM off: the token stops working at once."""
    await tokens.delete(session, principal)
    return Response(status_code=204)
