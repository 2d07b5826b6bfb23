from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import GroupClaimConfig, GroupClaimMapping, UserGroup, UserGroupMember


class GroupClaimsRepository(TenantRepository):
    """The caller's account's group-claims configuration and mappings."""

    async def config(self) -> GroupClaimConfig | None:
        statement = self._scoped(select(GroupClaimConfig), GroupClaimConfig.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def mappings(self) -> list[tuple[GroupClaimMapping, str]]:
        """Each mapping with its group's name, by IdP group then group name."""
        statement = self._scoped(
            select(GroupClaimMapping, UserGroup.name)
            .join(UserGroup, UserGroup.id == GroupClaimMapping.group_id)
            .order_by(GroupClaimMapping.idp_group, UserGroup.name),
            GroupClaimMapping.account_id,
        )
        return [(mapping, name) for mapping, name in await self.session.execute(statement)]

    async def group_ids_among(self, group_ids: Collection[str]) -> set[str]:
        """Which of ``group_ids`` are groups of the caller's account."""
        if not group_ids:
            return set()
        statement = self._scoped(
            select(UserGroup.id).where(UserGroup.id.in_(list(group_ids))), UserGroup.account_id
        )
        return set((await self.session.execute(statement)).scalars())

    def add(self, row: GroupClaimConfig | GroupClaimMapping) -> None:
        self._add(row)

    async def delete_mappings(self) -> None:
        await self.session.execute(
            self._scoped(delete(GroupClaimMapping), GroupClaimMapping.account_id)
        )

    async def delete_config(self, config: GroupClaimConfig) -> None:
        await self.delete_mappings()
        await self._delete(config)


class SystemGroupClaimsRepository:
    """Sign-in runs before there is a principal: every read names the signing-in user's
    account, so another account's configuration, mappings and groups are never found."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def config(self, account_id: str) -> GroupClaimConfig | None:
        return await self.session.get(GroupClaimConfig, account_id)

    async def mapped_group_ids(self, account_id: str, idp_groups: Collection[str]) -> set[str]:
        """The account's groups that ``idp_groups`` map to."""
        if not idp_groups:
            return set()
        statement = select(GroupClaimMapping.group_id).where(
            GroupClaimMapping.account_id == account_id,
            GroupClaimMapping.idp_group.in_(list(idp_groups)),
        )
        return set((await self.session.execute(statement)).scalars())

    async def memberships(self, account_id: str, user_id: str) -> list[UserGroupMember]:
        statement = select(UserGroupMember).where(
            UserGroupMember.account_id == account_id, UserGroupMember.user_id == user_id
        )
        return list((await self.session.execute(statement)).scalars())

    def add_membership(self, member: UserGroupMember) -> None:
        self.session.add(member)

    async def remove_idp_memberships(
        self, account_id: str, user_id: str, group_ids: Collection[str]
    ) -> None:
        """Delete the user's ``"idp"`` memberships of ``group_ids`` (never another source's)."""
        await self.session.execute(
            delete(UserGroupMember)
            .where(
                UserGroupMember.account_id == account_id,
                UserGroupMember.user_id == user_id,
                UserGroupMember.source == "idp",
                UserGroupMember.group_id.in_(list(group_ids)),
            )
            .execution_options(synchronize_session=False)
        )
