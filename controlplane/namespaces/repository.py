from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.kit.tenancy import scoped, scoped_to_namespaces
from controlplane.models import Namespace


class NamespaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_scoped(self, principal: Principal, namespace_id: str) -> Namespace | None:
        statement = scoped(
            select(Namespace).where(Namespace.id == namespace_id), Namespace.account_id, principal
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_scoped(self, principal: Principal) -> list[Namespace]:
        """The account's namespaces the principal may read."""
        statement = scoped_to_namespaces(
            select(Namespace).order_by(Namespace.name),
            Namespace.account_id,
            Namespace.id,
            principal,
            Action.NAMESPACE_READ,
        )
        return list((await self.session.execute(statement)).scalars())

    # System access, for the provisioning worker and the gateways' key verification.
    async def list_for_account(self, account_id: str) -> list[Namespace]:
        statement = select(Namespace).where(Namespace.account_id == account_id)
        return list((await self.session.execute(statement)).scalars())

    async def get(self, namespace_id: str) -> Namespace | None:
        return await self.session.get(Namespace, namespace_id)

    async def delete(self, namespace: Namespace) -> None:
        await self.session.delete(namespace)

    def add(self, namespace: Namespace) -> None:
        self.session.add(namespace)
