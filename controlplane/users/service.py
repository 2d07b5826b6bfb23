"""Users: invited by email with an account role (no self-sign-up), given namespace permissions,
changed and removed. An account always keeps at least one owner, and only owners can create,
change or remove owners."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    AccountRole,
    Action,
    NamespacePermission,
    Principal,
    PrincipalKind,
    Resource,
    authorize,
)
from controlplane.access import service as access
from controlplane.access.repository import NamespaceAccessRepository
from controlplane.api_keys.repository import ApiKeyRepository
from controlplane.audit import service as audit
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import (
    AlreadyExists,
    Conflict,
    LastOwner,
    NotFound,
    check_resource_version,
)
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import Namespace, NamespaceAccess, User
from controlplane.namespaces.repository import NamespaceRepository
from controlplane.quotas import service as quotas
from controlplane.quotas.limits import Quota
from controlplane.sign_in.errors import InvitationExpired
from controlplane.users.repository import UserRepository

T = TypeVar("T")


async def invite(
    session: AsyncSession,
    principal: Principal,
    *,
    email: str,
    account_role: AccountRole,
    lifetime: dt.timedelta,
    now: Callable[[], dt.datetime] = utcnow,
) -> User:
    """Add a user to the caller's account; they sign in later with their IdP (matched by
    verified email), which accepts the invitation: within ``lifetime``, or it expires."""
    require(principal, Action.USER_CREATE, Resource(role=account_role))
    email = fields.email(email, field="email")
    repository = UserRepository(session, principal)
    if await repository.get_by_email(email) is not None:
        raise AlreadyExists(f"{email} is already a user of this account", field="email")
    await quotas.enforce(session, repository.account_id, Quota.USERS)
    user = User(
        id=str(uuid.uuid4()),
        account_id=repository.account_id,
        email=email,
        account_role=account_role.value,
        resource_version=str(uuid.uuid4()),
        invitation_expires_at=now() + lifetime,
    )
    repository.add(user)
    audit.record(
        session,
        principal,
        action="user.create",
        target=user.id,
        account_id=user.account_id,
        details={
            "email": email,
            "account_role": account_role.value,
            "invitation_expires_at": user.invitation_expires_at.isoformat()
            if user.invitation_expires_at
            else None,
        },
    )
    await session.flush()
    return user


async def resend_invitation(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: str,
    lifetime: dt.timedelta,
    now: Callable[[], dt.datetime] = utcnow,
) -> User:
    """Give a user who has not signed in yet a new invitation expiry (``now + lifetime``)."""
    user = await get(session, principal, user_id)
    require(principal, Action.USER_CREATE, Resource(role=user.account_role))
    if user.accepted_at is not None:
        raise Conflict(
            f"{user.email} accepted the invitation at {user.accepted_at.isoformat()}; "
            "there is nothing to resend",
            field="user_id",
        )
    previous = user.invitation_expires_at
    user.invitation_expires_at = now() + lifetime
    user.resource_version = str(uuid.uuid4())
    audit.record(
        session,
        principal,
        action="user.invitation.resend",
        target=user.id,
        account_id=user.account_id,
        details={
            "email": user.email,
            "invitation_expires_at": user.invitation_expires_at.isoformat(),
            "previous_expiry": previous.isoformat() if previous else None,
        },
    )
    await session.flush()
    return user


def accept_invitation(user: User, now: dt.datetime) -> None:
    """The user signs in (any method): the first sign-in accepts the invitation, unless it
    has expired (403 ``invitation-expired``; an admin resends it)."""
    if user.accepted_at is not None:
        return
    expires = user.invitation_expires_at
    if expires is not None and expires <= now:
        raise InvitationExpired(
            f"the invitation of {user.email} expired at {expires.isoformat()}; ask an "
            "account admin to resend it"
        )
    user.accepted_at = now


async def get(session: AsyncSession, principal: Principal, user_id: str) -> User:
    require(principal, Action.USER_READ)
    user = await UserRepository(session, principal).get(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def page(
    session: AsyncSession, principal: Principal, page: PageRequest, *, email: str | None = None
) -> Page[User]:
    """A page of the account's users by email; ``email`` keeps only that address."""
    require(principal, Action.USER_READ)
    wanted = fields.email(email) if email else None
    return await UserRepository(session, principal).page(page, email=wanted)


async def list_all(session: AsyncSession, principal: Principal) -> list[User]:
    require(principal, Action.USER_READ)
    return await UserRepository(session, principal).list_all()


async def namespace_permissions(
    session: AsyncSession, principal: Principal, users: list[User]
) -> dict[str, list[NamespaceAccess]]:
    """User id → the user's namespace access rows."""
    return await access.grants_of(session, principal, PrincipalKind.USER, [u.id for u in users])


async def _guard_last_owner(session: AsyncSession, principal: Principal, user: User) -> None:
    if user.account_role != AccountRole.OWNER.value:
        return
    # Two owners stepping down at once would each count the other (READ COMMITTED on
    # PostgreSQL): the account lock makes the second count after the first commits.
    await quotas.lock_account(session, user.account_id)
    if await UserRepository(session, principal).count_owners() <= 1:
        raise LastOwner(
            f"{user.email} is the account's last owner; make another user owner first",
            field="account_role",
        )


async def update(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: str,
    resource_version: str,
    account_role: AccountRole,
) -> User:
    user = await get(session, principal, user_id)
    require(principal, Action.USER_UPDATE, Resource(role=user.account_role))
    require(principal, Action.USER_UPDATE, Resource(role=account_role))
    check_resource_version(f"user {user_id}", user.resource_version, resource_version)
    if account_role.value == user.account_role:
        return user
    if account_role is not AccountRole.OWNER:
        await _guard_last_owner(session, principal, user)
    previous = user.account_role
    user.account_role = account_role.value
    user.resource_version = str(uuid.uuid4())
    audit.record(
        session,
        principal,
        action="user.update",
        target=user.id,
        account_id=user.account_id,
        details={"account_role": account_role.value, "previous_account_role": previous},
    )
    await session.flush()
    return user


async def delete(
    session: AsyncSession, principal: Principal, *, user_id: str, resource_version: str | None
) -> None:
    """Remove the user with their API keys (which stop working at once) and namespace
    permissions."""
    user = await get(session, principal, user_id)
    require(principal, Action.USER_DELETE, Resource(role=user.account_role))
    check_resource_version(f"user {user_id}", user.resource_version, resource_version)
    await _guard_last_owner(session, principal, user)
    await remove_user(session, principal, user)


async def remove_user(session: AsyncSession, principal: Principal, user: User) -> None:
    """Delete the user with their API keys and namespace permissions, with its audit event.
    The caller has checked that ``principal`` may and that an owner remains: :func:`delete` by
    the policy, the account's SCIM client by its token."""
    await ApiKeyRepository(session, principal).delete_all_of(
        owner_type=PrincipalKind.USER.value, owner_id=user.id
    )
    await NamespaceAccessRepository(session, principal).delete_all_of(PrincipalKind.USER, user.id)
    await UserRepository(session, principal).delete(user)
    audit.record(
        session,
        principal,
        action="user.delete",
        target=user.id,
        account_id=user.account_id,
        details={"email": user.email, "account_role": user.account_role},
    )
    await session.flush()


async def visible_namespace(
    session: AsyncSession, principal: Principal, namespace_id: str
) -> Namespace:
    """The namespace, if the caller may at least read it (else not found)."""
    namespace = await NamespaceRepository(session, principal).get(namespace_id)
    if namespace is None or not authorize(
        principal,
        Action.NAMESPACE_READ,
        Resource(account_id=namespace.account_id, namespace_id=namespace.id),
    ):
        raise NotFound(f"namespace {namespace_id} not found")
    return namespace


async def grant_target(
    session: AsyncSession,
    principal: Principal,
    namespace_id: str,
    find: Callable[[], Awaitable[T | None]],
    missing: str,
) -> tuple[Namespace, T]:
    """The namespace a permission is set on and the user, group or service account ``find``
    finds, once the caller may change access there: 404 for a namespace it cannot read, then
    ``missing`` (404) if ``find`` finds none, then 403."""
    namespace = await visible_namespace(session, principal, namespace_id)
    target = await find()
    if target is None:
        raise NotFound(missing)
    require(
        principal,
        Action.NAMESPACE_ACCESS_UPDATE,
        Resource(account_id=namespace.account_id, namespace_id=namespace.id),
    )
    return namespace, target


async def set_namespace_access(
    session: AsyncSession,
    principal: Principal,
    *,
    namespace_id: str,
    user_id: str,
    permission: NamespacePermission | None,
) -> User:
    """Give ``user_id`` ``permission`` on the namespace, or remove their access (None)."""
    namespace, user = await grant_target(
        session,
        principal,
        namespace_id,
        lambda: UserRepository(session, principal).get(user_id),
        f"user {user_id} not found",
    )
    await access.grant(session, principal, namespace, PrincipalKind.USER, user.id, permission)
    return user
