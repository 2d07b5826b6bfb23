"""Workflows the tests run on tenant namespaces (own module: the SDK sandbox re-imports it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def compose_greeting(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            compose_greeting, name, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class NappingGreetingWorkflow:
    """Sleeps on a durable timer, then greets: in flight long enough to live through a fault."""

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(timedelta(seconds=2))
        return await workflow.execute_activity(
            compose_greeting, name, start_to_close_timeout=timedelta(seconds=30)
        )
