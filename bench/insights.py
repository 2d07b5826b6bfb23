"""What one analysis of a namespace costs its cell (issue 14, item 3).

Run: ``.venv/bin/python bench/insights.py`` (10,000 closed workflows and 1,000 open ones in the
window); ``--closed N --open M`` for a smaller run. Prints one JSON document on stdout
(progress on stderr).

Setup (not timed): a bare ``temporal server start-dev`` (in memory; ``--on-disk`` puts its
SQLite in a file, as a cell's is, and makes the setup slower); a worker on
one task queue; ``--closed`` executions of a trivial workflow (one activity) started
concurrently and completed; ``--open`` executions that wait for a signal. All of them start
and close inside the 1 h window.

Timed: ``controlplane.insights.analysis.analyse`` over the namespace, ``--rounds`` times, with
the worker stopped (so the cell's CPU is the analysis's). Reported: the wall time of each
round, the calls it made to the cell by RPC, the findings' kinds, and the dev server's CPU
(user + system, from ``/proc/<pid>/stat``) during the analysis, as a share of one core, beside
its share while idle over as long a stretch just before.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from controlplane.insights.analysis import CellSource, analyse
from controlplane.insights.findings import AnalysisContext, Window
from dataplane.cells import dev_server_command, grpc_channel

TASK_QUEUE = "bench-q"
_TICKS = os.sysconf("SC_CLK_TCK")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


@activity.defn
async def touch() -> str:
    return "ok"


@workflow.defn
class Trivial:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            touch, start_to_close_timeout=dt.timedelta(seconds=30)
        )


@workflow.defn
class Waiting:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def finish(self) -> None:
        self.done = True


async def _start_all(client: Client, count: int, prefix: str, waiting: bool) -> None:
    limit = asyncio.Semaphore(20)

    async def start(i: int) -> None:
        async with limit:
            for attempt in range(10):
                try:
                    if waiting:
                        await client.start_workflow(
                            Waiting.run, id=f"{prefix}-{i}", task_queue=TASK_QUEUE
                        )
                    else:
                        await client.start_workflow(
                            Trivial.run, id=f"{prefix}-{i}", task_queue=TASK_QUEUE
                        )
                    return
                except WorkflowAlreadyStartedError:
                    return
                except RPCError as error:  # a dev server saturated by the setup: try again
                    _log(f"start {prefix}-{i}: {error} (attempt {attempt + 1})")
                    await asyncio.sleep(1)
            raise RuntimeError(f"could not start {prefix}-{i}")

    await asyncio.gather(*(start(i) for i in range(count)))


async def _wait_closed(client: Client, count: int) -> None:
    while True:
        closed = await client.count_workflows("ExecutionStatus = 'Completed'")
        _log(f"closed: {closed.count}/{count}")
        if closed.count >= count:
            return
        await asyncio.sleep(2)


async def run(closed: int, open_: int, rounds: int, on_disk: bool) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(  # noqa: ASYNC220 (once, before anything is measured)
            dev_server_command(
                "127.0.0.1",
                port,
                http_port=_free_port(),
                metrics_port=_free_port(),
                db_filename=Path(tmp) / "temporal.db" if on_disk else None,
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            return await _measure(server.pid, f"127.0.0.1:{port}", closed, open_, rounds)
        finally:
            server.terminate()
            server.wait(timeout=30)


async def _measure(pid: int, address: str, closed: int, open_: int, rounds: int) -> dict[str, Any]:
    while True:
        try:
            client = await Client.connect(address)
            break
        except RuntimeError:
            await asyncio.sleep(0.2)
    setup_started = time.monotonic()
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[Trivial, Waiting],
        activities=[touch],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_workflow_tasks=20,
        max_concurrent_activities=20,
    ):
        await _start_all(client, closed, "closed", waiting=False)
        await _start_all(client, open_, "open", waiting=True)
        await _wait_closed(client, closed)
    setup_seconds = time.monotonic() - setup_started
    while (await client.count_workflows()).count < closed + open_:
        await asyncio.sleep(1)

    channel = grpc_channel(address, None)
    source = CellSource(channel, "default", None)
    results = []
    try:
        for _ in range(rounds):
            idle_cpu = _cpu_seconds(pid)
            idle_start = time.monotonic()
            await asyncio.sleep(3)  # the cell's idle CPU share (a measurement, not a wait)
            idle_share = (_cpu_seconds(pid) - idle_cpu) / (time.monotonic() - idle_start)
            context = AnalysisContext(window=Window.HOUR, now=dt.datetime.now(dt.UTC))
            cpu_before = _cpu_seconds(pid)
            started = time.monotonic()
            result = await analyse(source, context)
            wall = time.monotonic() - started
            busy_share = (_cpu_seconds(pid) - cpu_before) / wall
            results.append(
                {
                    "wall_seconds": round(wall, 3),
                    "calls": dict(sorted(result.calls.items())),
                    "calls_total": sum(result.calls.values()),
                    "cell_cpu_share_during": round(busy_share, 3),
                    "cell_cpu_share_idle": round(idle_share, 3),
                    "cell_cpu_share_added": round(busy_share - idle_share, 3),
                    "cell_cpu_seconds": round(busy_share * wall, 3),
                    "findings": sorted(f"{f.kind.value}:{f.subject.name}" for f in result.findings),
                }
            )
            _log(json.dumps(results[-1]))
    finally:
        await channel.close(None)
    return {
        "benchmark": "insights",
        "closed_workflows": closed,
        "open_workflows": open_,
        "window": Window.HOUR.value,
        "setup_seconds": round(setup_seconds, 1),
        "cpu_count": os.cpu_count(),
        "rounds": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--closed", type=int, default=10_000)
    parser.add_argument("--open", dest="open_", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--on-disk", action="store_true", help="the cell's SQLite on disk (slower setup)"
    )
    arguments = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(
                run(arguments.closed, arguments.open_, arguments.rounds, arguments.on_disk)
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
