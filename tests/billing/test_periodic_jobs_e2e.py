"""Periodic jobs run once per period however many workers run: `stratus up` plus a second
API, a second worker and a second gateway (fed by the second API) on the same database and
system cell, with intervals of a second or two, on PostgreSQL (several replicas of a role are
the production path, which only PostgreSQL serves; SQLite's `stratus up` runs one of each). Each
scheduled run (one per job and period, named by its workflow id) happens on exactly one
worker, both workers take runs, usage is written once (never doubled), each invoice is
finalized once, each export object (SeaweedFS) is written once, and a namespace create
through the second API completes with both gateways serving it. With an hour's reconcile
period, a create left PENDING (its API could not reach the system cell) completes as soon as
the second worker starts: a starting worker reconciles at once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from seaweed_server import LOOPBACK, LOOPBACK_NETWORKS, SeaweedS3
from sqlalchemy import func, select, update
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    free_port,
    http,
    new_tenant,
    run_greeting,
    wait_until,
)
from temporalio.client import Client

from billing import s3_client
from controlplane.config import SYSTEM_NAMESPACE
from controlplane.jobs import JOBS, schedule_id
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import Account, Invoice, UsageRecord
from controlplane.models.invoice import InvoiceStatus
from infra.probes import SERVING, api_alive, gateway_health

pytestmark = [pytest.mark.slow, pytest.mark.postgresql_only]

_RAN = re.compile(r"periodic job (\S+) ran: (\S+)")
_FINALIZED = re.compile(r"finalized (\d+) invoices")
_EXPORTED = re.compile(r"exported (\d+) (usage hours|invoices) of")


def _environ(pid: int) -> dict[str, str]:
    """A running process's environment (the supervisor's worker: its whole settings)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def _start(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m <module>`` as the supervisor starts it."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _pending_create(stratus: StratusUp, api_env: dict[str, str], tenant: Tenant) -> str:
    """A namespace create taken by an API that cannot reach the system cell (a closed port):
    answered 202 with the operation PENDING. Returns the operation's id."""
    port = free_port()
    env = api_env | {
        "STRATUS_API_PORT": str(port),
        "STRATUS_SYSTEM_CELL_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    process = _start("controlplane.app", env, stratus.data_dir / "logs" / "api-cut-off.log")
    try:
        cut_off = dataclasses.replace(stratus, api_port=port, process=None)
        wait_until(lambda: api_alive(cut_off.api_url, process), timeout=60)
        with tenant.client(cut_off) as owner:
            created = owner.create_namespace("resumed", tenant.ca.cert_pem.decode())
        assert created.async_operation.state == "PENDING"
        return created.async_operation.id
    finally:
        process.terminate()
        process.wait(timeout=30)


def _runs(logs: list[Path]) -> dict[Path, list[tuple[str, str]]]:
    """Each worker log's job runs: (job, workflow id)."""
    return {log: _RAN.findall(log.read_text(errors="replace")) for log in logs}


async def _actions(stratus: StratusUp, namespace_id: str) -> dict[str, int]:
    engine = create_engine(stratus.database_url)
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


async def _backdate_account(stratus: StratusUp, account_id: str, days: int) -> None:
    """The account as if created ``days`` ago: its past months are billed (and, with no grace,
    finalized) by the worker's billing job."""
    engine = create_engine(stratus.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await session.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
            )
    finally:
        await engine.dispose()


async def _finalized(stratus: StratusUp) -> int:
    engine = create_engine(stratus.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Invoice)
                .where(Invoice.status == InvoiceStatus.FINALIZED)
            )
            return int(count or 0)
    finally:
        await engine.dispose()


async def _schedule_ids(address: str) -> set[str]:
    client = await Client.connect(address, namespace=SYSTEM_NAMESPACE)
    return {schedule.id async for schedule in await client.list_schedules()}


def _objects(seaweed: SeaweedS3, bucket: str, prefix: str) -> int:
    s3 = s3_client(seaweed.sink(bucket), egress=LOOPBACK)
    return len(s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


async def test_two_of_each_role_run_each_period_once(
    tmp_path: Path, seaweed_s3: SeaweedS3, bucket: str, database_env: dict[str, str]
) -> None:
    stratus = StratusUp(
        tmp_path / "data",
        free_port(),
        free_port(),
        extra_env={
            # Only the worker start's reconcile can resume a PENDING create in this test.
            "STRATUS_RECONCILE_INTERVAL_SECONDS": "3600",
            "STRATUS_METERING_INTERVAL_SECONDS": "1",
            "STRATUS_STORAGE_METERING_INTERVAL_SECONDS": "2",
            "STRATUS_BILLING_INTERVAL_SECONDS": "2",
            "STRATUS_INVOICE_GRACE_HOURS": "0",
            "STRATUS_EXPORT_SINK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
            **database_env,
        },
    )
    api: subprocess.Popen[bytes] | None = None
    second: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    try:
        stratus.start()
        first_pid = int((stratus.data_dir / "run" / "worker.pid").read_text())
        env = _environ(first_pid)
        logs = [
            stratus.data_dir / "logs" / "worker.log",
            stratus.data_dir / "logs" / "worker-2.log",
        ]
        api_pid = int((stratus.data_dir / "run" / "api.pid").read_text())
        api_port = free_port()
        api = _start(
            "controlplane.app",
            _environ(api_pid) | {"STRATUS_API_PORT": str(api_port)},
            stratus.data_dir / "logs" / "api-2.log",
        )
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: api_alive(api_url, api), timeout=60)
        gateway_pid = int((stratus.data_dir / "run" / "gateway.pid").read_text())
        gateway_port, gateway_key_port = free_port(), free_port()
        gateway = _start(
            "dataplane.gateway",
            _environ(gateway_pid)
            | {
                "STRATUS_GATEWAY_API_URL": api_url,
                "STRATUS_GATEWAY_PORT": str(gateway_port),
                "STRATUS_GATEWAY_API_KEY_PORT": str(gateway_key_port),
                "STRATUS_GATEWAY_METRICS_PORT": str(free_port()),
            },
            stratus.data_dir / "logs" / "gateway-2.log",
        )
        wait_until(
            lambda: gateway_health(gateway_key_port, stratus.gateway_ca) == SERVING, timeout=60
        )

        # A create taken while the system cell was out of an API's reach stays PENDING ...
        tenant = new_tenant(stratus, "Scheduled")
        pending = _pending_create(stratus, _environ(api_pid), tenant)
        # ... until a worker starts: it reconciles at once, not an hour's period later.
        second = _start("controlplane.worker", env, logs[1])
        with tenant.client(stratus) as owner:
            resumed = owner.wait_for_operation(pending, timeout=120)
        assert resumed.state == "FULFILLED", resumed.failure_reason
        assert "periodic job reconcile started at worker start" in logs[1].read_text()
        wait_until(lambda: "control-plane worker polling" in logs[1].read_text(), timeout=60)

        # One schedule per job on the system cell, however many workers created it.
        address = env["STRATUS_SYSTEM_CELL_ADDRESS"]
        assert {schedule_id(job) for job in JOBS} <= await _schedule_ids(address)

        # The create, through the second API, completes with both gateways serving the
        # namespace: no waiting after.
        replica_api = dataclasses.replace(stratus, api_port=api_port, process=None)
        namespace_id = create_active_namespace(replica_api, tenant, "periodic")
        assert await run_greeting(stratus, namespace_id, tenant.client_cert, "once") == (
            "Hello, Stratus!"
        )
        replica = dataclasses.replace(stratus, gateway_port=gateway_port, process=None)
        assert await run_greeting(replica, namespace_id, tenant.client_cert, "twice") == (
            "Hello, Stratus!"
        )
        # An account of 70 days ago: the billing job finalizes its 2-3 past months (no grace).
        await _backdate_account(stratus, tenant.account_id, days=70)
        # Its exports: today's closed hours and every finalized invoice (JSON and CSV each).
        prefix = f"periodic-{tenant.account_id}"
        with http(stratus, tenant.api_key) as client:
            sink = client.put(
                "/billing/export-sink",
                json={
                    "bucket": bucket,
                    "prefix": prefix,
                    "endpoint_url": seaweed_s3.endpoint_url,
                    "access_key_id": "stratus-test",
                    "secret_access_key": "s3cr3t",
                    "export_from": str(dt.datetime.now(dt.UTC).date()),
                },
            )
        assert sink.status_code == 200, sink.text

        # The periodic meter (not only the final scrape) bills the work: exactly once.
        expected = {"actions.workflow": 2, "actions.activity": 2}
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

        # Each invoice finalized once: the finalizing runs' counts add up to the invoices; each
        # export object written once: the exporting runs' counts add up to the objects.
        def finalized_logged() -> int:
            return sum(
                int(n) for log in logs for n in _FINALIZED.findall(log.read_text(errors="replace"))
            )

        def exported_logged() -> dict[str, int]:
            counts: Counter[str] = Counter()
            for log in logs:
                for n, what in _EXPORTED.findall(log.read_text(errors="replace")):
                    counts[what] += int(n)
            return dict(counts)

        def writes_logged() -> int:
            exported = exported_logged()
            return exported.get("usage hours", 0) + 2 * exported.get("invoices", 0)

        deadline = asyncio.get_running_loop().time() + 90
        while (
            (finalized := await _finalized(stratus)) < 2
            or finalized_logged() != finalized
            or exported_logged().get("invoices", 0) != finalized
            or _objects(seaweed_s3, bucket, prefix) != writes_logged()
        ):
            assert asyncio.get_running_loop().time() < deadline, (
                finalized,
                finalized_logged(),
                exported_logged(),
                _objects(seaweed_s3, bucket, prefix),
            )
            await asyncio.sleep(0.2)

        # Still exact after more periods and the final scrape at stop.
        for process, clean in ((second, 0), (gateway, 0), (api, -signal.SIGTERM)):
            assert process is not None
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert process.wait(timeout=60) == clean
        second = gateway = api = None
        assert stratus.stop() == 0
        assert await _actions(stratus, namespace_id) == expected
        assert finalized_logged() == await _finalized(stratus) == finalized
        assert writes_logged() == _objects(seaweed_s3, bucket, prefix)
    finally:
        for left in (second, gateway, api):
            if left is not None and left.poll() is None:
                left.kill()
                left.wait(timeout=10)
        stratus.cleanup()
