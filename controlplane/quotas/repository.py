from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models import (
    Account,
    AccountQuota,
    ApiKey,
    AsyncOperation,
    Namespace,
    OperationState,
    ServiceAccount,
    User,
    UserGroup,
)

IN_FLIGHT = (OperationState.PENDING, OperationState.IN_PROGRESS)


class QuotaRepository:
    """One account's quota rows and what counts against them.

    System access by design: a quota counts every row of the account, including those the
    caller may not see (a developer's namespace count includes the namespaces it cannot read),
    so the account is given explicitly rather than taken from a principal.
    """

    def __init__(self, session: AsyncSession, account_id: str) -> None:
        self.session = session
        self.account_id = account_id

    async def lock_account(self) -> bool:
        """Serialise quota checks of this account until the transaction ends; False when the
        account does not exist.

        A no-op UPDATE of the account row: on PostgreSQL it takes the row lock (a concurrent
        check waits for this transaction, then counts what it committed, as READ COMMITTED
        reads afresh per statement); on SQLite it takes the database's single write lock.
        ``SELECT ... FOR UPDATE`` alone would lock nothing on SQLite.
        """
        result = await self.session.execute(
            update(Account)
            .where(Account.id == self.account_id)
            .values(name=Account.name, updated_at=Account.updated_at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def account_exists(self) -> bool:
        return await self.session.get(Account, self.account_id) is not None

    async def overrides(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(AccountQuota.quota, AccountQuota.maximum).where(
                AccountQuota.account_id == self.account_id
            )
        )
        return {quota: maximum for quota, maximum in rows.tuples()}

    async def override(self, quota: str) -> int | None:
        row = await self.session.get(AccountQuota, (self.account_id, quota))
        return None if row is None else row.maximum

    async def set_override(self, quota: str, maximum: int) -> None:
        row = await self.session.get(AccountQuota, (self.account_id, quota))
        if row is None:
            self.session.add(AccountQuota(account_id=self.account_id, quota=quota, maximum=maximum))
        else:
            row.maximum = maximum

    async def clear_override(self, quota: str) -> None:
        await self.session.execute(
            delete(AccountQuota).where(
                AccountQuota.account_id == self.account_id, AccountQuota.quota == quota
            )
        )

    async def _count(self, model: type[Namespace | User | ServiceAccount | UserGroup]) -> int:
        statement = (
            select(func.count()).select_from(model).where(model.account_id == self.account_id)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def count_namespaces(self) -> int:
        return await self._count(Namespace)

    async def count_users(self) -> int:
        return await self._count(User)

    async def count_service_accounts(self) -> int:
        return await self._count(ServiceAccount)

    async def count_groups(self) -> int:
        return await self._count(UserGroup)

    async def count_operations_in_flight(self) -> int:
        statement = (
            select(func.count())
            .select_from(AsyncOperation)
            .where(
                AsyncOperation.account_id == self.account_id,
                AsyncOperation.state.in_(IN_FLIGHT),
            )
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def most_tags_of_one_namespace(self) -> int:
        statement = select(Namespace.tags).where(Namespace.account_id == self.account_id)
        tags = (await self.session.execute(statement)).scalars()
        return max((len(held) for held in tags), default=0)

    def _live_keys(self, now: dt.datetime) -> list[ColumnElement[bool]]:
        # Disabled keys count (they can be enabled again at any time); expired ones do not.
        return [
            ApiKey.account_id == self.account_id,
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        ]

    async def count_keys_of(self, owner_type: str, owner_id: str, now: dt.datetime) -> int:
        statement = (
            select(func.count())
            .select_from(ApiKey)
            .where(*self._live_keys(now), ApiKey.owner_type == owner_type)
            .where(ApiKey.owner_id == owner_id)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def most_keys_of_one_principal(self, now: dt.datetime) -> int:
        per_owner = (
            select(func.count().label("held"))
            .select_from(ApiKey)
            .where(*self._live_keys(now))
            .group_by(ApiKey.owner_type, ApiKey.owner_id)
            .subquery()
        )
        result = await self.session.execute(select(func.max(per_owner.c.held)))
        return int(result.scalar_one_or_none() or 0)
