"""The event detectors on a real Temporal dev server: real temporalio workers reproduce each
pathology on task queues of their own, beside a healthy workload (``Steady`` on
``healthy-q``) in the same namespace, and ``analysis.analyse`` finds exactly the pathologies,
naming the right subjects, and nothing about the healthy workload. Thresholds are lowered
through ``AnalysisContext.overrides`` where the real ones need hours of traffic."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from support import free_port
from temporalio import activity, workflow
from temporalio.api.enums.v1 import event_type_pb2 as et
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from controlplane.insights.analysis import AnalysisResult, CellSource, analyse
from controlplane.insights.findings import (
    AnalysisContext,
    Finding,
    FindingKind,
    SubjectKind,
    Window,
)
from dataplane.cells import dev_server_command, grpc_channel

pytestmark = pytest.mark.slow

HEALTHY = "healthy-q"


@activity.defn
async def steady() -> str:
    return "ok"


@activity.defn
async def charge_card() -> str:
    raise ApplicationError("payment gateway unreachable: connection refused")


@activity.defn
async def export_report() -> str:
    return "exported"


@activity.defn
async def sync_ledger() -> str:
    activity.heartbeat()
    return "synced"


@workflow.defn
class Steady:
    """The healthy control: an activity with a short start-to-close, one short sleep."""

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(steady, start_to_close_timeout=dt.timedelta(seconds=10))
        await workflow.sleep(0.01)
        return await workflow.execute_activity(
            sync_ledger,
            start_to_close_timeout=dt.timedelta(hours=1),
            heartbeat_timeout=dt.timedelta(seconds=30),
        )


@workflow.defn
class Checkout:
    """An activity that always fails, retried quickly."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            charge_card,
            start_to_close_timeout=dt.timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=dt.timedelta(milliseconds=20),
                backoff_coefficient=1.0,
                maximum_attempts=4,
            ),
        )


@workflow.defn
class Reporting:
    """An hour of start-to-close and no heartbeat timeout."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            export_report, start_to_close_timeout=dt.timedelta(hours=1)
        )


@workflow.defn
class Broken:
    """Workflow code with a bug: the Python SDK fails the workflow task, not the workflow."""

    @workflow.run
    async def run(self) -> str:
        raise RuntimeError("KeyError in workflow code after the deploy")


@workflow.defn
class Blocking:
    """Workflow code that blocks its thread past the workflow task's 1 s timeout (and past
    the SDK's 2 s deadlock detection, so no late completion is ever accepted: it stays open)."""

    @workflow.run
    async def run(self) -> str:
        time.sleep(2.5)  # noqa: ASYNC251 (the pathology: blocking in workflow code)
        return "late"


@workflow.defn
class Collector:
    """Open, taking signals."""

    def __init__(self) -> None:
        self.received = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def add(self, value: int) -> None:
        self.received += value


@workflow.defn
class Poller:
    """A polling loop of short timers."""

    @workflow.run
    async def run(self, rounds: int) -> int:
        for _ in range(rounds):
            await workflow.sleep(0.02)
        return rounds


@dataclass
class Cell:
    client: Client
    address: str


@pytest.fixture(scope="module")
async def cell() -> AsyncIterator[Cell]:
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any test runs)
        dev_server_command("127.0.0.1", port, http_port=free_port(), metrics_port=free_port()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                client = await Client.connect(f"127.0.0.1:{port}")
                break
            except RuntimeError:
                assert asyncio.get_running_loop().time() < deadline, "dev server not up"
                await asyncio.sleep(0.2)
        yield Cell(client, f"127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _has_event(handle: WorkflowHandle[Any, Any], event_type: int) -> bool:
    history = await handle.fetch_history()
    return any(event.event_type == event_type for event in history.events)


def _calm_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]] = (),
    max_cached_workflows: int = 1000,
) -> Worker:
    """A worker with the SDK's deadlock detection off (debug_mode): on a loaded machine an
    activation can take 2 s of wall time, and the SDK would then fail a healthy task."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        workflow_runner=UnsandboxedWorkflowRunner(),
        debug_mode=True,
        max_cached_workflows=max_cached_workflows,
    )


def _workers(client: Client) -> list[Worker]:
    return [
        _calm_worker(client, HEALTHY, [Steady, Collector], [steady, sync_ledger]),
        _calm_worker(client, "payments-q", [Checkout], [charge_card]),
        _calm_worker(client, "reports-q", [Reporting], [export_report]),
        # Deadlock detection on: it fails Blocking's tasks, which never complete late.
        Worker(
            client,
            task_queue="broken-q",
            workflows=[Broken, Blocking],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        _calm_worker(client, "polling-q", [Poller]),
        # No workflow cache: every workflow task after the first misses the sticky cache.
        _calm_worker(client, "no-cache-q", [Poller], max_cached_workflows=0),
    ]


async def _produce(client: Client) -> dict[str, str]:
    """Run every workload to the state the detectors need; returns the ids to look for."""
    run = uuid.uuid4().hex[:6]

    def wid(name: str) -> str:
        return f"{name}-{run}-{uuid.uuid4().hex[:6]}"

    healthy = [
        await client.start_workflow(Steady.run, id=wid("steady"), task_queue=HEALTHY)
        for _ in range(3)
    ]
    checkouts = [
        await client.start_workflow(Checkout.run, id=wid("checkout"), task_queue="payments-q")
        for _ in range(3)
    ]
    report = await client.start_workflow(Reporting.run, id=wid("report"), task_queue="reports-q")
    broken = await client.start_workflow(Broken.run, id=wid("broken"), task_queue="broken-q")
    blocking = await client.start_workflow(
        Blocking.run,
        id=wid("blocking"),
        task_queue="broken-q",
        task_timeout=dt.timedelta(seconds=1),
    )
    hot = await client.start_workflow(Collector.run, id=wid("hot"), task_queue=HEALTHY)
    calm = await client.start_workflow(Collector.run, id=wid("calm"), task_queue=HEALTHY)
    poller = await client.start_workflow(Poller.run, 25, id=wid("poller"), task_queue="polling-q")
    uncached = [
        await client.start_workflow(Poller.run, 5, id=wid("uncached"), task_queue="no-cache-q")
        for _ in range(3)
    ]
    await asyncio.gather(*(hot.signal(Collector.add, 1) for _ in range(60)))
    await calm.signal(Collector.add, 1)
    finishing: list[WorkflowHandle[Any, Any]] = [*healthy, report, poller, *uncached]
    for finished in finishing:
        await finished.result()
    for handle in checkouts:
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    await _eventually(
        lambda: _has_event(broken, et.EVENT_TYPE_WORKFLOW_TASK_FAILED), "a failed workflow task"
    )
    await _eventually(
        lambda: _has_event(blocking, et.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT),
        "a timed-out workflow task",
    )
    return {
        "blocking": blocking.id,
        "report": report.id,
        "broken": broken.id,
        "hot": hot.id,
        "calm": calm.id,
        "poller": poller.id,
    }


async def test_each_pathology_is_found_and_the_healthy_workload_is_not(cell: Cell) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for worker in _workers(cell.client):
            await stack.enter_async_context(worker)
        ids = await _produce(cell.client)

        async def listed() -> bool:
            executions = [e async for e in cell.client.list_workflows()]
            return len(executions) == 15

        await _eventually(listed, "visibility to list every execution")
        context = AnalysisContext(
            window=Window.HOUR,
            now=dt.datetime.now(dt.UTC),
            metered_actions=10_000,
            price_per_action=Decimal("0.00003"),
            overrides={
                "history_warn_events": 60,
                "hot_workflow_min_messages": 30,
                "hot_workflow_bucket_seconds": 1,
                "hot_workflow_per_second": 5,
                "sticky_miss_min_tasks": 10,
            },
        )
        channel = grpc_channel(cell.address, None)
        try:
            result = await analyse(CellSource(channel, "default", None), context)
            # No history read: the length of an open history comes from describing it (the
            # visibility listing lags behind a running execution's history).
            unread = await analyse(
                CellSource(channel, "default", None),
                AnalysisContext(
                    window=Window.HOUR,
                    now=context.now,
                    overrides={"max_histories": 0, "history_warn_events": 60},
                ),
            )
        finally:
            await channel.close(None)

    found = _by_kind(result)
    assert found[FindingKind.ACTIVITY_FAILURE_STORM] == {(SubjectKind.ACTIVITY_TYPE, "charge_card")}
    (storm,) = _of(result, FindingKind.ACTIVITY_FAILURE_STORM)
    assert storm.evidence["failed_attempts"] == 12  # 3 workflows x 4 attempts, all failed
    assert storm.evidence["failure_rate"] == 1.0
    assert storm.evidence["dominant_failure"] == "payment gateway unreachable: connection refused"
    assert len(storm.examples) == 3

    # sync_ledger also runs for an hour at most, but heartbeats: only export_report is found.
    assert found[FindingKind.ACTIVITY_WITHOUT_HEARTBEAT] == {
        (SubjectKind.ACTIVITY_TYPE, "export_report")
    }
    assert found[FindingKind.WORKFLOW_TASK_FAILURES] == {
        (SubjectKind.WORKFLOW_TYPE, "Broken"),
        (SubjectKind.WORKFLOW_TYPE, "Blocking"),
    }
    failing = {f.subject.name: f for f in _of(result, FindingKind.WORKFLOW_TASK_FAILURES)}
    assert failing["Broken"].evidence["dominant_cause"] == "WORKFLOW_WORKER_UNHANDLED_FAILURE"
    assert "KeyError in workflow code" in str(failing["Broken"].evidence["dominant_failure"])
    assert failing["Broken"].examples == (ids["broken"],)
    assert int(failing["Blocking"].evidence["workflow_task_timeouts"]) >= 1
    assert failing["Blocking"].examples == (ids["blocking"],)

    assert found[FindingKind.HISTORY_NEAR_LIMIT] == {(SubjectKind.WORKFLOW_ID, ids["hot"])}
    (near_limit,) = unread.findings
    assert near_limit.kind is FindingKind.HISTORY_NEAR_LIMIT
    assert near_limit.subject.name == ids["hot"]
    assert int(near_limit.evidence["history_events"]) >= 60
    assert unread.calls["GetWorkflowExecutionHistory"] == 0
    assert found[FindingKind.HOT_WORKFLOW] == {(SubjectKind.WORKFLOW_ID, ids["hot"])}
    assert found[FindingKind.STICKY_CACHE_TOO_SMALL] == {(SubjectKind.TASK_QUEUE, "no-cache-q")}
    (sticky,) = _of(result, FindingKind.STICKY_CACHE_TOO_SMALL)
    assert sticky.evidence["sticky_miss_rate"] == 1.0
    # The 25-timer loop; the uncached pollers' 5 timers stay under the 20-timer threshold.
    assert found[FindingKind.SHORT_TIMER_POLLING] == {(SubjectKind.WORKFLOW_TYPE, "Poller")}
    (polling,) = _of(result, FindingKind.SHORT_TIMER_POLLING)
    assert polling.examples == (ids["poller"],)
    assert polling.evidence["short_timers"] == 25

    spenders = found[FindingKind.ACTION_SPEND]
    assert (SubjectKind.WORKFLOW_TYPE, "Collector") in spenders  # 60 signals
    assert (SubjectKind.WORKFLOW_TYPE, "Steady") not in spenders
    for spend in _of(result, FindingKind.ACTION_SPEND):
        share = float(spend.evidence["share_of_actions"])
        # The metered actions, split by the type's share (shown rounded to 0.1%).
        assert abs(int(spend.evidence["actions_in_window"]) - share * 10_000) <= 5
        assert spend.evidence["currency"] == "USD"

    # Nothing names the healthy workload's queue, types or activities.
    healthy_names = {HEALTHY, "Steady", "steady", "sync_ledger", ids["calm"]}
    assert not [f for f in result.findings if f.subject.name in healthy_names]
    # Bounded, counted reads: two listings, one count per type, the four open executions
    # described, one page per history.
    assert result.calls["ListWorkflowExecutions"] == 2
    assert result.calls["DescribeWorkflowExecution"] == 4
    assert result.calls["CountWorkflowExecutions"] == 7
    assert result.calls["GetWorkflowExecutionHistory"] == 15


def _of(result: AnalysisResult, kind: FindingKind) -> list[Finding]:
    return [f for f in result.findings if f.kind is kind]


def _by_kind(result: AnalysisResult) -> dict[FindingKind, set[tuple[SubjectKind, str]]]:
    found: dict[FindingKind, set[tuple[SubjectKind, str]]] = collections.defaultdict(set)
    for finding in result.findings:
        found[finding.kind].add((finding.subject.kind, finding.subject.name))
    return found
