from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import GROUP_GRANT_KIND, NamespacePermission, PrincipalKind
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import NamespaceAccess, UserGroup, UserGroupMember

GrantKind = PrincipalKind | str
"""Who a namespace permission is held by: a principal kind, or a user group
(:data:`auth.GROUP_GRANT_KIND`)."""

# A user's groups' roles and namespace permissions in one statement (one row per permission).
_GROUP_ACCESS = (
    select(UserGroup.account_role, NamespaceAccess.namespace_id, NamespaceAccess.permission)
    .join(UserGroupMember, UserGroupMember.group_id == UserGroup.id)
    .outerjoin(
        NamespaceAccess,
        and_(
            NamespaceAccess.principal_kind == GROUP_GRANT_KIND,
            NamespaceAccess.principal_id == UserGroup.id,
        ),
    )
    .where(UserGroupMember.user_id == bindparam("user_id"))
)


@dataclass(frozen=True)
class GroupAccess:
    """What a user holds through its groups: their account roles and, per namespace, the
    highest permission any of them holds there."""

    roles: frozenset[str]
    namespace_permissions: dict[str, NamespacePermission]


class NamespaceAccessRepository(TenantRepository):
    """Namespace permissions held in the caller's account."""

    async def list_for(self, kind: GrantKind, principal_ids: list[str]) -> list[NamespaceAccess]:
        statement = self._scoped(
            select(NamespaceAccess)
            .where(
                NamespaceAccess.principal_kind == str(kind),
                NamespaceAccess.principal_id.in_(principal_ids),
            )
            .order_by(NamespaceAccess.namespace_id),
            NamespaceAccess.account_id,
        )
        return list((await self.session.execute(statement)).scalars())

    async def get(
        self, namespace_id: str, kind: GrantKind, principal_id: str
    ) -> NamespaceAccess | None:
        statement = self._scoped(
            select(NamespaceAccess).where(
                NamespaceAccess.namespace_id == namespace_id,
                NamespaceAccess.principal_kind == str(kind),
                NamespaceAccess.principal_id == principal_id,
            ),
            NamespaceAccess.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, access: NamespaceAccess) -> None:
        self._add(access)

    async def delete(self, access: NamespaceAccess) -> None:
        await self._delete(access)

    async def delete_all_of(self, kind: GrantKind, principal_id: str) -> None:
        await self.session.execute(
            self._scoped(
                delete(NamespaceAccess).where(
                    NamespaceAccess.principal_kind == str(kind),
                    NamespaceAccess.principal_id == principal_id,
                ),
                NamespaceAccess.account_id,
            )
        )


class SystemNamespaceAccessRepository:
    """Permissions looked up while a credential is turned into a principal (there is no caller
    to scope by yet)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def permissions_of(
        self, kind: PrincipalKind, principal_id: str
    ) -> dict[str, NamespacePermission]:
        """Namespace id → permission held."""
        statement = select(NamespaceAccess).where(
            NamespaceAccess.principal_kind == str(kind),
            NamespaceAccess.principal_id == principal_id,
        )
        rows = (await self.session.execute(statement)).scalars()
        return {row.namespace_id: row.permission for row in rows}

    async def group_access_of(self, user_id: str) -> GroupAccess:
        """The account roles and namespace permissions the user holds through its groups."""
        roles: set[str] = set()
        permissions: dict[str, NamespacePermission] = {}
        for role, namespace_id, permission in await self.session.execute(
            _GROUP_ACCESS, {"user_id": user_id}
        ):
            if role is not None:
                roles.add(role)
            if namespace_id is not None:
                held = permissions.get(namespace_id)
                if held is None or permission.rank > held.rank:
                    permissions[namespace_id] = permission
        return GroupAccess(frozenset(roles), permissions)
