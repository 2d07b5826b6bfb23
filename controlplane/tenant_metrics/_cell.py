"""A namespace's workflow series from its cell's Prometheus endpoint.

Temporal (``temporal server start-dev --metrics-port``; server 1.32) writes, per namespace, with
label values sanitised as :func:`controlplane.insights._queues.metric_label` does:

- ``workflow_success`` / ``workflow_failed`` / ``workflow_timeout`` / ``workflow_cancel`` /
  ``workflow_terminate`` counters (history service; labels ``namespace``, ``workflowType``,
  ``taskqueue``, ``operation="CompletionStats"``);
- the ``action`` counter (frontend; ``action_type`` such as ``grpc_StartWorkflowExecution``):
  starts are the start, signal-with-start and child-start actions;
- ``task_schedule_to_start_latency`` histograms per task queue and task type (seconds), read by
  the insights' reader (:func:`controlplane.insights._queues.read_queue_metrics`).

Only lines of the namespace's own label are parsed (a shared cell holds other tenants' series).
Label values a tenant chooses (workflow types, task queues) are bounded per namespace: beyond
:data:`MAX_LABEL_VALUES` the rest are summed under :data:`OTHER`.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# The insights' reader of the same endpoint (its module is internal to insights, whose package
# imports nothing so that its modules can import one another).
from controlplane.insights._queues import (
    QueueKind,
    QueueMetrics,
    metric_label,
    read_queue_metrics,
)

MAX_LABEL_VALUES = 50
OTHER = "__other__"

# Temporal's family → the outcome a Stratus series names.
OUTCOME_FAMILIES: Mapping[str, str] = {
    "workflow_success": "completed",
    "workflow_failed": "failed",
    "workflow_timeout": "timed_out",
    "workflow_cancel": "canceled",
    "workflow_terminate": "terminated",
}
_ACTION_FAMILY = "action"
START_ACTION_TYPES = frozenset(
    {
        "grpc_StartWorkflowExecution",
        "grpc_SignalWithStartWorkflowExecution",
        "command_StartChildWorkflowExecution",
    }
)
_FAMILIES = (*OUTCOME_FAMILIES, _ACTION_FAMILY)
_SAMPLE_NAMES = frozenset(f"{family}{suffix}" for family in _FAMILIES for suffix in ("", "_total"))
_LATENCY_FAMILY = "task_schedule_to_start_latency"
# Every sample a namespace's series are read from (the latency histogram's by the insights'
# reader): :func:`split_by_namespace` keeps these lines only.
_KEPT_FAMILIES = frozenset({*_FAMILIES, _LATENCY_FAMILY})
_KEPT_SAMPLES = frozenset(
    {*_SAMPLE_NAMES, *(f"{_LATENCY_FAMILY}{suffix}" for suffix in ("_bucket", "_sum", "_count"))}
)
_NAMESPACE_LABEL = re.compile(r'[{,]namespace="([^"]*)"')
_SYSTEM_QUEUE_PREFIX = "temporal_sys_"


@dataclass(frozen=True)
class CellSeries:
    """One namespace's series on its cell (counters since the cell's process started)."""

    started: float = 0.0
    # (outcome, workflow type label) → count
    outcomes: Mapping[tuple[str, str], float] = field(default_factory=dict)
    # (task queue label, task type) → schedule-to-start histogram
    queues: Mapping[tuple[str, QueueKind], QueueMetrics] = field(default_factory=dict)


@dataclass(frozen=True)
class CellLines:
    """A cell's text cut once per fetch: the kept families' comment lines, and their sample
    lines by namespace label (so each namespace's series are read from its own lines only)."""

    comments: tuple[str, ...]
    by_namespace: Mapping[str, tuple[str, ...]]

    def text_of(self, namespace: str) -> str:
        """The exposition of ``namespace``'s kept series alone."""
        lines = self.by_namespace.get(metric_label(namespace), ())
        return "\n".join([*self.comments, *lines, ""])


def split_by_namespace(text: str) -> CellLines:
    """One pass over a cell's text: the lines of the families the metrics endpoint reads, by
    namespace label (a shared cell's text holds every tenant's; each is read apart)."""
    comments: list[str] = []
    by_namespace: dict[str, list[str]] = collections.defaultdict(list)
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[2] in _KEPT_FAMILIES:
                comments.append(line)
        elif line.partition("{")[0] in _KEPT_SAMPLES:
            found = _NAMESPACE_LABEL.search(line)
            if found is not None:
                by_namespace[found.group(1)].append(line)
    return CellLines(
        tuple(comments), {label: tuple(lines) for label, lines in by_namespace.items()}
    )


def read_cell_series(text: str, namespace: str) -> CellSeries:
    """``namespace``'s workflow series in a cell's Prometheus text (nothing else is parsed)."""
    wanted = f'namespace="{metric_label(namespace)}"'
    kept: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[2] in _FAMILIES:
                kept.append(line)
        elif line.partition("{")[0] in _SAMPLE_NAMES and wanted in line:
            kept.append(line)
    kept.append("")
    started = 0.0
    outcomes: dict[tuple[str, str], float] = collections.defaultdict(float)
    for family in text_string_to_metric_families("\n".join(kept)):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("namespace") != metric_label(namespace):
                continue
            if family.name == _ACTION_FAMILY:
                if labels.get("action_type") in START_ACTION_TYPES:
                    started += sample.value
            elif family.name in OUTCOME_FAMILIES and sample.name in (
                family.name,
                f"{family.name}_total",
            ):
                if labels.get("taskqueue", "").startswith(_SYSTEM_QUEUE_PREFIX):
                    continue
                key = (OUTCOME_FAMILIES[family.name], labels.get("workflowType", ""))
                outcomes[key] += sample.value
    queues = {
        key: series
        for key, series in read_queue_metrics(text, namespace).items()
        if series.schedule_to_start_buckets
    }
    return CellSeries(
        started=started, outcomes=_bounded_outcomes(outcomes), queues=_bounded_queues(queues)
    )


def _bounded_outcomes(outcomes: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """At most :data:`MAX_LABEL_VALUES` workflow types (the busiest); the rest as :data:`OTHER`."""
    per_type: dict[str, float] = collections.defaultdict(float)
    for (_, workflow_type), value in outcomes.items():
        per_type[workflow_type] += value
    kept = set(sorted(per_type, key=lambda name: (-per_type[name], name))[:MAX_LABEL_VALUES])
    bounded: dict[tuple[str, str], float] = collections.defaultdict(float)
    for (outcome, workflow_type), value in outcomes.items():
        bounded[(outcome, workflow_type if workflow_type in kept else OTHER)] += value
    return dict(bounded)


def _bounded_queues(
    queues: Mapping[tuple[str, QueueKind], QueueMetrics],
) -> dict[tuple[str, QueueKind], QueueMetrics]:
    """At most :data:`MAX_LABEL_VALUES` task queues (the busiest); the rest summed per task
    type as :data:`OTHER` (every queue has the same bucket bounds)."""
    ranked = sorted(queues, key=lambda key: (-queues[key].schedule_to_start_samples, key))
    bounded = {key: queues[key] for key in ranked[:MAX_LABEL_VALUES]}
    for queue, kind in ranked[MAX_LABEL_VALUES:]:
        series = queues[(queue, kind)]
        merged = bounded.get((OTHER, kind))
        if merged is None:
            bounded[(OTHER, kind)] = series
            continue
        counts = dict(merged.schedule_to_start_buckets)
        for bound, count in series.schedule_to_start_buckets:
            counts[bound] = counts.get(bound, 0.0) + count
        bounded[(OTHER, kind)] = QueueMetrics(
            schedule_to_start_buckets=tuple(sorted(counts.items())),
            schedule_to_start_sum_seconds=merged.schedule_to_start_sum_seconds
            + series.schedule_to_start_sum_seconds,
        )
    return bounded
