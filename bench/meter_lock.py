"""The action meter against another tenant's writes: one account with N namespaces on its cell.

Run: ``.venv/bin/python bench/meter_lock.py`` (200 namespaces, 3 scrapes). Prints one JSON
document on stdout (progress on stderr). The issue's goal (issue 10, item 3): while the meter
scrapes an account cell with 200 namespaces, another tenant's writes keep a p99 latency under
1 s (before the fix the meter held SQLite's write lock for its whole scrape).

Setup (not timed): a SQLite database migrated with ``controlplane.kit.migrate``; one real cell
(``LocalCellProvider``, ``temporal server start-dev``) with N namespaces registered on it, each
with real counted actions (a workflow start, a signal, a signal-with-start: three ``action``
series per namespace); another account with a cell of its own and one namespace (scraped
first: cells go in id order); the cells' rows for the meter to find.

Timed, per round: ``controlplane.worker.meter_once`` (what the worker's meter and the
supervisor's final scrape run) over the cell, with the cursors and usage rows deleted first so
every round bills every series (a first scrape: the most rows to write). Meanwhile a separate
process (as the API is) writes as another tenant ``--rate`` times a second: one transaction
updating its account row, through the same engine setup (WAL, ``busy_timeout`` 10 s) as the
API. Reported: the scrape's duration and the latency of the writes that started during it
(p50, p99, max, errors), and the same writes with no scrape running (baseline).

The script only uses ``meter_once``, which exists before and after the fix: to measure the code
before, run a copy of this file placed in a checkout of the older commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import text
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.kit.migrate import migrate
from controlplane.models import Account, Cell
from controlplane.worker import meter_once
from dataplane.cells import LocalCellProvider

ACCOUNT = "bench1"
OTHER = "other1"
CELL = "cell-bench"
# The other tenant's own cell, one namespace: ordered before the big cell (cells are scraped in
# id order), as any tenant's cell may be.
OTHER_CELL = "cell-a-other"

# The other tenant's writer, in its own process: one JSON line per write.
WRITER = """
import asyncio, json, sys, time
from sqlalchemy import text
from controlplane.kit.db import create_engine
async def main(url, rate, seconds):
    engine = create_engine(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.time(); t0 = time.monotonic(); error = None
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE accounts SET name = :name, updated_at = CURRENT_TIMESTAMP"
                         " WHERE id = 'other1'"), {"name": f"Other {started}"})
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        latency = time.monotonic() - t0
        print(json.dumps({"at": started, "latency": latency, "error": error}), flush=True)
        await asyncio.sleep(max(0.0, 1 / rate - latency))
    await engine.dispose()
asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(writes: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency percentiles over every write, failed ones included (a write refused with
    "database is locked" took its whole busy timeout)."""
    latencies = [w["latency"] for w in writes]
    return {
        "writes": len(writes),
        "errors": sum(1 for w in writes if w["error"] is not None),
        "first_error": next((w["error"] for w in writes if w["error"]), None),
        "p50_s": round(statistics.median(latencies), 4) if latencies else None,
        "p99_s": round(percentile(latencies, 0.99), 4) if latencies else None,
        "max_s": round(max(w["latency"] for w in writes), 4) if writes else None,
    }


async def retrying(call: Callable[[], Awaitable[object]]) -> None:
    """The dev server rate-limits namespace registration and per-namespace calls: retry."""
    deadline = time.monotonic() + 120
    while True:
        try:
            await call()
            return
        except RPCError as error:
            if error.status != RPCStatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def register(client: Client, namespace: str) -> None:
    await retrying(
        lambda: client.workflow_service.register_namespace(
            wsv1.RegisterNamespaceRequest(
                namespace=namespace, workflow_execution_retention_period=Duration(seconds=86_400)
            )
        )
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.workflow_service.describe_namespace(
                wsv1.DescribeNamespaceRequest(namespace=namespace)
            )
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def act(address: str, namespace: str) -> None:
    """Three counted action types: a start, a signal and a signal-with-start."""
    client = await Client.connect(address, namespace=namespace)
    await retrying(lambda: client.start_workflow("Idle", id="idle", task_queue="nobody"))
    await retrying(lambda: client.get_workflow_handle("idle").signal("poke"))
    await retrying(
        lambda: client.start_workflow(
            "Idle", id="idle-2", task_queue="nobody", start_signal="poke", start_signal_args=[]
        )
    )


async def bounded(limit: int, coroutines: list[Any]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def run(coroutine: Any) -> None:
        async with semaphore:
            await coroutine

    await asyncio.gather(*(run(c) for c in coroutines))


async def series_on_cell(http: httpx.AsyncClient, url: str) -> int:
    body = (await http.get(url)).text
    return sum(1 for line in body.splitlines() if line.startswith("action{") and ACCOUNT in line)


def writer(url: str, rate: float, seconds: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(rate), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def writes_of(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = process.communicate()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="other tenant's writes/s")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="meter-lock-"))
    url = f"sqlite+aiosqlite:///{work / 'stratus.db'}"
    await asyncio.to_thread(migrate, url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    provider = LocalCellProvider(work / "cells")
    spec = await provider.provision(CELL)
    other_spec = await provider.provision(OTHER_CELL)
    result: dict[str, Any] = {"namespaces": args.namespaces, "rate_per_s": args.rate}
    try:
        log("starting the cell")
        await asyncio.gather(provider.start(spec), provider.start(other_spec))
        address = provider.address(CELL)
        other_address = provider.address(OTHER_CELL)
        await register(await Client.connect(other_address), f"shop.{OTHER}")
        await act(other_address, f"shop.{OTHER}")
        client = await Client.connect(address)
        namespaces = [f"ns-{i:03d}.{ACCOUNT}" for i in range(args.namespaces)]
        t0 = time.monotonic()
        await bounded(8, [register(client, ns) for ns in namespaces])
        log(f"registered {len(namespaces)} namespaces in {time.monotonic() - t0:.1f} s")
        await bounded(8, [act(address, ns) for ns in namespaces])
        async with sessionmaker() as session, session.begin():
            session.add_all([Account(id=ACCOUNT, name="Bench"), Account(id=OTHER, name="Other")])
            await session.flush()
            session.add_all(
                [
                    Cell(
                        id=cell.cell_id,
                        account_id=account,
                        provider=cell.provider,
                        address=cell.grpc_address,
                        metrics_url=cell.metrics_url,
                    )
                    for cell, account in ((spec, ACCOUNT), (other_spec, OTHER))
                ]
            )
        async with httpx.AsyncClient(timeout=10) as http:
            # The cell publishes its counters on an interval: wait until all are there.
            expected = 3 * args.namespaces
            deadline = time.monotonic() + 60
            while (seen := await series_on_cell(http, provider.metrics_url(CELL))) < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cell exports {seen} of {expected} action series")
                await asyncio.sleep(0.5)
            result["series"] = seen
            result["metrics_bytes"] = len((await http.get(provider.metrics_url(CELL))).content)

        log("baseline: the other tenant's writes with no scrape running")
        result["baseline"] = summary(writes_of(writer(url, args.rate, 5)))

        rounds = []
        for number in range(args.rounds):
            async with engine.begin() as connection:
                for table in ("usage_records", "usage_cursors", "usage_sources"):
                    await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
            process = writer(url, args.rate, 600)
            await asyncio.sleep(2)  # the writer is up and writing
            started = time.time()
            t0 = time.monotonic()
            await meter_once(sessionmaker)
            scrape = time.monotonic() - t0
            ended = time.time()
            await asyncio.sleep(1)
            process.terminate()
            writes = writes_of(process)
            during = [w for w in writes if started <= w["at"] <= ended]
            async with engine.connect() as connection:
                billed = (
                    await connection.execute(
                        text("SELECT coalesce(sum(quantity), 0) FROM usage_records")
                    )
                ).scalar_one()
            rounds.append(
                {"scrape_s": round(scrape, 3), "billed_actions": billed, **summary(during)}
            )
            log(f"round {number + 1}: {rounds[-1]}")
        result["rounds"] = rounds
        result["worst"] = {
            "scrape_s": max(r["scrape_s"] for r in rounds),
            "p99_s": max((r["p99_s"] or 0) for r in rounds),
            "max_s": max((r["max_s"] or 0) for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
        }
    finally:
        await asyncio.gather(provider.stop(CELL), provider.stop(OTHER_CELL))
        await engine.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
