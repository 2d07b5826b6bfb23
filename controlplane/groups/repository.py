from __future__ import annotations

from sqlalchemy import delete, func, select

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import User, UserGroup, UserGroupMember


class GroupRepository(TenantRepository):
    """The caller's account's user groups and their members."""

    async def get(self, group_id: str) -> UserGroup | None:
        statement = self._scoped(
            select(UserGroup).where(UserGroup.id == group_id), UserGroup.account_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_name(self, name: str) -> UserGroup | None:
        statement = self._scoped(
            select(UserGroup).where(UserGroup.name == name), UserGroup.account_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def page(self, page: PageRequest, *, name: str | None) -> Page[UserGroup]:
        """A page of the account's groups by name; only names starting with ``name``."""
        statement = self._scoped(select(UserGroup), UserGroup.account_id)
        if name:
            statement = statement.where(UserGroup.name.startswith(name, autoescape=True))
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(UserGroup.name, UserGroup.id),
            list_name="groups",
            account_id=self.account_id,
            filters={"name": name or None},
        )

    def add(self, group: UserGroup) -> None:
        self._add(group)

    async def delete(self, group: UserGroup) -> None:
        await self._delete(group)

    async def member_counts(self, group_ids: list[str]) -> dict[str, int]:
        statement = self._scoped(
            select(UserGroupMember.group_id, func.count())
            .where(UserGroupMember.group_id.in_(group_ids))
            .group_by(UserGroupMember.group_id),
            UserGroupMember.account_id,
        )
        counts = {group_id: 0 for group_id in group_ids}
        for group_id, count in (await self.session.execute(statement)).tuples():
            counts[group_id] = count
        return counts

    async def members_page(self, group_id: str, page: PageRequest) -> Page[User]:
        """A page of the group's members (users) by email."""
        statement = self._scoped(
            select(User)
            .join(UserGroupMember, UserGroupMember.user_id == User.id)
            .where(UserGroupMember.group_id == group_id),
            UserGroupMember.account_id,
        )
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(User.email, User.id),
            list_name="group-members",
            account_id=self.account_id,
            filters={"group_id": group_id},
        )

    async def memberships(self, group_id: str, user_ids: list[str]) -> dict[str, UserGroupMember]:
        """User id → its membership of the group, for those of ``user_ids`` that are members."""
        statement = self._scoped(
            select(UserGroupMember).where(
                UserGroupMember.group_id == group_id, UserGroupMember.user_id.in_(user_ids)
            ),
            UserGroupMember.account_id,
        )
        return {row.user_id: row for row in (await self.session.execute(statement)).scalars()}

    async def users(self, user_ids: list[str]) -> dict[str, User]:
        """User id → the account's user, for those of ``user_ids`` that are users of it."""
        statement = self._scoped(select(User).where(User.id.in_(user_ids)), User.account_id)
        return {user.id: user for user in (await self.session.execute(statement)).scalars()}

    def add_member(self, member: UserGroupMember) -> None:
        self._add(member)

    async def remove_members(self, group_id: str, user_ids: list[str]) -> None:
        await self.session.execute(
            self._scoped(
                delete(UserGroupMember).where(
                    UserGroupMember.group_id == group_id, UserGroupMember.user_id.in_(user_ids)
                ),
                UserGroupMember.account_id,
            )
        )

    async def groups_of(self, user_ids: list[str]) -> dict[str, list[UserGroup]]:
        """User id → the groups it belongs to, by name."""
        statement = self._scoped(
            select(UserGroupMember.user_id, UserGroup)
            .join(UserGroup, UserGroup.id == UserGroupMember.group_id)
            .where(UserGroupMember.user_id.in_(user_ids))
            .order_by(UserGroup.name),
            UserGroupMember.account_id,
        )
        found: dict[str, list[UserGroup]] = {user_id: [] for user_id in user_ids}
        for user_id, group in (await self.session.execute(statement)).tuples():
            found[user_id].append(group)
        return found

    async def remove_all_members(self, group_id: str) -> None:
        await self.session.execute(
            self._scoped(
                delete(UserGroupMember).where(UserGroupMember.group_id == group_id),
                UserGroupMember.account_id,
            )
        )
