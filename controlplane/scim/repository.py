"""The SQL of SCIM provisioning: the account's users and groups as its SCIM client sees them,
and the SCIM tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, PrincipalKind
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import (
    ApiKey,
    ScimToken,
    User,
    UserGroup,
    UserGroupMember,
    WebSession,
)


class ScimRepository(TenantRepository):
    """The caller's account's users, groups, memberships and SCIM token."""

    # Users

    async def user(self, user_id: str) -> User | None:
        statement = self._scoped(select(User).where(User.id == user_id), User.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def user_by_email(self, email: str) -> User | None:
        statement = self._scoped(select(User).where(User.email == email), User.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def users(
        self, where: Sequence[ColumnElement[bool]], *, offset: int, limit: int
    ) -> tuple[int, list[User]]:
        """``limit`` users from ``offset`` (by creation) matching ``where``, and how many match."""
        base = self._scoped(select(User).where(*where), User.account_id)
        total = await self.session.execute(select(func.count()).select_from(base.subquery()))
        rows = await self.session.execute(
            base.order_by(User.created_at, User.id).offset(offset).limit(limit)
        )
        return int(total.scalar_one()), list(rows.scalars())

    async def other_active_owners(self, user: User) -> int:
        statement = self._scoped(
            select(func.count())
            .select_from(User)
            .where(
                User.account_role == AccountRole.OWNER.value,
                User.active.is_(True),
                User.id != user.id,
            ),
            User.account_id,
        )
        return int((await self.session.execute(statement)).scalar_one())

    def add(self, row: User | ScimToken) -> None:
        self._add(row)

    async def delete(self, row: User | ScimToken) -> None:
        await self._delete(row)

    async def enabled_keys_of(self, user: User) -> list[ApiKey]:
        statement = self._scoped(
            select(ApiKey).where(
                ApiKey.owner_type == PrincipalKind.USER.value,
                ApiKey.owner_id == user.id,
                ApiKey.disabled.is_(False),
            ),
            ApiKey.account_id,
        )
        return list((await self.session.execute(statement)).scalars())

    async def delete_web_sessions_of(self, user: User) -> int:
        result = await self.session.execute(
            self._scoped(
                delete(WebSession).where(WebSession.user_id == user.id), WebSession.account_id
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # Groups

    async def groups(
        self, where: Sequence[ColumnElement[bool]], *, offset: int, limit: int
    ) -> tuple[int, list[UserGroup]]:
        base = self._scoped(select(UserGroup).where(*where), UserGroup.account_id)
        total = await self.session.execute(select(func.count()).select_from(base.subquery()))
        rows = await self.session.execute(
            base.order_by(UserGroup.created_at, UserGroup.id).offset(offset).limit(limit)
        )
        return int(total.scalar_one()), list(rows.scalars())

    async def members(self, group_ids: Sequence[str]) -> list[tuple[str, User]]:
        """(group id, member) of each of ``group_ids``, by the member's email."""
        if not group_ids:
            return []
        statement = self._scoped(
            select(UserGroupMember.group_id, User)
            .join(User, User.id == UserGroupMember.user_id)
            .where(UserGroupMember.group_id.in_(group_ids))
            .order_by(User.email),
            UserGroupMember.account_id,
        )
        return [(group_id, user) for group_id, user in (await self.session.execute(statement))]

    # Token

    async def token(self) -> ScimToken | None:
        statement = self._scoped(select(ScimToken), ScimToken.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()


class SystemScimTokenRepository:
    """Authentication: the token a SCIM client presents, before there is a principal."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_hash(self, token_hash: str) -> ScimToken | None:
        statement = select(ScimToken).where(ScimToken.token_hash == token_hash)
        return (await self.session.execute(statement)).scalar_one_or_none()
