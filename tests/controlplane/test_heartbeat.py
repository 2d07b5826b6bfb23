"""The heartbeat helper beats inside an activity and stays out of the way outside one."""

from __future__ import annotations

import asyncio

from temporalio.testing import ActivityEnvironment

from controlplane.kit.heartbeat import heartbeating


async def _wait_in_block(beats: list[object], wanted: int) -> str:
    async with heartbeating(every=0.001):
        while len(beats) < wanted:
            await asyncio.sleep(0.001)
    return "done"


async def test_a_block_inside_an_activity_heartbeats_while_it_runs() -> None:
    beats: list[object] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    assert await environment.run(_wait_in_block, beats, 3) == "done"
    assert len(beats) >= 3


async def test_a_block_outside_an_activity_runs_without_heartbeats() -> None:
    """An activity method called directly (a test, a command) must not fail for want of an
    activity context."""
    async with heartbeating(every=0.001):
        await asyncio.sleep(0.01)
