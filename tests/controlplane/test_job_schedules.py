"""The periodic jobs' schedules on a real Temporal dev server: workers starting together create
one schedule per job (fixed ids, overlap SKIP, the settings' intervals); a worker with a
changed interval updates its schedule, warns that it replaced another worker's setting, and
leaves the others (and their phase) alone; a worker that starts where the schedules exist
runs the reconcile at once, not a period later."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest
from support import free_port
from temporalio import activity
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.worker import Worker

from controlplane.config import SYSTEM_TASK_QUEUE, WorkerSettings
from controlplane.jobs import (
    JOBS,
    METER_ACTIONS,
    RECONCILE,
    PeriodicJob,
    ensure_schedules,
    schedule_id,
)
from dataplane.cells import dev_server_command

pytestmark = pytest.mark.slow


def _dev_server(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        dev_server_command("127.0.0.1", port, http_port=free_port(), metrics_port=free_port()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    port = free_port()
    server = _dev_server(port)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                connected = await Client.connect(f"127.0.0.1:{port}")
                break
            except RuntimeError:
                assert asyncio.get_running_loop().time() < deadline, "dev server not up"
                await asyncio.sleep(0.2)
        yield connected
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _intervals(client: Client) -> dict[str, tuple[dt.timedelta, dt.timedelta]]:
    found: dict[str, tuple[dt.timedelta, dt.timedelta]] = {}
    for job in JOBS:
        described = await client.get_schedule_handle(schedule_id(job)).describe()
        schedule = described.schedule
        assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        (interval,) = schedule.spec.intervals
        found[job] = (interval.every, interval.offset)
    return found


async def test_workers_share_one_schedule_per_job_and_follow_interval_changes(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    settings = WorkerSettings(
        reconcile_interval_seconds=10, metering_interval_seconds=60, billing_interval_seconds=0.2
    )
    # Two workers starting at the same moment.
    await asyncio.gather(ensure_schedules(client, settings), ensure_schedules(client, settings))
    first = await _intervals(client)
    assert {job: every for job, (every, _) in first.items()} == {
        RECONCILE: dt.timedelta(seconds=10),
        METER_ACTIONS: dt.timedelta(seconds=60),
        "meter-storage": dt.timedelta(seconds=600),
        "billing": dt.timedelta(seconds=1),  # at least a second
        "history-export": dt.timedelta(seconds=300),
        "insights": dt.timedelta(seconds=300),
    }

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="controlplane.jobs"):
        await ensure_schedules(
            client, settings.model_copy(update={"metering_interval_seconds": 30})
        )
    # The last worker to start sets the interval, and says whose setting it replaced.
    assert [record.getMessage() for record in caplog.records] == [
        "periodic job meter-actions's schedule runs every 0:01:00; this worker's setting is "
        "0:00:30 and replaces it (the last worker to start sets the interval: give every "
        "worker the same settings)"
    ]
    second = await _intervals(client)
    assert second[METER_ACTIONS][0] == dt.timedelta(seconds=30)
    assert {job: v for job, v in second.items() if job != METER_ACTIONS} == {
        job: v for job, v in first.items() if job != METER_ACTIONS
    }


async def test_a_starting_worker_reconciles_at_once(client: Client) -> None:
    """Schedules that exist (an hour's reconcile period): a worker that starts again triggers a
    reconcile run now. The runs go to a worker polling the system task queue, as the real
    worker does, whose ``periodic_job`` records which job ran."""
    ran: list[str] = []

    @activity.defn(name="periodic_job")
    async def periodic_job(job: str) -> None:
        ran.append(job)

    settings = WorkerSettings(
        reconcile_interval_seconds=3600,
        metering_interval_seconds=3600,
        storage_metering_interval_seconds=3600,
        billing_interval_seconds=3600,
        history_export_interval_seconds=3600,
        insights_interval_seconds=3600,
    )

    async def runs(count: int) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while len(ran) < count:
            assert asyncio.get_running_loop().time() < deadline, ran
            await asyncio.sleep(0.1)

    async with Worker(
        client,
        task_queue=SYSTEM_TASK_QUEUE,
        workflows=[PeriodicJob],
        activities=[periodic_job],
        identity=f"test-{uuid.uuid4().hex[:6]}",
    ):
        await ensure_schedules(client, settings)  # the first worker: every job runs once now
        await runs(len(JOBS))
        assert sorted(ran) == sorted(JOBS)
        await ensure_schedules(client, settings)  # a restarted worker: the reconcile runs again
        await runs(len(JOBS) + 1)
        # Only the reconcile: the other jobs keep their period.
        assert ran[len(JOBS) :] == [RECONCILE]
