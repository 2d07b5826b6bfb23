"""Billable kinds and how the cell's counters map onto them."""

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


SCHEDULE_EXECUTIONS = "schedule_action_success"
"""The pseudo action type under which the meter reads the cell's ``schedule_action_success``
counter: one per workflow a schedule started."""

# Every increment of Temporal's ``action`` counter is one billable action of the kind below
# (Temporal Cloud's published action definitions, checked against what a real cell emits):
# the server already counts a child workflow twice (``command_StartChildWorkflowExecution``
# plus ``..._Extra``) and all the markers of one workflow task once (``command_BatchMarkers``,
# Cloud's "all local activities of one workflow task count as a single action"). Types not
# listed here or in NOT_BILLED still bill, as ``actions.other``.
ACTION_KINDS: Mapping[str, ActionKind] = MappingProxyType(
    {
        "grpc_StartWorkflowExecution": ActionKind.WORKFLOW,
        "grpc_ResetWorkflowExecution": ActionKind.WORKFLOW,
        "command_ContinueAsNewWorkflowExecution": ActionKind.WORKFLOW,
        "command_ScheduleActivityTask": ActionKind.ACTIVITY,
        "activity_retry": ActionKind.ACTIVITY,
        "command_BatchMarkers": ActionKind.ACTIVITY,
        "grpc_RecordActivityTaskHeartbeat": ActionKind.HEARTBEAT,
        "grpc_RecordActivityTaskHeartbeatById": ActionKind.HEARTBEAT,
        "grpc_SignalWorkflowExecution": ActionKind.SIGNAL,
        # Cloud: "one total action for any Signal-With-Start, whether the workflow starts".
        "grpc_SignalWithStartWorkflowExecution": ActionKind.SIGNAL,
        "command_SignalExternalWorkflowExecution": ActionKind.SIGNAL,
        "grpc_QueryWorkflow": ActionKind.QUERY,
        "command_StartTimer": ActionKind.TIMER,
        "command_StartChildWorkflowExecution": ActionKind.CHILD_WORKFLOW,
        "command_StartChildWorkflowExecution_Extra": ActionKind.CHILD_WORKFLOW,
        # The server counts an update when the worker accepts or rejects it (a deduplicated
        # update is not counted again), as Cloud bills it; it emits no grpc_ type for updates.
        "message_UpdateWorkflowExecution_Acceptance": ActionKind.UPDATE,
        "message_UpdateWorkflowExecution_Rejection": ActionKind.UPDATE,
        SCHEDULE_EXECUTIONS: ActionKind.SCHEDULE,
    }
)

# Counted by the server but no action in Temporal Cloud: managing a schedule is free (its
# executions bill, see ACTION_WEIGHTS), and so is changing a memo (``upsert_memo``), which
# the schedule's own workflow does on every run.
NOT_BILLED: frozenset[str] = frozenset(
    {
        "grpc_CreateSchedule",
        "grpc_UpdateSchedule",
        "grpc_PatchSchedule",
        "grpc_DeleteSchedule",
        "command_ModifyWorkflowProperties",
    }
)

# Actions per increment where it is not one. Cloud: "each execution of a Schedule accrues
# three actions: Schedule Start, two actions, and Workflow started" — the workflow start is
# counted by the cell as ``grpc_StartWorkflowExecution``.
ACTION_WEIGHTS: Mapping[str, int] = MappingProxyType({SCHEDULE_EXECUTIONS: 2})


def action_kind(action_type: str) -> ActionKind | None:
    """The billable kind of one counted action type, or None when it is not billed."""
    if action_type in NOT_BILLED:
        return None
    return ACTION_KINDS.get(action_type, ActionKind.OTHER)


def action_weight(action_type: str) -> int:
    """How many billable actions one increment of ``action_type`` is."""
    return ACTION_WEIGHTS.get(action_type, 1)
