"""The control plane's Temporal worker: runs operation workflows on the system cell.

On start it brings every account's cell back (a restart of ``stratus up`` restores all
tenants), then keeps starting workflows for operations still PENDING (the API could not reach
the system cell, or crashed between commit and start).
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
from temporalio.worker import Worker

from auth import SecretBox
from billing import CellEndpoint, Meter, StorageMeter, StorageTarget
from controlplane.cells.repository import CellRepository
from controlplane.config import SYSTEM_NAMESPACE, SYSTEM_TASK_QUEUE, Settings
from controlplane.exports.exporter import Exporter
from controlplane.invoices.cycle import run_cycle
from controlplane.invoices.pricing import Pricing, load_pricing
from controlplane.kit.db import create_engine, create_sessionmaker, utcnow
from controlplane.kit.telemetry import configure_logging, configure_tracing, temporal_interceptors
from controlplane.operations.activities import ProvisioningActivities
from controlplane.operations.repository import OperationRepository
from controlplane.operations.starter import OperationStarter
from controlplane.operations.workflows import WORKFLOWS
from dataplane.cells import CellProvider, CellSpec, LocalCellProvider

logger = logging.getLogger(__name__)


def cell_endpoints(
    sessionmaker: async_sessionmaker[AsyncSession], provider: CellProvider
) -> Callable[[], Awaitable[list[CellEndpoint]]]:
    """Every account cell's metrics endpoint, read afresh before each scrape."""

    async def endpoints() -> list[CellEndpoint]:
        async with sessionmaker() as session:
            cells = await CellRepository(session).list_all()
        return [(cell.id, provider.metrics_url(cell.id)) for cell in cells]

    return endpoints


def storage_targets(
    sessionmaker: async_sessionmaker[AsyncSession], provider: CellProvider
) -> Callable[[], Awaitable[list[StorageTarget]]]:
    """Every account cell with the namespaces on it, read afresh before each sample."""

    async def targets() -> list[StorageTarget]:
        async with sessionmaker() as session:
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
            StorageTarget(cell.id, provider.address(cell.id), tuple(by_cell[cell.id]))
            for cell in cells
            if cell.id in by_cell
        ]

    return targets


async def bill_once(sessionmaker: async_sessionmaker[AsyncSession], pricing: Pricing) -> None:
    """Re-rate every open month's drafts and finalize those past their grace period, in one
    transaction."""
    async with sessionmaker() as session, session.begin():
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


async def meter_once(
    sessionmaker: async_sessionmaker[AsyncSession], provider: CellProvider
) -> None:
    """One scrape of every cell, committed (e.g. right before the cells stop: counters live in
    the cells' memory)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        endpoints = await cell_endpoints(sessionmaker, provider)()
        async with sessionmaker() as session, session.begin():
            await Meter(http).scrape_once(session, endpoints)


async def restore_cells(
    sessionmaker: async_sessionmaker[AsyncSession], provider: CellProvider
) -> None:
    async with sessionmaker() as session:
        cells = await CellRepository(session).list_all()
    specs = [CellSpec(c.id, c.grpc_port, c.metrics_port, c.http_port) for c in cells]
    results = await asyncio.gather(*(provider.start(s) for s in specs), return_exceptions=True)
    for spec, result in zip(specs, results, strict=True):
        if isinstance(result, BaseException):
            logger.error("could not restore cell %s: %s", spec.cell_id, result)
        else:
            logger.info("cell %s running at %s", spec.cell_id, provider.address(spec.cell_id))


async def start_pending_operations(
    sessionmaker: async_sessionmaker[AsyncSession], starter: OperationStarter
) -> None:
    async with sessionmaker() as session:
        pending = await OperationRepository(session).pending()
    for operation in pending:
        await starter.start(operation.id, operation.operation_type, operation.resource_id)


async def _reconcile_forever(
    sessionmaker: async_sessionmaker[AsyncSession], starter: OperationStarter, interval: float
) -> None:
    while True:
        try:
            await start_pending_operations(sessionmaker, starter)
        except Exception:
            logger.exception("reconciling pending operations failed")
        await asyncio.sleep(interval)


async def run(settings: Settings) -> None:
    # A malformed price book stops the worker before anything runs (file, line, reason).
    pricing = load_pricing(settings)
    box = SecretBox.from_file(settings.secrets_key_path)
    engine = create_engine(settings.sqlalchemy_url)
    sessionmaker = create_sessionmaker(engine)
    provider = LocalCellProvider(settings.cells_dir)
    await restore_cells(sessionmaker, provider)
    client = await Client.connect(
        settings.system_cell_address,
        namespace=SYSTEM_NAMESPACE,
        interceptors=temporal_interceptors(),
    )
    starter = OperationStarter(settings.system_cell_address)
    activities = ProvisioningActivities(sessionmaker, provider)
    worker = Worker(
        client,
        task_queue=SYSTEM_TASK_QUEUE,
        workflows=WORKFLOWS,
        activities=activities.all(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reconciler = asyncio.create_task(
        _reconcile_forever(sessionmaker, starter, settings.reconcile_interval_seconds)
    )
    metering_http = httpx.AsyncClient(timeout=10.0)
    meter = asyncio.create_task(
        Meter(metering_http).run(
            sessionmaker,
            cell_endpoints(sessionmaker, provider),
            interval=settings.metering_interval_seconds,
        )
    )
    storage_meter = asyncio.create_task(
        StorageMeter().run(
            sessionmaker,
            storage_targets(sessionmaker, provider),
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
    background = [reconciler, meter, storage_meter, billing]
    async with worker:
        logger.info("control-plane worker polling %s", SYSTEM_TASK_QUEUE)
        await stop.wait()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    await metering_http.aclose()
    await engine.dispose()


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    configure_tracing("stratus-worker", settings.otel_exporter)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
