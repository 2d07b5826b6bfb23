"""Operation workflows, run by the control plane's worker on the system cell.

Each step is an idempotent activity, so a crash anywhere (worker, API, cell) resumes where it
stopped: Temporal replays the workflow and retries the step that was in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

STEP_TIMEOUT = timedelta(minutes=2)
PROPAGATION_TIMEOUT = timedelta(seconds=30)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=20,
    non_retryable_error_types=["OperationAborted"],
)


@dataclass
class OperationInput:
    operation_id: str
    resource_id: str


async def _step(name: str, *args: str | int) -> Any:
    return await workflow.execute_activity(
        name,
        args=list(args),
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=STEP_RETRY,
    )


async def _propagate(version: int, namespace_id: str = "") -> None:
    """Wait for every registered gateway to serve route-table ``version`` (with
    ``namespace_id``'s CAs in force); heartbeats let a dead worker's wait be retried quickly
    elsewhere."""
    await workflow.execute_activity(
        "await_route_propagation",
        args=[version, namespace_id],
        start_to_close_timeout=PROPAGATION_TIMEOUT,
        heartbeat_timeout=timedelta(seconds=5),
        retry_policy=STEP_RETRY,
    )


def _reason(error: ActivityError) -> str:
    cause = error.cause
    return str(cause) if cause is not None else str(error)


@workflow.defn(name="CreateNamespace")
class CreateNamespaceWorkflow:
    @workflow.run
    async def run(self, op: OperationInput) -> str:
        await _step("mark_operation_in_progress", op.operation_id)
        try:
            await _step("ensure_cell", op.resource_id)
            await _step("register_namespace", op.resource_id)
            await _propagate(await _step("publish_route", op.resource_id), op.resource_id)
            await _step("complete_namespace_create", op.resource_id, op.operation_id)
        except ActivityError as error:
            await _step("fail_operation", op.operation_id, _reason(error))
            return "FAILED"
        return "FULFILLED"


@workflow.defn(name="UpdateNamespace")
class UpdateNamespaceWorkflow:
    """Apply a namespace's stored settings: retention on the cell, CAs and filters at the
    gateways. Each step reads the current row, so a retried step applies what is stored."""

    @workflow.run
    async def run(self, op: OperationInput) -> str:
        await _step("mark_operation_in_progress", op.operation_id)
        try:
            await _step("register_namespace", op.resource_id)
            await _propagate(await _step("publish_route", op.resource_id), op.resource_id)
            await _step("complete_namespace_update", op.resource_id, op.operation_id)
        except ActivityError as error:
            await _step("fail_operation", op.operation_id, _reason(error))
            return "FAILED"
        return "FULFILLED"


@workflow.defn(name="DeleteNamespace")
class DeleteNamespaceWorkflow:
    @workflow.run
    async def run(self, op: OperationInput) -> str:
        await _step("mark_operation_in_progress", op.operation_id)
        try:
            # Stop routing first so no new traffic reaches a namespace being deleted.
            await _propagate(await _step("unpublish_route", op.resource_id))
            await _step("delete_namespace_on_cell", op.resource_id)
            await _step("complete_namespace_delete", op.resource_id, op.operation_id)
        except ActivityError as error:
            await _step("fail_operation", op.operation_id, _reason(error))
            return "FAILED"
        return "FULFILLED"


WORKFLOW_BY_OPERATION: dict[str, str] = {
    "namespace.create": "CreateNamespace",
    "namespace.update": "UpdateNamespace",
    "namespace.delete": "DeleteNamespace",
}
WORKFLOWS = [CreateNamespaceWorkflow, UpdateNamespaceWorkflow, DeleteNamespaceWorkflow]
