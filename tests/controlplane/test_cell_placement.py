"""Placement of new namespaces on cells, below the API, on SQLite and on PostgreSQL: shared
packing across accounts by fewest namespaces, never above capacity (also when two creates race
for the last place), draining cells take none, dedicated cells bind to one account; and the
deregistration refusal, the audit trail and the route republication on a health change."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import Principal, PrincipalKind
from controlplane.cells import service as cells
from controlplane.cells.repository import CellRepository
from controlplane.gateway_routes import service as routes
from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.kit.db import unit_of_work
from controlplane.kit.errors import Conflict
from controlplane.models import Account, AuditEvent, Cell, Namespace, NamespaceState
from controlplane.states import CellPlacement, CellProbeState, CellState
from dataplane.cells import CellProviderKind
from dataplane.gateway import RouteEntry

OPERATOR = Principal(PrincipalKind.OPERATOR, "operator", None, None, "operator")
ACCOUNTS = ("acct-a", "acct-b", "acct-c")

Sessions = async_sessionmaker[AsyncSession]


async def _setup(sessions: Sessions, specs: list[tuple[str, CellPlacement, int]]) -> None:
    async with unit_of_work(sessions) as session:
        for account_id in ACCOUNTS:
            session.add(Account(id=account_id, name=account_id))
        for name, placement, capacity in specs:
            session.add(
                Cell(
                    id=name,
                    provider="external",
                    address="127.0.0.1:1",
                    metrics_url="",
                    placement=placement,
                    max_namespaces=capacity,
                )
            )


def _namespace(account_id: str) -> Namespace:
    name = f"n{uuid.uuid4().hex[:8]}"
    return Namespace(
        id=f"{name}.{account_id}",
        account_id=account_id,
        name=name,
        retention_days=1,
        accepted_client_ca="",
        state=NamespaceState.ACTIVATING,
        resource_version=str(uuid.uuid4()),
    )


async def _create(
    sessions: Sessions,
    account_id: str,
    policy: CellPlacement,
    provider: CellProviderKind = CellProviderKind.LOCAL,
) -> str | None:
    """What a namespace create does: add the row, place it, commit."""
    async with unit_of_work(sessions) as session:
        namespace = _namespace(account_id)
        session.add(namespace)
        cell = await cells.place(session, namespace, policy, provider=provider)
        return cell.id if cell else None


async def test_shared_placement_packs_by_fewest_and_stops_at_capacity(sessions: Sessions) -> None:
    await _setup(
        sessions,
        [
            ("shared-a", CellPlacement.SHARED, 2),
            ("shared-b", CellPlacement.SHARED, 1),
            ("dedicated-x", CellPlacement.DEDICATED, 5),
        ],
    )
    placed = [await _create(sessions, account, CellPlacement.SHARED) for account in ACCOUNTS]
    # Fewest namespaces first (ties by name), accounts mixed on one cell.
    assert placed == ["shared-a", "shared-b", "shared-a"]
    with pytest.raises(cells.NoCellCapacity, match="no active shared cell has room"):
        await _create(sessions, "acct-a", CellPlacement.SHARED)
    async with unit_of_work(sessions) as session:
        assert await cells.namespace_counts(session) == {"shared-a": 2, "shared-b": 1}


async def test_a_draining_cell_takes_no_namespace(sessions: Sessions) -> None:
    await _setup(sessions, [("shared-a", CellPlacement.SHARED, 10)])
    async with unit_of_work(sessions) as session:
        await cells.set_state(session, OPERATOR, "shared-a", CellState.DRAINING)
    with pytest.raises(cells.NoCellCapacity):
        await _create(sessions, "acct-a", CellPlacement.SHARED)
    async with unit_of_work(sessions) as session:
        await cells.set_state(session, OPERATOR, "shared-a", CellState.ACTIVE)
    assert await _create(sessions, "acct-a", CellPlacement.SHARED) == "shared-a"
    async with unit_of_work(sessions) as session:
        actions = (
            await session.execute(
                select(AuditEvent.action).where(AuditEvent.target == "cell/shared-a")
            )
        ).scalars()
        assert list(actions) == ["cell.drain", "cell.undrain"]


async def test_two_creates_for_the_last_place_place_exactly_one(sessions: Sessions) -> None:
    await _setup(sessions, [("shared-a", CellPlacement.SHARED, 3)])
    for _ in range(2):
        await _create(sessions, "acct-c", CellPlacement.SHARED)
    for _ in range(3):  # the race is decided by the lock, whichever wins
        outcomes = await asyncio.gather(
            _create(sessions, "acct-a", CellPlacement.SHARED),
            _create(sessions, "acct-b", CellPlacement.SHARED),
            return_exceptions=True,
        )
        async with unit_of_work(sessions) as session:
            assert (await cells.namespace_counts(session)) == {"shared-a": 3}
        assert sorted(type(o).__name__ for o in outcomes) == ["NoCellCapacity", "str"], outcomes
        async with unit_of_work(sessions) as session:  # free the last place again
            statement = select(Namespace).where(Namespace.account_id.in_(["acct-a", "acct-b"]))
            for namespace in (await session.execute(statement)).scalars():
                await session.delete(namespace)


async def test_dedicated_cells_bind_one_account_each(sessions: Sessions) -> None:
    await _setup(
        sessions,
        [("dedicated-x", CellPlacement.DEDICATED, 2), ("shared-a", CellPlacement.SHARED, 9)],
    )
    assert await _create(sessions, "acct-a", CellPlacement.DEDICATED) == "dedicated-x"
    assert await _create(sessions, "acct-a", CellPlacement.DEDICATED) == "dedicated-x"
    # Another account never lands on it (nor on a shared cell): its local cell is made later.
    assert await _create(sessions, "acct-b", CellPlacement.DEDICATED) is None
    # The account's own cell is full: a clear refusal, not another account's cell.
    with pytest.raises(cells.NoCellCapacity, match="dedicated cell dedicated-x"):
        await _create(sessions, "acct-a", CellPlacement.DEDICATED)
    async with unit_of_work(sessions) as session:
        cell = await session.get(Cell, "dedicated-x")
        assert cell is not None
        assert cell.account_id == "acct-a"


async def test_external_provider_never_falls_back_to_a_local_cell(sessions: Sessions) -> None:
    """With STRATUS_CELL_PROVIDER=external every namespace lands on a registered cell: dedicated
    placement with no free registered dedicated cell is a 503 ``no-cell-capacity`` at create
    (the local provider would make the account's local cell instead), and nothing is placed."""
    await _setup(
        sessions,
        [("dedicated-x", CellPlacement.DEDICATED, 5), ("shared-a", CellPlacement.SHARED, 9)],
    )
    external = CellProviderKind.EXTERNAL
    assert await _create(sessions, "acct-a", CellPlacement.DEDICATED, external) == "dedicated-x"
    with pytest.raises(cells.NoCellCapacity) as refused:
        await _create(sessions, "acct-b", CellPlacement.DEDICATED, external)
    assert refused.value.status == 503
    assert refused.value.slug == "no-cell-capacity"
    assert str(refused.value) == (
        "no registered dedicated cell is free for this account (the operator registers "
        "cells with `stratus cell register --placement dedicated`)"
    )
    assert await _create(sessions, "acct-b", CellPlacement.SHARED, external) == "shared-a"
    async with unit_of_work(sessions) as session:
        placed = (await session.execute(select(Namespace.account_id, Namespace.cell_id))).all()
        # An account's local cell from before the switch: the external provider cannot run it.
        session.add(
            Cell(
                id="cell-acct-c", account_id="acct-c", provider="local", address="x", metrics_url=""
            )
        )
    assert sorted(placed) == [("acct-a", "dedicated-x"), ("acct-b", "shared-a")]
    with pytest.raises(cells.NoCellCapacity, match="cell-acct-c is a local cell"):
        await _create(sessions, "acct-c", CellPlacement.DEDICATED, external)
    assert await _create(sessions, "acct-c", CellPlacement.DEDICATED) is None  # local: as before


async def test_deregistration_is_refused_while_namespaces_live_on_the_cell(
    sessions: Sessions,
) -> None:
    await _setup(sessions, [("shared-a", CellPlacement.SHARED, 9)])
    await _create(sessions, "acct-a", CellPlacement.SHARED)
    with pytest.raises(Conflict, match="still holds 1 namespace"):
        async with unit_of_work(sessions) as session:
            await cells.deregister(session, OPERATOR, "shared-a")
    async with unit_of_work(sessions) as session:
        for namespace in (await session.execute(select(Namespace))).scalars():
            await session.delete(namespace)
    async with unit_of_work(sessions) as session:
        await cells.deregister(session, OPERATOR, "shared-a")
    async with unit_of_work(sessions) as session:
        assert await session.get(Cell, "shared-a") is None
        events = await session.execute(select(AuditEvent.action, AuditEvent.details))
        assert [(action, details) for action, details in events] == [
            ("cell.deregister", {"frontend": "127.0.0.1:1"})
        ]


async def test_a_health_change_republishes_the_cells_routes(sessions: Sessions) -> None:
    """Gateways poll by table version: a cell turning unhealthy must bump it."""
    await _setup(sessions, [("shared-a", CellPlacement.SHARED, 9)])
    async with unit_of_work(sessions) as session:
        for namespace_id, cell_id in (("one.acct-a", "shared-a"), ("two.acct-b", "")):
            await routes.publish(
                session,
                RouteEntry(
                    namespace_id=namespace_id,
                    cell_address="127.0.0.1:1",
                    cell_id=cell_id,
                    accepted_client_ca="",
                ),
            )
        before = await GatewayRouteRepository(session).table_version()
        cell = await session.get(Cell, "shared-a")
        assert cell is not None
        cell.health_state = CellProbeState.UNHEALTHY
        after = await routes.republish_cell(session, "shared-a")
        assert after == before + 1 == await GatewayRouteRepository(session).table_version()
        (entry,) = await routes.cell_entries(session, {"shared-a"}, lambda *_a, **_k: "")
        assert entry.healthy is False
        assert entry.tls is None


async def test_namespaces_on_shared_cells_do_not_keep_a_local_cell_running(
    sessions: Sessions,
) -> None:
    """The keeper's idle count of an account's local cell leaves out its shared namespaces."""
    await _setup(sessions, [("shared-a", CellPlacement.SHARED, 9)])
    async with unit_of_work(sessions) as session:
        session.add(
            Cell(
                id="cell-acct-a",
                account_id="acct-a",
                provider="local",
                address="127.0.0.1:2",
                metrics_url="",
            )
        )
    await _create(sessions, "acct-a", CellPlacement.SHARED)
    async with unit_of_work(sessions) as session:
        assert await CellRepository(session).namespace_counts() == {}
    assert await _create(sessions, "acct-a", CellPlacement.DEDICATED) is None  # its local cell
    async with unit_of_work(sessions) as session:
        (namespace,) = (
            await session.execute(select(Namespace).where(Namespace.cell_id.is_(None)))
        ).scalars()
        assert await CellRepository(session).namespace_counts() == {"acct-a": 1}
        namespace.cell_id = "cell-acct-a"
        await session.flush()
        assert await CellRepository(session).namespace_counts() == {"acct-a": 1}
