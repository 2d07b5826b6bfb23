"""User groups of the caller's account, their members and namespace permissions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, Action, Principal
from controlplane.access import service as access
from controlplane.api.deps import requires
from controlplane.groups import service
from controlplane.groups.schemas import (
    GroupAccessSet,
    GroupCreate,
    GroupList,
    GroupMemberList,
    GroupMemberOut,
    GroupMembersChange,
    GroupNamespacePermissionOut,
    GroupOut,
    GroupUpdate,
    MemberSource,
)
from controlplane.kit.deps import SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import UserGroup

router = APIRouter(route_class=ApiRoute, tags=["groups"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


async def _out(
    session: AsyncSession, principal: Principal, groups: list[UserGroup]
) -> list[GroupOut]:
    permissions = await service.namespace_permissions(session, principal, groups)
    counts = await service.member_counts(session, principal, groups)
    return [
        GroupOut(
            id=group.id,
            name=group.name,
            description=group.description,
            account_role=AccountRole(group.account_role) if group.account_role else None,
            external_id=group.external_id,
            member_count=counts[group.id],
            namespace_permissions=[
                GroupNamespacePermissionOut(
                    namespace_id=row.namespace_id, permission=row.permission
                )
                for row in access.readable(principal, permissions[group.id])
            ],
            resource_version=group.resource_version,
            created_at=group.created_at,
            updated_at=group.updated_at,
        )
        for group in groups
    ]


@router.post("/groups", status_code=201, response_model=GroupOut, responses=Problems)
async def create_group(
    body: GroupCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_CREATE))],
) -> GroupOut:
    """Create a user group with an optional account role (never owner; only roles the caller
    holds entirely)."""
    group = await service.create(
        session,
        principal,
        name=body.name,
        description=body.description,
        account_role=body.account_role,
    )
    return (await _out(session, principal, [group]))[0]


@router.get("/groups", response_model=GroupList, responses=Problems)
async def list_groups(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_READ))],
    page: PageDep,
    name: Annotated[str | None, Query(description="Only groups whose name starts so")] = None,
) -> GroupList:
    """The account's groups by name, a page at a time."""
    found = await service.page(session, principal, page, name=name)
    return GroupList(
        groups=await _out(session, principal, found.rows), next_page_token=found.next_page_token
    )


@router.get("/groups/{group_id}", response_model=GroupOut, responses=Problems)
async def get_group(
    group_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_READ))],
) -> GroupOut:
    group = await service.get(session, principal, group_id)
    return (await _out(session, principal, [group]))[0]


@router.post("/groups/{group_id}", response_model=GroupOut, responses=Problems)
async def update_group(
    group_id: str,
    body: GroupUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_UPDATE))],
) -> GroupOut:
    """Change the group's name, description or account role (``null`` removes the role);
    fields left out keep their value."""
    group = await service.update(
        session,
        principal,
        group_id=group_id,
        name=body.name,
        description=body.description,
        account_role=body.account_role
        if "account_role" in body.model_fields_set
        else service.UNCHANGED,
        resource_version=body.resource_version,
    )
    return (await _out(session, principal, [group]))[0]


@router.delete("/groups/{group_id}", status_code=204, response_class=Response, responses=Problems)
async def delete_group(
    group_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_DELETE))],
    resource_version: Annotated[str | None, Query()] = None,
) -> Response:
    """Remove the group with its memberships and namespace permissions."""
    await service.delete(session, principal, group_id=group_id, resource_version=resource_version)
    return Response(status_code=204)


@router.get("/groups/{group_id}/members", response_model=GroupMemberList, responses=Problems)
async def list_group_members(
    group_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_READ))],
    page: PageDep,
) -> GroupMemberList:
    """The group's members by email, a page at a time."""
    found, memberships = await service.members_page(session, principal, group_id, page)
    return GroupMemberList(
        members=[
            GroupMemberOut(
                user_id=user.id,
                email=user.email,
                source=MemberSource(memberships[user.id].source),
            )
            for user in found.rows
        ],
        next_page_token=found.next_page_token,
    )


@router.post("/groups/{group_id}/members", response_model=GroupOut, responses=Problems)
async def update_group_members(
    group_id: str,
    body: GroupMembersChange,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.GROUP_UPDATE))],
) -> GroupOut:
    """Add and remove members by user id (idempotent); an id that is not a user of the
    account is refused (404 naming it) and nothing changes."""
    group = await service.change_members(
        session, principal, group_id=group_id, add=body.add, remove=body.remove
    )
    return (await _out(session, principal, [group]))[0]


@router.post(
    "/namespaces/{namespace_id}/groups/{group_id}/access",
    response_model=GroupOut,
    responses=Problems,
)
async def set_group_namespace_access(
    namespace_id: str,
    group_id: str,
    body: GroupAccessSet,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_ACCESS_UPDATE))],
) -> GroupOut:
    """Set the group's permission on the namespace (admin, write, read), or remove it (null).
    Account owners and admins, and admins of the namespace, may do this."""
    group = await service.set_namespace_access(
        session,
        principal,
        namespace_id=namespace_id,
        group_id=group_id,
        permission=body.permission,
    )
    return (await _out(session, principal, [group]))[0]
