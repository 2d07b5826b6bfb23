"""Namespace descriptions the gateway keeps to answer ``ListNamespaces`` itself.

A ``ListNamespaces`` lists up to 100 namespaces; asking each namespace's cell on every call
let one caller turn one request into 100 cell calls. The gateway instead keeps each routed
namespace's ``DescribeNamespace`` answer for ``ttl`` seconds (10 s), shared by every caller
admitted to that namespace: the cells see at most one describe per namespace per ``ttl``,
whoever lists and however often. An entry is dropped when its namespace's route moves to
another cell or names another cell-side namespace (a namespace deleted and created again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from dataplane.gateway._routes import Route

DEFAULT_TTL = 10.0
# Describes sent to cells at once while filling the cache.
_MAX_CONCURRENT_DESCRIBES = 8

Describe = Callable[[Route], Awaitable[bytes]]


def _identity(route: Route) -> tuple[str, str]:
    return route.cell_address, route.cell_namespace_id


class NamespaceDescriptions:
    def __init__(self, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        # namespace id → (route identity, DescribeNamespaceResponse bytes, expiry)
        self._entries: dict[str, tuple[tuple[str, str], bytes, float]] = {}
        self._in_flight: dict[str, asyncio.Task[bytes]] = {}
        self._describes = asyncio.Semaphore(_MAX_CONCURRENT_DESCRIBES)

    def retain(self, routes: Mapping[str, Route]) -> None:
        """Forget namespaces no longer routed, or routed to another cell-side namespace."""
        for namespace, (identity, _, _) in list(self._entries.items()):
            route = routes.get(namespace)
            if route is None or _identity(route) != identity:
                del self._entries[namespace]

    async def describe_all(self, routes: Iterable[Route], describe: Describe) -> list[bytes]:
        """The ``DescribeNamespaceResponse`` bytes of each route, in order; ``describe`` asks
        a cell for the ones not cached (at most one call per namespace at a time)."""
        return list(await asyncio.gather(*(self._describe(route, describe) for route in routes)))

    async def _describe(self, route: Route, describe: Describe) -> bytes:
        entry = self._entries.get(route.namespace_id)
        if entry is not None and entry[0] == _identity(route) and entry[2] > self._clock():
            return entry[1]
        task = self._in_flight.get(route.namespace_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fill(route, describe))
            self._in_flight[route.namespace_id] = task

            def finished(done: asyncio.Task[bytes]) -> None:
                if self._in_flight.get(route.namespace_id) is done:
                    del self._in_flight[route.namespace_id]
                if not done.cancelled():
                    done.exception()  # retrieved: every waiter may have gone

            task.add_done_callback(finished)
        return await asyncio.shield(task)

    async def _fill(self, route: Route, describe: Describe) -> bytes:
        async with self._describes:
            raw = await describe(route)
        self._entries[route.namespace_id] = (_identity(route), raw, self._clock() + self._ttl)
        return raw
