"""The history exporter: every closed workflow run of each namespace with a sink, written to
its bucket as Temporal's ``History`` protobuf, one object per run.

The guarantee is "every closed run, once per key": a namespace's export moves hour by hour
(UTC, by close time). For an hour it lists the runs that closed in it (visibility,
``CloseTime`` range), writes each run's whole history (``GetWorkflowExecutionHistory``, every
page) at the run's deterministic key, then commits the watermark (``exported_until``: the
hour's end) and the count in one transaction. A crash anywhere before that commit makes the
next run do the hour again: the same runs at the same keys with the same bytes (a closed run's
history never changes), so nothing is lost and no run gets a second, different object; the
count moves only with the watermark, so it counts each run once. An hour is exported once
``settle`` has passed after its end, so runs closed in it have reached visibility.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.history.v1 import message_pb2 as history_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rpc

from auth import SecretBox
from billing import EgressPolicy, S3ExportTarget, hour_of, s3_client
from controlplane.history_exports import objects
from controlplane.history_exports.repository import SystemHistoryExportSinkRepository
from controlplane.history_exports.service import target
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.kit.errors import StratusError
from controlplane.models import HistoryExportSink
from controlplane.workflows.service import (
    SERVED_STATES,
    CellChannels,
    NamespaceCell,
    call_read,
    namespace_cell,
)

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
# Hours exported per namespace and run: a new sink catches up over a few runs.
MAX_HOURS_PER_RUN = 168
# How long after an hour ends its closed runs are taken as all visible (visibility is written
# just after the close, asynchronously).
DEFAULT_SETTLE = dt.timedelta(minutes=5)
_LIST_PAGE = 1000
_HISTORY_PAGE = 1000

ClientFactory = Callable[[S3ExportTarget], "S3Client"]


@dataclass
class HistoryExportReport:
    # Namespace → keys written in this run.
    written: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClosedRun:
    workflow_id: str
    run_id: str
    close_time: dt.datetime


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def closed_runs(
    cell: NamespaceCell, since: dt.datetime, until: dt.datetime
) -> list[ClosedRun]:
    """Every run of the namespace that closed in ``[since, until)``, from visibility."""
    query = f'CloseTime >= "{_timestamp(since)}" AND CloseTime < "{_timestamp(until)}"'
    runs: list[ClosedRun] = []
    token = b""
    while True:
        request = rpc.ListWorkflowExecutionsRequest(
            namespace=cell.cell_namespace, page_size=_LIST_PAGE, next_page_token=token, query=query
        )
        page = await call_read(
            cell, "ListWorkflowExecutions", request, rpc.ListWorkflowExecutionsResponse
        )
        for info in page.executions:
            runs.append(
                ClosedRun(
                    info.execution.workflow_id,
                    info.execution.run_id,
                    info.close_time.ToDatetime(tzinfo=dt.UTC),
                )
            )
        token = bytes(page.next_page_token)
        if not token:
            return runs


async def run_history(cell: NamespaceCell, workflow_id: str, run_id: str) -> history_pb2.History:
    """A run's whole event history, every page of it."""
    history = history_pb2.History()
    token = b""
    while True:
        request = rpc.GetWorkflowExecutionHistoryRequest(
            namespace=cell.cell_namespace,
            execution=common.WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            maximum_page_size=_HISTORY_PAGE,
            next_page_token=token,
        )
        page = await call_read(
            cell, "GetWorkflowExecutionHistory", request, rpc.GetWorkflowExecutionHistoryResponse
        )
        history.events.extend(page.history.events)
        token = bytes(page.next_page_token)
        if not token:
            return history


class HistoryExporter:
    """Exports every sink's closed hours. Every connection to a sink goes through ``egress``;
    every read of a cell goes where the gateway routes the namespace (``channels``)."""

    def __init__(
        self,
        box: SecretBox,
        channels: CellChannels,
        *,
        egress: EgressPolicy,
        settle: dt.timedelta = DEFAULT_SETTLE,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._box = box
        self._channels = channels
        self._settle = settle
        self._clock = clock
        self._client_factory: ClientFactory = functools.partial(s3_client, egress=egress)
        self._clients: dict[tuple[str, str, dt.datetime], S3Client] = {}

    def _client(self, sink: HistoryExportSink, config: S3ExportTarget) -> S3Client:
        # One client per sink version: a changed sink (new keys, endpoint) gets a new client.
        key = (sink.namespace_id, sink.secret_access_key_encrypted, sink.updated_at)
        client = self._clients.get(key)
        if client is None:
            client = self._client_factory(config)
            self._clients[key] = client
        return client

    async def export_once(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> HistoryExportReport:
        report = HistoryExportReport()
        async with unit_of_work(sessionmaker) as session:
            namespace_ids = await SystemHistoryExportSinkRepository(session).all_namespace_ids()
        for namespace_id in namespace_ids:
            try:
                await self._export_namespace(sessionmaker, namespace_id, report)
            except Exception as error:
                reason = (
                    error.message
                    if isinstance(error, StratusError)
                    else objects.describe_failure(error)
                )
                logger.warning("history export of %s failed: %r", namespace_id, error)
                report.failed[namespace_id] = reason
                await _record_failure(sessionmaker, namespace_id, reason)
        return report

    async def _export_namespace(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        namespace_id: str,
        report: HistoryExportReport,
    ) -> None:
        final_until = hour_of(self._clock() - self._settle)
        async with unit_of_work(sessionmaker) as session:
            repository = SystemHistoryExportSinkRepository(session)
            sink = await repository.get(namespace_id)
            namespace = await repository.namespace(namespace_id)
            if sink is None or namespace is None or namespace.state not in SERVED_STATES:
                return
            config = target(sink, self._box)
            s3 = self._client(sink, config)
            start = sink.exported_until or hour_of(sink.export_from)
            end = min(final_until, start + MAX_HOURS_PER_RUN * HOUR)
            if start >= end:
                return
            position = sink.exported_until
            cell = await namespace_cell(session, self._channels, namespace)
        hour = start
        while hour < end:
            runs = await closed_runs(cell, hour, hour + HOUR)
            keys = []
            for run in runs:
                history = await run_history(cell, run.workflow_id, run.run_id)
                key = objects.history_object_key(
                    config, namespace_id, run.close_time, run.workflow_id, run.run_id
                )
                await asyncio.to_thread(
                    objects.write_history,
                    s3,
                    config,
                    key,
                    history.SerializeToString(deterministic=True),
                )
                keys.append(key)
            async with unit_of_work(sessionmaker) as session:
                stored = await SystemHistoryExportSinkRepository(session).get(namespace_id)
                if stored is None or stored.exported_until != position:
                    return  # the sink was removed, or replaced to start again, meanwhile
                stored.exported_until = hour + HOUR
                stored.exported_count += len(keys)
                stored.last_exported_at = utcnow()
                stored.last_error = None
                stored.last_error_at = None
            position = hour + HOUR
            report.written.setdefault(namespace_id, []).extend(keys)
            hour += HOUR


async def _record_failure(
    sessionmaker: async_sessionmaker[AsyncSession], namespace_id: str, reason: str
) -> None:
    try:
        async with unit_of_work(sessionmaker) as session:
            sink = await SystemHistoryExportSinkRepository(session).get(namespace_id)
            if sink is not None:
                sink.last_error = reason[:2000]
                sink.last_error_at = utcnow()
    except Exception:
        logger.exception("could not record the history export failure of %s", namespace_id)
