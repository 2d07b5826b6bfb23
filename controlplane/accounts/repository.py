from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole
from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.models import (
    Account,
    ApiKey,
    Invoice,
    Namespace,
    ScimToken,
    UsageRecord,
    User,
    WebSession,
)
from controlplane.states import AccountState


class SystemAccountRepository:
    """Accounts and their first owner, created by the operator; every account, read by the
    operator."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def list_with_namespace_counts(self) -> list[tuple[Account, int]]:
        accounts = (
            await self.session.execute(select(Account).order_by(Account.created_at, Account.id))
        ).scalars()
        return await self._with_namespace_counts(list(accounts))

    async def _with_namespace_counts(self, accounts: list[Account]) -> list[tuple[Account, int]]:
        ids = [account.id for account in accounts]
        counts: dict[str, int] = {}
        if ids:
            counted = (
                select(Namespace.account_id, func.count())
                .where(Namespace.account_id.in_(ids))
                .group_by(Namespace.account_id)
            )
            counts = {row[0]: int(row[1]) for row in (await self.session.execute(counted)).all()}
        return [(account, counts.get(account.id, 0)) for account in accounts]

    async def page(
        self, *, state: AccountState | None, name: str | None, page: PageRequest
    ) -> Page[tuple[Account, int]]:
        """One page of the accounts (oldest first, then by id: a stable order) with their
        namespace counts; ``name`` matches any part of the name, case-insensitively."""
        statement = select(Account)
        if state is not None:
            statement = statement.where(Account.state == state)
        if name:
            escaped = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(func.lower(Account.name).like(f"%{escaped}%", escape="\\"))
        found = await fetch_page(
            self.session,
            statement,
            page=page,
            order=(Account.created_at, Account.id),
            list_name="accounts",
            account_id=None,
            filters={"state": state, "name": name},
        )
        return Page(
            rows=await self._with_namespace_counts(found.rows),
            next_page_token=found.next_page_token,
        )

    async def owner_emails(self, account_ids: list[str]) -> dict[str, str]:
        """Each account's first owner's email."""
        statement = (
            select(User.account_id, User.email)
            .where(User.account_id.in_(account_ids), User.account_role == AccountRole.OWNER.value)
            .order_by(User.created_at.desc(), User.id.desc())
        )
        # Oldest last: it wins.
        return {account_id: email for account_id, email in await self.session.execute(statement)}

    async def usage_totals(
        self, account_ids: list[str], month: dt.datetime
    ) -> dict[str, tuple[int, int]]:
        """Account id → (actions, storage byte-hours) recorded in ``month`` so far."""
        is_storage = UsageRecord.kind.like("storage.%")
        statement = (
            select(
                UsageRecord.account_id,
                func.sum(case((is_storage, 0), else_=UsageRecord.quantity)),
                func.sum(case((is_storage, UsageRecord.quantity), else_=0)),
            )
            .where(UsageRecord.period_start == month, UsageRecord.account_id.in_(account_ids))
            .group_by(UsageRecord.account_id)
        )
        return {
            account_id: (int(actions or 0), int(storage or 0))
            for account_id, actions, storage in await self.session.execute(statement)
        }

    async def invoice_totals(
        self, account_ids: list[str], month: dt.datetime
    ) -> dict[str, Decimal]:
        """Account id → the total of its invoice of ``month`` as last rated."""
        statement = select(Invoice.account_id, Invoice.total).where(
            Invoice.period_start == month, Invoice.account_id.in_(account_ids)
        )
        return {account_id: total for account_id, total in await self.session.execute(statement)}

    async def namespaces_of(self, account_id: str) -> list[Namespace]:
        statement = (
            select(Namespace).where(Namespace.account_id == account_id).order_by(Namespace.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def in_state(self, state: AccountState) -> list[Account]:
        statement = select(Account).where(Account.state == state).order_by(Account.id)
        return list((await self.session.execute(statement)).scalars())

    async def revoke_credentials(self, account_id: str) -> None:
        """Delete every API key, web session and SCIM token of the account (a deleted account
        signs in and provisions no more; its users and audit events stay)."""
        await self.session.execute(delete(ApiKey).where(ApiKey.account_id == account_id))
        await self.session.execute(delete(ScimToken).where(ScimToken.account_id == account_id))
        await self.session.execute(delete(WebSession).where(WebSession.account_id == account_id))

    async def exists(self, account_id: str) -> bool:
        return await self.session.get(Account, account_id) is not None

    def add(self, account: Account) -> None:
        self.session.add(account)

    def add_user(self, user: User) -> None:
        self.session.add(user)
