from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, Principal
from controlplane.kit.tenancy import scoped
from controlplane.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_scoped(self, principal: Principal, user_id: str) -> User | None:
        statement = scoped(select(User).where(User.id == user_id), User.account_id, principal)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_email_scoped(self, principal: Principal, email: str) -> User | None:
        statement = scoped(select(User).where(User.email == email), User.account_id, principal)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_scoped(self, principal: Principal) -> list[User]:
        statement = scoped(select(User).order_by(User.email), User.account_id, principal)
        return list((await self.session.execute(statement)).scalars())

    async def count_owners_scoped(self, principal: Principal) -> int:
        statement = scoped(
            select(func.count())
            .select_from(User)
            .where(User.account_role == AccountRole.OWNER.value),
            User.account_id,
            principal,
        )
        return int((await self.session.execute(statement)).scalar_one())

    def add(self, user: User) -> None:
        self.session.add(user)

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
