"""Namespaces nested inside requests are authorized too (the CVE classes of task tokens,
workflow commands and multi-operations). The victim is another namespace on the *same* cell,
where the cell itself would act on it, so each refusal is the gateway's doing; each test then
proves the victim workflow was not touched."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

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
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from dataplane.gateway import Gateway

if TYPE_CHECKING:
    from conftest import Cells, Pki, RawChannel


async def _victim(cells: Cells) -> tuple[Client, WorkflowHandle[object, object], bytes]:
    """A running workflow in the victim namespace, and its workflow task's token (as if it had
    leaked), obtained directly from the cell."""
    victim = await Client.connect(cells.address_a, namespace=cells.namespace_a_later)
    queue = f"victim-{uuid.uuid4().hex[:8]}"
    handle: WorkflowHandle[object, object] = await victim.start_workflow(
        "VictimWorkflow", id=f"victim-{uuid.uuid4().hex[:8]}", task_queue=queue
    )
    task = await victim.workflow_service.poll_workflow_task_queue(
        wsv1.PollWorkflowTaskQueueRequest(
            namespace=cells.namespace_a_later,
            task_queue=taskqueue.TaskQueue(name=queue),
            identity="victim-worker",
        )
    )
    assert task.task_token
    return victim, handle, task.task_token


async def _event_types(handle: WorkflowHandle[object, object]) -> list[int]:
    history = await handle.fetch_history()
    return [event.event_type for event in history.events]


async def _call(
    raw_channel: RawChannel, gateway: Gateway, pki: Pki, attack: Attack
) -> grpc.aio.AioRpcError:
    method, request = attack
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(f"{SERVICE}/{method}")(request, timeout=10)
    return refused.value


async def test_foreign_task_token_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A's client completes a workflow task of another namespace with that namespace's task
    token, sending it as A's request: PERMISSION_DENIED, and the victim stays running."""
    _, handle, token = await _victim(cells)
    before = await _event_types(handle)
    refused = await _call(raw_channel, gateway, pki, complete_with_token(cells.namespace_a, token))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == token_refusal("RespondWorkflowTaskCompleted", cells.namespace_a)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await _event_types(handle) == before


async def test_foreign_token_on_heartbeat_and_activity_completion_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """Every task-token carrying call is checked, not only workflow task completion."""
    _, _, token = await _victim(cells)
    for attack in token_calls(cells.namespace_a, token):
        refused = await _call(raw_channel, gateway, pki, attack)
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, attack[0]
        assert refused.details() == token_refusal(attack[0], cells.namespace_a)


async def test_malformed_task_token_is_invalid_argument(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    request = wsv1.RespondActivityTaskCompletedRequest(
        namespace=cells.namespace_a, task_token=b"\xff\xff\xff"
    )
    refused = await _call(
        raw_channel,
        gateway,
        pki,
        ("RespondActivityTaskCompleted", request.SerializeToString()),
    )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "task_token is not a valid Temporal task token" in refused.details()


async def test_signal_external_command_into_another_namespace_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel, client_a: Client
) -> None:
    """A completes its *own* workflow task (its own valid token) with a command signalling a
    workflow in another namespace: PERMISSION_DENIED, and the victim gets no signal."""
    _, victim, _ = await _victim(cells)
    queue = f"attacker-{uuid.uuid4().hex[:8]}"
    await client_a.start_workflow("AttackerWorkflow", id=f"attacker-{queue}", task_queue=queue)
    task = await client_a.workflow_service.poll_workflow_task_queue(
        wsv1.PollWorkflowTaskQueueRequest(
            namespace=cells.namespace_a, task_queue=taskqueue.TaskQueue(name=queue)
        )
    )
    attack = signal_external(cells.namespace_a, task.task_token, cells.namespace_a_later, victim.id)
    refused = await _call(raw_channel, gateway, pki, attack)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == reference_refusal(
        attack[0], cells.namespace_a, cells.namespace_a_later
    )
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in await _event_types(victim)


async def test_child_workflow_in_another_namespace_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel, client_a: Client
) -> None:
    queue = f"attacker-{uuid.uuid4().hex[:8]}"
    await client_a.start_workflow("AttackerWorkflow", id=f"attacker-{queue}", task_queue=queue)
    task = await client_a.workflow_service.poll_workflow_task_queue(
        wsv1.PollWorkflowTaskQueueRequest(
            namespace=cells.namespace_a, task_queue=taskqueue.TaskQueue(name=queue)
        )
    )
    child_id = f"planted-{queue}"
    attack = child_in(cells.namespace_a, task.task_token, cells.namespace_a_later, child_id, queue)
    refused = await _call(raw_channel, gateway, pki, attack)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    victim = await Client.connect(cells.address_a, namespace=cells.namespace_a_later)
    with pytest.raises(Exception, match="not found"):
        await victim.get_workflow_handle(child_id).describe()


async def test_multi_operation_with_foreign_inner_start_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """ExecuteMultiOperation for A whose inner start targets another namespace: refused, and
    no workflow appears there."""
    workflow_id = f"planted-{uuid.uuid4().hex[:8]}"
    attack = multi_operation_start(cells.namespace_a, cells.namespace_a_later, workflow_id)
    refused = await _call(raw_channel, gateway, pki, attack)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == reference_refusal(
        attack[0], cells.namespace_a, cells.namespace_a_later
    )
    victim = await Client.connect(cells.address_a, namespace=cells.namespace_a_later)
    with pytest.raises(Exception, match="not found"):
        await victim.get_workflow_handle(workflow_id).describe()


async def test_batch_operation_reaching_into_another_namespace_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A batch reset for A whose post-reset signal links a workflow of another namespace:
    refused before the cell sees it; no batch job is created in A and the victim's history
    is unchanged."""
    _, victim, _ = await _victim(cells)
    before = await _event_types(victim)
    job_id = f"batch-{uuid.uuid4().hex[:8]}"
    attack = batch_reset_signalling(cells.namespace_a, job_id, cells.namespace_a_later, victim.id)
    refused = await _call(raw_channel, gateway, pki, attack)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.details() == reference_refusal(
        attack[0], cells.namespace_a, cells.namespace_a_later
    )
    owner = await Client.connect(cells.address_a, namespace=cells.namespace_a)
    with pytest.raises(Exception, match=r"(?i)not found"):
        await owner.workflow_service.describe_batch_operation(
            wsv1.DescribeBatchOperationRequest(namespace=cells.namespace_a, job_id=job_id)
        )
    assert await _event_types(victim) == before
