"""``/scim/v2``: the account's SCIM 2.0 service provider (authenticated by its SCIM token,
which names the account), and ``/api/v1/scim-token`` to manage that token."""

from __future__ import annotations

import json
from typing import Annotated, Any

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

SCIM_BASE = "/scim/v2"


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


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + SCIM_BASE


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
    return _scim(resources.service_provider_config(_base(request)))


@router.get("/ResourceTypes")
async def resource_types(request: Request, _: ScimPrincipal) -> Response:
    found = resources.resource_types(_base(request))
    return _scim(resources.list_response(found, len(found), 1))


@router.get("/ResourceTypes/{name}")
async def resource_type(name: str, request: Request, _: ScimPrincipal) -> Response:
    for found in resources.resource_types(_base(request)):
        if found["id"] == name:
            return _scim(found)
    raise NotFound(f"no resource type {name}")


@router.get("/Schemas")
async def schemas(request: Request, _: ScimPrincipal) -> Response:
    found = resources.schemas(_base(request))
    return _scim(resources.list_response(found, len(found), 1))


@router.get("/Schemas/{schema_id}")
async def schema(schema_id: str, request: Request, _: ScimPrincipal) -> Response:
    for found in resources.schemas(_base(request)):
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
    base = _base(request)
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


# Users


@router.get("/Users")
async def list_users(
    request: Request,
    session: SessionDep,
    principal: ScimPrincipal,
    filter_text: Filter = None,
    start_index: StartIndex = None,
    count: Count = None,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    found = await service.list_users(
        session, principal, filter_text=filter_text, start_index=start_index, count=count
    )
    return _listed(request, found, attributes, excluded)


@router.post("/Users/.search")
async def search_users(request: Request, session: SessionDep, principal: ScimPrincipal) -> Response:
    query = service.search_request(await _document(request))
    found = await service.list_users(
        session,
        principal,
        filter_text=query.filter_text,
        start_index=query.start_index,
        count=query.count,
    )
    return _listed(request, found, query.attributes, query.excluded)


@router.post("/Users")
async def create_user(request: Request, session: SessionDep, principal: ScimPrincipal) -> Response:
    user = await service.create_user(session, principal, await _document(request))
    body = resources.user_resource(user, _base(request))
    return _scim(body, 201, {"Location": body["meta"]["location"]})


@router.get("/Users/{user_id}")
async def get_user(
    user_id: str,
    request: Request,
    session: SessionDep,
    principal: ScimPrincipal,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    user = await service.get_user(session, principal, user_id)
    return _scim(
        resources.project(resources.user_resource(user, _base(request)), attributes, excluded)
    )


@router.put("/Users/{user_id}")
async def replace_user(
    user_id: str, request: Request, session: SessionDep, principal: ScimPrincipal
) -> Response:
    user = await service.replace_user(session, principal, user_id, await _document(request))
    return _scim(resources.user_resource(user, _base(request)))


@router.patch("/Users/{user_id}")
async def patch_user(
    user_id: str, request: Request, session: SessionDep, principal: ScimPrincipal
) -> Response:
    user = await service.patch_user(session, principal, user_id, await _operations(request))
    return _scim(resources.user_resource(user, _base(request)))


@router.delete("/Users/{user_id}", status_code=204)
async def delete_user(user_id: str, session: SessionDep, principal: ScimPrincipal) -> Response:
    await service.delete_user(session, principal, user_id)
    return Response(status_code=204)


# Groups


@router.get("/Groups")
async def list_groups(
    request: Request,
    session: SessionDep,
    principal: ScimPrincipal,
    filter_text: Filter = None,
    start_index: StartIndex = None,
    count: Count = None,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    found = await service.list_groups(
        session, principal, filter_text=filter_text, start_index=start_index, count=count
    )
    return _listed(request, found, attributes, excluded)


@router.post("/Groups/.search")
async def search_groups(
    request: Request, session: SessionDep, principal: ScimPrincipal
) -> Response:
    query = service.search_request(await _document(request))
    found = await service.list_groups(
        session,
        principal,
        filter_text=query.filter_text,
        start_index=query.start_index,
        count=query.count,
    )
    return _listed(request, found, query.attributes, query.excluded)


@router.post("/Groups")
async def create_group(request: Request, session: SessionDep, principal: ScimPrincipal) -> Response:
    view = await service.create_group(session, principal, await _document(request))
    body = resources.group_resource(view, _base(request))
    return _scim(body, 201, {"Location": body["meta"]["location"]})


@router.get("/Groups/{group_id}")
async def get_group(
    group_id: str,
    request: Request,
    session: SessionDep,
    principal: ScimPrincipal,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    view = await service.get_group(session, principal, group_id)
    return _scim(
        resources.project(resources.group_resource(view, _base(request)), attributes, excluded)
    )


@router.put("/Groups/{group_id}")
async def replace_group(
    group_id: str, request: Request, session: SessionDep, principal: ScimPrincipal
) -> Response:
    view = await service.replace_group(session, principal, group_id, await _document(request))
    return _scim(resources.group_resource(view, _base(request)))


@router.patch("/Groups/{group_id}")
async def patch_group(
    group_id: str, request: Request, session: SessionDep, principal: ScimPrincipal
) -> Response:
    view = await service.patch_group(session, principal, group_id, await _operations(request))
    return _scim(resources.group_resource(view, _base(request)))


@router.delete("/Groups/{group_id}", status_code=204)
async def delete_group(group_id: str, session: SessionDep, principal: ScimPrincipal) -> Response:
    await service.delete_group(session, principal, group_id)
    return Response(status_code=204)


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
        scim_base_url=_base(request),
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
        return ScimTokenOut(exists=False, scim_base_url=_base(request))
    return ScimTokenOut(
        exists=True,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        scim_base_url=_base(request),
    )


@token_router.delete("", status_code=204, responses=Problems)
async def delete_scim_token(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SCIM_TOKEN_MANAGE))],
) -> Response:
    """Turn SCIM off: the token stops working at once."""
    await tokens.delete(session, principal)
    return Response(status_code=204)
