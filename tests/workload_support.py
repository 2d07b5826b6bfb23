"""A running workload and its exact count: workflows started through the gateway and checked
to have completed exactly once each (none lost, none doubled)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from support_workflows import NappingGreetingWorkflow
from temporalio.client import Client, WorkflowExecutionStatus

WORKFLOWS = 20


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> float:
    """Seconds until ``predicate`` holds (checked every 0.05 s, without blocking the loop)."""
    started = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.05)


async def start_workload(client: Client, task_queue: str) -> list[str]:
    ids = [f"{task_queue}-{i}" for i in range(WORKFLOWS)]
    for workflow_id in ids:
        await client.start_workflow(
            NappingGreetingWorkflow.run, workflow_id, id=workflow_id, task_queue=task_queue
        )
    return ids


async def assert_each_completed_once(client: Client, task_queue: str, ids: list[str]) -> None:
    """Every workflow returned its greeting, and the cell's visibility holds exactly one run
    per id (none lost, none doubled), each COMPLETED."""
    results = await asyncio.wait_for(
        asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids)), 180
    )
    assert results == [f"Hello, {i}!" for i in ids]
    for workflow_id in ids:
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.COMPLETED

    async def runs() -> list[tuple[str, WorkflowExecutionStatus | None]]:
        return [
            (w.id, w.status) async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")
        ]

    async def listed_all() -> bool:
        return len(await runs()) >= len(ids)

    await eventually(listed_all, 60, "visibility lists every run")
    listed = await runs()
    assert sorted(workflow_id for workflow_id, _ in listed) == sorted(ids)
    assert {status for _, status in listed} == {WorkflowExecutionStatus.COMPLETED}
