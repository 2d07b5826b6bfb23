"""Stopping and starting Stratus on the same data dir loses nothing; a control plane killed
with SIGKILL mid-provisioning finishes the operation after restart."""

from __future__ import annotations

from support import StratusUp, create_active_namespace, new_tenant, run_greeting, tls_for
from temporalio.client import Client, WorkflowExecutionStatus


async def test_restart_restores_cells_namespaces_and_history(fresh_stratus: StratusUp) -> None:
    fresh_stratus.start()
    tenant = new_tenant(fresh_stratus, "Durable")
    namespace_id = create_active_namespace(fresh_stratus, tenant, "payments")
    assert await run_greeting(fresh_stratus, namespace_id, tenant.client_cert, "before") == (
        "Hello, Stratus!"
    )

    assert fresh_stratus.stop() == 0
    assert fresh_stratus.cell_pids() == [], "Ctrl-C must stop every cell"

    fresh_stratus.start()
    with tenant.client(fresh_stratus) as api:
        assert api.get_namespace(namespace_id).state == "ACTIVE"
    client = await Client.connect(
        fresh_stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(fresh_stratus, tenant.client_cert, namespace_id),
    )
    handle = client.get_workflow_handle("before")
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert await handle.result() == "Hello, Stratus!"
    history = await handle.fetch_history()
    assert len(history.events) > 5
    assert await run_greeting(fresh_stratus, namespace_id, tenant.client_cert, "after") == (
        "Hello, Stratus!"
    )


async def test_kill_9_during_provisioning_resumes_after_restart(fresh_stratus: StratusUp) -> None:
    fresh_stratus.start()
    tenant = new_tenant(fresh_stratus, "Crashy")
    with tenant.client(fresh_stratus) as api:
        # The account's first namespace: its cell has to be started, so the operation is
        # still running when the control plane dies.
        created = api.create_namespace("ledger", tenant.ca.cert_pem.decode())
        in_flight = api.get_operation(created.async_operation.id)
        fresh_stratus.kill_control_plane()
    assert in_flight.state in ("PENDING", "IN_PROGRESS")

    fresh_stratus.start()
    with tenant.client(fresh_stratus) as api:
        operation = api.wait_for_operation(created.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason
        assert api.get_namespace(created.namespace.id).state == "ACTIVE"
    assert (
        await run_greeting(fresh_stratus, created.namespace.id, tenant.client_cert, "after-crash")
        == "Hello, Stratus!"
    )
