"""The tenant metrics exposition: the caller's readable namespaces' series as OpenMetrics text.

Each source is cached for :data:`CACHE_SECONDS` (a scrape every few seconds by several
Prometheus replicas costs one read of each source): a cell's endpoint per metrics URL (parsed
per namespace once per fetch), the account's usage and throttled totals per account. What a
caller sees is filtered afterwards to the namespaces the policy lets it read metrics of.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import NotFound
from controlplane.models.gateway_latency import LATENCY_BUCKET_NAMES, SUM_BUCKET
from controlplane.models.usage_record import month_of
from controlplane.tenant_metrics._cell import (
    OUTCOME_FAMILIES,
    CellLines,
    CellSeries,
    read_cell_series,
    split_by_namespace,
)
from controlplane.tenant_metrics.repository import TenantMetricsRepository

__all__ = ["CACHE_SECONDS", "CONTENT_TYPE", "MetricsSources", "exposition"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
CACHE_SECONDS = 5.0
SCRAPE_TIMEOUT_SECONDS = 5.0
# Cached accounts beyond this are dropped once expired (a bound on the cache, not a limit).
MAX_CACHED_ACCOUNTS = 10_000
_ACTIONS_PREFIX = "actions."
_STORAGE_PREFIX = "storage."


@dataclass(frozen=True)
class AccountTables:
    """An account's metered totals and throttled answers this UTC month, and the gateways'
    latency counts, per namespace."""

    usage: tuple[tuple[str, str, int], ...] = ()  # (namespace id, kind, quantity)
    throttled: Mapping[str, int] = field(default_factory=dict)
    # namespace id → bucket (LATENCY_BUCKET_NAMES, SUM_BUCKET) → count
    gateway_latency: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass
class _CellScrape:
    fetched_at: float
    lines: CellLines | None  # None: the endpoint did not answer
    parsed: dict[str, CellSeries] = field(default_factory=dict)


class MetricsSources:
    """Process-wide caches of the metrics' sources (one per API process, on ``app.state``)."""

    def __init__(
        self, *, cache_seconds: float = CACHE_SECONDS, http: httpx.AsyncClient | None = None
    ) -> None:
        self.cache_seconds = cache_seconds
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(SCRAPE_TIMEOUT_SECONDS, connect=2.0)
        )
        self._cells: dict[str, _CellScrape] = {}
        self._accounts: dict[str, tuple[float, AccountTables]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _fresh(self, at: float) -> bool:
        return time.monotonic() - at < self.cache_seconds

    async def cell_series(self, metrics_url: str, namespace_id: str) -> CellSeries | None:
        """``namespace_id``'s series on the cell at ``metrics_url`` (None: it does not answer)."""
        scrape = self._cells.get(metrics_url)
        if scrape is None or not self._fresh(scrape.fetched_at):
            async with self._lock(f"cell {metrics_url}"):  # one fetch per URL at a time
                scrape = self._cells.get(metrics_url)
                if scrape is None or not self._fresh(scrape.fetched_at):
                    text = await self._fetch(metrics_url)
                    # A shared cell's text is every tenant's: cut it once (off the loop).
                    lines = None
                    if text is not None:
                        lines = await asyncio.to_thread(split_by_namespace, text)
                    scrape = _CellScrape(time.monotonic(), lines)
                    self._cells[metrics_url] = scrape
        if scrape.lines is None:
            return None
        series = scrape.parsed.get(namespace_id)
        if series is None:
            text = scrape.lines.text_of(namespace_id)
            series = await asyncio.to_thread(read_cell_series, text, namespace_id)
            scrape.parsed[namespace_id] = series
        return series

    async def _fetch(self, url: str) -> str | None:
        try:
            response = await self.http.get(url)
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        return response.text

    async def account_tables(
        self, account_id: str, load: Callable[[], Awaitable[AccountTables]]
    ) -> AccountTables:
        cached = self._accounts.get(account_id)
        if cached is not None and self._fresh(cached[0]):
            return cached[1]
        async with self._lock(f"account {account_id}"):
            cached = self._accounts.get(account_id)
            if cached is not None and self._fresh(cached[0]):
                return cached[1]
            tables = await load()
            if len(self._accounts) >= MAX_CACHED_ACCOUNTS:
                expired = [key for key, (at, _) in self._accounts.items() if not self._fresh(at)]
                for stale in expired:
                    del self._accounts[stale]
                    self._locks.pop(f"account {stale}", None)
            self._accounts[account_id] = (time.monotonic(), tables)
            return tables


async def exposition(
    session: AsyncSession,
    principal: Principal,
    sources: MetricsSources,
    *,
    namespace_id: str | None = None,
) -> bytes:
    """OpenMetrics text of every namespace of the caller's account whose metrics it may read
    (or of ``namespace_id`` only: 404 when it may not read it or there is none)."""
    require(principal, Action.METRICS_READ)
    repository = TenantMetricsRepository(session, principal)
    namespaces = dict(await repository.readable_namespaces())
    if namespace_id is not None:
        if namespace_id not in namespaces:
            raise NotFound(f"namespace {namespace_id} not found")
        namespaces = {namespace_id: namespaces[namespace_id]}
    cells: dict[str, CellSeries | None] = {}
    tables = AccountTables()
    if namespaces:

        async def load() -> AccountTables:
            month = month_of(utcnow())
            return AccountTables(
                usage=tuple(await repository.usage_totals(month)),
                throttled=await repository.throttled_totals(month),
                gateway_latency=await repository.gateway_latency(),
            )

        tables = await sources.account_tables(repository.account_id, load)
        on_cells = [(namespace, url) for namespace, url in namespaces.items() if url is not None]
        found = await asyncio.gather(*(sources.cell_series(url, ns) for ns, url in on_cells))
        cells = dict.fromkeys(namespaces)
        cells.update(zip([namespace for namespace, _ in on_cells], found, strict=True))
    # Rendering a large account's answer takes a while: off the event loop.
    return await asyncio.to_thread(render, cells, tables)


def render(cells: Mapping[str, CellSeries | None], tables: AccountTables) -> bytes:
    """The OpenMetrics text of ``cells``' namespaces (the readable ones) and their tables."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exposition(cells, tables))
    body: bytes = generate_latest(registry)  # type: ignore[no-untyped-call]  # untyped module
    return body


class _Exposition(Collector):
    """The metric families of one answer (a fresh registry per answer: nothing outlives it)."""

    def __init__(self, cells: Mapping[str, CellSeries | None], tables: AccountTables) -> None:
        self.cells = cells
        self.tables = tables

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        yield from _cell_families(self.cells)
        yield from _table_families(self.cells.keys(), self.tables)


def _cell_families(
    cells: Mapping[str, CellSeries | None],
) -> Iterable[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
    up = GaugeMetricFamily(
        "stratus_namespace_cell_metrics_up",
        "1 when the namespace's cell answered its metrics scrape (its series below are current)",
        labels=["namespace"],
    )
    started = CounterMetricFamily(
        "stratus_workflows_started",
        "Workflow starts the namespace's cell accepted (start, signal-with-start, child starts)",
        labels=["namespace"],
    )
    outcomes = {
        outcome: CounterMetricFamily(
            f"stratus_workflows_{outcome}",
            f"Workflows {outcome.replace('_', ' ')}, by workflow type",
            labels=["namespace", "workflow_type"],
        )
        for outcome in OUTCOME_FAMILIES.values()
    }
    latency = HistogramMetricFamily(
        "stratus_schedule_to_start_latency_seconds",
        "Time tasks waited on a task queue for a worker, by task queue and task type",
        labels=["namespace", "task_queue", "task_type"],
    )
    for namespace, series in sorted(cells.items()):
        up.add_metric([namespace], 0 if series is None else 1)
        if series is None:
            continue
        started.add_metric([namespace], series.started)
        for (outcome, workflow_type), value in sorted(series.outcomes.items()):
            outcomes[outcome].add_metric([namespace, workflow_type], value)
        for (queue, kind), queue_series in sorted(series.queues.items()):
            buckets = list(queue_series.schedule_to_start_buckets)
            if not math.isinf(buckets[-1][0]):
                buckets.append((math.inf, buckets[-1][1]))
            latency.add_metric(
                [namespace, queue, kind],
                [(_bound(bound), count) for bound, count in buckets],
                queue_series.schedule_to_start_sum_seconds,
            )
    return [up, started, *outcomes.values(), latency]


def _bound(bound: float) -> str:
    """A bucket's ``le`` as Prometheus writes it (``+Inf``, ``0.05``, ``1.0``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _table_families(
    namespaces: Iterable[str], tables: AccountTables
) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
    readable = set(namespaces)
    actions = CounterMetricFamily(
        "stratus_actions",
        "Billable actions metered this UTC month, by kind (as usage and invoices count them)",
        labels=["namespace", "kind"],
    )
    storage = CounterMetricFamily(
        "stratus_storage_byte_hours",
        "History storage metered this UTC month in byte-hours, by kind (active, retained)",
        labels=["namespace", "kind"],
    )
    for namespace, kind, quantity in sorted(tables.usage):
        if namespace not in readable:
            continue
        if kind.startswith(_ACTIONS_PREFIX):
            actions.add_metric([namespace, kind.removeprefix(_ACTIONS_PREFIX)], quantity)
        elif kind.startswith(_STORAGE_PREFIX):
            storage.add_metric([namespace, kind.removeprefix(_STORAGE_PREFIX)], quantity)
    throttled = CounterMetricFamily(
        "stratus_throttled_requests",
        "Requests the gateways refused with RESOURCE_EXHAUSTED this UTC month (rate limits)",
        labels=["namespace"],
    )
    gateway_latency = HistogramMetricFamily(
        "stratus_gateway_request_duration_seconds",
        "Latency of the namespace's calls through the gateways (long polls left out)",
        labels=["namespace"],
    )
    for namespace in sorted(readable):
        throttled.add_metric([namespace], tables.throttled.get(namespace, 0))
        counts = tables.gateway_latency.get(namespace, {})
        cumulative, buckets = 0, []
        for bucket in LATENCY_BUCKET_NAMES:
            cumulative += counts.get(bucket, 0)
            buckets.append((bucket, cumulative))
        gateway_latency.add_metric([namespace], buckets, counts.get(SUM_BUCKET, 0) / 1_000_000)
    return [actions, storage, throttled, gateway_latency]
