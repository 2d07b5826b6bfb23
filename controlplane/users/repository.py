from __future__ import annotations

from sqlalchemy import func, select

from auth import AccountRole
from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import User


class UserRepository(TenantRepository):
    """The caller's account's users."""

    async def get(self, user_id: str) -> User | None:
        statement = self._scoped(select(User).where(User.id == user_id), User.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_email(self, email: str) -> User | None:
        statement = self._scoped(select(User).where(User.email == email), User.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def page(self, page: PageRequest, *, email: str | None) -> Page[User]:
        """A page of the account's users by email; only ``email`` when given."""
        statement = self._scoped(select(User), User.account_id)
        if email is not None:
            statement = statement.where(User.email == email)
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(User.email, User.id),
            list_name="users",
            account_id=self.account_id,
            filters={"email": email},
        )

    async def list_all(self) -> list[User]:
        statement = self._scoped(select(User).order_by(User.email), User.account_id)
        return list((await self.session.execute(statement)).scalars())

    async def count_owners(self) -> int:
        statement = self._scoped(
            select(func.count())
            .select_from(User)
            .where(User.account_role == AccountRole.OWNER.value),
            User.account_id,
        )
        return int((await self.session.execute(statement)).scalar_one())

    def add(self, user: User) -> None:
        self._add(user)

    async def delete(self, user: User) -> None:
        await self._delete(user)
