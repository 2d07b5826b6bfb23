"""The cell watcher keeps real ``temporal server start-dev`` cells running: a killed cell is
started again within seconds on its ports and data, restarts back off, a cell that keeps failing
is reported with the server's reason, and two watchers of one cell start one process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from temporalio.client import Client
from test_local_provider import (
    _describe_namespace,
    _gone,
    _listener_pid,
    _provision,
    _register_namespace,
)

from dataplane.cells import (
    CellEndpoint,
    CellHealthState,
    CellReport,
    CellStatus,
    CellWatcher,
    LocalCellProvider,
    RestartPolicy,
)

pytestmark = pytest.mark.slow  # every test starts and kills real cells


def _cell_processes(provider: LocalCellProvider, cell_id: str) -> list[int]:
    """PIDs of every running process serving ``cell_id``'s database (found through /proc)."""
    db = str(provider.cell_dir(cell_id) / "temporal.db").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (
                db in (proc / "cmdline").read_bytes()
                and b"start-dev" in (proc / "cmdline").read_bytes()
            ):
                state = (proc / "stat").read_text().split(") ", 1)[1][0]
                if state != "Z":
                    pids.append(int(proc.name))
    return pids


async def _watch_until(
    watchers: list[CellWatcher],
    cell: CellEndpoint,
    done: Callable[[list[CellReport]], bool],
    *,
    timeout: float = 60,
) -> list[CellReport]:
    """Run the watchers' passes every 0.1 s (as their owners do) until ``done(reports)``."""
    deadline = time.monotonic() + timeout
    while True:
        reports = [report for w in watchers for report in await w.check([cell])]
        if done(reports):
            return reports
        assert time.monotonic() < deadline, f"condition not met; last reports: {reports}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def cells_dir(tmp_path: Path) -> AsyncIterator[Path]:
    base = tmp_path / "cells"
    yield base
    cleaner = LocalCellProvider(base)
    await asyncio.gather(*(cleaner.stop(cell) for cell in cleaner.known_cells()))


async def _until_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while not _gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs after SIGKILL"
        await asyncio.sleep(0.02)


async def test_killed_cell_is_restarted_within_seconds_with_its_data(cells_dir: Path) -> None:
    """kill -9 of a watched cell: the watcher starts a new server on the same ports within 5 s,
    the namespace registered before the crash is still there, and the report is RUNNING."""
    provider = LocalCellProvider(cells_dir)
    watcher = CellWatcher(provider)
    spec = await _provision(provider, "acct1")
    await provider.start(spec.endpoint)
    await _register_namespace(provider.address("acct1"), "orders.acct1")
    pid = _listener_pid(spec.grpc_port)

    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    # SIGKILL is delivered asynchronously: watch only once the old server is really gone.
    await _until_gone(pid)
    await _watch_until([watcher], spec.endpoint, lambda _: _cell_processes(provider, "acct1") != [])
    spawned_after = time.monotonic() - killed_at
    reports = await _watch_until(
        [watcher], spec.endpoint, lambda r: r[0].state == CellHealthState.RUNNING
    )
    serving_after = time.monotonic() - killed_at

    assert spawned_after < 5, f"new server spawned {spawned_after:.1f}s after the kill"
    print(f"spawned {spawned_after:.2f}s, serving {serving_after:.2f}s after kill -9")
    assert reports == [CellReport("acct1", CellHealthState.RUNNING, 1, 1, None)]
    assert _listener_pid(spec.grpc_port) != pid
    assert await _describe_namespace(provider.address("acct1"), "orders.acct1") == "orders.acct1"


async def test_restarting_a_running_cell_is_a_no_op_and_two_watchers_start_one_process(
    cells_dir: Path,
) -> None:
    """Two watchers with providers of their own (two worker replicas) both watch the killed
    cell: exactly one new server runs, and a running cell is never restarted. (Whether the
    second watcher still saw the cell down, and so counts a no-op restart, depends on timing.)"""
    first, second = LocalCellProvider(cells_dir), LocalCellProvider(cells_dir)
    policy = RestartPolicy(initial_backoff=0.0)
    watchers = [CellWatcher(first, policy=policy), CellWatcher(second, policy=policy)]
    spec = await _provision(first, "acct1")
    await first.start(spec.endpoint)
    pid = _listener_pid(spec.grpc_port)

    reports = [r for w in watchers for r in await w.check([spec.endpoint])]
    assert [r.restarts for r in reports] == [0, 0]
    assert _cell_processes(first, "acct1") == [pid]

    os.kill(pid, signal.SIGKILL)
    await _until_gone(pid)
    await asyncio.gather(*(w.check([spec.endpoint]) for w in watchers))
    reports = await _watch_until(
        watchers, spec.endpoint, lambda r: all(x.state == CellHealthState.RUNNING for x in r)
    )

    assert len(_cell_processes(first, "acct1")) == 1
    assert await first.status("acct1") == await second.status("acct1") == CellStatus.RUNNING
    assert {r.restarts for r in reports} <= {0, 1}
    assert any(r.restarts == 1 for r in reports)


async def test_restarts_back_off_and_a_cell_that_keeps_failing_is_reported(
    cells_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While another process holds the cell's metrics port every restart fails: restarts are
    spaced 1, 2, 4 ... times the initial backoff (injected clock), the third within the window
    turns the cell FAILING with the server's reason in the report and an operator log line;
    once the port is free the cell runs again and, after a healthy period, is RUNNING."""
    now = [1000.0]
    provider = LocalCellProvider(cells_dir)
    policy = RestartPolicy(
        initial_backoff=1.0, max_backoff=4.0, healthy_after=10, failure_threshold=3
    )
    watcher = CellWatcher(provider, policy=policy, clock=lambda: now[0])
    spec = await _provision(provider, "acct1")
    await provider.start(spec.endpoint)
    pid = _listener_pid(spec.grpc_port)

    async def settle() -> CellReport:
        """Passes at a fixed clock until no start is in flight."""
        while True:
            (report,) = await watcher.check([spec.endpoint])
            if watcher._cells["acct1"].starting is None:
                return report
            await asyncio.sleep(0.05)

    squatter = socket.socket()
    try:
        os.kill(pid, signal.SIGKILL)
        await _watch_until(
            [watcher], spec.endpoint, lambda r: r[0].state == CellHealthState.RESTARTING
        )
        await asyncio.to_thread(_wait_gone, pid)
        squatter.bind(("127.0.0.1", spec.metrics_port))
        squatter.listen()
        restarts_at: list[float] = []
        for _ in range(80):
            report = await settle()
            if report.restarts > len(restarts_at):
                restarts_at.append(now[0])
            if len(restarts_at) == 4:
                break
            now[0] += 0.25
        gaps = [b - a for a, b in itertools.pairwise(restarts_at)]
        assert gaps == [2.0, 4.0, 4.0], restarts_at
        assert report.state == CellHealthState.FAILING
        assert report.recent_restarts == 4
        assert report.last_error is not None
        assert "address already in use" in report.last_error
        assert "cell acct1 keeps failing: 3 restarts in the last 300s" in caplog.text
    finally:
        squatter.close()

    now[0] += 4
    await _watch_until([watcher], spec.endpoint, lambda r: _cell_processes(provider, "acct1") != [])
    report = await settle()
    report = await _watch_until(
        [watcher], spec.endpoint, lambda r: r[0].state != CellHealthState.RESTARTING
    )
    assert await provider.status("acct1") == CellStatus.RUNNING
    assert report[0].state == CellHealthState.FAILING  # still within the failure window
    now[0] += 10
    (report_after,) = await watcher.check([spec.endpoint])
    (report_after,) = await watcher.check([spec.endpoint])
    assert report_after.state == CellHealthState.RUNNING
    assert report_after.recent_restarts == 0
    await Client.connect(provider.address("acct1"), namespace="default")


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z":
                return
        time.sleep(0.05)
