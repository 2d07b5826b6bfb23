from __future__ import annotations

from sqlalchemy import select

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import ServiceAccount


class ServiceAccountRepository(TenantRepository):
    """The caller's account's service accounts."""

    async def get(self, service_account_id: str) -> ServiceAccount | None:
        statement = self._scoped(
            select(ServiceAccount).where(ServiceAccount.id == service_account_id),
            ServiceAccount.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_name(self, name: str) -> ServiceAccount | None:
        statement = self._scoped(
            select(ServiceAccount).where(ServiceAccount.name == name), ServiceAccount.account_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def page(self, page: PageRequest, *, name: str | None) -> Page[ServiceAccount]:
        """A page of the account's service accounts by name; only those whose name starts
        with ``name`` when given."""
        statement = self._scoped(select(ServiceAccount), ServiceAccount.account_id)
        if name is not None:
            statement = statement.where(ServiceAccount.name.startswith(name, autoescape=True))
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(ServiceAccount.name, ServiceAccount.id),
            list_name="service-accounts",
            account_id=self.account_id,
            filters={"name": name},
        )

    async def list_all(self) -> list[ServiceAccount]:
        statement = self._scoped(
            select(ServiceAccount).order_by(ServiceAccount.name), ServiceAccount.account_id
        )
        return list((await self.session.execute(statement)).scalars())

    def add(self, service_account: ServiceAccount) -> None:
        self._add(service_account)

    async def delete(self, service_account: ServiceAccount) -> None:
        await self._delete(service_account)
