"""The analysis of one namespace: gather bounded evidence from its cell, run the detectors.

Gathering is the only part that talks to the cell, and every RPC it makes is counted (by RPC
name, in :attr:`AnalysisResult.calls`), so the job and the bench can say what an analysis
cost. It reads:

1. the namespace's executions from visibility (``ListWorkflowExecutions``): the open ones and
   those closed in the window, at most ``page_size`` times ``max_pages`` of each;
2. how many executions of each workflow type there are (``CountWorkflowExecutions``, one per
   type, at most ``max_counted_types``), so a sample's per-type figures scale to the whole;
3. the current history length and size of the oldest open executions
   (``DescribeWorkflowExecution``, at most ``max_described``): visibility does not refresh a
   running execution's ``HistoryLength`` on every event;
4. a bounded sample of histories (``GetWorkflowExecutionHistory``): at most ``max_histories``
   executions, spread over the workflow types, at most ``max_history_pages`` pages each.

The detectors (``_events``, ``_queues``) are pure functions over that evidence. Every bound is
a module constant that ``AnalysisContext.overrides[<name>]`` can change (docs/insights.md).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as rpc

from controlplane.insights._events import (
    EventEvidence,
    ExecutionSample,
    HistorySample,
    event_findings,
    knob,
    task_queue_uses,
)
from controlplane.insights._queues import queue_evidence, queue_findings
from controlplane.insights.findings import AnalysisContext, Finding, Severity

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = ["AnalysisResult", "CellSource", "analyse"]

_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"

# Visibility: executions per page and pages per query (open ones; closed in the window).
PAGE_SIZE = 100
MAX_PAGES = 10
# Workflow types counted exactly (CountWorkflowExecutions per type).
MAX_COUNTED_TYPES = 20
# Open executions described (their history's current length and size), oldest first.
MAX_DESCRIBED = 100
# Histories read per analysis, pages per history (of HISTORY_PAGE_SIZE events), and how many
# are read at once (the cell serves tenants' workers first).
MAX_HISTORIES = 100
MAX_HISTORY_PAGES = 5
HISTORY_PAGE_SIZE = 1000
HISTORY_CONCURRENCY = 4
_CALL_TIMEOUT_SECONDS = 15.0

_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True)
class CellSource:
    """Where a namespace lives: a channel to its cell's frontend (``dataplane.cells
    .grpc_channel``), its name there (the namespace id) and the cell's Prometheus endpoint."""

    channel: grpc.aio.Channel
    namespace: str
    metrics_url: str | None


@dataclass
class AnalysisResult:
    findings: list[Finding]
    # RPC name -> calls made to the cell (plus "metrics" for scrapes of its endpoint).
    calls: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


async def analyse(source: CellSource, context: AnalysisContext) -> AnalysisResult:
    """Every finding the detectors make for the namespace of ``source`` over
    ``context.window``, deduplicated by :attr:`Finding.key` (the most severe one kept)."""
    calls: collections.Counter[str] = collections.Counter()
    reader = _CellReader(source, calls)
    evidence = await _gather_event_evidence(reader, context)
    uses = task_queue_uses(evidence)
    queues = await queue_evidence(source, uses, context, calls)
    findings = _deduplicated([*queue_findings(queues, context), *event_findings(evidence, context)])
    return AnalysisResult(findings=findings, calls=calls)


async def _gather_event_evidence(reader: _CellReader, context: AnalysisContext) -> EventEvidence:
    since = context.now - context.window.duration
    page_size = int(knob(context, "page_size", PAGE_SIZE))
    max_pages = int(knob(context, "max_pages", MAX_PAGES))
    open_executions = await reader.list_executions(
        "ExecutionStatus = 'Running'", page_size, max_pages
    )
    closed = await reader.list_executions(
        f"ExecutionStatus != 'Running' AND CloseTime >= '{_iso(since)}'", page_size, max_pages
    )
    executions = _unique([*open_executions, *closed])
    limit = asyncio.Semaphore(HISTORY_CONCURRENCY)

    async def describe(execution: ExecutionSample) -> ExecutionSample:
        async with limit:
            return await reader.describe(execution)

    oldest_open = sorted((e for e in executions if e.running), key=lambda e: e.start_time)
    described = await asyncio.gather(
        *(describe(e) for e in oldest_open[: int(knob(context, "max_described", MAX_DESCRIBED))])
    )
    executions = _unique([*executions, *described])
    type_counts = await _type_counts(reader, executions, since, context)
    chosen = _history_sample(executions, int(knob(context, "max_histories", MAX_HISTORIES)))
    max_history_pages = int(knob(context, "max_history_pages", MAX_HISTORY_PAGES))

    async def read(execution: ExecutionSample) -> HistorySample:
        async with limit:
            return await reader.history(execution, max_history_pages)

    histories = await asyncio.gather(*(read(execution) for execution in chosen))
    return EventEvidence(
        executions=tuple(executions),
        histories=tuple(histories),
        executions_by_type=type_counts,
        since=since,
    )


class _CellReader:
    """The cell's read RPCs for one namespace, each call counted."""

    def __init__(self, source: CellSource, calls: collections.Counter[str]) -> None:
        self._source = source
        self._calls = calls

    async def _call(self, method: str, request: Message, response_type: Any) -> Any:
        self._calls[method] += 1
        call = self._source.channel.unary_unary(
            f"/{_SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        return await call(request, timeout=_CALL_TIMEOUT_SECONDS)

    async def list_executions(
        self, query: str, page_size: int, max_pages: int
    ) -> list[ExecutionSample]:
        found: list[ExecutionSample] = []
        token = b""
        for _ in range(max_pages):
            request = rpc.ListWorkflowExecutionsRequest(
                namespace=self._source.namespace,
                page_size=page_size,
                next_page_token=token,
                query=query,
            )
            response = await self._call(
                "ListWorkflowExecutions", request, rpc.ListWorkflowExecutionsResponse
            )
            found += [_execution(info) for info in response.executions]
            token = bytes(response.next_page_token)
            if not token:
                break
        return found

    async def count(self, query: str) -> int:
        request = rpc.CountWorkflowExecutionsRequest(namespace=self._source.namespace, query=query)
        response = await self._call(
            "CountWorkflowExecutions", request, rpc.CountWorkflowExecutionsResponse
        )
        return int(response.count)

    async def describe(self, execution: ExecutionSample) -> ExecutionSample:
        """``execution`` with its history's current length and size."""
        request = rpc.DescribeWorkflowExecutionRequest(
            namespace=self._source.namespace,
            execution=common.WorkflowExecution(
                workflow_id=execution.workflow_id, run_id=execution.run_id
            ),
        )
        try:
            response = await self._call(
                "DescribeWorkflowExecution", request, rpc.DescribeWorkflowExecutionResponse
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return execution
            raise
        info = response.workflow_execution_info
        return dataclasses.replace(
            execution,
            history_length=int(info.history_length),
            history_size_bytes=int(info.history_size_bytes),
        )

    async def history(self, execution: ExecutionSample, max_pages: int) -> HistorySample:
        events: list[Any] = []
        token = b""
        complete = False
        for _ in range(max_pages):
            request = rpc.GetWorkflowExecutionHistoryRequest(
                namespace=self._source.namespace,
                execution=common.WorkflowExecution(
                    workflow_id=execution.workflow_id, run_id=execution.run_id
                ),
                maximum_page_size=HISTORY_PAGE_SIZE,
                next_page_token=token,
            )
            try:
                response = await self._call(
                    "GetWorkflowExecutionHistory", request, rpc.GetWorkflowExecutionHistoryResponse
                )
            except grpc.aio.AioRpcError as error:
                # Deleted by retention between the listing and this read: nothing to learn.
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    complete = True
                    break
                raise
            events += response.history.events
            token = bytes(response.next_page_token)
            if not token:
                complete = True
                break
        return HistorySample(execution=execution, events=tuple(events), complete=complete)


async def _type_counts(
    reader: _CellReader,
    executions: Sequence[ExecutionSample],
    since: dt.datetime,
    context: AnalysisContext,
) -> dict[str, int]:
    """Executions of each workflow type (open, or closed in the window): counted by the cell
    for the most frequent types of the listing, the listing's own count for the rest."""
    listed = collections.Counter(execution.workflow_type for execution in executions)
    counted = dict(listed)
    most = int(knob(context, "max_counted_types", MAX_COUNTED_TYPES))
    for workflow_type, _ in listed.most_common(most):
        quoted = workflow_type.replace("\\", "\\\\").replace("'", "\\'")
        counted[workflow_type] = max(
            listed[workflow_type],
            await reader.count(
                f"WorkflowType = '{quoted}' AND "
                f"(ExecutionStatus = 'Running' OR CloseTime >= '{_iso(since)}')"
            ),
        )
    return counted


def _history_sample(executions: Sequence[ExecutionSample], limit: int) -> list[ExecutionSample]:
    """Which histories to read: the longest histories first (where limits, hot workflows and
    timer loops show), then round-robin over workflow types, most recent first, so every type
    is seen even when one dominates the namespace."""
    if limit <= 0:
        return []
    chosen: dict[tuple[str, str], ExecutionSample] = {}
    longest = sorted(executions, key=lambda execution: -execution.history_length)
    for execution in longest[: max(1, limit // 10)]:
        chosen[execution.key] = execution
    by_type: dict[str, collections.deque[ExecutionSample]] = collections.defaultdict(
        collections.deque
    )
    for execution in sorted(executions, key=lambda execution: execution.start_time, reverse=True):
        if execution.key not in chosen:
            by_type[execution.workflow_type].append(execution)
    while len(chosen) < limit and any(by_type.values()):
        for queue in by_type.values():
            if queue and len(chosen) < limit:
                execution = queue.popleft()
                chosen[execution.key] = execution
    return list(chosen.values())


def _execution(info: Any) -> ExecutionSample:
    running = info.status == workflow_pb2.WORKFLOW_EXECUTION_STATUS_RUNNING
    return ExecutionSample(
        workflow_id=info.execution.workflow_id,
        run_id=info.execution.run_id,
        workflow_type=info.type.name,
        task_queue=info.task_queue,
        running=running,
        history_length=int(info.history_length),
        history_size_bytes=int(info.history_size_bytes),
        start_time=info.start_time.ToDatetime(tzinfo=dt.UTC),
    )


def _unique(executions: Iterable[ExecutionSample]) -> list[ExecutionSample]:
    return list({execution.key: execution for execution in executions}.values())


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _deduplicated(findings: Iterable[Finding]) -> list[Finding]:
    kept: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        held = kept.get(finding.key)
        if held is None or _SEVERITY_RANK[finding.severity] > _SEVERITY_RANK[held.severity]:
            kept[finding.key] = finding
    return list(kept.values())
