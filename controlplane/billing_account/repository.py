from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import Account, AccountPlan, Credit, Invoice, InvoiceStatus


class BillingAccountRepository(TenantRepository):
    """The caller's account's plans and credits."""

    async def plans(self) -> list[AccountPlan]:
        statement = self._scoped(
            select(AccountPlan).order_by(AccountPlan.effective_from), AccountPlan.account_id
        )
        return list((await self.session.execute(statement)).scalars())

    async def credits_page(self, page: PageRequest) -> Page[Credit]:
        """A page of the account's credits, oldest first."""
        return await fetch_page(
            self.session,
            self._scoped(select(Credit), Credit.account_id),
            page=page,
            order=(Credit.created_at, Credit.id),
            list_name="credits",
            account_id=self.account_id,
        )

    async def credits(self) -> list[Credit]:
        statement = self._scoped(
            select(Credit).order_by(Credit.created_at, Credit.id), Credit.account_id
        )
        return list((await self.session.execute(statement)).scalars())


class SystemBillingAccountRepository:
    """Any account's plans and credits: for the operator, who sets them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def account(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def plan_at(self, account_id: str, effective_from: dt.datetime) -> AccountPlan | None:
        statement = select(AccountPlan).where(
            AccountPlan.account_id == account_id, AccountPlan.effective_from == effective_from
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def plans_of(self, account_id: str) -> list[AccountPlan]:
        statement = (
            select(AccountPlan)
            .where(AccountPlan.account_id == account_id)
            .order_by(AccountPlan.effective_from)
        )
        return list((await self.session.execute(statement)).scalars())

    async def plans_by_account(self) -> dict[str, list[AccountPlan]]:
        """Every account's plan changes, oldest first (accounts without any are absent)."""
        statement = select(AccountPlan).order_by(AccountPlan.account_id, AccountPlan.effective_from)
        plans: dict[str, list[AccountPlan]] = {}
        for row in (await self.session.execute(statement)).scalars():
            plans.setdefault(row.account_id, []).append(row)
        return plans

    async def credits_of(self, account_id: str) -> list[Credit]:
        statement = (
            select(Credit)
            .where(Credit.account_id == account_id)
            .order_by(Credit.created_at, Credit.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def finalized_through(self, account_id: str) -> dt.datetime | None:
        """The end of the account's latest finalized month (None if none)."""
        statement = (
            select(Invoice.period_end)
            .where(Invoice.account_id == account_id, Invoice.status == InvoiceStatus.FINALIZED)
            .order_by(Invoice.period_end.desc())
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, row: AccountPlan | Credit) -> None:
        self.session.add(row)
