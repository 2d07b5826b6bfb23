from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from auth import Action, Principal
from controlplane.accounts import service
from controlplane.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    AccountOut,
    ApiKeySecretOut,
    UserOut,
)
from controlplane.api.deps import requires
from controlplane.kit.deps import SessionDep
from controlplane.kit.routing import ApiRoute

router = APIRouter(route_class=ApiRoute, prefix="/accounts", tags=["accounts"])


@router.post(
    "", status_code=201, response_model=AccountCreated, responses={400: {}, 401: {}, 403: {}}
)
async def create_account(
    body: AccountCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_CREATE))],
) -> AccountCreated:
    """Operator only. Returns the owner's API key once; it is stored only as a hash."""
    account, owner, api_key, token = await service.create(
        session, principal, name=body.name, owner_email=body.owner_email
    )
    return AccountCreated(
        account=AccountOut.model_validate(account),
        owner=UserOut.model_validate(owner),
        owner_api_key=ApiKeySecretOut(id=api_key.id, token=token, expires_at=api_key.expires_at),
    )
