"""A namespace's series from a (shared) cell's Prometheus text: only its own lines, starts from
the action counter, outcomes by workflow type, schedule-to-start histograms with their sum, and
no more than MAX_LABEL_VALUES values of a label the tenant chooses."""

from __future__ import annotations

from controlplane.tenant_metrics._cell import (
    MAX_LABEL_VALUES,
    OTHER,
    read_cell_series,
    split_by_namespace,
)

NS = 'namespace="shop_a1b2c"'
NEIGHBOUR = 'namespace="shop_z9y8x"'


def _outcome(family: str, namespace: str, workflow_type: str, value: int) -> str:
    return (
        f'{family}{{{namespace},namespace_state="active",operation="CompletionStats",'
        f'service_name="history",taskqueue="tq",workflowType="{workflow_type}"}} {value}'
    )


def _latency(namespace: str, queue: str, count: int) -> list[str]:
    labels = (
        f'{namespace},operation="RecordWorkflowTaskStarted",partition="__normal__",'
        f'service_name="history",task_type="Workflow",taskqueue="{queue}"'
    )
    return [
        f'task_schedule_to_start_latency_bucket{{{labels},le="0.05"}} {count}',
        f'task_schedule_to_start_latency_bucket{{{labels},le="+Inf"}} {count}',
        f"task_schedule_to_start_latency_sum{{{labels}}} {count * 0.01}",
        f"task_schedule_to_start_latency_count{{{labels}}} {count}",
    ]


def test_only_the_namespaces_own_series_are_read() -> None:
    text = "\n".join(
        [
            "# TYPE action counter",
            f'action{{action_type="grpc_StartWorkflowExecution",{NS},operation="x"}} 4',
            f'action{{action_type="grpc_SignalWorkflowExecution",{NS},operation="x"}} 9',
            f'action{{action_type="grpc_StartWorkflowExecution",{NEIGHBOUR},operation="x"}} 70',
            "# TYPE workflow_success counter",
            _outcome("workflow_success", NS, "Order", 3),
            _outcome("workflow_success", NEIGHBOUR, "Order", 50),
            "# TYPE workflow_failed counter",
            _outcome("workflow_failed", NS, "Order", 1),
            "# TYPE task_schedule_to_start_latency histogram",
            *_latency(NS, "orders", 5),
            *_latency(NEIGHBOUR, "orders", 80),
            "",
        ]
    )
    series = read_cell_series(text, "shop.a1b2c")
    # Cut once by namespace (as the endpoint does per fetch), each reads the same from its own.
    lines = split_by_namespace(text)
    assert set(lines.by_namespace) == {"shop_a1b2c", "shop_z9y8x"}
    assert read_cell_series(lines.text_of("shop.a1b2c"), "shop.a1b2c") == series
    assert read_cell_series(lines.text_of("shop.z9y8x"), "shop.z9y8x").started == 70
    assert series.started == 4
    assert series.outcomes == {("completed", "Order"): 3, ("failed", "Order"): 1}
    queue = series.queues[("orders", "workflow")]
    assert queue.schedule_to_start_buckets == ((0.05, 5.0), (float("inf"), 5.0))
    assert queue.schedule_to_start_sum_seconds == 0.05


def test_tenant_chosen_label_values_are_bounded() -> None:
    extra = 5
    lines = ["# TYPE workflow_success counter"]
    lines += [
        _outcome("workflow_success", NS, f"Type{n}", n + 1) for n in range(MAX_LABEL_VALUES + extra)
    ]
    lines.append("# TYPE task_schedule_to_start_latency histogram")
    for n in range(MAX_LABEL_VALUES + extra):
        lines += _latency(NS, f"queue{n}", n + 1)
    series = read_cell_series("\n".join([*lines, ""]), "shop.a1b2c")
    types = {workflow_type for _, workflow_type in series.outcomes}
    assert len(types) == MAX_LABEL_VALUES + 1
    # The least busy types are summed under OTHER: Type0 .. Type4 ran 1 + 2 + 3 + 4 + 5 times.
    assert series.outcomes[("completed", OTHER)] == 15
    assert len(series.queues) == MAX_LABEL_VALUES + 1
    other = series.queues[(OTHER, "workflow")]
    assert other.schedule_to_start_samples == 15
