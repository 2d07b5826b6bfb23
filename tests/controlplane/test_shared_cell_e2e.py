"""Two accounts on ONE shared registered cell, end to end: a real ``stratus up`` with
``STRATUS_CELL_PROVIDER=external`` (its worker runs no cell; the system cell stays local) and
shared placement, one Temporal dev server behind an nginx frontend demanding a client
certificate, registered as the only cell.

On a shared cell the cell itself would act on any namespace it holds, so the gateway's checks
are the isolation: tenant A's client, on A's own namespace, tries every nested-namespace and
task-token attack on B's namespace on the same cell; each gets the exact refusal and B's
workflow is untouched. The same namespace name in both accounts works, and the periodic meter
attributes each namespace's actions to it exactly."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from nested_attacks import (
    SERVICE,
    Attack,
    batch_reset_signalling,
    child_in,
    complete_with_token,
    multi_operation_start,
    reference_refusal,
    signal_external,
    token_calls,
    token_refusal,
)
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    free_port,
    free_ports,
    gateway_channel_options,
    http,
    new_tenant,
    run_greeting,
    tls_for,
    wait_until,
)
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from dataplane.cells import CellEndpoint, LocalCellProvider
from infra.cell_frontend import run_cell_frontend

pytestmark = pytest.mark.slow  # a dev server, its mTLS frontend and a `stratus up`

CELL = "shared-two-accounts"


@dataclass(frozen=True)
class SharedCell:
    stratus: StratusUp
    alpha: Tenant
    beta: Tenant
    # A's namespace the attacks are sent on, B's they reach into (both on CELL).
    attacker: str
    victim: str


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedCell]:
    provider = LocalCellProvider(
        Path(tmp_path_factory.mktemp("operator-cluster")), free_ports=free_ports
    )
    endpoint: CellEndpoint = asyncio.run(provider.provision("operator-cluster"))
    asyncio.run(provider.start(endpoint))
    metrics = endpoint.metrics_url.removeprefix("http://").removesuffix("/metrics")
    up = StratusUp(
        tmp_path_factory.mktemp("shared-two-accounts"),
        free_port(),
        free_port(),
        extra_env={
            "STRATUS_CELL_PROVIDER": "external",
            "STRATUS_CELL_PLACEMENT": "shared",
            "STRATUS_METERING_INTERVAL_SECONDS": "1",
        },
    )
    try:
        with run_cell_frontend(endpoint.grpc_address, metrics_upstream=metrics) as frontend:
            up.start()
            with http(up, up.operator_key) as operator:
                registered = operator.post(
                    "/cells",
                    json={
                        "name": CELL,
                        "frontend": frontend.address,
                        "metrics_url": frontend.metrics_url,
                        "tls_ca": frontend.server_ca.cert_pem.decode(),
                        "tls_cert": frontend.client.cert_pem.decode(),
                        "tls_key": frontend.client.key_pem.decode(),
                        "server_name": frontend.server_name,
                        "max_namespaces": 10,
                        "placement": "shared",
                    },
                )
                assert registered.status_code == 201, registered.text
            alpha, beta = new_tenant(up, "SharedAlpha"), new_tenant(up, "SharedBeta")
            yield SharedCell(
                stratus=up,
                alpha=alpha,
                beta=beta,
                attacker=create_active_namespace(up, alpha, "attack"),
                victim=create_active_namespace(up, beta, "victim"),
            )
    finally:
        up.cleanup()
        asyncio.run(provider.stop(endpoint.cell_id))


def _on_cell(stratus: StratusUp) -> list[dict[str, str]]:
    with http(stratus, stratus.operator_key) as operator:
        response = operator.get(f"/cells/{CELL}")
        assert response.status_code == 200, response.text
        namespaces: list[dict[str, str]] = response.json()["namespaces"]
        return namespaces


def _usage(stratus: StratusUp, namespace_id: str) -> dict[str, int]:
    with sqlite3.connect(stratus.data_dir / "stratus.db") as db:
        rows = db.execute(
            "SELECT kind, SUM(quantity) FROM usage_records WHERE namespace_id = ? GROUP BY kind",
            (namespace_id,),
        ).fetchall()
    return {kind: int(total) for kind, total in rows}


async def _client(shared: SharedCell, tenant: Tenant, namespace_id: str) -> Client:
    """A tenant's own SDK client on its namespace, through the gateway (mTLS)."""
    return await Client.connect(
        shared.stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(shared.stratus, tenant.client_cert, namespace_id),
    )


async def _task(client: Client, workflow_type: str) -> tuple[WorkflowHandle[object, object], bytes]:
    """A running workflow of ``workflow_type`` and the token of its first workflow task."""
    queue = f"{workflow_type.lower()}-{uuid.uuid4().hex[:8]}"
    handle: WorkflowHandle[object, object] = await client.start_workflow(
        workflow_type, id=f"{queue}-wf", task_queue=queue
    )
    task = await client.workflow_service.poll_workflow_task_queue(
        wsv1.PollWorkflowTaskQueueRequest(
            namespace=client.namespace,
            task_queue=taskqueue.TaskQueue(name=queue),
            identity=f"{workflow_type}-worker",
        )
    )
    assert task.task_token
    return handle, task.task_token


async def _history(handle: WorkflowHandle[object, object]) -> list[int]:
    return [event.event_type for event in (await handle.fetch_history()).events]


@asynccontextmanager
async def _attacker(shared: SharedCell) -> AsyncIterator[grpc.aio.Channel]:
    """A's client certificate on a raw channel to the gateway, opened for A's namespace."""
    credentials = grpc.ssl_channel_credentials(
        shared.stratus.gateway_ca,
        shared.alpha.client_cert.key_pem,
        shared.alpha.client_cert.cert_pem,
    )
    async with grpc.aio.secure_channel(
        shared.stratus.gateway_address,
        credentials,
        options=gateway_channel_options(shared.attacker),
    ) as channel:
        yield channel


async def _refused(channel: grpc.aio.Channel, attack: Attack) -> grpc.aio.AioRpcError:
    method, request = attack
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await channel.unary_unary(f"{SERVICE}/{method}")(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (
        method,
        refused.value.details(),
    )
    return refused.value


async def test_task_tokens_of_another_accounts_namespace_are_refused(shared: SharedCell) -> None:
    """B's leaked task token, sent by A on A's namespace on the same cell, on every
    token-carrying call: PERMISSION_DENIED naming A's namespace; B's workflow stays running with
    its history unchanged."""
    assert {row["namespace_id"] for row in _on_cell(shared.stratus)} >= {
        shared.attacker,
        shared.victim,
    }
    victim = await _client(shared, shared.beta, shared.victim)
    handle, token = await _task(victim, "VictimWorkflow")
    before = await _history(handle)
    async with _attacker(shared) as channel:
        attacks = [
            complete_with_token(shared.attacker, token),
            *token_calls(shared.attacker, token),
        ]
        for attack in attacks:
            refused = await _refused(channel, attack)
            assert refused.details() == token_refusal(attack[0], shared.attacker)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await _history(handle) == before


async def test_commands_and_operations_reaching_into_another_account_are_refused(
    shared: SharedCell,
) -> None:
    """A completes its own workflow task with a signal to B's workflow or a child in B's
    namespace, starts a workflow in B's through a multi-operation, and links B's workflow from
    a batch operation: each PERMISSION_DENIED naming B's namespace; nothing reaches B."""
    victim = await _client(shared, shared.beta, shared.victim)
    handle, _ = await _task(victim, "VictimWorkflow")
    before = await _history(handle)
    own = await _client(shared, shared.alpha, shared.attacker)
    planted_child = f"planted-child-{uuid.uuid4().hex[:8]}"
    planted_start = f"planted-start-{uuid.uuid4().hex[:8]}"
    job_id = f"batch-{uuid.uuid4().hex[:8]}"
    async with _attacker(shared) as channel:
        _, own_token = await _task(own, "AttackerWorkflow")
        attacks = [
            signal_external(shared.attacker, own_token, shared.victim, handle.id),
            child_in(shared.attacker, own_token, shared.victim, planted_child, "q"),
            multi_operation_start(shared.attacker, shared.victim, planted_start),
            batch_reset_signalling(shared.attacker, job_id, shared.victim, handle.id),
        ]
        for attack in attacks:
            refused = await _refused(channel, attack)
            assert refused.details() == reference_refusal(attack[0], shared.attacker, shared.victim)
    history = await _history(handle)
    assert history == before
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in history
    for planted in (planted_child, planted_start):
        with pytest.raises(Exception, match="not found"):
            await victim.get_workflow_handle(planted).describe()
    with pytest.raises(Exception, match=r"(?i)not found"):
        await own.workflow_service.describe_batch_operation(
            wsv1.DescribeBatchOperationRequest(namespace=shared.attacker, job_id=job_id)
        )


def test_same_name_in_two_accounts_and_exact_metering_per_namespace(shared: SharedCell) -> None:
    """``orders`` in both accounts: two namespaces on the one cell (``orders.<account>``). A runs
    3 workflows with one activity each, B starts 1 workflow and signals it twice; the periodic
    meter bills each exactly its own actions, nothing of the other's."""
    stratus = shared.stratus
    orders_a = create_active_namespace(stratus, shared.alpha, "orders")
    orders_b = create_active_namespace(stratus, shared.beta, "orders")
    assert orders_a == f"orders.{shared.alpha.account_id}"
    assert orders_b == f"orders.{shared.beta.account_id}"
    on_cell = _on_cell(stratus)
    assert {"namespace_id": orders_a, "account_id": shared.alpha.account_id} in on_cell
    assert {"namespace_id": orders_b, "account_id": shared.beta.account_id} in on_cell
    for run in range(3):
        greeting = run_greeting(stratus, orders_a, shared.alpha.client_cert, f"greet-{run}")
        assert asyncio.run(greeting) == "Hello, Stratus!"

    async def signalled_twice() -> None:
        client = await _client(shared, shared.beta, orders_b)
        handle: WorkflowHandle[object, object] = await client.start_workflow(
            "Waiting", id="waits-for-two", task_queue="no-worker"
        )
        await handle.signal("first")
        await handle.signal("second")

    asyncio.run(signalled_twice())
    expected = {
        orders_a: {"actions.workflow": 3, "actions.activity": 3},
        orders_b: {"actions.workflow": 1, "actions.signal": 2},
    }
    wait_until(lambda: {ns: _usage(stratus, ns) for ns in expected} == expected, 60)
    # The external provider made no local cell for either account: the registered one is all.
    with http(stratus, stratus.operator_key) as operator:
        assert [cell["name"] for cell in operator.get("/cells").json()["cells"]] == [CELL]
