"""The namespace workflows, run by the control plane's worker on the system cell.

Each step is an idempotent activity of :class:`NamespaceActivities`, called by reference so mypy
checks what goes in and comes out; a crash anywhere (worker, API, cell) resumes where it
stopped: Temporal replays the workflow and retries the step that was in flight.

Workflow type names (``CreateNamespace``...) and activity names are on the wire: operations in
flight on a running system cell, and PENDING ones the reconciler starts after an upgrade, find
them by name, so they never change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Concatenate, ParamSpec, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from controlplane.kit.heartbeat import HEARTBEAT_TIMEOUT
    from controlplane.namespaces.activities import NamespaceActivities
    from controlplane.operations.starter import OperationInput

STEP_TIMEOUT = timedelta(minutes=2)
# Every step heartbeats while it runs (starting a cell, waiting on its frontend): a step whose
# worker died is retried on another worker within STEP_HEARTBEAT, not at STEP_TIMEOUT.
STEP_HEARTBEAT = HEARTBEAT_TIMEOUT
PROPAGATION_TIMEOUT = timedelta(seconds=30)
PROPAGATION_HEARTBEAT = timedelta(seconds=5)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=20,
    non_retryable_error_types=["OperationAborted"],
)

P = ParamSpec("P")
R = TypeVar("R")
Step = Callable[Concatenate[NamespaceActivities, P], Awaitable[R]]


async def _run(
    timeout: timedelta,
    heartbeat: timedelta,
    activity: Step[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Run ``activity(*args)`` with the common retries. Arguments are positional: the activity
    receives them as a list, as it always has (a step scheduled by an older worker still
    matches)."""
    if kwargs:
        raise TypeError("activity arguments are positional")
    return await workflow.execute_activity_method(
        activity,
        args=list(args),
        start_to_close_timeout=timeout,
        heartbeat_timeout=heartbeat,
        retry_policy=STEP_RETRY,
    )


async def _step(activity: Step[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return await _run(STEP_TIMEOUT, STEP_HEARTBEAT, activity, *args, **kwargs)


async def _propagate(version: int, namespace_id: str = "") -> None:
    """Wait for every registered gateway to serve route-table ``version`` (with
    ``namespace_id``'s CAs in force); heartbeats let a dead worker's wait be retried quickly
    elsewhere."""
    await _run(
        PROPAGATION_TIMEOUT,
        PROPAGATION_HEARTBEAT,
        NamespaceActivities.await_route_propagation,
        version,
        namespace_id,
    )


def _reason(error: ActivityError) -> str:
    cause = error.cause
    return str(cause) if cause is not None else str(error)


@workflow.defn(name="CreateNamespace")
class CreateNamespaceWorkflow:
    @workflow.run
    async def run(self, op: OperationInput) -> str:
        await _step(NamespaceActivities.mark_operation_in_progress, op.operation_id)
        try:
            await _step(NamespaceActivities.ensure_cell, op.resource_id)
            await _step(NamespaceActivities.register_namespace, op.resource_id)
            version = await _step(NamespaceActivities.publish_route, op.resource_id)
            await _propagate(version, op.resource_id)
            await _step(
                NamespaceActivities.complete_namespace_create, op.resource_id, op.operation_id
            )
        except ActivityError as error:
            await _step(NamespaceActivities.fail_operation, op.operation_id, _reason(error))
            return "FAILED"
        return "FULFILLED"


@workflow.defn(name="UpdateNamespace")
class UpdateNamespaceWorkflow:
    """Apply a namespace's stored settings: retention on the cell, CAs and filters at the
    gateways. Each step reads the current row, so a retried step applies what is stored."""

    @workflow.run
    async def run(self, op: OperationInput) -> str:
        await _step(NamespaceActivities.mark_operation_in_progress, op.operation_id)
        try:
            await _step(NamespaceActivities.register_namespace, op.resource_id)
            version = await _step(NamespaceActivities.publish_route, op.resource_id)
            await _propagate(version, op.resource_id)
            await _step(
                NamespaceActivities.complete_namespace_update, op.resource_id, op.operation_id
            )
        except ActivityError as error:
            await _step(NamespaceActivities.fail_operation, op.operation_id, _reason(error))
            return "FAILED"
        return "FULFILLED"


@workflow.defn(name="DeleteNamespace")
class DeleteNamespaceWorkflow:
    @workflow.run
    async def run(self, op: OperationInput) -> str:
        await _step(NamespaceActivities.mark_operation_in_progress, op.operation_id)
        try:
            # Stop routing first so no new traffic reaches a namespace being deleted.
            await _propagate(await _step(NamespaceActivities.unpublish_route, op.resource_id))
            await _step(NamespaceActivities.delete_namespace_on_cell, op.resource_id)
            await _step(
                NamespaceActivities.complete_namespace_delete, op.resource_id, op.operation_id
            )
        except ActivityError as error:
            await _step(NamespaceActivities.fail_operation, op.operation_id, _reason(error))
            return "FAILED"
        return "FULFILLED"


WORKFLOW_BY_OPERATION: dict[str, str] = {
    "namespace.create": "CreateNamespace",
    "namespace.update": "UpdateNamespace",
    "namespace.delete": "DeleteNamespace",
}
"""The workflow type that performs each namespace operation (the operation starter's map)."""
WORKFLOWS = [CreateNamespaceWorkflow, UpdateNamespaceWorkflow, DeleteNamespaceWorkflow]
