"""The insights job: every ACTIVE namespace analysed for each window, on the system cluster.

One periodic job (``insights``, a Temporal Schedule like the meters: ``controlplane.jobs``)
runs :meth:`InsightsActivities.sweep` once per ``STRATUS_INSIGHTS_INTERVAL_SECONDS`` on one
worker. The sweep reads which (namespace, window) pairs are due (1h every interval, 24h every
6 intervals, 7d every 24, from each pair's last analysis) and starts one
``AnalyseNamespaceInsights`` workflow per pair with the deterministic id
``stratus-insights-<namespace id>-<window>``: Temporal refuses a second start of an id that is
still running, so a pair is never analysed twice at once however many workers or sweeps run,
and one namespace's slow or broken cell delays no other. The workflow's one activity reads the
evidence (``analysis.analyse``) and stores the findings in one transaction; a worker killed
mid-analysis stops heartbeating and Temporal retries the activity on another worker.

Why one sweep fanning out rather than a Schedule per namespace: nothing to create or remove
with each namespace (a namespace that is deleted, or was created while the system cell was
away, needs no repair), and one place decides how often each window runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import grpc
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from temporalio.client import Client
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from auth import SecretUnreadable
    from controlplane.cells.repository import CellRepository
    from controlplane.config import SYSTEM_TASK_QUEUE
    from controlplane.gateway_routes.repository import (
        GatewayRouteRepository,
        ThrottledHourRepository,
    )
    from controlplane.insights import analysis
    from controlplane.insights.analysis import AnalysisResult, CellSource
    from controlplane.insights.findings import AnalysisContext, Window
    from controlplane.insights.repository import InsightsContextReader, SystemInsightsStore
    from controlplane.kit.db import unit_of_work, utcnow
    from controlplane.kit.heartbeat import HEARTBEAT_TIMEOUT, heartbeating
    from controlplane.models import Namespace
    from controlplane.pricing import Pricing
    from controlplane.states import CellProbeState
    from controlplane.workflows.service import SERVED_STATES, CellChannels

logger = logging.getLogger(__name__)

WORKFLOW_ID_PREFIX = "stratus-insights-"
# How often each window is analysed, in job intervals.
WINDOW_PERIODS = {Window.HOUR: 1, Window.DAY: 6, Window.WEEK: 24}
ANALYSIS_TIMEOUT = dt.timedelta(minutes=10)

Analyse = Callable[[CellSource, AnalysisContext], Awaitable[AnalysisResult]]


def workflow_id(namespace_id: str, window: Window) -> str:
    return f"{WORKFLOW_ID_PREFIX}{namespace_id}-{window.value}"


@dataclass(frozen=True)
class AnalyseRequest:
    namespace_id: str
    window: str


@workflow.defn(name="AnalyseNamespaceInsights")
class AnalyseNamespace:
    """One analysis of one namespace over one window: retried when the worker running it dies
    (heartbeat timeout); a failure of the analysis itself is stored, not retried (the next
    period is the retry)."""

    @workflow.run
    async def run(self, request: AnalyseRequest) -> None:
        await workflow.execute_activity_method(
            InsightsActivities.analyse_namespace,
            request,
            start_to_close_timeout=ANALYSIS_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
        )


class _Unreachable(Exception):
    """The namespace's cell cannot be reached now (no route, unhealthy, TLS unreadable)."""


@dataclass
class InsightsActivities:
    """The sweep (called by the ``insights`` periodic job) and the per-namespace analysis."""

    sessionmaker: async_sessionmaker[AsyncSession]
    channels: CellChannels
    pricing: Pricing
    interval: dt.timedelta
    # The system cell's client (the sweep starts the analyses); None in tests that only analyse.
    client: Client | None = None
    analyse: Analyse = field(default=analysis.analyse)
    clock: Callable[[], dt.datetime] = field(default=utcnow)

    async def due(self) -> list[AnalyseRequest]:
        """The (namespace, window) pairs whose analysis is due now."""
        now = self.clock()
        async with unit_of_work(self.sessionmaker) as session:
            namespaces = await CellRepository(session).namespaces_on_cells()
            last = await SystemInsightsStore(session).last_analyses()
        due = []
        for namespace in namespaces:
            if namespace.state not in SERVED_STATES:
                continue
            for window, periods in WINDOW_PERIODS.items():
                at = last.get((namespace.id, window.value))
                # Half an interval of slack: a run that started a little after the last
                # period's must not push this one to the period after.
                if at is None or now - at >= self.interval * periods - self.interval / 2:
                    due.append(AnalyseRequest(namespace.id, window.value))
        return due

    async def sweep(self) -> int:
        """Start the due analyses (each at most once at a time); how many were started."""
        assert self.client is not None, "the sweep needs the system cell's client"
        started = 0
        for request in await self.due():
            try:
                await self.client.start_workflow(
                    AnalyseNamespace.run,
                    request,
                    id=workflow_id(request.namespace_id, Window(request.window)),
                    task_queue=SYSTEM_TASK_QUEUE,
                )
                started += 1
            except WorkflowAlreadyStartedError:
                pass  # still running from an earlier period: it is the one analysis
        return started

    @activity.defn(name="insights_analyse_namespace")
    async def analyse_namespace(self, request: AnalyseRequest) -> None:
        async with heartbeating():
            await self.analyse_now(request.namespace_id, Window(request.window))

    async def analyse_now(self, namespace_id: str, window: Window) -> None:
        """Analyse ``namespace_id`` over ``window`` and store the outcome (findings, or the
        failure). A namespace no longer served is skipped."""
        now = self.clock()
        async with unit_of_work(self.sessionmaker) as session:
            namespace = await session.get(Namespace, namespace_id)
            if namespace is None or namespace.state not in SERVED_STATES:
                return
            session.expunge(namespace)
            source: CellSource | None = None
            error: str | None = None
            try:
                source = await self._source(session, namespace)
            except _Unreachable as unreachable:
                error = str(unreachable)
            context = await self._context(session, namespace, window, now)
        started = time.monotonic()
        result: AnalysisResult | None = None
        if source is not None:
            try:
                result = await self.analyse(source, context)
            except grpc.aio.AioRpcError as failure:
                logger.warning(
                    "insights of %s (%s): the cell answered %s", namespace_id, window.value, failure
                )
                error = (
                    f"the namespace's cell answered {failure.code().name}; the next analysis "
                    "retries"
                )
            except Exception:
                logger.exception("insights of %s (%s) failed", namespace_id, window.value)
                error = "the analysis failed; the next one retries"
        duration = dt.timedelta(seconds=time.monotonic() - started)
        async with unit_of_work(self.sessionmaker) as session:
            store = SystemInsightsStore(session)
            if result is None:
                assert error is not None
                await store.record_failure(
                    namespace, window, now=now, duration=duration, calls={}, error=error
                )
            else:
                await store.record(
                    namespace,
                    window,
                    result.findings,
                    now=now,
                    duration=duration,
                    calls=result.calls,
                )

    async def _source(self, session: AsyncSession, namespace: Namespace) -> CellSource:
        """Where the gateway sends the namespace's traffic: its route → its cell → a channel
        with the cell's TLS (as the console's workflow browser reaches it)."""
        route = await GatewayRouteRepository(session).get(namespace.id)
        if route is None or route.removed:
            raise _Unreachable("the namespace is not routed yet; the next analysis retries")
        address, tls, metrics_url = route.cell_address, None, None
        if route.cell_id:
            cell = await CellRepository(session).get(route.cell_id)
            if cell is None or cell.health_state is CellProbeState.UNHEALTHY:
                raise _Unreachable("the namespace's cell is unavailable; the next analysis retries")
            address, metrics_url = cell.address, cell.metrics_url or None
            try:
                tls = cell.tls(self.channels.box.open)
            except (SecretUnreadable, ValueError):
                raise _Unreachable(
                    "the namespace's cell is unavailable; the next analysis retries"
                ) from None
        channel = await self.channels.channel(route.cell_id or address, address, tls)
        return CellSource(channel=channel, namespace=route.namespace_id, metrics_url=metrics_url)

    async def _context(
        self, session: AsyncSession, namespace: Namespace, window: Window, now: dt.datetime
    ) -> AnalysisContext:
        reader = InsightsContextReader(session)
        since = now - window.duration
        plan_name = await reader.plan_of(namespace.account_id, now) or self.pricing.default_plan
        plan = self.pricing.book.plans.get(plan_name)
        price = Decimal(0)
        if plan is not None and plan.action_tiers:
            price = plan.action_tiers[0].price_per_million / Decimal(1_000_000)
        return AnalysisContext(
            window=window,
            now=now,
            # Counted per UTC hour: the hours that overlap the window.
            throttled_requests=await ThrottledHourRepository(session).total(
                namespace.id, since=since.replace(minute=0, second=0, microsecond=0), until=now
            ),
            requests_per_second_limit=float(namespace.requests_per_second),
            actions_per_second_limit=float(namespace.actions_per_second),
            metered_actions=await reader.metered_actions(namespace.id, since=since, until=now),
            price_per_action=price,
            currency=self.pricing.book.currency,
        )
