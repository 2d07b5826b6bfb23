from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal
from controlplane.kit.tenancy import scoped
from controlplane.models import ApiKey, ServiceAccount, User


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Authentication happens before there is a principal to scope by.
    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def get_user(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def get_service_account(self, service_account_id: str) -> ServiceAccount | None:
        return await self.session.get(ServiceAccount, service_account_id)

    async def get_scoped(self, principal: Principal, key_id: str) -> ApiKey | None:
        statement = scoped(select(ApiKey).where(ApiKey.id == key_id), ApiKey.account_id, principal)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_scoped(self, principal: Principal, *, owner_id: str | None) -> list[ApiKey]:
        """The account's keys, newest first; only ``owner_id``'s when given."""
        statement = scoped(
            select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id),
            ApiKey.account_id,
            principal,
        )
        if owner_id is not None:
            statement = statement.where(ApiKey.owner_id == owner_id)
        return list((await self.session.execute(statement)).scalars())

    def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)

    async def delete(self, api_key: ApiKey) -> None:
        await self.session.delete(api_key)

    async def delete_all_of(self, principal: Principal, *, owner_type: str, owner_id: str) -> None:
        await self.session.execute(
            delete(ApiKey).where(
                ApiKey.account_id == principal.account_id,
                ApiKey.owner_type == owner_type,
                ApiKey.owner_id == owner_id,
            )
        )
