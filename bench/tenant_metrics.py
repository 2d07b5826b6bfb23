"""What one answer of the tenant metrics endpoint costs the API's CPU, cache aside.

Run: ``.venv/bin/python bench/tenant_metrics.py`` (defaults: a shared cell of 200 namespaces,
20 task queues and 10 workflow types each; an account of 20 of them). Prints one JSON document.

A shared cell's Prometheus text is built with the series Temporal 1.32 writes per namespace
(outcome counters by workflow type, the action counter, schedule-to-start histograms of 15
buckets per task queue, plus poll counters), as ``temporal server start-dev`` names them. Then,
timed: cutting the whole text by namespace (once per cell per cache period), reading one
namespace's series from its lines (once per namespace per cache period), and rendering one
account's OpenMetrics answer from parsed series (per scrape).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from controlplane.tenant_metrics._cell import read_cell_series, split_by_namespace
from controlplane.tenant_metrics.service import AccountTables, render

# Temporal's schedule-to-start bucket bounds (seconds).
_BOUNDS = ("0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2")
_BOUNDS += ("5", "10", "20", "+Inf")


def cell_text(namespaces: int, queues: int, types: int) -> str:
    lines = ["# TYPE workflow_success counter"]
    for n in range(namespaces):
        ns = f'namespace="team{n}_acct{n % 10}"'
        for t in range(types):
            lines.append(
                f'workflow_success{{{ns},namespace_state="active",operation="CompletionStats",'
                f'service_name="history",taskqueue="q0",workflowType="Type{t}"}} {t + 1}'
            )
    lines.append("# TYPE action counter")
    for n in range(namespaces):
        ns = f'namespace="team{n}_acct{n % 10}"'
        lines.append(f'action{{action_type="grpc_StartWorkflowExecution",{ns},operation="x"}} 9')
    lines.append("# TYPE task_schedule_to_start_latency histogram")
    for n in range(namespaces):
        ns = f'namespace="team{n}_acct{n % 10}"'
        for q in range(queues):
            labels = (
                f'{ns},operation="RecordWorkflowTaskStarted",partition="__normal__",'
                f'service_name="history",task_type="Workflow",taskqueue="queue{q}"'
            )
            for index, bound in enumerate(_BOUNDS):
                lines.append(
                    f'task_schedule_to_start_latency_bucket{{{labels},le="{bound}"}} {index}'
                )
            lines.append(f"task_schedule_to_start_latency_sum{{{labels}}} 1.5")
            lines.append(f"task_schedule_to_start_latency_count{{{labels}}} 14")
    lines.append("# TYPE poll_success counter")
    for n in range(namespaces):
        ns = f'namespace="team{n}_acct{n % 10}"'
        for q in range(queues):
            lines.append(
                f'poll_success{{{ns},operation="PollWorkflowTaskQueue",service_name="matching",'
                f'task_type="Workflow",taskqueue="queue{q}"}} 3'
            )
    return "\n".join([*lines, ""])


def _timed(repeat: int, action: object) -> list[float]:
    assert callable(action)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--types", type=int, default=10)
    parser.add_argument("--account-namespaces", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    text = cell_text(args.namespaces, args.queues, args.types)
    split_ms = _timed(args.repeat, lambda: split_by_namespace(text))
    lines = split_by_namespace(text)
    read_ms = _timed(
        args.repeat, lambda: read_cell_series(lines.text_of("team7.acct7"), "team7.acct7")
    )
    account = [f"team{n}.acct{n % 10}" for n in range(args.account_namespaces)]
    cells = {ns: read_cell_series(lines.text_of(ns), ns) for ns in account}
    render_ms = _timed(args.repeat, lambda: render(cells, AccountTables()))
    print(
        json.dumps(
            {
                "cell_text_bytes": len(text),
                "cell_text_lines": text.count("\n"),
                "split_cell_text_ms_median": round(statistics.median(split_ms), 2),
                "read_one_namespace_ms_median": round(statistics.median(read_ms), 2),
                "account_namespaces": args.account_namespaces,
                "answer_bytes": len(render(cells, AccountTables())),
                "render_answer_ms_median": round(statistics.median(render_ms), 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
