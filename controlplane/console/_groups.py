"""The user groups pages: list and create, and a group's detail (name, description, account
role, members added and removed, namespace permissions, deletion).

Every read and write goes through ``controlplane.groups.service`` — what the API's endpoints
call — so the policy (no one gives a group more than it holds), the tenant scoping and the
audit events are the API's own."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, Action, NamespacePermission
from controlplane.console._people import (
    _confirm_deletion,
    _namespace_grants,
    _page,
    _submit,
    _submit_access,
    _submit_deletion,
)
from controlplane.console._session import CurrentViewer, Viewer
from controlplane.groups import service as groups
from controlplane.kit.authorization import require
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import InvalidField, StratusError
from controlplane.models import UserGroup
from controlplane.users import service as users

router = APIRouter(include_in_schema=False)


def _group_role(value: str) -> AccountRole | None:
    """The form's role: "" is none."""
    if not value:
        return None
    try:
        return AccountRole(value)
    except ValueError:
        raise InvalidField("choose an account role or none", field="account_role") from None


async def _group_list(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    *,
    values: dict[str, str] | None = None,
    error: StratusError | None = None,
) -> Response:
    require(viewer.principal, Action.GROUP_READ)
    found = await groups.list_all(session, viewer.principal)
    return _page(
        request,
        viewer,
        "groups.html",
        error=error,
        groups=found,
        counts=await groups.member_counts(session, viewer.principal, found),
        permissions=await groups.namespace_permissions(session, viewer.principal, found),
        values=values or {"name": "", "description": "", "account_role": ""},
        roles=groups.grantable_roles(viewer.principal),
        may_create=viewer.may(Action.GROUP_CREATE),
    )


@router.get("/groups")
async def group_list(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    return await _group_list(request, viewer, session)


@router.post("/groups")
async def group_create(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    account_role: Annotated[str, Form()] = "",
) -> Response:
    """Create a group, as ``POST /api/v1/groups`` does."""
    require(viewer.principal, Action.GROUP_CREATE)
    values = {"name": name, "description": description, "account_role": account_role}

    async def create() -> UserGroup:
        return await groups.create(
            session,
            viewer.principal,
            name=name,
            description=description,
            account_role=_group_role(account_role),
        )

    return await _submit(
        session,
        create,
        done=lambda group: f"/groups/{group.id}",
        form=partial(_group_list, request, viewer, session, values=values),
        fields={"account_role": "account_role", "name": "name", "description": "description"},
    )


async def _group_detail(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    group_id: str,
    *,
    error: StratusError | None = None,
) -> Response:
    group = await groups.get(session, viewer.principal, group_id)
    members = await groups.members(session, viewer.principal, group.id)
    member_ids = {user.id for user, _ in members}
    rows = (await groups.namespace_permissions(session, viewer.principal, [group]))[group.id]
    roles = groups.grantable_roles(viewer.principal)
    may_change = viewer.may(Action.GROUP_UPDATE) and (
        group.account_role is None or AccountRole(group.account_role) in roles
    )
    return _page(
        request,
        viewer,
        "group_detail.html",
        error=error,
        group=group,
        members=members,
        candidates=[
            user
            for user in await users.list_all(session, viewer.principal)
            if user.id not in member_ids
        ],
        namespaces=await _namespace_grants(session, viewer, rows),
        roles=roles,
        permissions=list(NamespacePermission),
        may_change=may_change,
        may_delete=may_change and viewer.may(Action.GROUP_DELETE),
    )


@router.get("/groups/{group_id}")
async def group_detail(
    request: Request, group_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    return await _group_detail(request, viewer, session, group_id)


@router.post("/groups/{group_id}")
async def group_update(
    request: Request,
    group_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    resource_version: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    account_role: Annotated[str, Form()] = "",
) -> Response:
    """Change the group's name, description and role, as ``POST /api/v1/groups/{id}``."""
    require(viewer.principal, Action.GROUP_UPDATE)

    async def update() -> UserGroup:
        return await groups.update(
            session,
            viewer.principal,
            group_id=group_id,
            name=name,
            description=description,
            account_role=_group_role(account_role),
            resource_version=resource_version,
        )

    return await _submit(
        session,
        update,
        done=lambda _: f"/groups/{group_id}",
        form=partial(_group_detail, request, viewer, session, group_id),
        fields={"account_role": "account_role", "name": "name", "description": "description"},
    )


@router.post("/groups/{group_id}/members")
async def group_members(
    request: Request,
    group_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    add: Annotated[str, Form()] = "",
    remove: Annotated[str, Form()] = "",
) -> Response:
    """Add or remove one member, as ``POST /api/v1/groups/{id}/members`` does."""
    require(viewer.principal, Action.GROUP_UPDATE)

    async def change() -> UserGroup:
        if not add and not remove:
            raise InvalidField("choose a user to add", field="add")
        return await groups.change_members(
            session,
            viewer.principal,
            group_id=group_id,
            add=[add] if add else [],
            remove=[remove] if remove else [],
        )

    return await _submit(
        session,
        change,
        done=lambda _: f"/groups/{group_id}",
        form=partial(_group_detail, request, viewer, session, group_id),
        fields={"add": "add"},
    )


@router.post("/groups/{group_id}/access")
async def group_access(
    request: Request,
    group_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    namespace_id: Annotated[str, Form()] = "",
    permission: Annotated[str, Form()] = "",
) -> Response:
    """Grant (read, write, admin) or revoke ("") the group's permission on one namespace, as
    ``POST /api/v1/namespaces/{id}/groups/{group_id}/access`` does."""
    require(viewer.principal, Action.NAMESPACE_ACCESS_UPDATE)
    return await _submit_access(
        session,
        permission,
        lambda granted: groups.set_namespace_access(
            session,
            viewer.principal,
            namespace_id=namespace_id,
            group_id=group_id,
            permission=granted,
        ),
        done=f"/groups/{group_id}",
        form=partial(_group_detail, request, viewer, session, group_id),
        fields={"permission": "permission"},
    )


def _confirm_group_deletion(
    request: Request, viewer: Viewer, group: UserGroup, *, error: StratusError | None = None
) -> Response:
    return _confirm_deletion(
        request,
        viewer,
        error=error,
        heading=f"Delete group {group.name}?",
        explanation=(
            "Its members lose at once what they held only through it: its account role and "
            "its namespace permissions. The users themselves stay."
        ),
        action=f"/groups/{group.id}/delete",
        resource_version=group.resource_version,
        confirm_label="Delete group",
        cancel=f"/groups/{group.id}",
    )


@router.get("/groups/{group_id}/delete")
async def group_delete_confirm(
    request: Request, group_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    group = await groups.get(session, viewer.principal, group_id)
    require(viewer.principal, Action.GROUP_DELETE)
    return _confirm_group_deletion(request, viewer, group)


@router.post("/groups/{group_id}/delete")
async def group_delete(
    request: Request,
    group_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    resource_version: Annotated[str, Form()] = "",
) -> Response:
    """Delete the group, as ``DELETE /api/v1/groups/{id}`` does."""
    require(viewer.principal, Action.GROUP_DELETE)
    return await _submit_deletion(
        session,
        lambda: groups.delete(
            session, viewer.principal, group_id=group_id, resource_version=resource_version
        ),
        done="/groups",
        fetch=lambda: groups.get(session, viewer.principal, group_id),
        confirm=lambda group, error: _confirm_group_deletion(request, viewer, group, error=error),
    )
