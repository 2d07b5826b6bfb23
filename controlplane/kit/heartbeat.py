"""Heartbeats for the control plane's activities.

An activity scheduled with a ``heartbeat_timeout`` must heartbeat more often than that timeout,
or Temporal times it out and retries it. The point is the other direction: when the worker
running an attempt dies (kill -9, a lost host), heartbeats stop and Temporal retries the
attempt on another worker within the heartbeat timeout, instead of at start-to-close (minutes).
A step that waits on something slow (a cell starting, a cell's frontend answering) beats from
a background task for as long as it runs, so the wait itself needs no heartbeat calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

from temporalio import activity

HEARTBEAT_EVERY = 1.0
"""Seconds between heartbeats (the SDK throttles what it sends to the server)."""
HEARTBEAT_TIMEOUT = dt.timedelta(seconds=10)
"""The heartbeat timeout of a step that heartbeats with :func:`heartbeating`: a dead worker's
attempt is retried elsewhere this long after its last heartbeat, at most."""

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


@contextlib.asynccontextmanager
async def heartbeating(every: float = HEARTBEAT_EVERY) -> AsyncIterator[None]:
    """Heartbeat the current activity every ``every`` seconds while the block runs. Outside an
    activity (an activity method called directly, as a test or a command does) it does
    nothing."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def heartbeats(
    method: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """Run an activity method inside :func:`heartbeating` (apply below ``@activity.defn``; the
    signature, hence the activity's name and argument types, stays the method's own)."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with heartbeating():
            return await method(self, *args, **kwargs)

    return run
