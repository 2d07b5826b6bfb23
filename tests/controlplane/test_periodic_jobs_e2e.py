"""Periodic jobs run once per period however many workers run: `stratus up` plus a second
worker process on the same database and system cell, with intervals of a second or two. Each
scheduled run (one per job and period, named by its workflow id) happens on exactly one
worker, both workers take runs, and usage is written once (never doubled)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import (
    StratusUp,
    create_active_namespace,
    free_port,
    new_tenant,
    run_greeting,
    wait_until,
)
from temporalio.client import Client

from controlplane.config import SYSTEM_NAMESPACE, Settings
from controlplane.jobs import JOBS, schedule_id
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import UsageRecord

pytestmark = pytest.mark.slow

_RAN = re.compile(r"periodic job (\S+) ran: (\S+)")


def _environ(pid: int) -> dict[str, str]:
    """A running process's environment (the supervisor's worker: its whole settings)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def _runs(logs: list[Path]) -> dict[Path, list[tuple[str, str]]]:
    """Each worker log's job runs: (job, workflow id)."""
    return {log: _RAN.findall(log.read_text(errors="replace")) for log in logs}


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m controlplane.worker`` as the supervisor starts it."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "controlplane.worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _actions(stratus: StratusUp, namespace_id: str) -> dict[str, int]:
    engine = create_engine(Settings(data_dir=stratus.data_dir).sqlalchemy_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(UsageRecord.kind, func.sum(UsageRecord.quantity))
                .where(UsageRecord.namespace_id == namespace_id)
                .group_by(UsageRecord.kind)
            )
            return {kind: int(total) for kind, total in rows if kind.startswith("actions.")}
    finally:
        await engine.dispose()


async def _schedule_ids(address: str) -> set[str]:
    client = await Client.connect(address, namespace=SYSTEM_NAMESPACE)
    return {schedule.id async for schedule in await client.list_schedules()}


async def test_two_workers_run_each_period_once(tmp_path: Path) -> None:
    stratus = StratusUp(
        tmp_path / "data",
        free_port(),
        free_port(),
        extra_env={
            "STRATUS_METERING_INTERVAL_SECONDS": "1",
            "STRATUS_STORAGE_METERING_INTERVAL_SECONDS": "2",
            "STRATUS_BILLING_INTERVAL_SECONDS": "2",
        },
    )
    second: subprocess.Popen[bytes] | None = None
    try:
        stratus.start()
        first_pid = int((stratus.data_dir / "run" / "worker.pid").read_text())
        env = _environ(first_pid)
        logs = [
            stratus.data_dir / "logs" / "worker.log",
            stratus.data_dir / "logs" / "worker-2.log",
        ]
        second = _start_worker(env, logs[1])
        wait_until(lambda: "control-plane worker polling" in logs[1].read_text(), timeout=60)

        # One schedule per job on the system cell, however many workers created it.
        address = env["STRATUS_SYSTEM_CELL_ADDRESS"]
        assert {schedule_id(job) for job in JOBS} <= await _schedule_ids(address)

        tenant = new_tenant(stratus, "Scheduled")
        namespace_id = create_active_namespace(stratus, tenant, "periodic")
        assert await run_greeting(stratus, namespace_id, tenant.client_cert, "once") == (
            "Hello, Stratus!"
        )

        # The periodic meter (not only the final scrape) bills the work: exactly once.
        expected = {"actions.workflow": 1, "actions.activity": 1}
        deadline = asyncio.get_running_loop().time() + 60
        while await _actions(stratus, namespace_id) != expected:
            assert asyncio.get_running_loop().time() < deadline, await _actions(
                stratus, namespace_id
            )
            await asyncio.sleep(0.2)

        # Both workers take runs of the schedules' jobs ...
        def both_ran() -> bool:
            runs = _runs(logs)
            return all(
                {job for job, _ in runs[log]} & {"meter-actions", "reconcile"} for log in logs
            )

        wait_until(both_ran, timeout=90)
        # ... and each period's run (its workflow id) happened on one worker, once.
        runs = _runs(logs)
        counts = Counter(run for log in logs for run in runs[log])
        assert counts, runs
        assert max(counts.values()) == 1, [run for run, n in counts.items() if n > 1]
        assert {job for job, _ in counts} == set(JOBS)

        # Still exact after more periods and the final scrape at stop.
        assert second is not None
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        second = None
        assert stratus.stop() == 0
        assert await _actions(stratus, namespace_id) == expected
    finally:
        if second is not None and second.poll() is None:
            second.kill()
            second.wait(timeout=10)
        stratus.cleanup()
