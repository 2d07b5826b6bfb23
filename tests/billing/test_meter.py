"""The action meter against real cells: a known workload driven by a real worker bills exactly
the actions Temporal counted, once, across repeated scrapes, a scraper restart, a crash between
reading and committing, an unreachable cell and a cell restart in the middle of the work."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx
import pytest
from cell_support import register_namespace
from metering_workflows import OrderWorkflow, ReceiptWorkflow, charge
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import free_port
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from billing import ActionKind, Meter, read_cell_counters
from controlplane.models import UsageRecord
from dataplane.cells import CellSpec, LocalCellProvider

NOW = dt.datetime(2026, 11, 24, 14, 25, 7, tzinfo=dt.UTC)
HOUR = dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC)
TASK_QUEUE = "orders"

# What Temporal's counter records for one OrderWorkflow plus one query (observed on a real
# cell): the child workflow is counted twice by the server itself.
STARTED = {
    "grpc_StartWorkflowExecution": 1,
    "command_ScheduleActivityTask": 1,
    "activity_retry": 1,
    "command_StartTimer": 1,
}
FINISHED = {
    "grpc_SignalWorkflowExecution": 1,
    "grpc_QueryWorkflow": 1,
    "command_StartChildWorkflowExecution": 1,
    "command_StartChildWorkflowExecution_Extra": 1,
}
PER_ORDER_KINDS = {
    ActionKind.WORKFLOW: 1,
    ActionKind.ACTIVITY: 2,
    ActionKind.TIMER: 1,
    ActionKind.SIGNAL: 1,
    ActionKind.QUERY: 1,
    ActionKind.CHILD_WORKFLOW: 2,
}


def _times(counts: Mapping[str, int], factor: int) -> dict[str, int]:
    return {key: value * factor for key, value in counts.items()}


def _add(*counts: Mapping[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for key, value in each.items():
            total[key] = total.get(key, 0) + value
    return total


@dataclass
class RunningCell:
    provider: LocalCellProvider
    spec: CellSpec

    @property
    def address(self) -> str:
        return self.provider.address(self.spec.cell_id)

    @property
    def endpoint(self) -> tuple[str, str]:
        return (self.spec.cell_id, self.provider.metrics_url(self.spec.cell_id))


async def _start_cell(provider: LocalCellProvider, cell_id: str) -> RunningCell:
    spec = CellSpec(cell_id, free_port(), free_port(), free_port())
    await provider.start(spec)
    return RunningCell(provider, spec)


async def _register(cell: RunningCell, namespace: str) -> None:
    await register_namespace(cell.address, namespace, TASK_QUEUE)


@pytest.fixture(scope="module")
async def provider(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCellProvider]:
    provider = LocalCellProvider(tmp_path_factory.mktemp("cells"))
    try:
        yield provider
    finally:
        await asyncio.gather(*(provider.stop(cell) for cell in provider.known_cells()))


@pytest.fixture(scope="module")
async def cell(provider: LocalCellProvider) -> RunningCell:
    """One cell shared by the tests that do not restart it; each test uses its own namespace."""
    return await _start_cell(provider, "cell-shared")


@pytest.fixture
async def namespace(cell: RunningCell) -> str:
    namespace = f"n{uuid.uuid4().hex[:8]}.acme1"
    await _register(cell, namespace)
    return namespace


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def meter(http: httpx.AsyncClient) -> Meter:
    return Meter(http, clock=lambda: NOW)


async def _start_orders(client: Client, count: int) -> list[WorkflowHandle[OrderWorkflow, str]]:
    return [
        await client.start_workflow(
            OrderWorkflow.run, f"order-{i}", id=f"order-{uuid.uuid4().hex}", task_queue=TASK_QUEUE
        )
        for i in range(count)
    ]


async def _finish_orders(handles: list[WorkflowHandle[OrderWorkflow, str]]) -> None:
    for handle in handles:
        await handle.signal(OrderWorkflow.approve)
        assert await handle.query(OrderWorkflow.approved)
        await handle.result()


def _worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[OrderWorkflow, ReceiptWorkflow],
        activities=[charge],
    )


async def _run_orders(cell: RunningCell, namespace: str, count: int) -> None:
    client = await Client.connect(cell.address, namespace=namespace)
    async with _worker(client):
        await _finish_orders(await _start_orders(client, count))


async def _counted(
    http: httpx.AsyncClient, cell: RunningCell, namespace: str, expected: Mapping[str, int]
) -> None:
    """Wait until the cell exports ``expected`` for the namespace: the server publishes counter
    increments to its metrics endpoint on a reporting interval, not at once."""
    deadline = time.monotonic() + 30
    while True:
        text = (await http.get(cell.endpoint[1])).text
        seen = {
            action_type: value
            for (namespace_id, action_type), value in read_cell_counters(text).actions.items()
            if namespace_id == namespace and value
        }
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"cell exports {seen}, expected {expected}"
        await asyncio.sleep(0.2)


async def _usage(sessions: async_sessionmaker[AsyncSession], namespace: str) -> dict[str, int]:
    async with sessions() as session:
        records = (
            await session.scalars(select(UsageRecord).where(UsageRecord.namespace_id == namespace))
        ).all()
    assert all(record.hour_start == HOUR for record in records)
    assert all(record.account_id == "acme1" for record in records)
    return {record.kind: record.quantity for record in records}


async def _scrape(
    meter: Meter, sessions: async_sessionmaker[AsyncSession], cells: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    async with sessions() as session, session.begin():
        report = await meter.scrape_once(session, cells)
    assert report.failed == {}
    return report.added


async def test_known_workload_bills_exactly_the_actions_temporal_counted(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Three orders, each with a retried activity, a timer, a signal, a query and a child
    workflow, bill 3 workflows, 6 activities, 3 timers, 3 signals, 3 queries and 6 child
    workflow actions, in one row per kind for the current hour; a second scrape adds nothing."""
    await _run_orders(cell, namespace, 3)
    await _counted(http, cell, namespace, _times(_add(STARTED, FINISHED), 3))

    added = await _scrape(meter, sessions, [cell.endpoint])

    expected = {str(kind): count for kind, count in _times(PER_ORDER_KINDS, 3).items()}
    assert {kind: n for (ns, kind), n in added.items() if ns == namespace} == expected
    assert await _usage(sessions, namespace) == expected
    assert sum(expected.values()) == 3 * 8

    again = await _scrape(meter, sessions, [cell.endpoint])

    assert [key for key in again if key[0] == namespace] == []
    assert await _usage(sessions, namespace) == expected


async def test_restarted_meter_resumes_from_its_persisted_cursors(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A new Meter (a restarted scraper process) bills only work done after the last committed
    scrape; work spanning several missed scrapes is billed once, in full, by the next one."""
    await _run_orders(cell, namespace, 1)
    await _counted(http, cell, namespace, _add(STARTED, FINISHED))
    await _scrape(Meter(http, clock=lambda: NOW), sessions, [cell.endpoint])

    await _run_orders(cell, namespace, 2)
    await _counted(http, cell, namespace, _times(_add(STARTED, FINISHED), 3))
    restarted = Meter(http, clock=lambda: NOW)
    added = await _scrape(restarted, sessions, [cell.endpoint])

    expected_added = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 2).items()}
    assert {kind: n for (ns, kind), n in added.items() if ns == namespace} == expected_added
    expected = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 3).items()}
    assert await _usage(sessions, namespace) == expected


async def test_scrape_rolled_back_before_commit_is_billed_once_by_the_next(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A scrape that computed and flushed its deltas but never committed (the process died)
    leaves no usage; the next scrape reads the same cursors and bills the work exactly once."""
    await _run_orders(cell, namespace, 2)
    await _counted(http, cell, namespace, _times(_add(STARTED, FINISHED), 2))
    expected = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 2).items()}

    async with sessions() as session:
        report = await meter.scrape_once(session, [cell.endpoint])
        assert {kind: n for (ns, kind), n in report.added.items() if ns == namespace} == expected
        await session.rollback()

    assert await _usage(sessions, namespace) == {}

    await _scrape(meter, sessions, [cell.endpoint])
    await _scrape(meter, sessions, [cell.endpoint])

    assert await _usage(sessions, namespace) == expected


async def test_unreachable_cell_is_reported_and_skipped(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A cell whose metrics endpoint does not answer is reported as failed and bills nothing;
    the other cells of the same scrape are billed."""
    await _run_orders(cell, namespace, 1)
    await _counted(http, cell, namespace, _add(STARTED, FINISHED))
    ghost = ("cell-ghost", f"http://127.0.0.1:{free_port()}/metrics")

    async with sessions() as session, session.begin():
        report = await meter.scrape_once(session, [ghost, cell.endpoint])

    assert list(report.failed) == ["cell-ghost"]
    assert report.failed["cell-ghost"].startswith("ConnectError")
    expected = {str(kind): n for kind, n in PER_ORDER_KINDS.items()}
    assert await _usage(sessions, namespace) == expected


async def test_cell_restart_mid_workload_keeps_totals_exact(
    provider: LocalCellProvider,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Orders started before a cell restart and finished after it, plus orders run after it,
    bill exactly once in total: the restart (counters back to zero) is detected and the new
    process's counters are billed from zero."""
    cell = await _start_cell(provider, "cell-restarted")
    namespace = "restart.acme1"
    await _register(cell, namespace)

    client = await Client.connect(cell.address, namespace=namespace)
    async with _worker(client):
        waiting = await _start_orders(client, 2)
        await _counted(http, cell, namespace, _times(STARTED, 2))
    await _scrape(meter, sessions, [cell.endpoint])

    await provider.stop(cell.spec.cell_id)
    await provider.start(cell.spec)
    async with sessions() as session, session.begin():
        report = await meter.scrape_once(session, [cell.endpoint])
    assert report.restarted == [cell.spec.cell_id]

    client = await Client.connect(cell.address, namespace=namespace)
    async with _worker(client):
        handles = [client.get_workflow_handle_for(OrderWorkflow.run, h.id) for h in waiting]
        await _finish_orders(handles)
        await _finish_orders(await _start_orders(client, 1))
    # The new process counts only what happened after it started.
    await _counted(http, cell, namespace, _add(_times(FINISHED, 3), STARTED))
    await _scrape(meter, sessions, [cell.endpoint])

    expected = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 3).items()}
    assert await _usage(sessions, namespace) == expected
