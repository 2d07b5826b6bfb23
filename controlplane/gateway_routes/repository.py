from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models import GatewayInstance, GatewayRoute


class GatewayRouteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def table_version(self) -> int:
        result = await self.session.execute(select(func.max(GatewayRoute.version)))
        return int(result.scalar_one_or_none() or 0)

    async def active(self) -> list[GatewayRoute]:
        result = await self.session.execute(
            select(GatewayRoute)
            .where(GatewayRoute.removed.is_(False))
            .order_by(GatewayRoute.namespace_id)
        )
        return list(result.scalars())

    async def get(self, namespace_id: str) -> GatewayRoute | None:
        return await self.session.get(GatewayRoute, namespace_id)

    def add(self, route: GatewayRoute) -> None:
        self.session.add(route)


class GatewayInstanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, gateway_id: str) -> GatewayInstance | None:
        return await self.session.get(GatewayInstance, gateway_id)

    def add(self, instance: GatewayInstance) -> None:
        self.session.add(instance)

    async def all(self) -> list[GatewayInstance]:
        result = await self.session.execute(select(GatewayInstance).order_by(GatewayInstance.id))
        return list(result.scalars())

    async def delete(self, instance: GatewayInstance) -> None:
        await self.session.delete(instance)
