from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal
from controlplane.kit.tenancy import scoped
from controlplane.models import ServiceAccount


class ServiceAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_scoped(
        self, principal: Principal, service_account_id: str
    ) -> ServiceAccount | None:
        statement = scoped(
            select(ServiceAccount).where(ServiceAccount.id == service_account_id),
            ServiceAccount.account_id,
            principal,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_name_scoped(self, principal: Principal, name: str) -> ServiceAccount | None:
        statement = scoped(
            select(ServiceAccount).where(ServiceAccount.name == name),
            ServiceAccount.account_id,
            principal,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_scoped(self, principal: Principal) -> list[ServiceAccount]:
        statement = scoped(
            select(ServiceAccount).order_by(ServiceAccount.name),
            ServiceAccount.account_id,
            principal,
        )
        return list((await self.session.execute(statement)).scalars())

    def add(self, service_account: ServiceAccount) -> None:
        self.session.add(service_account)

    async def delete(self, service_account: ServiceAccount) -> None:
        await self.session.delete(service_account)
