"""The workloads of the task-queue detectors' real-cell test (own module: the SDK sandbox
re-imports it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

# Held shut while the test wants a backlog; the activities of ``Burst`` wait on it.
GATE = asyncio.Event()


@activity.defn
async def step(n: int) -> int:
    return n + 1


@activity.defn
async def gated(n: int) -> int:
    await GATE.wait()
    return n


@workflow.defn
class Quick:
    """Two activities, then done."""

    @workflow.run
    async def run(self) -> int:
        first = await workflow.execute_activity(
            step, 1, start_to_close_timeout=timedelta(seconds=30)
        )
        return await workflow.execute_activity(
            step, first, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class Waiting:
    """Open until signalled (a healthy open workflow)."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class Burst:
    """``count`` gated activities at once."""

    @workflow.run
    async def run(self, count: int) -> list[int]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(gated, n, start_to_close_timeout=timedelta(minutes=5))
                    for n in range(count)
                )
            )
        )
