"""Billable kinds and how Temporal's ``action_type`` values map onto them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class ActionKind(enum.StrEnum):
    """A billable kind of action; ``UsageRecord.kind`` holds these values."""

    WORKFLOW = "actions.workflow"
    ACTIVITY = "actions.activity"
    HEARTBEAT = "actions.heartbeat"
    SIGNAL = "actions.signal"
    QUERY = "actions.query"
    TIMER = "actions.timer"
    CHILD_WORKFLOW = "actions.child_workflow"
    UPDATE = "actions.update"
    SCHEDULE = "actions.schedule"
    OTHER = "actions.other"


# Every increment of Temporal's counter is one billable action: the server already counts a
# child workflow twice (``command_StartChildWorkflowExecution`` plus ``..._Extra``), so no
# weights are applied here. Types not listed still bill, as ``actions.other``.
ACTION_KINDS: Mapping[str, ActionKind] = MappingProxyType(
    {
        "grpc_StartWorkflowExecution": ActionKind.WORKFLOW,
        "grpc_SignalWithStartWorkflowExecution": ActionKind.WORKFLOW,
        "grpc_ResetWorkflowExecution": ActionKind.WORKFLOW,
        "command_ContinueAsNewWorkflowExecution": ActionKind.WORKFLOW,
        "command_ScheduleActivityTask": ActionKind.ACTIVITY,
        "activity_retry": ActionKind.ACTIVITY,
        "grpc_RecordActivityTaskHeartbeat": ActionKind.HEARTBEAT,
        "grpc_RecordActivityTaskHeartbeatById": ActionKind.HEARTBEAT,
        "grpc_SignalWorkflowExecution": ActionKind.SIGNAL,
        "command_SignalExternalWorkflowExecution": ActionKind.SIGNAL,
        "grpc_QueryWorkflow": ActionKind.QUERY,
        "command_StartTimer": ActionKind.TIMER,
        "command_StartChildWorkflowExecution": ActionKind.CHILD_WORKFLOW,
        "command_StartChildWorkflowExecution_Extra": ActionKind.CHILD_WORKFLOW,
        "grpc_UpdateWorkflowExecution": ActionKind.UPDATE,
        "grpc_CreateSchedule": ActionKind.SCHEDULE,
        "grpc_UpdateSchedule": ActionKind.SCHEDULE,
        "grpc_PatchSchedule": ActionKind.SCHEDULE,
        "grpc_DeleteSchedule": ActionKind.SCHEDULE,
    }
)


def action_kind(action_type: str) -> ActionKind:
    """The billable kind of one Temporal ``action_type`` label value."""
    return ACTION_KINDS.get(action_type, ActionKind.OTHER)
