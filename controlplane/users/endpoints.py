"""Users of the caller's account and their namespace permissions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, authorize
from controlplane.access import service as access
from controlplane.api.deps import requires
from controlplane.groups import service as groups
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import User
from controlplane.users import service
from controlplane.users.schemas import (
    NamespaceAccessSet,
    NamespacePermissionOut,
    UserGroupRef,
    UserInvite,
    UserList,
    UserOut,
    UserUpdate,
)

router = APIRouter(route_class=ApiRoute, tags=["users"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


async def _out(session: AsyncSession, principal: Principal, users: list[User]) -> list[UserOut]:
    permissions = await service.namespace_permissions(session, principal, users)
    memberships = (
        await groups.groups_of(session, principal, [user.id for user in users])
        if authorize(principal, Action.GROUP_READ)
        else {}
    )
    return [
        UserOut(
            id=user.id,
            email=user.email,
            account_role=user.account_role,
            namespace_permissions=[
                NamespacePermissionOut(namespace_id=row.namespace_id, permission=row.permission)
                for row in access.readable(principal, permissions[user.id])
            ],
            groups=[
                UserGroupRef(id=group.id, name=group.name) for group in memberships.get(user.id, [])
            ],
            resource_version=user.resource_version,
            invitation_expires_at=user.invitation_expires_at,
            accepted_at=user.accepted_at,
            active=user.active,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
        for user in users
    ]


@router.post("/users", status_code=201, response_model=UserOut, responses=Problems)
async def invite_user(
    body: UserInvite,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.USER_CREATE))],
) -> UserOut:
    """Invite a user by email with an account role; only owners may invite owners. The
    invitation expires after ``STRATUS_INVITATION_LIFETIME_DAYS`` (7) unless the user signs
    in."""
    user = await service.invite(
        session,
        principal,
        email=body.email,
        account_role=body.account_role,
        lifetime=dt.timedelta(days=settings.invitation_lifetime_days),
    )
    return (await _out(session, principal, [user]))[0]


@router.post("/users/{user_id}/invitation", response_model=UserOut, responses=Problems)
async def resend_invitation(
    user_id: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.USER_CREATE))],
) -> UserOut:
    """Resend a pending invitation: a new expiry, from now (409 once the user signed in)."""
    user = await service.resend_invitation(
        session,
        principal,
        user_id=user_id,
        lifetime=dt.timedelta(days=settings.invitation_lifetime_days),
    )
    return (await _out(session, principal, [user]))[0]


@router.get("/users", response_model=UserList, responses=Problems)
async def list_users(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.USER_READ))],
    page: PageDep,
    email: Annotated[str | None, Query(description="Only the user with this email")] = None,
) -> UserList:
    """The account's users by email, a page at a time."""
    found = await service.page(session, principal, page, email=email)
    return UserList(
        users=await _out(session, principal, found.rows), next_page_token=found.next_page_token
    )


@router.get("/users/{user_id}", response_model=UserOut, responses=Problems)
async def get_user(
    user_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.USER_READ))],
) -> UserOut:
    user = await service.get(session, principal, user_id)
    return (await _out(session, principal, [user]))[0]


@router.post("/users/{user_id}", response_model=UserOut, responses=Problems)
async def update_user(
    user_id: str,
    body: UserUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.USER_UPDATE))],
) -> UserOut:
    """Change the user's account role. The last owner cannot be demoted (409 last-owner)."""
    user = await service.update(
        session,
        principal,
        user_id=user_id,
        resource_version=body.resource_version,
        account_role=body.account_role,
    )
    return (await _out(session, principal, [user]))[0]


@router.delete("/users/{user_id}", status_code=204, response_class=Response, responses=Problems)
async def delete_user(
    user_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.USER_DELETE))],
    resource_version: Annotated[str | None, Query()] = None,
) -> Response:
    """Remove the user, their API keys and namespace permissions. The last owner cannot be
    removed (409 last-owner)."""
    await service.delete(session, principal, user_id=user_id, resource_version=resource_version)
    return Response(status_code=204)


@router.post(
    "/namespaces/{namespace_id}/users/{user_id}/access",
    response_model=UserOut,
    responses=Problems,
)
async def set_user_namespace_access(
    namespace_id: str,
    user_id: str,
    body: NamespaceAccessSet,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_ACCESS_UPDATE))],
) -> UserOut:
    """Set the user's permission on the namespace (admin, write, read), or remove it (null).
    Account owners and admins, and admins of the namespace, may do this."""
    user = await service.set_namespace_access(
        session,
        principal,
        namespace_id=namespace_id,
        user_id=user_id,
        permission=body.permission,
    )
    return (await _out(session, principal, [user]))[0]
