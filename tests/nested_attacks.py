"""The requests of the nested-namespace attacks (task tokens, workflow commands, multi-operations,
batch operations), shared by the gateway's own tests (victim on the same cell, in-process
gateway) and the end-to-end ones on one shared registered cell (victim of another account).

Each builder returns ``(method, serialized request)``: an attacker sends the bytes itself, as a
hostile client would, on its own namespace ``namespace`` reaching into ``victim_namespace``.
"""

from __future__ import annotations

import uuid

from temporalio.api.command.v1 import message_pb2 as command
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1

SERVICE = "/temporal.api.workflowservice.v1.WorkflowService"

Attack = tuple[str, bytes]

# Every call that carries a task token, besides RespondWorkflowTaskCompleted.
TASK_TOKEN_CALLS = [
    ("RecordActivityTaskHeartbeat", wsv1.RecordActivityTaskHeartbeatRequest),
    ("RespondActivityTaskCompleted", wsv1.RespondActivityTaskCompletedRequest),
    ("RespondActivityTaskFailed", wsv1.RespondActivityTaskFailedRequest),
    ("RespondActivityTaskCanceled", wsv1.RespondActivityTaskCanceledRequest),
    ("RespondWorkflowTaskFailed", wsv1.RespondWorkflowTaskFailedRequest),
    ("RespondQueryTaskCompleted", wsv1.RespondQueryTaskCompletedRequest),
]


def token_refusal(method: str, namespace: str) -> str:
    """What the gateway says to a foreign task token sent on ``namespace``."""
    return (
        f"{method}: the task token does not belong to namespace {namespace}; respond to tasks "
        "only in the namespace that polled them"
    )


def reference_refusal(method: str, namespace: str, victim_namespace: str) -> str:
    """What the gateway says to a request of ``namespace`` naming ``victim_namespace`` inside."""
    return (
        f"{method} for namespace {namespace} refers to namespace {victim_namespace}; a request "
        "may only act on the namespace it is sent to"
    )


def complete_command() -> command.Command:
    return command.Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=(
            command.CompleteWorkflowExecutionCommandAttributes()
        ),
    )


def complete_with_token(namespace: str, token: bytes) -> Attack:
    """Complete the (victim's) workflow task of ``token`` as a request of ``namespace``."""
    request = wsv1.RespondWorkflowTaskCompletedRequest(
        namespace=namespace, task_token=token, commands=[complete_command()]
    )
    return "RespondWorkflowTaskCompleted", request.SerializeToString()


def token_calls(namespace: str, token: bytes) -> list[Attack]:
    """Every other task-token carrying call with ``token``, as requests of ``namespace``."""
    return [
        (method, request(namespace=namespace, task_token=token).SerializeToString())
        for method, request in TASK_TOKEN_CALLS
    ]


def signal_external(
    namespace: str, own_token: bytes, victim_namespace: str, victim_id: str
) -> Attack:
    """Complete one's own workflow task with a command signalling a workflow of the victim."""
    signal = command.Command(
        command_type=CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        signal_external_workflow_execution_command_attributes=(
            command.SignalExternalWorkflowExecutionCommandAttributes(
                namespace=victim_namespace,
                execution=common.WorkflowExecution(workflow_id=victim_id),
                signal_name="pwned",
            )
        ),
    )
    request = wsv1.RespondWorkflowTaskCompletedRequest(
        namespace=namespace, task_token=own_token, commands=[signal]
    )
    return "RespondWorkflowTaskCompleted", request.SerializeToString()


def child_in(
    namespace: str, own_token: bytes, victim_namespace: str, child_id: str, queue: str
) -> Attack:
    """Complete one's own workflow task with a command starting a child in the victim's
    namespace."""
    child = command.Command(
        command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=(
            command.StartChildWorkflowExecutionCommandAttributes(
                namespace=victim_namespace,
                workflow_id=child_id,
                workflow_type=common.WorkflowType(name="Planted"),
                task_queue=taskqueue.TaskQueue(name=queue),
            )
        ),
    )
    request = wsv1.RespondWorkflowTaskCompletedRequest(
        namespace=namespace, task_token=own_token, commands=[child]
    )
    return "RespondWorkflowTaskCompleted", request.SerializeToString()


def multi_operation_start(namespace: str, victim_namespace: str, workflow_id: str) -> Attack:
    """ExecuteMultiOperation of ``namespace`` whose inner start targets the victim's."""
    start = wsv1.StartWorkflowExecutionRequest(
        namespace=victim_namespace,
        workflow_id=workflow_id,
        workflow_type=common.WorkflowType(name="Planted"),
        task_queue=taskqueue.TaskQueue(name="q"),
        request_id=str(uuid.uuid4()),
    )
    request = wsv1.ExecuteMultiOperationRequest(
        namespace=namespace,
        operations=[wsv1.ExecuteMultiOperationRequest.Operation(start_workflow=start)],
    )
    return "ExecuteMultiOperation", request.SerializeToString()


def batch_reset_signalling(
    namespace: str, job_id: str, victim_namespace: str, victim_id: str
) -> Attack:
    """A batch reset of ``namespace`` whose post-reset signal links a workflow of the victim."""
    request = wsv1.StartBatchOperationRequest(
        namespace=namespace,
        job_id=job_id,
        reason="cross-namespace attempt",
        visibility_query="WorkflowType='AttackerWorkflow'",
    )
    request.reset_operation.options.first_workflow_task.SetInParent()
    signal = request.reset_operation.post_reset_operations.add().signal_workflow
    signal.signal_name = "pwned"
    link = signal.links.add().workflow_event
    link.namespace = victim_namespace
    link.workflow_id = victim_id
    return "StartBatchOperation", request.SerializeToString()
