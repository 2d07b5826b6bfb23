"""The task-queue detectors against a real Temporal dev server and real workers: a workflow
sent to a misspelt queue is NO_POLLERS naming the queue the worker listens on (which is itself
UNUSED_QUEUE_POLLERS); a worker that runs one activity at a time under a burst is
UNDER_PROVISIONED_WORKERS (thresholds lowered by overrides, the backlog held by a gate, not by
time); a worker holding 30 activity polls open on a queue without activities is GREEDY_WORKERS;
a healthy queue in the same namespace, and another tenant's stray worker on the same
cell, produce nothing. Gathering stays within its bound and counts every call."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from queue_workflows import GATE, Burst, Quick, Waiting, gated, step
from support import free_port
from temporalio.client import Client
from temporalio.worker import Worker

from controlplane.insights._queues import TaskQueueUse, queue_evidence, queue_findings
from controlplane.insights.analysis import CellSource
from controlplane.insights.findings import AnalysisContext, Finding, FindingKind, Window
from dataplane.cells import dev_server_command, grpc_channel

pytestmark = pytest.mark.slow

SHOP = "shop.a1b2c"
RIVAL = "rival.z9y8x"
BURST = 8
# What makes the held burst a finding within seconds (docs/insights.md names each override).
OVERRIDES = {"backlog_min_tasks": 3, "backlog_age_seconds": 1, "schedule_to_start_min_samples": 1}


@dataclass(frozen=True)
class Cell:
    port: int
    metrics_port: int

    def source(self, namespace: str = SHOP) -> CellSource:
        return CellSource(
            channel=grpc_channel(f"127.0.0.1:{self.port}", None),
            namespace=namespace,
            metrics_url=f"http://127.0.0.1:{self.metrics_port}/metrics",
        )


def _dev_server(port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    command = dev_server_command(
        "127.0.0.1", port, http_port=free_port(), metrics_port=metrics_port
    )
    return subprocess.Popen(
        [*command, "--namespace", SHOP, "--namespace", RIVAL],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
async def cell() -> AsyncIterator[Cell]:
    port, metrics_port = free_port(), free_port()
    server = _dev_server(port, metrics_port)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                await Client.connect(f"127.0.0.1:{port}", namespace=SHOP)
                break
            except RuntimeError:
                assert asyncio.get_running_loop().time() < deadline, "dev server not up"
                await asyncio.sleep(0.2)
        yield Cell(port, metrics_port)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _context(**overrides: float) -> AnalysisContext:
    return AnalysisContext(window=Window.HOUR, now=dt.datetime.now(dt.UTC), overrides=overrides)


async def test_misspelt_and_starved_queues_are_found_and_healthy_ones_are_not(cell: Cell) -> None:
    shop = await Client.connect(f"127.0.0.1:{cell.port}", namespace=SHOP)
    rival = await Client.connect(f"127.0.0.1:{cell.port}", namespace=RIVAL)
    run = uuid.uuid4().hex[:6]
    healthy = Worker(shop, task_queue="healthy", workflows=[Quick, Waiting], activities=[step])
    orders = Worker(shop, task_queue="orders", workflows=[Quick], activities=[step])
    busy = Worker(
        shop,
        task_queue="busy",
        workflows=[Burst],
        activities=[gated],
        max_concurrent_activities=1,
        # Every activity through the task queue (none started with the workflow task).
        disable_eager_activity_execution=True,
    )
    idle = Worker(
        shop,
        task_queue="idle",
        workflows=[Waiting],
        activities=[step],
        max_concurrent_activity_task_polls=30,
    )
    stray = Worker(rival, task_queue="stray", workflows=[Quick], activities=[step])
    GATE.clear()
    async with healthy, orders, busy, idle, stray:
        for n in range(3):
            await shop.execute_workflow(Quick.run, id=f"healthy-{run}-{n}", task_queue="healthy")
        waiting = await shop.start_workflow(Waiting.run, id=f"open-{run}", task_queue="healthy")
        await shop.start_workflow(Quick.run, id=f"misspelt-{run}", task_queue="ordres")
        await shop.start_workflow(Burst.run, BURST, id=f"burst-{run}", task_queue="busy")
        parked = await shop.start_workflow(Waiting.run, id=f"parked-{run}", task_queue="idle")
        uses = [
            TaskQueueUse("healthy", "workflow", 1, 4, (waiting.id,)),
            TaskQueueUse("healthy", "activity", 0, 6, (f"healthy-{run}-0",)),
            TaskQueueUse("ordres", "workflow", 1, 1, (f"misspelt-{run}",)),
            TaskQueueUse("busy", "workflow", 1, 1, (f"burst-{run}",)),
            TaskQueueUse("busy", "activity", 0, BURST, (f"burst-{run}",)),
            TaskQueueUse("idle", "workflow", 1, 1, (parked.id,)),
        ]
        source = cell.source()
        expected = {
            (FindingKind.NO_POLLERS, "ordres"),
            (FindingKind.UNUSED_QUEUE_POLLERS, "orders"),
            (FindingKind.UNDER_PROVISIONED_WORKERS, "busy"),
            (FindingKind.GREEDY_WORKERS, "idle"),
        }
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            calls: collections.Counter[str] = collections.Counter()
            evidence = await queue_evidence(source, uses, _context(**OVERRIDES), calls)
            findings = queue_findings(evidence, _context(**OVERRIDES))
            by_key = {(finding.kind, finding.subject.name): finding for finding in findings}
            # The cell reports its metrics periodically: wait for the started tasks' latencies.
            starved_now = by_key.get((FindingKind.UNDER_PROVISIONED_WORKERS, "busy"))
            healthy_series = evidence.metrics.get(("healthy", "workflow"))
            if (
                expected <= set(by_key)
                and starved_now is not None
                and "schedule_to_start_p95_ms" in starved_now.evidence
                and healthy_series is not None
                and healthy_series.schedule_to_start_samples >= 4
            ):
                break
            assert asyncio.get_running_loop().time() < deadline, sorted(by_key)
            await asyncio.sleep(0.25)
        # Nothing else: not the healthy queue, not the rival tenant's stray worker.
        assert set(by_key) == expected
        assert evidence.metrics_scraped
        # One scrape; described once each: the six uses, and what the metrics show polled that
        # no use covers ("orders" for both task types, "idle" for activities).
        assert calls == {"metrics": 1, "DescribeTaskQueue": 9}

        misspelt = by_key[(FindingKind.NO_POLLERS, "ordres")]
        assert misspelt.evidence["closest_polled_queue"] == "orders"
        assert misspelt.evidence["edit_distance"] == 1
        assert misspelt.evidence["backlog_count"] == 1
        assert misspelt.examples == (f"misspelt-{run}",)

        starved = by_key[(FindingKind.UNDER_PROVISIONED_WORKERS, "busy")]
        assert starved.evidence["task_type"] == "activity"
        assert starved.evidence["pollers"] == 1
        assert 3 <= int(starved.evidence["backlog_count"]) <= BURST - 1
        # Old (the override's 1 s) or growing: added faster than the one slot dispatches.
        age, added, dispatched = (
            float(starved.evidence[key])
            for key in ("backlog_age_seconds", "tasks_add_rate", "tasks_dispatch_rate")
        )
        assert age >= 1 or added > 1.2 * dispatched, starved.evidence
        # The cell's histogram, read for this queue (one activity started so far).
        assert float(starved.evidence["schedule_to_start_p95_ms"]) >= 0
        assert starved.evidence["schedule_to_start_samples"] == 1

        greedy = by_key[(FindingKind.GREEDY_WORKERS, "idle")]
        assert greedy.evidence["task_type"] == "activity"
        assert int(greedy.evidence["polls_waiting"]) >= 20
        assert greedy.evidence["poll_success_rate"] == 0

        unused = by_key[(FindingKind.UNUSED_QUEUE_POLLERS, "orders")]
        assert unused.evidence["task_types"] == "activity,workflow"

        # The same burst under the default thresholds is normal traffic.
        assert not _kinds(queue_findings(evidence, _context())) & {
            FindingKind.UNDER_PROVISIONED_WORKERS
        }
        # The gathering bound holds: at most this many DescribeTaskQueue calls.
        bounded: collections.Counter[str] = collections.Counter()
        await queue_evidence(source, uses, _context(max_described_queues=2), bounded)
        assert bounded["DescribeTaskQueue"] == 2

        # The rival's own analysis sees its stray worker, and nothing of the shop's queues.
        rival_calls: collections.Counter[str] = collections.Counter()
        rival_evidence = await queue_evidence(cell.source(RIVAL), [], _context(), rival_calls)
        assert {state.name for state in rival_evidence.states} == {"stray"}
        GATE.set()
        await waiting.signal(Waiting.finish)
        await parked.signal(Waiting.finish)


def _kinds(findings: list[Finding]) -> set[FindingKind]:
    return {finding.kind for finding in findings}
