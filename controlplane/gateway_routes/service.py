"""Publishing routes. Each change takes the next table version (unique), so a concurrent
publish fails on the constraint and is retried rather than hiding a change from gateways."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal
from controlplane.audit import service as audit
from controlplane.gateway_routes.repository import (
    GatewayInstanceRepository,
    GatewayLatencyRepository,
    GatewayRouteRepository,
    ThrottledHourRepository,
)
from controlplane.kit.db import utcnow
from controlplane.kit.errors import NotFound
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import Account, Cell, GatewayInstance, GatewayRoute
from controlplane.models.cell import KeyOpener
from controlplane.models.gateway_latency import LATENCY_BUCKET_NAMES, SUM_BUCKET
from controlplane.states import AccountState, CellProbeState
from dataplane.gateway import RouteEntry
from dataplane.gateway._routes import CellEntry, CellTlsEntry

# How stale ``last_seen_at`` may get while a gateway keeps polling with nothing new to say.
LAST_SEEN_REFRESH = dt.timedelta(seconds=30)

_STORED = frozenset(GatewayRoute.__table__.columns.keys())


async def publish(session: AsyncSession, entry: RouteEntry) -> int:
    """Publish (or update) a namespace's entry; returns the table version that carries it."""
    repository = GatewayRouteRepository(session)
    route = await repository.get(entry.namespace_id)
    # The entry's fields the table stores (the wire entry may carry more).
    fields = {
        name: value
        for name, value in entry.model_dump(exclude={"namespace_id"}).items()
        if name in _STORED
    }
    if (
        route is not None
        and not route.removed
        and all(getattr(route, name) == value for name, value in fields.items())
    ):
        return route.version
    await repository.lock_for_change()
    version = await repository.table_version() + 1
    if route is None:
        repository.add(GatewayRoute(namespace_id=entry.namespace_id, version=version, **fields))
    else:
        for name, value in fields.items():
            setattr(route, name, value)
        route.removed = False
        route.version = version
    await session.flush()
    return version


def suspension_of(account: Account) -> str:
    """What a suspended account's namespaces carry in their routes ("": not suspended): the
    text their callers' PERMISSION_DENIED gives."""
    if account.state in (AccountState.DELETING, AccountState.DELETED):
        return f"account {account.id} is being deleted; its namespaces serve no traffic"
    if account.state is not AccountState.SUSPENDED:
        return ""
    reason = f" ({account.suspension_reason})" if account.suspension_reason else ""
    return (
        f"account {account.id} is suspended{reason}; its namespaces serve no traffic until "
        "the operator resumes it"
    )[:600]


async def suspension_of_account(session: AsyncSession, account_id: str) -> str:
    account = await session.get(Account, account_id)
    return "" if account is None else suspension_of(account)


async def set_suspension(session: AsyncSession, namespace_ids: list[str], suspended: str) -> int:
    """Carry ``suspended`` (see :func:`suspension_of`) in the routes of ``namespace_ids`` (one
    account's), each with a new version; returns the table version that carries them all."""
    repository = GatewayRouteRepository(session)
    await repository.lock_for_change()
    version = await repository.table_version()
    for namespace_id in sorted(namespace_ids):
        route = await repository.get(namespace_id)
        if route is None or route.suspended == suspended:
            continue
        version += 1
        route.suspended = suspended
        route.version = version
        # One flush per route: the versions are unique, and may not collide mid-flush.
        await session.flush()
    return version


async def republish_cell(session: AsyncSession, cell_id: str) -> int:
    """Give the routes to ``cell_id`` new versions, so gateways fetch the table again and see
    what changed about the cell itself (its health); returns the new table version."""
    repository = GatewayRouteRepository(session)
    await repository.lock_for_change()
    version = await repository.table_version()
    for route in await repository.active():
        if route.cell_id == cell_id:
            version += 1
            route.version = version
            # One flush per route: the versions are unique, and may not collide mid-flush.
            await session.flush()
    return version


async def cell_entries(
    session: AsyncSession, cell_ids: set[str], open_key: KeyOpener
) -> list[CellEntry]:
    """The document's ``cells``: how gateways reach each cell the routes name (its TLS
    material with the key opened) and whether its last probe found it healthy."""
    entries = []
    for cell_id in sorted(cell_ids):
        cell = await session.get(Cell, cell_id)
        if cell is None:
            continue
        tls = cell.tls(open_key)
        entries.append(
            CellEntry(
                cell_id=cell.id,
                address=cell.address,
                tls=None
                if tls is None
                else CellTlsEntry(
                    ca_pem=tls.ca_pem,
                    cert_pem=tls.cert_pem,
                    key_pem=tls.key_pem,
                    server_name=tls.server_name,
                ),
                healthy=cell.health_state != CellProbeState.UNHEALTHY,
            )
        )
    return entries


async def unpublish(session: AsyncSession, namespace_id: str) -> int:
    """Remove a route; returns the table version without it."""
    repository = GatewayRouteRepository(session)
    route = await repository.get(namespace_id)
    if route is None:
        return 0
    if not route.removed:
        await repository.lock_for_change()
        route.removed = True
        route.version = await repository.table_version() + 1
        await session.flush()
    return route.version


async def record_gateway_poll(
    session: AsyncSession,
    gateway_id: str,
    applied_version: int,
    rejected: str = "",
    throttled: str = "",
    latency: str = "",
) -> None:
    """Register a gateway on its first poll and remember what it has applied (it says so with
    ``If-None-Match``) and which namespaces of that version it could not serve.

    Gateways poll twice a second each; an unchanged poll writes nothing but, at most every
    :data:`LAST_SEEN_REFRESH`, ``last_seen_at`` (which only ``stratus gateway list`` shows:
    activation waits for every registered gateway, seen lately or not). Every write takes
    SQLite's one write lock, which the API's requests and the worker need too.

    ``throttled`` is the gateway's RESOURCE_EXHAUSTED answers per namespace since it started
    (``X-Stratus-Gateway-Throttled``, refreshed by the gateway at most every few seconds): a
    change adds each namespace's increase to this hour's ``throttled_hours``. ``latency``
    (``X-Stratus-Gateway-Latency``) is its calls' latency per namespace, counted the same way
    into ``gateway_latency_buckets`` (the tenant metrics endpoint)."""
    repository = GatewayInstanceRepository(session)
    instance = await repository.get(gateway_id)
    now = utcnow()
    counted = False
    if instance is not None and instance.throttled != throttled:
        # Only when a gateway's counts changed (it was throttling someone): never per request.
        await _count_throttled(session, instance.throttled, throttled, now)
        instance.throttled = throttled
        counted = True
    if instance is not None and latency and instance.latency != latency:
        merged = await _count_latency(session, instance.latency, latency)
        if merged != instance.latency:
            instance.latency = merged
            counted = True
    if instance is None:
        await _count_throttled(session, "", throttled, now)
        latency = await _count_latency(session, "", latency)
        repository.add(
            GatewayInstance(
                id=gateway_id,
                applied_version=applied_version,
                last_seen_at=now,
                rejected=rejected,
                throttled=throttled,
                latency=latency,
            )
        )
    elif (
        instance.applied_version != applied_version
        or instance.rejected != rejected
        or now - instance.last_seen_at >= LAST_SEEN_REFRESH
    ):
        instance.applied_version = applied_version
        instance.rejected = rejected
        instance.last_seen_at = now
    elif not counted:
        return
    await session.flush()


def _parse_throttled(header: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in header.split(","):
        namespace_id, _, count = entry.partition("=")
        if namespace_id and count.isdigit():
            counts[namespace_id] = int(count)
    return counts


async def _count_throttled(
    session: AsyncSession, before: str, after: str, now: dt.datetime
) -> None:
    """Add each namespace's increase between a gateway's two reports to this hour's count (a
    count below the last one is a restarted gateway's: all of it is new)."""
    last = _parse_throttled(before)
    increases = {}
    for namespace_id, count in _parse_throttled(after).items():
        previous = last.get(namespace_id, 0)
        increase = count - previous if count >= previous else count
        if increase > 0:
            increases[namespace_id] = increase
    if increases:
        hour = now.replace(minute=0, second=0, microsecond=0)
        await ThrottledHourRepository(session).add(hour, increases)


def _parse_latency(header: str) -> dict[str, list[int]]:
    """Namespace id → [total microseconds, count per bucket...] of a latency report (entries
    of another shape are skipped: the gateway and this code read the same bucket bounds)."""
    parsed: dict[str, list[int]] = {}
    for entry in header.split(","):
        namespace_id, _, numbers = entry.partition("=")
        values = numbers.split(":")
        if (
            namespace_id
            and len(values) == len(LATENCY_BUCKET_NAMES) + 1
            and all(value.isdigit() for value in values)
        ):
            parsed[namespace_id] = [int(value) for value in values]
    return parsed


async def _count_latency(session: AsyncSession, before: str, after: str) -> str:
    """Add each namespace's increase since the gateway's last report of it (a report with
    fewer calls than that is a restarted gateway's: all of it is new); return what to remember
    of the gateway: its last report of every namespace (a report may leave out the less busy
    ones, whose counts are then compared with their own last report when they come back)."""
    last = _parse_latency(before)
    reported = _parse_latency(after)
    increases: dict[tuple[str, str], int] = {}
    for namespace_id, values in reported.items():
        previous = last.get(namespace_id, [0] * len(values))
        if any(now < then for now, then in zip(values, previous, strict=True)):
            previous = [0] * len(values)  # the gateway restarted
        for bucket, now, then in zip(
            (SUM_BUCKET, *LATENCY_BUCKET_NAMES), values, previous, strict=True
        ):
            if now > then:
                increases[(namespace_id, bucket)] = now - then
    if increases:
        await GatewayLatencyRepository(session).add(increases)
    merged = {**last, **reported}
    return ",".join(
        f"{namespace_id}=" + ":".join(map(str, values))
        for namespace_id, values in sorted(merged.items())
    )


def _rejects(instance: GatewayInstance, namespace_id: str) -> bool:
    return instance.rejected == "*" or namespace_id in instance.rejected.split(",")


async def lagging_gateways(
    session: AsyncSession, version: int, namespace_id: str | None = None
) -> list[str]:
    """Ids of registered gateways that do not serve route-table ``version`` yet, or (with
    ``namespace_id``) serve it without that namespace's CAs in force. A gateway that is down
    counts until it is back or deregistered: ACTIVE must mean usable at every gateway."""
    instances = await GatewayInstanceRepository(session).all()
    return [
        instance.id
        for instance in instances
        if instance.applied_version < version
        or (namespace_id is not None and _rejects(instance, namespace_id))
    ]


async def rejecting_gateways(session: AsyncSession, version: int, namespace_id: str) -> list[str]:
    """Gateways that applied ``version`` (or later) and could not serve ``namespace_id``."""
    instances = await GatewayInstanceRepository(session).all()
    return [
        instance.id
        for instance in instances
        if instance.applied_version >= version and _rejects(instance, namespace_id)
    ]


async def page_gateways(session: AsyncSession, page: PageRequest) -> Page[GatewayInstance]:
    return await GatewayInstanceRepository(session).page(page)


async def list_gateways(session: AsyncSession) -> list[GatewayInstance]:
    return await GatewayInstanceRepository(session).all()


async def deregister(session: AsyncSession, principal: Principal, gateway_id: str) -> None:
    """Remove a gateway from the set namespaces wait for (it registers again if it polls)."""
    repository = GatewayInstanceRepository(session)
    instance = await repository.get(gateway_id)
    if instance is None:
        raise NotFound(f"gateway {gateway_id} is not registered")
    await repository.delete(instance)
    audit.record(
        session,
        principal,
        action="gateway.deregister",
        target=f"gateway/{gateway_id}",
        account_id=None,
        details={"applied_version": instance.applied_version},
    )
    await session.flush()
