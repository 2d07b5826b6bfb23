"""The control plane's Temporal worker: runs operation workflows on the system cell.

It watches every account's cell (a restart of ``stratus up`` restores all tenants; a crashed
cell is started again with backoff; an idle account's cell is stopped), and keeps starting
workflows for operations still PENDING (the API could not reach the system cell, or crashed
between commit and start).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from auth import SecretBox
from billing import Meter, MeteredCell, StorageMeter, StorageTarget
from controlplane.cells.keeper import TenantCellKeeper, restart_policy
from controlplane.cells.provider import cell_provider
from controlplane.cells.repository import CellRepository
from controlplane.config import SYSTEM_NAMESPACE, SYSTEM_TASK_QUEUE, WorkerSettings
from controlplane.exports.exporter import Exporter
from controlplane.invoices.cycle import run_cycle
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work, utcnow
from controlplane.kit.health_server import HealthServer
from controlplane.kit.telemetry import (
    configure_logging,
    configure_telemetry,
    temporal_interceptors,
    temporal_runtime,
)
from controlplane.namespaces.activities import NamespaceActivities
from controlplane.namespaces.workflows import WORKFLOW_BY_OPERATION, WORKFLOWS
from controlplane.operations.repository import SystemOperationRepository
from controlplane.operations.starter import OperationStarter
from controlplane.pricing import Pricing, load_pricing
from controlplane.usage.repository import usage_unit_of_work

logger = logging.getLogger(__name__)
# Workflow tasks are CPU-bound on this process's one interpreter: more slots only queue them
# here, out of reach of the system cell's fair dispatch.
WORKFLOW_TASK_SLOTS = 4


def cell_endpoints(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[[], Awaitable[list[MeteredCell]]]:
    """Every serving account cell's metrics endpoint, read afresh before each scrape (a cell
    stopped for idleness has nothing left to count: its account has had no namespace for the
    idle period, much longer than a scrape interval)."""

    async def endpoints() -> list[MeteredCell]:
        async with unit_of_work(sessionmaker) as session:
            cells = await CellRepository(session).list_serving()
        return [(cell.id, cell.metrics_url) for cell in cells]

    return endpoints


def storage_targets(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[[], Awaitable[list[StorageTarget]]]:
    """Every account cell with the namespaces on it, read afresh before each sample."""

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
            StorageTarget(cell.id, cell.address, tuple(by_cell[cell.id]))
            for cell in cells
            if cell.id in by_cell
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


async def _bill_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    pricing: Pricing,
    exporter: Exporter,
    interval: float,
) -> None:
    while True:
        try:
            await bill_once(sessionmaker, pricing)
        except Exception:
            logger.exception("billing cycle failed; the next one retries")
        try:
            await exporter.export_once(sessionmaker)
        except Exception:
            logger.exception("exports failed; the next run retries")
        await asyncio.sleep(interval)


async def meter_once(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """One scrape of every cell, committed in short batches (e.g. right before the cells stop:
    counters live in the cells' memory)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        endpoints = await cell_endpoints(sessionmaker)()
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


async def _reconcile_forever(
    sessionmaker: async_sessionmaker[AsyncSession], starter: OperationStarter, interval: float
) -> None:
    while True:
        try:
            await start_pending_operations(sessionmaker, starter)
        except Exception:
            logger.exception("reconciling pending operations failed")
        await asyncio.sleep(interval)


async def _connect(address: str, runtime: Runtime | None) -> Client:
    """The system cell's client, retrying every second until it answers (a worker started
    before it waits, not ready, instead of exiting)."""
    while True:
        try:
            return await Client.connect(
                address,
                namespace=SYSTEM_NAMESPACE,
                interceptors=temporal_interceptors(),
                runtime=runtime,
            )
        except Exception as error:
            logger.warning("system cell at %s not reachable yet: %s", address, error)
        await asyncio.sleep(1.0)


async def run(settings: WorkerSettings) -> None:
    # A malformed price book stops the worker before anything runs (file, line, reason).
    pricing = load_pricing(settings)
    box = SecretBox.from_file(settings.secrets_key_path)
    engine = create_engine(settings.sqlalchemy_url)
    sessionmaker = create_sessionmaker(engine)
    provider = cell_provider(settings)
    keeper = TenantCellKeeper(
        sessionmaker,
        provider,
        idle_stop_after=settings.cell_idle_stop_after,
        policy=restart_policy(settings),
    )
    cells = asyncio.create_task(keeper.run(settings.cell_watch_interval_seconds))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    polling: asyncio.Task[None] | None = None
    health = HealthServer(lambda: polling is not None and not polling.done())
    if settings.worker_health_port:
        await health.start(settings.worker_health_host, settings.worker_health_port)
    connecting = asyncio.create_task(
        _connect(settings.system_cell_address, temporal_runtime("stratus-worker", settings))
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        cells.cancel()
        await asyncio.gather(connecting, cells, return_exceptions=True)
        await health.aclose()
        await engine.dispose()
        return
    client = connecting.result()
    starter = OperationStarter(settings.system_cell_address, WORKFLOW_BY_OPERATION)
    activities = NamespaceActivities(sessionmaker, provider)
    worker = Worker(
        client,
        task_queue=SYSTEM_TASK_QUEUE,
        workflows=WORKFLOWS,
        activities=activities.all(),
        # Few workflow tasks at a time: the backlog then waits on the system cell, whose
        # matching hands tasks out fairly across accounts (fairness key = account), instead
        # of in this process in arrival order.
        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
    )
    reconciler = asyncio.create_task(
        _reconcile_forever(sessionmaker, starter, settings.reconcile_interval_seconds)
    )
    metering_http = httpx.AsyncClient(timeout=10.0)
    meter = asyncio.create_task(
        Meter(metering_http).run(
            usage_unit_of_work(sessionmaker),
            cell_endpoints(sessionmaker),
            interval=settings.metering_interval_seconds,
        )
    )
    storage_meter = asyncio.create_task(
        StorageMeter().run(
            usage_unit_of_work(sessionmaker),
            storage_targets(sessionmaker),
            interval=settings.storage_metering_interval_seconds,
        )
    )
    # An hour's usage is final once every meter has written its last deltas for it.
    settle = dt.timedelta(
        seconds=max(settings.metering_interval_seconds, settings.storage_metering_interval_seconds)
        + 60
    )
    billing = asyncio.create_task(
        _bill_forever(
            sessionmaker,
            pricing,
            Exporter(box, settle=settle, egress=settings.export_egress),
            settings.billing_interval_seconds,
        )
    )
    background = [cells, reconciler, meter, storage_meter, billing]
    polling = asyncio.create_task(worker.run())
    logger.info("control-plane worker polling %s", SYSTEM_TASK_QUEUE)
    await asyncio.wait([polling, stopping], return_when=asyncio.FIRST_COMPLETED)
    if polling.done():
        # The worker gave up (e.g. the system cell stayed away past its retries): exit, so the
        # supervisor starts a fresh process with fresh connections.
        stopping.cancel()
        logger.error("control-plane worker stopped polling: %r", polling.exception())
    else:
        await worker.shutdown()
        await asyncio.gather(polling, return_exceptions=True)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    await metering_http.aclose()
    await health.aclose()
    await engine.dispose()
    if polling.done() and not polling.cancelled() and polling.exception() is not None:
        raise SystemExit(1)


def main() -> None:
    settings = WorkerSettings()
    settings.announce("worker")
    configure_logging(settings.log_level, settings.log_format)
    configure_telemetry("stratus-worker", settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
