"""The control plane's periodic jobs, run exactly once per period however many workers run.

Each job (reconciling PENDING operations, the action meter, the storage meter, the billing
cycle with the exporter, the workflow history export, the insights sweep of
``controlplane.insights.job``) is a Temporal Schedule on the system cell,
``stratus-job-<name>``: every interval it starts one ``PeriodicJob`` workflow, which runs one
``periodic_job`` activity on whichever worker polls ``stratus-control-plane`` first. Overlap
policy SKIP: a period whose previous run is still going is skipped, so two scheduled runs of
one job never overlap.

Every worker creates the schedules at start with fixed ids. The rule for intervals: the last
worker to start sets them. A worker that finds a schedule at another interval than its own
setting logs a warning naming both and updates it (replicas should share their settings; the
warning shows when they do not). A worker that starts also runs the reconcile at once: a new
schedule's first run is immediate; where the schedule exists, the worker starts one
``PeriodicJob`` reconcile of its own (id ``stratus-job-reconcile-start-<random>``), so PENDING
operations left while no worker ran start now, not a period later. The cell keeper is not a
job: it runs in every worker (restarting a cell is idempotent across processes).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from temporalio.client import (
        Client,
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        ScheduleUpdate,
        ScheduleUpdateInput,
    )

    from billing import Meter, MeteredCell, StorageMeter, StorageTarget
    from controlplane.accounts import service as accounts
    from controlplane.audit_sink.exporter import AuditSinkExporter
    from controlplane.cells.repository import CellRepository
    from controlplane.config import SYSTEM_TASK_QUEUE, WorkerSettings
    from controlplane.exports.exporter import Exporter
    from controlplane.history_exports.exporter import HistoryExporter
    from controlplane.insights.job import InsightsActivities
    from controlplane.invoices.cycle import run_cycle
    from controlplane.kit.db import unit_of_work, utcnow
    from controlplane.kit.heartbeat import HEARTBEAT_TIMEOUT, heartbeating
    from controlplane.models.cell import Cell, KeyOpener
    from controlplane.operations.repository import SystemOperationRepository
    from controlplane.operations.starter import OperationStarter
    from controlplane.pricing import Pricing
    from controlplane.usage.repository import usage_unit_of_work
    from dataplane.cells import CellEndpoint

logger = logging.getLogger(__name__)

# The jobs, by name (on the wire: schedule ids and the activity's argument).
RECONCILE = "reconcile"
METER_ACTIONS = "meter-actions"
METER_STORAGE = "meter-storage"
BILLING = "billing"
HISTORY_EXPORT = "history-export"
INSIGHTS = "insights"
JOBS = (RECONCILE, METER_ACTIONS, METER_STORAGE, BILLING, HISTORY_EXPORT, INSIGHTS)
SCHEDULE_ID_PREFIX = "stratus-job-"
# Temporal schedules count in whole seconds: a shorter interval runs every second.
MIN_INTERVAL = dt.timedelta(seconds=1)
# Catching up after the system cell was away starts at most one run (SKIP) and only for
# periods missed this recently (Temporal's minimum is 10 s).
MIN_CATCHUP_WINDOW = dt.timedelta(seconds=10)
# A run heartbeats while it works: a worker that dies mid-run frees its job within the
# heartbeat timeout (the run fails; the next period runs it again), not at start-to-close:
# until then the schedule (overlap SKIP) skips every period.
RUN_TIMEOUT = dt.timedelta(hours=1)


def schedule_id(job: str) -> str:
    return SCHEDULE_ID_PREFIX + job


def job_intervals(settings: WorkerSettings) -> dict[str, dt.timedelta]:
    """Each job's period, from the worker's settings (the same names and defaults as the loops
    they replace), never below one second."""
    seconds = {
        RECONCILE: settings.reconcile_interval_seconds,
        METER_ACTIONS: settings.metering_interval_seconds,
        METER_STORAGE: settings.storage_metering_interval_seconds,
        BILLING: settings.billing_interval_seconds,
        HISTORY_EXPORT: settings.history_export_interval_seconds,
        INSIGHTS: settings.insights_interval_seconds,
    }
    return {job: max(MIN_INTERVAL, dt.timedelta(seconds=value)) for job, value in seconds.items()}


@workflow.defn(name="PeriodicJob")
class PeriodicJob:
    """One run of one job: a single attempt (a failed run is retried by the next period)."""

    @workflow.run
    async def run(self, job: str) -> None:
        await workflow.execute_activity(
            "periodic_job",
            job,
            start_to_close_timeout=RUN_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


def _schedule(job: str, every: dt.timedelta) -> Schedule:
    # Intervals count from the epoch: the offset makes the first regular run one interval
    # after now, as the loops' second run was (not at the next round minute, say).
    offset = dt.timedelta(seconds=int(time.time() % every.total_seconds()))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PeriodicJob.run,
            job,
            id=schedule_id(job),
            task_queue=SYSTEM_TASK_QUEUE,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every, offset=offset)]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=max(MIN_CATCHUP_WINDOW, every),
        ),
    )


async def ensure_schedules(client: Client, settings: WorkerSettings) -> None:
    """Create every job's schedule, or bring an existing one to ``settings``' interval (an
    unchanged one keeps its phase; a changed one is logged as a warning: the last worker to
    start sets the intervals), then make sure a reconcile runs now. Idempotent, and safe when
    several workers start at once (fixed ids)."""
    for job, every in job_intervals(settings).items():
        desired = _schedule(job, every)
        try:
            # The first run happens now, as the loops' first run did at start.
            await client.create_schedule(schedule_id(job), desired, trigger_immediately=True)
            logger.info("scheduled periodic job %s every %s", job, every)
            continue
        except ScheduleAlreadyRunningError:
            pass
        handle = client.get_schedule_handle(schedule_id(job))

        def update(
            current: ScheduleUpdateInput,
            desired: Schedule = desired,
            every: dt.timedelta = every,
            job: str = job,
        ) -> ScheduleUpdate | None:
            found = [interval.every for interval in current.description.schedule.spec.intervals]
            if found == [every]:
                return None  # already right: keep its phase
            logger.warning(
                "periodic job %s's schedule runs every %s; this worker's setting is %s and "
                "replaces it (the last worker to start sets the interval: give every worker "
                "the same settings)",
                job,
                ", ".join(str(interval) for interval in found) or "never",
                every,
            )
            return ScheduleUpdate(schedule=desired)

        try:
            await handle.update(update)
        except Exception as error:
            # Another worker updating it at the same moment: its settings apply.
            logger.warning("periodic job %s's schedule not updated: %s", job, error)
        if job == RECONCILE:
            try:
                await reconcile_now(client)
            except Exception as error:
                # The schedule still reconciles at its period: not a reason to stop starting.
                logger.warning("reconcile at worker start not started: %s", error)


async def reconcile_now(client: Client) -> None:
    """Run a reconcile now, outside the schedule (a worker that starts resumes the PENDING
    operations left while none ran). Its own workflow id (``stratus-job-reconcile-start-...``),
    never a period's: a period's run stays once per period. It may run beside a scheduled run
    or another starting worker's: starting an operation's workflow is idempotent (workflow id =
    operation id)."""
    started = await client.start_workflow(
        PeriodicJob.run,
        RECONCILE,
        id=f"{schedule_id(RECONCILE)}-start-{uuid.uuid4().hex[:12]}",
        task_queue=SYSTEM_TASK_QUEUE,
    )
    logger.info("periodic job %s started at worker start: %s", RECONCILE, started.id)


def _endpoints(cells: list[Cell], open_key: KeyOpener | None) -> list[CellEndpoint]:
    """The cells' endpoints with their TLS opened; a TLS cell is left out without the box (the
    supervisor's final scrape: it only needs the local cells it stops)."""
    endpoints = []
    for cell in cells:
        if cell.has_tls and open_key is None:
            continue
        endpoints.append(cell.endpoint_with(open_key))
    return endpoints


def cell_endpoints(
    sessionmaker: async_sessionmaker[AsyncSession], open_key: KeyOpener | None = None
) -> Callable[[], Awaitable[list[MeteredCell]]]:
    """Every serving cell's metrics endpoint, read afresh before each scrape (a cell stopped
    for idleness has nothing left to count: its account has had no namespace for the idle
    period, much longer than a scrape interval). A cell registered without a metrics URL is
    not scraped."""

    async def endpoints() -> list[MeteredCell]:
        async with unit_of_work(sessionmaker) as session:
            cells = await CellRepository(session).list_serving()
        return [
            MeteredCell(endpoint.cell_id, endpoint.metrics_url, endpoint.tls)
            for endpoint in _endpoints(cells, open_key)
            if endpoint.metrics_url
        ]

    return endpoints


def storage_targets(
    sessionmaker: async_sessionmaker[AsyncSession], open_key: KeyOpener | None = None
) -> Callable[[], Awaitable[list[StorageTarget]]]:
    """Every cell with the namespaces on it, read afresh before each sample."""

    async def targets() -> list[StorageTarget]:
        async with unit_of_work(sessionmaker) as session:
            repository = CellRepository(session)
            cells = await repository.list_all()
            namespaces = await repository.namespaces_on_cells()
        by_cell: dict[str, list[tuple[str, int]]] = {}
        for namespace in namespaces:
            assert namespace.cell_id is not None
            by_cell.setdefault(namespace.cell_id, []).append(
                (namespace.id, namespace.retention_days)
            )
        return [
            StorageTarget(
                endpoint.cell_id,
                endpoint.grpc_address,
                tuple(by_cell[endpoint.cell_id]),
                endpoint.tls,
            )
            for endpoint in _endpoints(cells, open_key)
            if endpoint.cell_id in by_cell
        ]

    return targets


async def bill_once(sessionmaker: async_sessionmaker[AsyncSession], pricing: Pricing) -> None:
    """Re-rate every open month's drafts and finalize those past their grace period, in one
    transaction."""
    async with unit_of_work(sessionmaker) as session:
        report = await run_cycle(session, pricing, now=utcnow())
    if report.finalized:
        logger.info("finalized %d invoices", len(report.finalized))
    for (account_id, month), reason in report.failed.items():
        logger.error("invoice of %s for %s not rated: %s", account_id, month, reason)


async def meter_once(
    sessionmaker: async_sessionmaker[AsyncSession], open_key: KeyOpener | None = None
) -> None:
    """One scrape of every cell, committed in short batches (e.g. right before the cells stop:
    counters live in the cells' memory)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        endpoints = await cell_endpoints(sessionmaker, open_key)()
        await Meter(http).scrape_once(usage_unit_of_work(sessionmaker), endpoints)


async def start_pending_operations(
    sessionmaker: async_sessionmaker[AsyncSession], starter: OperationStarter
) -> None:
    async with unit_of_work(sessionmaker) as session:
        pending = await SystemOperationRepository(session).pending()
    for operation in pending:
        await starter.start(
            operation.id,
            operation.operation_type,
            operation.resource_id,
            account_id=operation.account_id,
        )


async def advance_account_deletions(
    sessionmaker: async_sessionmaker[AsyncSession],
    starter: OperationStarter,
    *,
    retention: dt.timedelta,
    now: Callable[[], dt.datetime] = utcnow,
) -> list[str]:
    """Deleting accounts: start the namespace deletes still to start, and turn those with no
    namespace left into tombstones (``controlplane.accounts.service.advance_deletions``)."""
    async with unit_of_work(sessionmaker) as session:
        return await accounts.advance_deletions(session, starter, retention=retention, now=now())


@dataclass
class JobActivities:
    """The ``periodic_job`` activity: what each job does, with this worker's resources."""

    sessionmaker: async_sessionmaker[AsyncSession]
    starter: OperationStarter
    pricing: Pricing
    exporter: Exporter
    http: httpx.AsyncClient
    # Opens registered cells' sealed TLS keys (the secrets box).
    open_key: KeyOpener | None = None
    # Writes each account's audit events to its audit log sink, after the usage exports.
    audit_exporter: AuditSinkExporter | None = None
    # Writes closed workflow runs' histories to their namespaces' sinks (None: not here).
    history_exporter: HistoryExporter | None = None
    # Starts the due analyses of the workload insights (controlplane.insights.job).
    insights: InsightsActivities | None = None
    # How long a deleted account's cells keep their data.
    account_data_retention: dt.timedelta = dt.timedelta(days=7)

    @activity.defn(name="periodic_job")
    async def run(self, job: str) -> None:
        jobs: dict[str, Callable[[], Awaitable[None]]] = {
            RECONCILE: self._reconcile,
            METER_ACTIONS: self._meter_actions,
            METER_STORAGE: self._meter_storage,
            BILLING: self._bill,
            HISTORY_EXPORT: self._export_histories,
            INSIGHTS: self._insights,
        }
        work = jobs.get(job)
        if work is None:
            raise ValueError(f"unknown periodic job {job!r}")
        async with heartbeating():
            await work()
        # One line per run: the workflow id names the schedule and the period it ran for.
        logger.info("periodic job %s ran: %s", job, activity.info().workflow_id)

    async def _reconcile(self) -> None:
        await advance_account_deletions(
            self.sessionmaker, self.starter, retention=self.account_data_retention
        )
        await start_pending_operations(self.sessionmaker, self.starter)

    async def _meter_actions(self) -> None:
        endpoints = await cell_endpoints(self.sessionmaker, self.open_key)()
        report = await Meter(self.http).scrape_once(
            usage_unit_of_work(self.sessionmaker), endpoints
        )
        if report.failed:
            logger.warning("usage scrape incomplete; the next one bills the gap: %s", report.failed)

    async def _meter_storage(self) -> None:
        targets = await storage_targets(self.sessionmaker, self.open_key)()
        await StorageMeter().sample_once(usage_unit_of_work(self.sessionmaker), targets)

    async def _bill(self) -> None:
        try:
            await bill_once(self.sessionmaker, self.pricing)
        except Exception:
            logger.exception("billing cycle failed; the next one retries")
        # Exports follow the cycle, as they always have: what it finalized is exported now.
        report = await self.exporter.export_once(self.sessionmaker)
        for account_id, hours in report.usage_hours.items():
            if hours:
                logger.info("exported %d usage hours of %s", len(hours), account_id)
        for account_id, invoices in report.invoices.items():
            if invoices:
                logger.info("exported %d invoices of %s", len(invoices), account_id)
        if self.audit_exporter is not None:
            audit_report = await self.audit_exporter.export_once(self.sessionmaker)
            for account_id, keys in audit_report.written.items():
                logger.info("exported %d audit log hours of %s", len(keys), account_id)

    async def _export_histories(self) -> None:
        if self.history_exporter is None:
            return
        report = await self.history_exporter.export_once(self.sessionmaker)
        for namespace_id, keys in report.written.items():
            if keys:
                logger.info("exported %d workflow histories of %s", len(keys), namespace_id)

    async def _insights(self) -> None:
        if self.insights is None:
            return
        started = await self.insights.sweep()
        if started:
            logger.info("started %d insights analyses", started)
