"""Nothing stays down: under a running workload (a real SDK worker through the gateway), a
tenant cell or the system cell killed with SIGKILL is started again within 5 s and every
workflow completes exactly once; a cell that keeps failing is reported (worker log, metric,
``/readyz`` 503 naming it) while ``/healthz`` stays 200; Ctrl-C under load stops everything
within 30 s."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from product_constants import PROBLEM
from sqlalchemy import select
from support import (
    StratusUp,
    Tenant,
    _pid_alive,
    create_active_namespace,
    free_port,
    new_tenant,
    run_greeting,
    tls_for,
)
from support_workflows import NappingGreetingWorkflow, compose_greeting
from temporalio.client import Client
from temporalio.worker import Worker
from workload_support import assert_each_completed_once, eventually, start_workload

from controlplane.cells.keeper import TenantCellKeeper
from controlplane.cells.repository import CellHealthRepository
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import AuditEvent
from dataplane.cells import CellHealthState, LocalCellProvider

pytestmark = pytest.mark.slow  # every test runs a whole `stratus up` and kills its cells


@pytest.fixture(scope="module")
def healing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratusUp]:
    """A Stratus of this module's own (its cells get killed); three restarts within the window
    make a cell "failing"."""
    up = StratusUp(
        tmp_path_factory.mktemp("healing"),
        free_port(),
        free_port(),
        extra_env={"STRATUS_CELL_RESTART_FAILURE_THRESHOLD": "3"},
    )
    try:
        up.start()
        yield up
    finally:
        up.cleanup()


def _record(stratus: StratusUp, cell_id: str) -> dict[str, int]:
    record: dict[str, int] = json.loads(
        (stratus.data_dir / "cells" / cell_id / "cell.json").read_text()
    )
    return record


async def _kill_cell(stratus: StratusUp, cell_id: str) -> float:
    """kill -9 the cell; returns the seconds until a new server process of it runs."""
    old = _record(stratus, cell_id)["pid"]
    os.kill(old, signal.SIGKILL)

    def respawned() -> bool:
        pid = _record(stratus, cell_id).get("pid")
        return pid is not None and pid != old and _pid_alive(pid)

    return await eventually(respawned, 60, f"cell {cell_id} started again")


async def _tenant_client(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> Client:
    return await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )


async def _namespace_serves(client: Client) -> bool:
    try:
        await client.count_workflows()
    except Exception:
        return False
    return True


async def test_killed_tenant_cell_is_restarted_within_5s_and_no_workflow_is_lost(
    healing: StratusUp,
) -> None:
    tenant = new_tenant(healing, "Phoenix")
    namespace_id = create_active_namespace(healing, tenant, "orders")
    cell_id = f"cell-{tenant.account_id}"
    client = await _tenant_client(healing, tenant, namespace_id)
    task_queue = "tenant-kill"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NappingGreetingWorkflow],
        activities=[compose_greeting],
    ):
        ids = await start_workload(client, task_queue)

        respawned_after = await _kill_cell(healing, cell_id)
        serving_after = respawned_after + await eventually(
            lambda: _namespace_serves(client), 60, "namespace serves again through the gateway"
        )
        print(f"tenant cell: respawned {respawned_after:.2f}s, serving {serving_after:.2f}s")
        assert respawned_after < 5

        await assert_each_completed_once(client, task_queue, ids)
    assert (
        "cell " + cell_id + " is down; restarting it"
        in (healing.data_dir / "logs" / "worker.log").read_text()
    )


async def test_killed_system_cell_is_restarted_within_5s_and_operations_finish(
    healing: StratusUp,
) -> None:
    tenant = new_tenant(healing, "Lazarus")
    namespace_id = create_active_namespace(healing, tenant, "billing")
    doomed_id = create_active_namespace(healing, tenant, "doomed")
    client = await _tenant_client(healing, tenant, namespace_id)
    task_queue = "system-kill"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NappingGreetingWorkflow],
        activities=[compose_greeting],
    ):
        ids = await start_workload(client, task_queue)

        old = _record(healing, "system")["pid"]
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        with tenant.client(healing) as api:
            created = api.create_namespace("reborn", tenant.ca.cert_pem.decode())
            deleted = api.delete_namespace(doomed_id)
        await eventually(
            lambda: (
                _record(healing, "system").get("pid") not in (None, old)
                and _pid_alive(_record(healing, "system")["pid"])
            ),
            60,
            "system cell started again",
        )
        respawned_after = time.monotonic() - killed_at
        print(f"system cell: respawned {respawned_after:.2f}s after kill -9")
        assert respawned_after < 5

        with tenant.client(healing) as api:
            for operation_id in (created.async_operation.id, deleted.async_operation.id):
                operation = await asyncio.to_thread(
                    functools.partial(api.wait_for_operation, operation_id, timeout=180)
                )
                assert operation.state == "FULFILLED", operation.failure_reason
            assert api.get_namespace(created.namespace.id).state == "ACTIVE"
        await assert_each_completed_once(client, task_queue, ids)
    assert await run_greeting(healing, created.namespace.id, tenant.client_cert, "reborn") == (
        "Hello, Stratus!"
    )
    async with httpx.AsyncClient(base_url=healing.api_url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


async def test_cell_that_keeps_failing_is_reported_until_it_runs_again(
    healing: StratusUp,
) -> None:
    """With the worker paused, the cell is killed and its metrics port taken by another
    process: every restart fails. Three in the window: the worker logs it, /metrics shows the
    cell failing, /readyz answers 503 problem+json naming it (the server's reason included)
    while /healthz says 200. Once the port is free the cell runs and its namespace serves."""
    tenant = new_tenant(healing, "Fragile")
    namespace_id = create_active_namespace(healing, tenant, "flaky")
    cell_id = f"cell-{tenant.account_id}"
    record = _record(healing, cell_id)
    worker_pid = int((healing.data_dir / "run" / "worker.pid").read_text())
    squatter = socket.socket()
    os.kill(worker_pid, signal.SIGSTOP)
    try:
        os.kill(record["pid"], signal.SIGKILL)
        await eventually(lambda: not _pid_alive(record["pid"]), 10, "cell gone")
        await eventually(lambda: _can_bind(squatter, record["metrics_port"]), 10, "port free")
        squatter.listen()
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    try:
        async with httpx.AsyncClient(base_url=healing.api_url, timeout=10) as http:

            async def reported() -> bool:
                return (await http.get("/readyz")).status_code == 503

            await eventually(reported, 90, "/readyz reports the failing cell")
            ready = await http.get("/readyz")
            assert ready.headers["content-type"] == "application/problem+json"
            problem = ready.json()
            assert problem["type"] == PROBLEM + "not-ready"
            assert problem["status"] == 503
            assert cell_id in problem["detail"]
            (failing,) = problem["failing_cells"]
            assert failing["cell_id"] == cell_id
            assert failing["recent_restarts"] >= 3
            assert "address already in use" in failing["last_error"]
            assert (await http.get("/healthz")).status_code == 200
            metrics = (await http.get("/metrics")).text
            assert f'stratus_cell_state{{cell="{cell_id}",state="failing"}} 1.0' in metrics
            assert f'stratus_cell_restarts_total{{cell="{cell_id}"}}' in metrics
        worker_log = (healing.data_dir / "logs" / "worker.log").read_text()
        assert f"cell {cell_id} keeps failing: 3 restarts in the last 300s" in worker_log
    finally:
        squatter.close()

    async def serves_again() -> bool:
        try:
            client = await _tenant_client(healing, tenant, namespace_id)
        except RuntimeError:
            return False
        return await _namespace_serves(client)

    # The next restart comes after the backoff reached so far (at most 30 s).
    await eventually(serves_again, 120, "cell runs again")
    assert await run_greeting(healing, namespace_id, tenant.client_cert, "back") == (
        "Hello, Stratus!"
    )


def _can_bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


async def test_idle_account_cell_is_stopped_and_started_again_by_its_next_namespace(
    healing: StratusUp,
) -> None:
    """An account whose last namespace is deleted keeps its cell until the idle period has
    passed (a keeper on Stratus's database with an injected clock, as the worker's runs on the
    real one); then the cell stops, is recorded IDLE and audited, and no keeper restarts it;
    the account's next namespace create starts it again and workflows run on it."""
    tenant = new_tenant(healing, "Sleepy")
    namespace_id = create_active_namespace(healing, tenant, "nap")
    cell_id = f"cell-{tenant.account_id}"
    with tenant.client(healing) as api:
        deleted = api.delete_namespace(namespace_id)
        assert api.wait_for_operation(deleted.async_operation.id, timeout=120).state == (
            "FULFILLED"
        )
    pid = _record(healing, cell_id)["pid"]
    started = dt.datetime.now(dt.UTC)
    now = [started]
    engine = create_engine(healing.database_url)
    try:
        sessionmaker = create_sessionmaker(engine)
        keeper = TenantCellKeeper(
            sessionmaker,
            LocalCellProvider(healing.data_dir / "cells"),
            idle_stop_after=dt.timedelta(hours=1),
            now=lambda: now[0],
        )
        await keeper.tick()
        now[0] = started + dt.timedelta(minutes=59)
        await keeper.tick()
        assert _pid_alive(pid), "stopped before the idle period"

        now[0] = started + dt.timedelta(minutes=61)
        await keeper.tick()
        assert not _pid_alive(pid)
        async with sessionmaker() as session:
            health = (await CellHealthRepository(session).by_cell())[cell_id]
            assert health.state == CellHealthState.IDLE
            events = await session.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "cell.idle_stop", AuditEvent.target == cell_id
                )
            )
            assert len(events.scalars().all()) == 1
        # The worker's own keeper passes every 0.5 s: several passes leave the idle cell be.
        await asyncio.sleep(3)
        assert not _pid_alive(pid)
        assert not _pid_alive(_record(healing, cell_id)["pid"])
    finally:
        await engine.dispose()

    again_id = create_active_namespace(healing, tenant, "awake")
    assert _pid_alive(_record(healing, cell_id)["pid"])
    assert await run_greeting(healing, again_id, tenant.client_cert, "awake") == ("Hello, Stratus!")


async def test_ctrl_c_under_load_stops_everything_within_30s(healing: StratusUp) -> None:
    tenant = new_tenant(healing, "Busy")
    namespace_id = create_active_namespace(healing, tenant, "rush")
    client = await _tenant_client(healing, tenant, namespace_id)
    task_queue = "shutdown-load"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NappingGreetingWorkflow],
        activities=[compose_greeting],
    ):
        await start_workload(client, task_queue)
        started = time.monotonic()
        code = await asyncio.to_thread(healing.stop)
        took = time.monotonic() - started
    print(f"stratus up stopped in {took:.1f}s under load")
    assert code == 0
    assert took < 30
    assert healing.cell_pids() == []
