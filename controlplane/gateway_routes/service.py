"""Publishing routes. Each change takes the next table version (unique), so a concurrent
publish fails on the constraint and is retried rather than hiding a change from gateways."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.gateway_routes.repository import (
    GatewayInstanceRepository,
    GatewayRouteRepository,
)
from controlplane.kit.db import utcnow
from controlplane.models import GatewayInstance, GatewayRoute


@dataclass(frozen=True)
class RouteSpec:
    """Everything a gateway needs for one namespace."""

    namespace_id: str
    cell_address: str
    accepted_client_ca: str
    cell_namespace_id: str
    certificate_filters: list[dict[str, str]]
    auth_method: str
    requests_per_second: int
    actions_per_second: int

    def fields(self) -> dict[str, object]:
        values = asdict(self)
        values.pop("namespace_id")
        return values


async def publish(session: AsyncSession, spec: RouteSpec) -> int:
    """Publish (or update) a route; returns the table version that carries it."""
    repository = GatewayRouteRepository(session)
    route = await repository.get(spec.namespace_id)
    fields = spec.fields()
    if (
        route is not None
        and not route.removed
        and all(getattr(route, name) == value for name, value in fields.items())
    ):
        return route.version
    version = await repository.table_version() + 1
    if route is None:
        repository.add(GatewayRoute(namespace_id=spec.namespace_id, version=version, **fields))
    else:
        for name, value in fields.items():
            setattr(route, name, value)
        route.removed = False
        route.version = version
    await session.flush()
    return version


async def unpublish(session: AsyncSession, namespace_id: str) -> int:
    """Remove a route; returns the table version without it."""
    repository = GatewayRouteRepository(session)
    route = await repository.get(namespace_id)
    if route is None:
        return 0
    if not route.removed:
        route.removed = True
        route.version = await repository.table_version() + 1
        await session.flush()
    return route.version


# A gateway that has not polled for this long is considered gone and is not waited for.
GATEWAY_LIVENESS = dt.timedelta(seconds=15)


async def record_gateway_poll(session: AsyncSession, gateway_id: str, applied_version: int) -> None:
    """Remember what a gateway has applied (it says so with ``If-None-Match``)."""
    repository = GatewayInstanceRepository(session)
    instance = await repository.get(gateway_id)
    now = utcnow()
    if instance is None:
        repository.add(
            GatewayInstance(id=gateway_id, applied_version=applied_version, last_seen_at=now)
        )
    elif instance.applied_version != applied_version or now - instance.last_seen_at > dt.timedelta(
        seconds=2
    ):
        # Only write when something changed or liveness needs refreshing: polls are frequent.
        instance.applied_version = applied_version
        instance.last_seen_at = now
    await session.flush()


async def lagging_gateways(session: AsyncSession, version: int) -> list[str]:
    """Ids of live gateways that have not applied ``version`` yet."""
    lagging = await GatewayInstanceRepository(session).live_lagging(
        utcnow() - GATEWAY_LIVENESS, version
    )
    return [instance.id for instance in lagging]
