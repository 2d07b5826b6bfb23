from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models import ApiKey, User


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def get_user(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)
