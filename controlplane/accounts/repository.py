from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models import Account, User


class SystemAccountRepository:
    """Accounts and their first owner, created by the operator."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exists(self, account_id: str) -> bool:
        return await self.session.get(Account, account_id) is not None

    def add(self, account: Account) -> None:
        self.session.add(account)

    def add_user(self, user: User) -> None:
        self.session.add(user)
