from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models import Account, Namespace, User


class SystemAccountRepository:
    """Accounts and their first owner, created by the operator; every account, read by the
    operator."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, account_id: str) -> Account | None:
        return await self.session.get(Account, account_id)

    async def list_with_namespace_counts(self) -> list[tuple[Account, int]]:
        counts = (
            select(Namespace.account_id, func.count().label("namespaces"))
            .group_by(Namespace.account_id)
            .subquery()
        )
        statement = (
            select(Account, func.coalesce(counts.c.namespaces, 0))
            .outerjoin(counts, counts.c.account_id == Account.id)
            .order_by(Account.created_at, Account.id)
        )
        return [(row[0], int(row[1])) for row in (await self.session.execute(statement)).all()]

    async def exists(self, account_id: str) -> bool:
        return await self.session.get(Account, account_id) is not None

    def add(self, account: Account) -> None:
        self.session.add(account)

    def add_user(self, user: User) -> None:
        self.session.add(user)
