"""User groups: an account role (never owner) and namespace permissions that every member
holds on top of its own (the one policy takes the highest of them). Only a principal that
holds everything a group's role allows may create, change, delete or staff such a group, so
no one hands out, or reaches through a group, more than it holds itself."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    GROUP_GRANT_KIND,
    GROUP_ROLES,
    AccountRole,
    Action,
    NamespacePermission,
    Principal,
    may_grant_role,
)
from controlplane.access import service as access
from controlplane.access.repository import NamespaceAccessRepository
from controlplane.audit import service as audit
from controlplane.groups.repository import GroupRepository
from controlplane.groups.schemas import (
    MAX_DESCRIPTION_LENGTH,
    MAX_MEMBERS_PER_REQUEST,
    MAX_NAME_LENGTH,
    MemberSource,
)
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.errors import (
    AlreadyExists,
    Forbidden,
    InvalidField,
    NotFound,
    check_resource_version,
)
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import NamespaceAccess, User, UserGroup, UserGroupMember
from controlplane.quotas import service as quotas
from controlplane.quotas.limits import Quota
from controlplane.users.service import grant_target


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED = _Unchanged.UNCHANGED
"""For :func:`update`: leave the group's account role as it is."""


def _name(value: str) -> str:
    return fields.display_name(value, field="name", max_length=MAX_NAME_LENGTH)


def _description(value: str) -> str:
    return fields.free_text(value, field="description", max_length=MAX_DESCRIPTION_LENGTH)


def _grantable(principal: Principal, role: AccountRole | None) -> None:
    """Refuse a role no group may hold (owner) or one the caller does not hold entirely."""
    if role is None:
        return
    if role is AccountRole.OWNER:
        raise InvalidField(
            "a group cannot hold the owner role: owners are users (make the user an owner)",
            field="account_role",
        )
    if not may_grant_role(principal, role):
        raise Forbidden(
            f"this credential may not give a group the {role.value} role: it allows actions "
            "this credential does not hold",
            field="account_role",
        )


def _may_change(principal: Principal, group: UserGroup) -> None:
    """Only a principal that holds everything the group's role allows may change the group
    (its name, role, members) or delete it, as only owners may change owners."""
    if group.account_role is None:
        return
    role = AccountRole(group.account_role)
    if not may_grant_role(principal, role):
        raise Forbidden(
            f"group {group.name} holds the {role.value} role, which allows actions this "
            "credential does not hold; only a principal holding them may change the group",
            field="account_role",
        )


async def _unique_name(repository: GroupRepository, name: str, group_id: str | None) -> None:
    existing = await repository.get_by_name(name)
    if existing is not None and existing.id != group_id:
        raise AlreadyExists(f"group {name} already exists in this account", field="name")


async def create(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    description: str = "",
    account_role: AccountRole | None = None,
) -> UserGroup:
    """A new group, without members or namespace permissions."""
    require(principal, Action.GROUP_CREATE)
    name, description = _name(name), _description(description)
    _grantable(principal, account_role)
    return await add_group(session, principal, name, description, account_role, None)


async def add_group(
    session: AsyncSession,
    principal: Principal,
    name: str,
    description: str,
    account_role: AccountRole | None,
    external_id: str | None,
) -> UserGroup:
    """Write a new group of valid fields (``external_id``: its SCIM client's id), within the
    account's quota and under a name unique in it, with its audit event. The caller has checked
    that ``principal`` may: :func:`create` by the policy, the account's SCIM client by its
    token."""
    repository = GroupRepository(session, principal)
    # The quota check locks the account: two creates of one name cannot both pass the check.
    await quotas.enforce(session, repository.account_id, Quota.GROUPS)
    await _unique_name(repository, name, None)
    group = UserGroup(
        id=str(uuid.uuid4()),
        account_id=repository.account_id,
        name=name,
        description=description,
        account_role=account_role.value if account_role else None,
        external_id=external_id,
        resource_version=str(uuid.uuid4()),
    )
    repository.add(group)
    details: dict[str, str | None] = {"name": name, "account_role": group.account_role}
    if external_id is not None:
        details["external_id"] = external_id
    audit.record(
        session,
        principal,
        action="group.create",
        target=group.id,
        account_id=group.account_id,
        details=details,
    )
    await session.flush()
    return group


async def get(session: AsyncSession, principal: Principal, group_id: str) -> UserGroup:
    require(principal, Action.GROUP_READ)
    group = await GroupRepository(session, principal).get(group_id)
    if group is None:
        raise NotFound(f"group {group_id} not found")
    return group


async def page(
    session: AsyncSession, principal: Principal, page: PageRequest, *, name: str | None = None
) -> Page[UserGroup]:
    """A page of the account's groups by name; ``name`` keeps those starting with it."""
    require(principal, Action.GROUP_READ)
    return await GroupRepository(session, principal).page(page, name=name)


async def list_all(session: AsyncSession, principal: Principal) -> list[UserGroup]:
    """Every group of the account by name (the console; the API pages them)."""
    require(principal, Action.GROUP_READ)
    return await GroupRepository(session, principal).list_all()


async def update(
    session: AsyncSession,
    principal: Principal,
    *,
    group_id: str,
    name: str | None = None,
    description: str | None = None,
    account_role: AccountRole | _Unchanged | None = UNCHANGED,
    resource_version: str | None = None,
) -> UserGroup:
    """Change what is given (None / ``UNCHANGED``: keep it); a stale ``resource_version`` is
    refused (409)."""
    group = await get(session, principal, group_id)
    require(principal, Action.GROUP_UPDATE)
    _may_change(principal, group)
    check_resource_version(f"group {group.id}", group.resource_version, resource_version)
    changes: dict[str, str | None] = {}
    if name is not None and (name := _name(name)) != group.name:
        repository = GroupRepository(session, principal)
        await quotas.lock_account(session, repository.account_id)
        await _unique_name(repository, name, group.id)
        changes["name"] = name
    if description is not None and (description := _description(description)) != (
        group.description
    ):
        changes["description"] = description
    if not isinstance(account_role, _Unchanged):
        _grantable(principal, account_role)
        role = account_role.value if account_role else None
        if role != group.account_role:
            changes["account_role"] = role
    return await change_fields(session, principal, group, changes)


async def change_fields(
    session: AsyncSession, principal: Principal, group: UserGroup, changes: dict[str, str | None]
) -> UserGroup:
    """Write ``changes`` (field → valid new value, e.g. ``name``, ``external_id``) to the
    group, with a ``group.update`` event naming the previous values; nothing when empty. The
    caller has checked the fields and that ``principal`` may (as :func:`add_group`)."""
    if not changes:
        return group
    previous = {field: getattr(group, field) for field in changes}
    for field, value in changes.items():
        setattr(group, field, value)
    group.resource_version = str(uuid.uuid4())
    audit.record(
        session,
        principal,
        action="group.update",
        target=group.id,
        account_id=group.account_id,
        details={**changes, "previous": previous},
    )
    await session.flush()
    return group


async def delete(
    session: AsyncSession, principal: Principal, *, group_id: str, resource_version: str | None
) -> None:
    """Remove the group, its memberships and its namespace permissions: its members lose
    what they held only through it at once."""
    group = await get(session, principal, group_id)
    require(principal, Action.GROUP_DELETE)
    _may_change(principal, group)
    check_resource_version(f"group {group.id}", group.resource_version, resource_version)
    await remove_group(session, principal, group)


async def remove_group(session: AsyncSession, principal: Principal, group: UserGroup) -> None:
    """Delete the group with its memberships and namespace permissions, with its audit event
    (the caller has checked that ``principal`` may, as :func:`add_group`)."""
    repository = GroupRepository(session, principal)
    await repository.remove_all_members(group.id)
    await NamespaceAccessRepository(session, principal).delete_all_of(GROUP_GRANT_KIND, group.id)
    await repository.delete(group)
    audit.record(
        session,
        principal,
        action="group.delete",
        target=group.id,
        account_id=group.account_id,
        details={"name": group.name, "account_role": group.account_role},
    )
    await session.flush()


async def members_page(
    session: AsyncSession, principal: Principal, group_id: str, page: PageRequest
) -> tuple[Page[User], dict[str, UserGroupMember]]:
    """A page of the group's members by email, and user id → membership (its source)."""
    group = await get(session, principal, group_id)
    repository = GroupRepository(session, principal)
    found = await repository.members_page(group.id, page)
    memberships = await repository.memberships(group.id, [user.id for user in found.rows])
    return found, memberships


async def members(
    session: AsyncSession, principal: Principal, group_id: str
) -> list[tuple[User, str]]:
    """Every member of the group by email, with the membership's source (the console's
    detail page; the API pages them)."""
    group = await get(session, principal, group_id)
    return await GroupRepository(session, principal).members(group.id)


def grantable_roles(principal: Principal) -> list[AccountRole]:
    """The roles ``principal`` may give a group (never owner; only those it holds entirely)."""
    return [role for role in AccountRole if role in GROUP_ROLES and may_grant_role(principal, role)]


def _user_ids(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(value.strip() for value in values))


async def change_members(
    session: AsyncSession,
    principal: Principal,
    *,
    group_id: str,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    source: MemberSource = MemberSource.MANUAL,
) -> UserGroup:
    """Add and remove members (idempotent: adding a member or removing a non-member changes
    nothing). Every id must be a user of the account, else 404 naming it and nothing
    changes."""
    group = await get(session, principal, group_id)
    require(principal, Action.GROUP_UPDATE)
    _may_change(principal, group)
    added, removed = _user_ids(add), _user_ids(remove)
    if len(added) + len(removed) > MAX_MEMBERS_PER_REQUEST:
        raise InvalidField(
            f"at most {MAX_MEMBERS_PER_REQUEST} user ids per request (add and remove together)",
            field="add",
        )
    both = set(added) & set(removed)
    if both:
        raise InvalidField(
            f"user {sorted(both)[0]} is both added and removed; send it once", field="add"
        )
    repository = GroupRepository(session, principal)
    users = await repository.users(added + removed)
    for field, wanted in (("add", added), ("remove", removed)):
        for user_id in wanted:
            if user_id not in users:
                raise NotFound(f"user {user_id} not found", field=field)
    current = await repository.memberships(group.id, added + removed)
    await write_members(
        session,
        principal,
        group,
        joining=[users[user_id] for user_id in added if user_id not in current],
        leaving=[users[user_id] for user_id in removed if user_id in current],
        source=source,
    )
    return group


async def write_members(
    session: AsyncSession,
    principal: Principal,
    group: UserGroup,
    *,
    joining: Sequence[User],
    leaving: Sequence[User],
    source: MemberSource,
) -> None:
    """Make ``joining`` (users of the account, not members yet) members of the group with
    ``source``, and ``leaving`` (members) not, with one ``group.members.update`` event naming
    their emails; nothing when both are empty. The caller has checked the users and that
    ``principal`` may (as :func:`add_group`)."""
    if not joining and not leaving:
        return
    repository = GroupRepository(session, principal)
    for user in joining:
        repository.add_member(
            UserGroupMember(
                group_id=group.id,
                user_id=user.id,
                account_id=group.account_id,
                source=source.value,
            )
        )
    if leaving:
        await repository.remove_members(group.id, [user.id for user in leaving])
    group.resource_version = str(uuid.uuid4())
    audit.record(
        session,
        principal,
        action="group.members.update",
        target=group.id,
        account_id=group.account_id,
        details={
            "added": [user.email for user in joining],
            "removed": [user.email for user in leaving],
            "source": source.value,
        },
    )
    await session.flush()


async def set_namespace_access(
    session: AsyncSession,
    principal: Principal,
    *,
    namespace_id: str,
    group_id: str,
    permission: NamespacePermission | None,
) -> UserGroup:
    """Give the group ``permission`` on the namespace, or remove its access (None): the same
    check as a user's (account owners and admins, and admins of that namespace)."""
    namespace, group = await grant_target(
        session,
        principal,
        namespace_id,
        lambda: GroupRepository(session, principal).get(group_id),
        f"group {group_id} not found",
    )
    await access.grant(session, principal, namespace, GROUP_GRANT_KIND, group.id, permission)
    return group


async def namespace_permissions(
    session: AsyncSession, principal: Principal, groups: list[UserGroup]
) -> dict[str, list[NamespaceAccess]]:
    """Group id → the group's namespace access rows."""
    return await access.grants_of(session, principal, GROUP_GRANT_KIND, [g.id for g in groups])


async def member_counts(
    session: AsyncSession, principal: Principal, groups: list[UserGroup]
) -> dict[str, int]:
    return await GroupRepository(session, principal).member_counts([group.id for group in groups])


async def groups_of(
    session: AsyncSession, principal: Principal, user_ids: list[str]
) -> dict[str, list[UserGroup]]:
    """User id → the groups it belongs to (shown with a user to whoever may read users)."""
    return await GroupRepository(session, principal).groups_of(user_ids)
