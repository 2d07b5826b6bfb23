from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.identity.schemas import CurrentIdentity
from controlplane.kit.routing import ApiRoute
from controlplane.users.schemas import NamespacePermissionOut

router = APIRouter(route_class=ApiRoute, tags=["identity"])


@router.get("/current-identity", response_model=CurrentIdentity, responses={401: {}})
async def current_identity(
    principal: Annotated[Principal, Depends(requires(Action.IDENTITY_READ))],
) -> CurrentIdentity:
    """The calling principal: kind, account, role and namespace permissions."""
    return CurrentIdentity(
        kind=principal.kind,
        id=principal.id,
        account_id=principal.account_id,
        account_role=principal.account_role,
        group_roles=sorted(principal.group_roles),
        display=principal.display,
        api_key_id=principal.api_key_id,
        namespace_scope=principal.namespace_scope,
        namespace_permissions=[
            NamespacePermissionOut(namespace_id=namespace_id, permission=permission)
            for namespace_id, permission in sorted(principal.namespace_permissions.items())
        ],
    )
