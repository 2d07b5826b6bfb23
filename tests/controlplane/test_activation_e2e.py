"""ACTIVE means usable at every registered gateway, whatever is frozen meanwhile.

The reported fault: with the API frozen for 45 s right after a create, the namespace turned
ACTIVE while the gateway (which could not poll) still refused it for 31 s, because only
gateways seen in the last 15 s were waited for. Here the API is frozen (SIGSTOP) right after a
create while a workload runs on another namespace; the create must not complete until the API
is back and the gateway serves the namespace, and then the namespace must work at once. A
gateway that is down holds activations back until the operator deregisters it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Iterator

import pytest
from support import (
    StratusUp,
    create_active_namespace,
    free_port,
    new_tenant,
    run_greeting,
    tls_for,
)
from support_workflows import NappingGreetingWorkflow, compose_greeting
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client
from temporalio.worker import Worker
from workload_support import assert_each_completed_once, eventually, start_workload

from dataplane.cells import LocalCellProvider

pytestmark = pytest.mark.slow  # its `up` fixture runs a whole `stratus up`

SYSTEM_NAMESPACE = "default"


@pytest.fixture
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratusUp]:
    stratus = StratusUp(tmp_path_factory.mktemp("activation"), free_port(), free_port())
    try:
        stratus.start()
        yield stratus
    finally:
        stratus.cleanup()


def _pid(stratus: StratusUp, role: str) -> int:
    return int((stratus.data_dir / "run" / f"{role}.pid").read_text())


def _namespace_state(stratus: StratusUp, namespace_id: str) -> str:
    """Read straight from the database (read-only): the API may be frozen."""
    uri = f"file:{stratus.data_dir / 'stratus.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as db:
        row = db.execute("SELECT state FROM namespaces WHERE id = ?", (namespace_id,)).fetchone()
    return str(row[0])


async def _system_client(stratus: StratusUp) -> Client:
    system_cell = LocalCellProvider(stratus.data_dir / "cells").address("system")
    return await Client.connect(system_cell, namespace=SYSTEM_NAMESPACE)


async def _waiting_for_gateways(system: Client, operation_id: str) -> list[str]:
    """The gateways the operation's propagation step last reported waiting for ([] if the
    step is not running)."""
    described = await system.get_workflow_handle(operation_id).describe()
    for pending in described.raw_description.pending_activities:
        if pending.activity_type.name != "await_route_propagation":
            continue
        if pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
            return []
        payloads = pending.heartbeat_details.payloads
        if payloads:
            waiting: list[str] = json.loads(payloads[0].data)
            return waiting
    return []


async def test_create_completes_only_once_the_gateway_serves_it_after_a_frozen_api(
    up: StratusUp,
) -> None:
    tenant = new_tenant(up, "Frozen")
    steady = create_active_namespace(up, tenant, "steady")
    client = await Client.connect(
        up.gateway_address, namespace=steady, tls=tls_for(up, tenant.client_cert, steady)
    )
    system = await _system_client(up)
    task_queue = "steady-queue"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[NappingGreetingWorkflow],
        activities=[compose_greeting],
    ):
        ids = await start_workload(client, task_queue)
        with tenant.client(up) as api:
            created = api.create_namespace("late", tenant.ca.cert_pem.decode(), retention_days=7)
        late = created.namespace.id
        api_pid = _pid(up, "api")
        os.kill(api_pid, signal.SIGSTOP)
        try:
            # The gateway cannot poll the frozen API, so the worker's propagation step waits
            # for it by id (a gateway not seen lately is no longer skipped).
            async def waiting() -> bool:
                return bool(await _waiting_for_gateways(system, created.async_operation.id))

            await eventually(waiting, 120, "propagation waits for the gateway")
            assert _namespace_state(up, late) == "ACTIVATING"
            with pytest.raises(RuntimeError, match=r"(?i)unrecogni[sz]ed"):
                await Client.connect(
                    up.gateway_address,
                    namespace=late,
                    tls=tls_for(up, tenant.client_cert, late),
                )
            # The running workload does not depend on the control plane.
            await assert_each_completed_once(client, task_queue, ids)
        finally:
            os.kill(api_pid, signal.SIGCONT)

        with tenant.client(up) as api:
            operation = api.wait_for_operation(created.async_operation.id, timeout=120)
            assert operation.state == "FULFILLED", operation.failure_reason
            assert api.get_namespace(late).state == "ACTIVE"
        # ACTIVE means usable: the first connection and workflow work at once.
        assert await run_greeting(up, late, tenant.client_cert, "first") == "Hello, Stratus!"


async def test_a_gateway_that_is_down_holds_activation_until_it_is_deregistered(
    up: StratusUp,
) -> None:
    tenant = new_tenant(up, "Held")
    create_active_namespace(up, tenant, "before")
    system = await _system_client(up)
    with up.operator() as operator:
        gateways = operator.list_gateways().gateways
    assert len(gateways) == 1
    gateway_id = gateways[0].id

    gateway_pid = _pid(up, "gateway")
    os.kill(gateway_pid, signal.SIGSTOP)
    try:
        with tenant.client(up) as api:
            created = api.create_namespace("held", tenant.ca.cert_pem.decode(), retention_days=7)

        async def waiting_for_it() -> bool:
            return await _waiting_for_gateways(system, created.async_operation.id) == [gateway_id]

        await eventually(waiting_for_it, 120, "propagation waits for the stopped gateway")
        assert _namespace_state(up, created.namespace.id) == "ACTIVATING"

        result = up.cli("gateway", "deregister", gateway_id, api_key=up.operator_key)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"gateway {gateway_id} deregistered"
        with tenant.client(up) as api:
            operation = api.wait_for_operation(created.async_operation.id, timeout=120)
            assert operation.state == "FULFILLED", operation.failure_reason
        with up.operator() as operator:
            assert operator.list_gateways().gateways == []
            refused = up.cli("gateway", "deregister", gateway_id, api_key=up.operator_key)
        assert refused.returncode == 1
        assert f"gateway {gateway_id} is not registered" in refused.stderr
    finally:
        os.kill(gateway_pid, signal.SIGCONT)

    # Back, it registers again with its next poll and serves the namespace.
    async def registered_again() -> bool:
        with up.operator() as operator:
            return [g.id for g in operator.list_gateways().gateways] == [gateway_id]

    await eventually(registered_again, 60, "the gateway registers again")
    assert (
        await run_greeting(up, created.namespace.id, tenant.client_cert, "after")
        == "Hello, Stratus!"
    )
