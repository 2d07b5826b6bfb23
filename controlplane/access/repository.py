from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import NamespacePermission, Principal, PrincipalKind
from controlplane.kit.tenancy import scoped
from controlplane.models import NamespaceAccess


class NamespaceAccessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def permissions_of(
        self, kind: PrincipalKind, principal_id: str
    ) -> dict[str, NamespacePermission]:
        """Namespace id → permission held, for building a principal (before one exists)."""
        statement = select(NamespaceAccess).where(
            NamespaceAccess.principal_kind == kind.value,
            NamespaceAccess.principal_id == principal_id,
        )
        rows = (await self.session.execute(statement)).scalars()
        return {row.namespace_id: row.permission for row in rows}

    async def list_scoped_for(
        self, principal: Principal, kind: PrincipalKind, principal_ids: list[str]
    ) -> list[NamespaceAccess]:
        statement = scoped(
            select(NamespaceAccess)
            .where(
                NamespaceAccess.principal_kind == kind.value,
                NamespaceAccess.principal_id.in_(principal_ids),
            )
            .order_by(NamespaceAccess.namespace_id),
            NamespaceAccess.account_id,
            principal,
        )
        return list((await self.session.execute(statement)).scalars())

    async def get_scoped(
        self, principal: Principal, namespace_id: str, kind: PrincipalKind, principal_id: str
    ) -> NamespaceAccess | None:
        statement = scoped(
            select(NamespaceAccess).where(
                NamespaceAccess.namespace_id == namespace_id,
                NamespaceAccess.principal_kind == kind.value,
                NamespaceAccess.principal_id == principal_id,
            ),
            NamespaceAccess.account_id,
            principal,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, access: NamespaceAccess) -> None:
        self.session.add(access)

    async def delete(self, access: NamespaceAccess) -> None:
        await self.session.delete(access)

    async def delete_all_of(
        self, principal: Principal, kind: PrincipalKind, principal_id: str
    ) -> None:
        account_id = principal.account_id
        await self.session.execute(
            delete(NamespaceAccess).where(
                NamespaceAccess.account_id == account_id,
                NamespaceAccess.principal_kind == kind.value,
                NamespaceAccess.principal_id == principal_id,
            )
        )
