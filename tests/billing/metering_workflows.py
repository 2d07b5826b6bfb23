"""The metered workload (own module: the SDK sandbox re-imports it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
async def charge(order: str) -> str:
    """Fails its first attempt, so every workflow bills one activity retry."""
    if activity.info().attempt == 1:
        raise RuntimeError("card network timeout")
    return f"charged {order}"


@workflow.defn
class ReceiptWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "receipt"


@workflow.defn
class OrderWorkflow:
    """One activity (retried once), one timer, one signal, one child workflow; the test adds a
    query."""

    def __init__(self) -> None:
        self._approved = False

    @workflow.signal
    def approve(self) -> None:
        self._approved = True

    @workflow.query
    def approved(self) -> bool:
        return self._approved

    @workflow.run
    async def run(self, order: str) -> str:
        await workflow.execute_activity(
            charge,
            order,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )
        await workflow.sleep(timedelta(milliseconds=100))
        await workflow.wait_condition(lambda: self._approved)
        await workflow.execute_child_workflow(
            ReceiptWorkflow.run, id=f"{workflow.info().workflow_id}-receipt"
        )
        return order


@workflow.defn
class CartWorkflow:
    """Takes items by update (validated: ``"bad"`` is rejected) and by signal."""

    def __init__(self) -> None:
        self._items: list[str] = []

    @workflow.signal
    def add(self, item: str) -> None:
        self._items.append(item)

    @workflow.update
    def put(self, item: str) -> int:
        self._items.append(item)
        return len(self._items)

    @put.validator
    def check(self, item: str) -> None:
        if item == "bad":
            raise ValueError("bad item")

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: "done" in self._items)
        return len(self._items)


@activity.defn
async def stamp(step: int) -> int:
    return step


@workflow.defn
class StampWorkflow:
    """Three local activities in a row: the worker runs them all within one workflow task."""

    @workflow.run
    async def run(self) -> int:
        total = 0
        for step in range(3):
            total += await workflow.execute_local_activity(
                stamp, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return total


@workflow.defn
class TickWorkflow:
    """What a schedule starts."""

    @workflow.run
    async def run(self) -> str:
        return "tick"
