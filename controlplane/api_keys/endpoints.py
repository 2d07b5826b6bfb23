"""API keys of users and service accounts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.api_keys import service
from controlplane.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from controlplane.kit.deps import SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.states import ApiKeyState

router = APIRouter(route_class=ApiRoute, prefix="/api-keys", tags=["api-keys"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


@router.post("", status_code=201, response_model=ApiKeyCreated, responses=Problems)
async def create_api_key(
    body: ApiKeyCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.API_KEY_CREATE))],
) -> ApiKeyCreated:
    """Issue a key for the caller (or, for admins, a service account). The token is in this
    answer only; each principal may hold up to its account's ``api_keys_per_principal`` quota
    of unexpired keys (default 20, disabled ones included)."""
    api_key, token = await service.create(
        session,
        principal,
        display_name=body.display_name,
        expiry=body.expiry,
        owner_type=body.owner_type,
        owner_id=body.owner_id,
    )
    return ApiKeyCreated(api_key=ApiKeyOut.model_validate(api_key), token=token)


@router.get("", response_model=ApiKeyList, responses=Problems)
async def list_api_keys(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.API_KEY_READ))],
    page: PageDep,
    owner_id: Annotated[str | None, Query(description="Only this owner's keys")] = None,
    state: Annotated[ApiKeyState | None, Query(description="Only enabled or disabled keys")] = None,
) -> ApiKeyList:
    """All keys of the account for owners and admins; the caller's own for everyone else.
    Newest first, a page at a time."""
    found = await service.page(session, principal, page, owner_id=owner_id, state=state)
    return ApiKeyList(
        api_keys=[ApiKeyOut.model_validate(key) for key in found.rows],
        next_page_token=found.next_page_token,
    )


@router.get("/{api_key_id}", response_model=ApiKeyOut, responses=Problems)
async def get_api_key(
    api_key_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.API_KEY_READ))],
) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.get(session, principal, api_key_id))


@router.post("/{api_key_id}/disable", response_model=ApiKeyOut, responses=Problems)
async def disable_api_key(
    api_key_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.API_KEY_UPDATE))],
) -> ApiKeyOut:
    """The key stops authenticating at once."""
    api_key = await service.set_disabled(session, principal, key_id=api_key_id, disabled=True)
    return ApiKeyOut.model_validate(api_key)


@router.post("/{api_key_id}/enable", response_model=ApiKeyOut, responses=Problems)
async def enable_api_key(
    api_key_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.API_KEY_UPDATE))],
) -> ApiKeyOut:
    api_key = await service.set_disabled(session, principal, key_id=api_key_id, disabled=False)
    return ApiKeyOut.model_validate(api_key)


@router.delete("/{api_key_id}", status_code=204, response_class=Response, responses=Problems)
async def delete_api_key(
    api_key_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.API_KEY_DELETE))],
) -> Response:
    """Delete the key; it stops authenticating at once."""
    await service.delete(session, principal, key_id=api_key_id)
    return Response(status_code=204)
