from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import NamespacePermission, PrincipalKind
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import NamespaceAccess


class NamespaceAccessRepository(TenantRepository):
    """Namespace permissions held in the caller's account."""

    async def list_for(
        self, kind: PrincipalKind, principal_ids: list[str]
    ) -> list[NamespaceAccess]:
        statement = self._scoped(
            select(NamespaceAccess)
            .where(
                NamespaceAccess.principal_kind == kind.value,
                NamespaceAccess.principal_id.in_(principal_ids),
            )
            .order_by(NamespaceAccess.namespace_id),
            NamespaceAccess.account_id,
        )
        return list((await self.session.execute(statement)).scalars())

    async def get(
        self, namespace_id: str, kind: PrincipalKind, principal_id: str
    ) -> NamespaceAccess | None:
        statement = self._scoped(
            select(NamespaceAccess).where(
                NamespaceAccess.namespace_id == namespace_id,
                NamespaceAccess.principal_kind == kind.value,
                NamespaceAccess.principal_id == principal_id,
            ),
            NamespaceAccess.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, access: NamespaceAccess) -> None:
        self._add(access)

    async def delete(self, access: NamespaceAccess) -> None:
        await self._delete(access)

    async def delete_all_of(self, kind: PrincipalKind, principal_id: str) -> None:
        await self.session.execute(
            self._scoped(
                delete(NamespaceAccess).where(
                    NamespaceAccess.principal_kind == kind.value,
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
            NamespaceAccess.principal_kind == kind.value,
            NamespaceAccess.principal_id == principal_id,
        )
        rows = (await self.session.execute(statement)).scalars()
        return {row.namespace_id: row.permission for row in rows}
