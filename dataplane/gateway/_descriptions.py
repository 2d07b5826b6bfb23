"""Cell answers the gateway keeps to serve namespace-less calls itself.

A ``ListNamespaces`` lists up to 100 namespaces; asking each namespace's cell on every call
let one caller turn one request into 100 cell calls. The gateway instead keeps each routed
namespace's ``DescribeNamespace`` answer for ``ttl`` seconds (10 s), shared by every caller
admitted to that namespace: the cells see at most one describe per namespace per ``ttl``,
whoever lists and however often. An entry is dropped when its namespace's route moves to
another cell or names another cell-side namespace (a namespace deleted and created again).
``GetSystemInfo`` (what a cell's server supports, the same for every caller; SDKs ask it on
every connect) is kept the same way per cell.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping

from dataplane.gateway._routes import Route

DEFAULT_TTL = 10.0
# Calls sent to cells at once while filling.
_MAX_CONCURRENT_FILLS = 8

Ask = Callable[[Route], Awaitable[bytes]]


class _SharedAnswers:
    """Answers by key, each valid ``ttl`` seconds for one ``identity``; one fill per key."""

    def __init__(self, ttl: float, clock: Callable[[], float], fills: asyncio.Semaphore) -> None:
        self._ttl = ttl
        self._clock = clock
        self._fills = fills
        self.entries: dict[str, tuple[Hashable, bytes, float]] = {}
        self._in_flight: dict[str, asyncio.Task[bytes]] = {}

    async def get(
        self, key: str, identity: Hashable, fill: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        entry = self.entries.get(key)
        if entry is not None and entry[0] == identity and entry[2] > self._clock():
            return entry[1]
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fill(key, identity, fill))
            self._in_flight[key] = task

            def finished(done: asyncio.Task[bytes]) -> None:
                if self._in_flight.get(key) is done:
                    del self._in_flight[key]
                if not done.cancelled():
                    done.exception()  # retrieved: every waiter may have gone

            task.add_done_callback(finished)
        # Shielded: a caller that gives up does not cancel the answer others wait for.
        return await asyncio.shield(task)

    async def _fill(
        self, key: str, identity: Hashable, fill: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        async with self._fills:
            raw = await fill()
        self.entries[key] = (identity, raw, self._clock() + self._ttl)
        return raw


def _identity(route: Route) -> tuple[str, str, str]:
    return route.cell_id, route.cell_address, route.cell_namespace_id


class CellAnswers:
    def __init__(self, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        fills = asyncio.Semaphore(_MAX_CONCURRENT_FILLS)
        self._descriptions = _SharedAnswers(ttl, clock, fills)
        self._system_info = _SharedAnswers(ttl, clock, fills)

    def retain(self, routes: Mapping[str, Route]) -> None:
        """Forget namespaces no longer routed, or routed to another cell-side namespace, and
        cells no longer routed."""
        descriptions = self._descriptions.entries
        for namespace, (identity, _, _) in list(descriptions.items()):
            route = routes.get(namespace)
            if route is None or _identity(route) != identity:
                del descriptions[namespace]
        cells = {route.upstream_key for route in routes.values()}
        system_info = self._system_info.entries
        for cell, (identity, _, _) in list(system_info.items()):
            if identity not in cells:
                del system_info[cell]

    async def describe_all(self, routes: Iterable[Route], describe: Ask) -> list[bytes]:
        """The ``DescribeNamespaceResponse`` bytes of each route, in order; ``describe`` asks
        a cell for the ones not kept."""
        return list(
            await asyncio.gather(
                *(
                    self._descriptions.get(
                        route.namespace_id, _identity(route), functools.partial(describe, route)
                    )
                    for route in routes
                )
            )
        )

    async def system_info(self, route: Route, ask: Ask) -> bytes:
        """The ``GetSystemInfoResponse`` bytes of the route's cell."""
        return await self._system_info.get(
            route.cell_name, route.upstream_key, functools.partial(ask, route)
        )
