from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import ApiKey, ServiceAccount, User


class ApiKeyRepository(TenantRepository):
    """The API keys of the caller's account."""

    async def get(self, key_id: str) -> ApiKey | None:
        statement = self._scoped(select(ApiKey).where(ApiKey.id == key_id), ApiKey.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_all(self, *, owner_id: str | None) -> list[ApiKey]:
        """The account's keys, newest first; only ``owner_id``'s when given."""
        statement = self._scoped(
            select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id), ApiKey.account_id
        )
        if owner_id is not None:
            statement = statement.where(ApiKey.owner_id == owner_id)
        return list((await self.session.execute(statement)).scalars())

    def add(self, api_key: ApiKey) -> None:
        self._add(api_key)

    async def delete(self, api_key: ApiKey) -> None:
        await self._delete(api_key)

    async def delete_all_of(self, *, owner_type: str, owner_id: str) -> None:
        await self.session.execute(
            self._scoped(
                delete(ApiKey).where(ApiKey.owner_type == owner_type, ApiKey.owner_id == owner_id),
                ApiKey.account_id,
            )
        )


class SystemApiKeyRepository:
    """Authentication (a presented token before there is a principal) and keys issued without
    a caller: the operator's, and an account owner's first key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def get_user(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def get_service_account(self, service_account_id: str) -> ServiceAccount | None:
        return await self.session.get(ServiceAccount, service_account_id)

    def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)
