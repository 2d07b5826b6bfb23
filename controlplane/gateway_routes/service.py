"""Publishing routes. Each change takes the next table version (unique), so a concurrent
publish fails on the constraint and is retried rather than hiding a change from gateways."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.models import GatewayRoute


async def publish(
    session: AsyncSession, namespace_id: str, cell_address: str, accepted_client_ca: str
) -> None:
    repository = GatewayRouteRepository(session)
    route = await repository.get(namespace_id)
    if (
        route is not None
        and not route.removed
        and route.cell_address == cell_address
        and route.accepted_client_ca == accepted_client_ca
    ):
        return
    version = await repository.table_version() + 1
    if route is None:
        repository.add(
            GatewayRoute(
                namespace_id=namespace_id,
                cell_address=cell_address,
                accepted_client_ca=accepted_client_ca,
                version=version,
            )
        )
    else:
        route.cell_address = cell_address
        route.accepted_client_ca = accepted_client_ca
        route.removed = False
        route.version = version
    await session.flush()


async def unpublish(session: AsyncSession, namespace_id: str) -> None:
    repository = GatewayRouteRepository(session)
    route = await repository.get(namespace_id)
    if route is None or route.removed:
        return
    route.removed = True
    route.version = await repository.table_version() + 1
    await session.flush()
