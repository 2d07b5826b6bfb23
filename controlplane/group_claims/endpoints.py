"""The account's group claims: which IdP groups become which user groups at sign-in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.group_claims import service
from controlplane.group_claims.schemas import GroupClaimMappingOut, GroupClaimsOut, GroupClaimsSet
from controlplane.kit.deps import SessionDep
from controlplane.kit.routing import ApiRoute

router = APIRouter(route_class=ApiRoute, prefix="/group-claims", tags=["groups"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


def _out(claims: service.GroupClaims) -> GroupClaimsOut:
    return GroupClaimsOut(
        account_id=claims.config.account_id,
        oidc_claim=claims.config.oidc_claim,
        saml_attribute=claims.config.saml_attribute,
        mappings=[
            GroupClaimMappingOut(
                idp_group=mapping.idp_group, group_id=mapping.group_id, group_name=name
            )
            for mapping, name in claims.mappings
        ],
        updated_at=claims.config.updated_at,
    )


@router.get("", response_model=GroupClaimsOut, responses=Problems)
async def get_group_claims(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_CLAIMS_MANAGE))],
) -> GroupClaimsOut:
    """The account's group claims (404 when they are off)."""
    return _out(await service.get(session, principal))


@router.put("", response_model=GroupClaimsOut, responses=Problems)
async def put_group_claims(
    body: GroupClaimsSet,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_CLAIMS_MANAGE))],
) -> GroupClaimsOut:
    """Replace the whole configuration. From the next sign-in on, a user's ``idp``
    memberships are exactly the groups its IdP's claim (OIDC) or attribute (SAML) maps to; an
    absent claim means no groups. ``manual`` and ``scim`` memberships are never touched. A
    group of another account, or none, answers 404 naming it."""
    return _out(await service.put(session, principal, body))


@router.delete("", status_code=204, responses=Problems)
async def delete_group_claims(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_CLAIMS_MANAGE))],
) -> Response:
    """Turn group claims off: sign-ins no longer change memberships."""
    await service.delete(session, principal)
    return Response(status_code=204)
