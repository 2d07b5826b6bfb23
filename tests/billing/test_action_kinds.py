"""Each billable kind on a real cell, as Temporal Cloud defines its actions
(https://docs.temporal.io/cloud/actions): updates (accepted or rejected, not deduplicated
ones), Signal-With-Start (one signal action, whether or not it starts the workflow), local
activities (one activity action per workflow task) and schedules (two schedule actions per
execution plus the workflow it starts; managing a schedule is free)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
from cell_support import register_namespace
from metering_workflows import CartWorkflow, StampWorkflow, TickWorkflow, stamp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import free_ports
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowUpdateFailedError,
)
from temporalio.worker import Worker

from billing import Meter, read_cell_counters
from controlplane.models import UsageRecord
from controlplane.usage.repository import usage_unit_of_work
from dataplane.cells import LocalCellProvider

pytestmark = pytest.mark.slow  # every test runs workflows on a real local cell

NOW = dt.datetime(2026, 11, 24, 14, 25, 7, tzinfo=dt.UTC)
TASK_QUEUE = "kinds"
CELL = "cell-kinds"


@pytest.fixture(scope="module")
async def cell(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCellProvider]:
    provider = LocalCellProvider(tmp_path_factory.mktemp("cells"), free_ports=free_ports)
    try:
        await provider.start(await provider.provision(CELL))
        yield provider
    finally:
        await provider.stop(CELL)


@pytest.fixture
async def client(cell: LocalCellProvider) -> AsyncIterator[Client]:
    namespace = f"k{uuid.uuid4().hex[:8]}.acme1"
    await register_namespace(cell.address(CELL), namespace, TASK_QUEUE)
    client = await Client.connect(cell.address(CELL), namespace=namespace)
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[CartWorkflow, StampWorkflow, TickWorkflow],
        activities=[stamp],
    ):
        yield client


async def _billed(
    cell: LocalCellProvider,
    sessions: async_sessionmaker[AsyncSession],
    namespace: str,
    counted: Mapping[str, int],
) -> dict[str, int]:
    """Wait until the cell exports ``counted`` (action type -> value) for the namespace, then
    scrape it and return the namespace's usage per kind."""
    url = cell.metrics_url(CELL)
    async with httpx.AsyncClient(timeout=10) as http:
        deadline = time.monotonic() + 30
        while True:
            actions = read_cell_counters((await http.get(url)).text).actions
            seen = {t: v for (ns, t), v in actions.items() if ns == namespace and t in counted}
            if seen == counted:
                break
            assert time.monotonic() < deadline, f"cell counts {seen}, expected {counted}"
            await asyncio.sleep(0.2)
        report = await Meter(http, clock=lambda: NOW).scrape_once(
            usage_unit_of_work(sessions), [(CELL, url)]
        )
    assert report.failed == {}
    async with sessions() as session:
        rows = await session.scalars(
            select(UsageRecord).where(UsageRecord.namespace_id == namespace)
        )
        return {row.kind: row.quantity for row in rows}


async def test_accepted_and_rejected_updates_bill_as_update_once_each(
    cell: LocalCellProvider, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An accepted update, the same update again (deduplicated by its id) and a rejected one
    bill 2 update actions: the server counts them as update messages, not as an RPC."""
    handle = await client.start_workflow(CartWorkflow.run, id="cart", task_queue=TASK_QUEUE)
    assert await handle.execute_update(CartWorkflow.put, "apple", id="put-1") == 1
    assert await handle.execute_update(CartWorkflow.put, "apple", id="put-1") == 1
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(CartWorkflow.put, "bad")

    usage = await _billed(
        cell,
        sessions,
        client.namespace,
        {
            "grpc_StartWorkflowExecution": 1,
            "message_UpdateWorkflowExecution_Acceptance": 1,
            "message_UpdateWorkflowExecution_Rejection": 1,
        },
    )

    assert usage == {"actions.workflow": 1, "actions.update": 2}


async def test_signal_with_start_bills_one_signal_whether_or_not_it_starts(
    cell: LocalCellProvider, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Signal-With-Start of a new workflow and of a running one: one signal action each, and
    no workflow action (Cloud: "one total action for any Signal-With-Start")."""
    for _ in range(2):
        await client.start_workflow(
            CartWorkflow.run,
            id="cart-sws",
            task_queue=TASK_QUEUE,
            start_signal="add",
            start_signal_args=["pear"],
        )

    usage = await _billed(
        cell, sessions, client.namespace, {"grpc_SignalWithStartWorkflowExecution": 2}
    )

    assert usage == {"actions.signal": 2}


async def test_local_activities_of_one_workflow_task_bill_one_activity(
    cell: LocalCellProvider, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Three local activities run within one workflow task bill one activity action (Cloud
    counts all the markers of a workflow task as one), plus the workflow start."""
    assert await client.execute_workflow(StampWorkflow.run, id="stamp", task_queue=TASK_QUEUE) == 3

    usage = await _billed(
        cell,
        sessions,
        client.namespace,
        {"grpc_StartWorkflowExecution": 1, "command_BatchMarkers": 1},
    )

    assert usage == {"actions.workflow": 1, "actions.activity": 1}


async def test_schedule_execution_bills_two_schedule_actions_and_its_workflow(
    cell: LocalCellProvider, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Creating and triggering a schedule bills, for its one execution, 2 schedule actions and
    1 workflow action; creating, patching (trigger) and the schedule's own memo updates bill
    nothing. What the schedule's internal workflow does besides (a timer, its search
    attributes, its local activities) still bills under those kinds: the cell's counter does
    not tell its commands from the tenant's (docs/billing.md, "Schedules")."""
    handle = await client.create_schedule(
        "nightly",
        Schedule(
            action=ScheduleActionStartWorkflow(TickWorkflow.run, id="tick", task_queue=TASK_QUEUE),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=dt.timedelta(days=1))]),
        ),
    )
    await handle.trigger()

    usage = await _billed(
        cell,
        sessions,
        client.namespace,
        {
            "grpc_CreateSchedule": 1,
            "grpc_PatchSchedule": 1,
            "schedule_action_success": 1,
            "grpc_StartWorkflowExecution": 1,
        },
    )

    assert usage["actions.schedule"] == 2
    assert usage["actions.workflow"] == 1
    assert "actions.update" not in usage
    assert "actions.signal" not in usage
