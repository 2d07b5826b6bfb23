"""The control plane's Temporal worker: runs operation workflows on the system cell.

It watches every account's cell (a restart of ``stratus up`` restores all tenants; a crashed
cell is started again with backoff; an idle account's cell is stopped), and runs the periodic
jobs (``controlplane.jobs``: reconciling PENDING operations, the meters, the billing cycle and
the exporter) that the system cell's schedules start, each once per period across all workers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import logging
import signal

import httpx
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from auth import SecretBox
from controlplane.audit_sink.exporter import AuditSinkExporter
from controlplane.cells.keeper import TenantCellKeeper, restart_policy
from controlplane.cells.prober import CellProber
from controlplane.cells.provider import cell_provider
from controlplane.config import SYSTEM_NAMESPACE, SYSTEM_TASK_QUEUE, WorkerSettings
from controlplane.exports.exporter import Exporter
from controlplane.history_exports.exporter import HistoryExporter
from controlplane.insights.job import AnalyseNamespace, InsightsActivities
from controlplane.jobs import JobActivities, PeriodicJob, ensure_schedules, meter_once
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.kit.health_server import HealthServer
from controlplane.kit.telemetry import (
    configure_logging,
    configure_telemetry,
    temporal_interceptors,
    temporal_runtime,
)
from controlplane.namespaces.activities import NamespaceActivities
from controlplane.namespaces.workflows import WORKFLOW_BY_OPERATION, WORKFLOWS
from controlplane.operations.starter import OperationStarter
from controlplane.pricing import load_pricing
from controlplane.workflows.service import CellChannels
from dataplane.cells import CellTls, temporal_tls_config

__all__ = ["main", "meter_once", "run"]

logger = logging.getLogger(__name__)
# Workflow tasks are CPU-bound on this process's one interpreter: more slots only queue them
# here, out of reach of the system cell's fair dispatch.
WORKFLOW_TASK_SLOTS = 4


def _package_version() -> str:
    try:
        return importlib.metadata.version("stratus")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


async def _connect(address: str, runtime: Runtime | None, tls: CellTls | None) -> Client:
    """The system cell's client, retrying every second until it answers (a worker started
    before it waits, not ready, instead of exiting)."""
    while True:
        try:
            return await Client.connect(
                address,
                namespace=SYSTEM_NAMESPACE,
                interceptors=temporal_interceptors(),
                runtime=runtime,
                tls=temporal_tls_config(tls),
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
    prober = CellProber(
        sessionmaker,
        box,
        timeout=settings.cell_probe_timeout_seconds,
        failures_to_unhealthy=settings.cell_probe_failures_to_unhealthy,
    )
    probing = asyncio.create_task(prober.run(settings.cell_probe_interval_seconds))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    polling: asyncio.Task[None] | None = None
    health = HealthServer(lambda: polling is not None and not polling.done())
    if settings.worker_health_port:
        await health.start(settings.worker_health_host, settings.worker_health_port)
    connecting = asyncio.create_task(
        _connect(
            settings.system_cell_address,
            temporal_runtime("stratus-worker", settings),
            settings.system_cell_tls,
        )
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        cells.cancel()
        probing.cancel()
        await asyncio.gather(connecting, cells, probing, return_exceptions=True)
        await health.aclose()
        await engine.dispose()
        return
    client = connecting.result()
    starter = OperationStarter(
        settings.system_cell_address, WORKFLOW_BY_OPERATION, tls=settings.system_cell_tls
    )
    activities = NamespaceActivities(sessionmaker, provider, box)
    metering_http = httpx.AsyncClient(timeout=10.0)
    # The history export reads cells as the console does: one channel per cell.
    history_channels = CellChannels(box)
    # An hour's usage is final once every meter has written its last deltas for it.
    settle = dt.timedelta(
        seconds=max(settings.metering_interval_seconds, settings.storage_metering_interval_seconds)
        + 60
    )
    insights = InsightsActivities(
        sessionmaker,
        CellChannels(box),
        pricing,
        dt.timedelta(seconds=settings.insights_interval_seconds),
        client,
    )
    jobs = JobActivities(
        sessionmaker,
        starter,
        pricing,
        Exporter(box, settle=settle, egress=settings.export_egress),
        metering_http,
        box.open,
        audit_exporter=AuditSinkExporter(box, egress=settings.export_egress),
        history_exporter=HistoryExporter(box, history_channels, egress=settings.export_egress),
        insights=insights,
        account_data_retention=dt.timedelta(days=settings.account_data_retention_days),
    )
    worker = Worker(
        client,
        task_queue=SYSTEM_TASK_QUEUE,
        workflows=[*WORKFLOWS, PeriodicJob, AnalyseNamespace],
        activities=[*activities.all(), jobs.run, insights.analyse_namespace],
        # Few workflow tasks at a time: the backlog then waits on the system cell, whose
        # matching hands tasks out fairly across accounts (fairness key = account), instead
        # of in this process in arrival order.
        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
        # Named, not derived: without it the SDK hashes the bytecode of every loaded module
        # (0.7 s of CPU at each start) for an id that only labels this worker's polls.
        build_id=f"stratus-{_package_version()}",
    )
    # The periodic jobs run where the system cell's schedules send them: once per period,
    # on one worker, however many run; a worker that starts also reconciles at once (PENDING
    # operations left while none ran start now, not a period later).
    await ensure_schedules(client, settings)
    background = [cells, probing]
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
    await history_channels.close()
    await insights.channels.close()
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
