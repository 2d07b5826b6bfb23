"""Task queues and workers: are there workers for the work, enough of them, not too many, and
is the namespace held back by its rate limits?

Evidence (:class:`QueueEvidence`) comes from two places, gathered by :func:`queue_evidence`
within fixed bounds and counted per RPC:

- ``DescribeTaskQueue`` (with ``report_stats``) per task queue and task type: the pollers seen
  with their last poll, and the approximate backlog (count, age, add and dispatch rates);
- one scrape of the cell's Prometheus endpoint, kept to this namespace's series: the
  schedule-to-start latency histogram, poll outcomes and waiting polls per task queue. Temporal
  has no RPC that lists a namespace's task queues, so the metrics are also how polled queues
  that no workflow uses are found.

The detectors (:func:`queue_findings`) are pure functions of that evidence and the
:class:`AnalysisContext`; every threshold is a module constant that ``context.overrides``
replaces under the name given in :data:`THRESHOLDS` (docs/insights.md lists them).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import grpc
import grpc.aio
import httpx
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeTaskQueueResponse,
)

from controlplane.insights.findings import (
    MAX_EXAMPLES,
    AnalysisContext,
    Finding,
    FindingKind,
    Severity,
    Subject,
    SubjectKind,
)

if TYPE_CHECKING:
    # analysis imports this module (it calls the detectors): the type only, for annotations.
    from controlplane.insights.analysis import CellSource

__all__ = [
    "THRESHOLDS",
    "Poller",
    "QueueEvidence",
    "QueueKind",
    "QueueMetrics",
    "QueueState",
    "TaskQueueUse",
    "edit_distance",
    "metric_label",
    "queue_evidence",
    "queue_findings",
    "read_queue_metrics",
    "threshold",
]

QueueKind = Literal["workflow", "activity"]

# Thresholds (override names in THRESHOLDS; docs/insights.md explains each).
BACKLOG_MIN_TASKS = 10  # a backlog smaller than this is never a finding
BACKLOG_AGE_SECONDS = 60.0  # ... one whose oldest task waited this long is
BACKLOG_GROWTH_RATIO = 1.2  # ... as is one whose tasks arrive this much faster than dispatched
SCHEDULE_TO_START_P95_MS = 1000.0  # ... as is one on a queue whose p95 wait reaches this
SCHEDULE_TO_START_MIN_SAMPLES = 20  # the p95 counts from this many started tasks on
POLLER_STALE_SECONDS = 120.0  # a poller whose last poll is older is gone
MISSPELLING_MAX_DISTANCE = 2  # a polled queue this many edits away is named as the likely one
GREEDY_MIN_POLLS = 20  # polls waiting on a queue at once before they can be "too many"
GREEDY_MAX_SUCCESS_RATE = 0.2  # ... when fewer than this share of polls get a task
GREEDY_MIN_POLL_OUTCOMES = 50  # the cell's poll counters are used from this many polls on
THROTTLING_MIN_REQUESTS = 10  # refused requests in the window before it is a finding
THROTTLING_CRITICAL_PER_SECOND = 1.0  # refusals per second (window average) that make it critical
MAX_DESCRIBED_QUEUES = 50  # DescribeTaskQueue calls per analysis, at most

THRESHOLDS: Mapping[str, float] = {
    "backlog_min_tasks": BACKLOG_MIN_TASKS,
    "backlog_age_seconds": BACKLOG_AGE_SECONDS,
    "backlog_growth_ratio": BACKLOG_GROWTH_RATIO,
    "schedule_to_start_p95_ms": SCHEDULE_TO_START_P95_MS,
    "schedule_to_start_min_samples": SCHEDULE_TO_START_MIN_SAMPLES,
    "poller_stale_seconds": POLLER_STALE_SECONDS,
    "misspelling_max_distance": MISSPELLING_MAX_DISTANCE,
    "greedy_min_polls": GREEDY_MIN_POLLS,
    "greedy_max_success_rate": GREEDY_MAX_SUCCESS_RATE,
    "greedy_min_poll_outcomes": GREEDY_MIN_POLL_OUTCOMES,
    "throttling_min_requests": THROTTLING_MIN_REQUESTS,
    "throttling_critical_per_second": THROTTLING_CRITICAL_PER_SECOND,
    "max_described_queues": MAX_DESCRIBED_QUEUES,
}

# A worker identity is whatever the worker says (often "pid@host"); evidence keeps it short.
MAX_IDENTITY_CHARACTERS = 80
# A long poll the server does not answer with a task ends after about this long.
LONG_POLL_SECONDS = 60.0
DESCRIBE_TIMEOUT_SECONDS = 5.0
SCRAPE_TIMEOUT_SECONDS = 5.0
DESCRIBE_CONCURRENCY = 4
_DESCRIBE_TASK_QUEUE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeTaskQueue"
# Temporal's own per-namespace queues (its scheduler and batcher workers), never a tenant's.
_SYSTEM_QUEUE_PREFIX = "temporal_sys_"
_STICKY_PARTITION = "__sticky__"
_TASK_TYPES: Mapping[str, QueueKind] = {"Workflow": "workflow", "Activity": "activity"}
_LATENCY_FAMILY = "task_schedule_to_start_latency"
_POLL_SUCCESS_FAMILY = "poll_success"
_POLL_TIMEOUTS_FAMILY = "poll_timeouts"
_PENDING_POLLS_FAMILY = "pending_polls"
_FAMILIES = (_LATENCY_FAMILY, _POLL_SUCCESS_FAMILY, _POLL_TIMEOUTS_FAMILY, _PENDING_POLLS_FAMILY)
_SAMPLE_NAMES = frozenset(
    f"{family}{suffix}" for family in _FAMILIES for suffix in ("", "_total", "_bucket", "_sum")
)
_UNSAFE_LABEL_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")


def threshold(context: AnalysisContext, name: str) -> float:
    """The threshold ``name`` of :data:`THRESHOLDS`, or the context's override of it."""
    return float(context.overrides.get(name, THRESHOLDS[name]))


def metric_label(value: str) -> str:
    """``value`` as the cell's Prometheus reporter writes it in a label: every character outside
    ``[a-zA-Z0-9_]`` becomes ``_`` (namespace ``shop.a1b2c`` is ``shop_a1b2c``)."""
    return _UNSAFE_LABEL_CHARACTERS.sub("_", value)


@dataclass(frozen=True)
class TaskQueueUse:
    """A task queue the sampled workflows used in the window (derived by ``analysis``)."""

    name: str  # a normal (not sticky) task queue name
    kind: QueueKind
    open_workflows: int  # open executions whose workflow task queue is this one (0 for activity)
    scheduled_in_window: int  # workflow/activity tasks scheduled on it in the window (sampled)
    example_workflow_ids: tuple[str, ...]


@dataclass(frozen=True)
class Poller:
    identity: str
    last_access: dt.datetime | None  # UTC


@dataclass(frozen=True)
class QueueState:
    """What ``DescribeTaskQueue`` says about one task queue and task type right now."""

    name: str
    kind: QueueKind
    pollers: tuple[Poller, ...] = ()
    backlog_count: int = 0
    backlog_age_seconds: float = 0.0
    add_rate: float = 0.0  # tasks per second, recent
    dispatch_rate: float = 0.0

    def recent_pollers(self, now: dt.datetime, stale_seconds: float) -> tuple[Poller, ...]:
        return tuple(
            poller
            for poller in self.pollers
            if poller.last_access is None
            or (now - poller.last_access).total_seconds() <= stale_seconds
        )

    def seconds_since_last_poll(self, now: dt.datetime) -> float | None:
        seen = [poller.last_access for poller in self.pollers if poller.last_access is not None]
        return (now - max(seen)).total_seconds() if seen else None


@dataclass(frozen=True)
class QueueMetrics:
    """One task queue's series in the cell's metrics (normal partitions summed; counters and
    the histogram count since the cell's process started, ``pending_polls`` is current)."""

    # (upper bound in seconds, cumulative count), ascending; the last bound may be +inf.
    schedule_to_start_buckets: tuple[tuple[float, float], ...] = ()
    schedule_to_start_sum_seconds: float = 0.0
    poll_successes: float = 0.0
    poll_timeouts: float = 0.0
    pending_polls: float = 0.0

    @property
    def schedule_to_start_samples(self) -> int:
        return round(self.schedule_to_start_buckets[-1][1]) if self.schedule_to_start_buckets else 0

    def schedule_to_start_quantile_ms(self, quantile: float) -> float | None:
        """The quantile the way Prometheus' ``histogram_quantile`` estimates it (linear within
        the bucket; a rank in the +Inf bucket answers the largest finite bound)."""
        buckets = self.schedule_to_start_buckets
        if not buckets or buckets[-1][1] <= 0:
            return None
        rank = quantile * buckets[-1][1]
        lower, below = 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if upper == float("inf"):
                    return lower * 1000
                share = (rank - below) / (count - below) if count > below else 1.0
                return (lower + (upper - lower) * share) * 1000
            lower, below = upper, count
        return lower * 1000

    @property
    def polled(self) -> bool:
        return self.pending_polls > 0 or self.poll_successes > 0 or self.poll_timeouts > 0


@dataclass(frozen=True)
class QueueEvidence:
    """Everything the task-queue detectors look at, as plain data."""

    namespace: str
    uses: tuple[TaskQueueUse, ...] = ()
    # DescribeTaskQueue answers: the uses' queues first, then what the metrics show polled.
    states: tuple[QueueState, ...] = ()
    # By (queue name as a metric label, task type); empty without a metrics endpoint.
    metrics: Mapping[tuple[str, QueueKind], QueueMetrics] = field(default_factory=dict)
    metrics_scraped: bool = False

    def state(self, name: str, kind: QueueKind) -> QueueState | None:
        return next((s for s in self.states if s.name == name and s.kind == kind), None)

    def metrics_for(self, name: str, kind: QueueKind) -> QueueMetrics | None:
        return self.metrics.get((metric_label(name), kind))


# Gathering -------------------------------------------------------------------------------------


async def queue_evidence(
    source: CellSource,
    task_queues: Sequence[TaskQueueUse],
    context: AnalysisContext,
    calls: collections.Counter[str],
) -> QueueEvidence:
    """Describe the used task queues (busiest first), then the polled ones the metrics name
    that no use covers, at most ``max_described_queues`` calls; scrape the metrics once.

    A metrics endpoint that does not answer leaves ``metrics_scraped`` false (the detectors
    then work from the descriptions alone); a frontend that does not answer raises its
    ``grpc.aio.AioRpcError``."""
    metrics: dict[tuple[str, QueueKind], QueueMetrics] = {}
    scraped = False
    if source.metrics_url:
        calls["metrics"] += 1
        text = await _scrape(source.metrics_url)
        if text is not None:
            metrics = read_queue_metrics(text, source.namespace)
            scraped = True
    uses = sorted(task_queues, key=lambda use: -(use.open_workflows + use.scheduled_in_window))
    wanted: list[tuple[str, QueueKind]] = []
    for use in uses:
        if (use.name, use.kind) not in wanted:
            wanted.append((use.name, use.kind))
    # Then what the metrics show polled and no use covers: a used queue's other task type (a
    # worker polls both), and queues nothing uses (known only by their label).
    names_by_label = {metric_label(use.name): use.name for use in uses}
    for (label, kind), series in sorted(metrics.items()):
        name = names_by_label.get(label, label)
        if series.polled and (name, kind) not in wanted:
            wanted.append((name, kind))
    wanted = wanted[: int(threshold(context, "max_described_queues"))]
    limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def describe(name: str, kind: QueueKind) -> QueueState | None:
        async with limit:
            return await _describe(source, name, kind, calls)

    described = await asyncio.gather(*(describe(name, kind) for name, kind in wanted))
    return QueueEvidence(
        namespace=source.namespace,
        uses=tuple(task_queues),
        states=tuple(state for state in described if state is not None),
        metrics=metrics,
        metrics_scraped=scraped,
    )


async def _describe(
    source: CellSource, name: str, kind: QueueKind, calls: collections.Counter[str]
) -> QueueState | None:
    call = source.channel.unary_unary(
        _DESCRIBE_TASK_QUEUE,
        request_serializer=DescribeTaskQueueRequest.SerializeToString,
        response_deserializer=DescribeTaskQueueResponse.FromString,
    )
    request = DescribeTaskQueueRequest(
        namespace=source.namespace,
        task_queue=TaskQueue(name=name, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=(
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
            if kind == "workflow"
            else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        ),
        report_stats=True,
    )
    calls["DescribeTaskQueue"] += 1
    try:
        response: DescribeTaskQueueResponse = await call(request, timeout=DESCRIBE_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        # A name from the metrics may not be the real one (the label lost characters).
        if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
            return None
        raise
    stats = response.stats
    return QueueState(
        name=name,
        kind=kind,
        pollers=tuple(
            Poller(
                identity=poller.identity,
                last_access=(
                    poller.last_access_time.ToDatetime(tzinfo=dt.UTC)
                    if poller.HasField("last_access_time")
                    else None
                ),
            )
            for poller in response.pollers
        ),
        backlog_count=stats.approximate_backlog_count,
        backlog_age_seconds=stats.approximate_backlog_age.ToTimedelta().total_seconds(),
        add_rate=stats.tasks_add_rate,
        dispatch_rate=stats.tasks_dispatch_rate,
    )


async def _scrape(url: str) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_SECONDS) as http:
            response = await http.get(url)
            response.raise_for_status()
            return response.text
    except httpx.HTTPError:
        return None


def read_queue_metrics(text: str, namespace: str) -> dict[tuple[str, QueueKind], QueueMetrics]:
    """This namespace's task-queue series in a cell's Prometheus text, by (queue label, task
    type). Other namespaces' series (a shared cell's other tenants) are never parsed."""
    wanted_namespace = f'namespace="{metric_label(namespace)}"'
    kept: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[2] in _FAMILIES:
                kept.append(line)
        elif (
            line.startswith(_FAMILIES)
            and line.partition("{")[0] in _SAMPLE_NAMES  # not poll_success_sync and the like
            and wanted_namespace in line
        ):
            kept.append(line)
    kept.append("")
    buckets: dict[tuple[str, QueueKind], dict[float, float]] = collections.defaultdict(dict)
    counts: dict[tuple[str, QueueKind, str], float] = collections.defaultdict(float)
    for family in text_string_to_metric_families("\n".join(kept)):
        if family.name not in _FAMILIES:
            continue
        for sample in family.samples:
            labels = sample.labels
            kind = _TASK_TYPES.get(labels.get("task_type", ""))
            queue = labels.get("taskqueue", "")
            if (
                kind is None
                or not queue
                or queue.startswith(_SYSTEM_QUEUE_PREFIX)
                or labels.get("partition") == _STICKY_PARTITION
                or labels.get("namespace") != metric_label(namespace)
            ):
                continue
            if family.name == _LATENCY_FAMILY:
                if sample.name.endswith("_bucket"):
                    bound = float(labels["le"])
                    by_bound = buckets[(queue, kind)]
                    by_bound[bound] = by_bound.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_sum"):
                    counts[(queue, kind, "sum")] += sample.value
            elif sample.name in (family.name, f"{family.name}_total"):
                counts[(queue, kind, family.name)] += sample.value
    keys = set(buckets) | {(queue, kind) for queue, kind, _ in counts}
    return {
        key: QueueMetrics(
            schedule_to_start_buckets=tuple(sorted(buckets.get(key, {}).items())),
            schedule_to_start_sum_seconds=counts.get((*key, "sum"), 0.0),
            poll_successes=counts.get((*key, _POLL_SUCCESS_FAMILY), 0.0),
            poll_timeouts=counts.get((*key, _POLL_TIMEOUTS_FAMILY), 0.0),
            pending_polls=counts.get((*key, _PENDING_POLLS_FAMILY), 0.0),
        )
        for key in keys
    }


# Detectors -------------------------------------------------------------------------------------


def queue_findings(evidence: QueueEvidence, context: AnalysisContext) -> list[Finding]:
    """Every task-queue and worker finding the evidence shows, one per (kind, subject)."""
    if context.now.tzinfo is None:  # the pollers' times are UTC; a naive ``now`` is too
        context = dataclasses.replace(context, now=context.now.replace(tzinfo=dt.UTC))
    found = [
        *_no_pollers(evidence, context),
        *_under_provisioned(evidence, context),
        *_greedy(evidence, context),
        *_unused_queue_pollers(evidence, context),
        *_throttling(evidence, context),
    ]
    # A queue polled for both task types can show the same pathology twice: keep the worse.
    rank = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    kept: dict[tuple[str, str, str], Finding] = {}
    for finding in sorted(found, key=lambda f: rank[f.severity]):
        kept.setdefault(finding.key, finding)
    return list(kept.values())


def _task_queue(name: str) -> Subject:
    return Subject(SubjectKind.TASK_QUEUE, name)


def _examples(uses: Iterable[TaskQueueUse]) -> tuple[str, ...]:
    examples: list[str] = []
    for use in uses:
        for workflow_id in use.example_workflow_ids:
            if workflow_id not in examples:
                examples.append(workflow_id)
    return tuple(examples[:MAX_EXAMPLES])


def _used_names(evidence: QueueEvidence) -> set[str]:
    return {use.name for use in evidence.uses}


def _no_pollers(evidence: QueueEvidence, context: AnalysisContext) -> Iterable[Finding]:
    stale = threshold(context, "poller_stale_seconds")
    for use in evidence.uses:
        state = evidence.state(use.name, use.kind)
        if state is None:
            continue  # not described (over the bound): no evidence either way
        if use.open_workflows <= 0 and state.backlog_count <= 0:
            continue  # no work waits on it
        if state.recent_pollers(context.now, stale):
            continue
        numbers: dict[str, int | float | str] = {
            "task_type": use.kind,
            "open_workflows": use.open_workflows,
            "scheduled_in_window": use.scheduled_in_window,
            "backlog_count": state.backlog_count,
            "backlog_age_seconds": round(state.backlog_age_seconds, 1),
        }
        since = state.seconds_since_last_poll(context.now)
        if since is None:
            when = "in the last few minutes"
        else:
            numbers["seconds_since_last_poll"] = round(since)
            when = f"for {round(since)} s"
        waiting = (
            f"{state.backlog_count} {use.kind} tasks wait on it"
            if state.backlog_count
            else f"{use.open_workflows} open workflows depend on it"
        )
        advice = (
            f"No worker has polled task queue '{use.name}' for {use.kind} tasks {when}, and "
            f"{waiting}. A worker is down, or listens on another queue: start (or fix) a worker "
            f"on '{use.name}'."
        )
        closest = _closest_polled(use.name, evidence, context)
        if closest is not None:
            name, distance = closest
            numbers["closest_polled_queue"] = name
            numbers["edit_distance"] = distance
            advice += (
                f" Workers do poll '{name}', {distance} edit(s) away: one of the two names is "
                "probably misspelt, in the worker or in the code that starts these workflows."
            )
        yield Finding(
            kind=FindingKind.NO_POLLERS,
            severity=Severity.CRITICAL if state.backlog_count > 0 else Severity.WARNING,
            subject=_task_queue(use.name),
            evidence=numbers,
            window=context.window,
            recommendation=advice,
            examples=_examples([use]),
        )


def _closest_polled(
    name: str, evidence: QueueEvidence, context: AnalysisContext
) -> tuple[str, int] | None:
    stale = threshold(context, "poller_stale_seconds")
    polled = {
        state.name
        for state in evidence.states
        if state.recent_pollers(context.now, stale) and state.name != name
    }
    polled |= {
        label
        for (label, _), series in evidence.metrics.items()
        if series.pending_polls > 0 and label != metric_label(name)
    }
    limit = int(threshold(context, "misspelling_max_distance"))
    best: tuple[int, str] | None = None
    for candidate in polled:
        distance = edit_distance(name, candidate)
        if (
            0 < distance <= limit
            and distance < len(name)
            and (best is None or (distance, candidate) < best)
        ):
            best = (distance, candidate)
    return None if best is None else (best[1], best[0])


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, with an adjacent transposition counted as one edit ("ordres" is
    one edit from "orders")."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                value = min(value, previous2[j - 2] + 1)
            current.append(value)
        previous2, previous = previous, current
    return previous[-1]


def _under_provisioned(evidence: QueueEvidence, context: AnalysisContext) -> Iterable[Finding]:
    stale = threshold(context, "poller_stale_seconds")
    backlog_min = threshold(context, "backlog_min_tasks")
    age_limit = threshold(context, "backlog_age_seconds")
    growth = threshold(context, "backlog_growth_ratio")
    p95_limit = threshold(context, "schedule_to_start_p95_ms")
    min_samples = threshold(context, "schedule_to_start_min_samples")
    uses_by_name: dict[str, list[TaskQueueUse]] = collections.defaultdict(list)
    for use in evidence.uses:
        uses_by_name[use.name].append(use)
    for state in evidence.states:
        if state.name not in uses_by_name:
            continue
        pollers = state.recent_pollers(context.now, stale)
        # Without pollers the queue is NO_POLLERS; a small backlog is normal traffic. The
        # cell's latency histogram counts since the cell started, so it only confirms a
        # backlog seen now and never fires alone (else one old burst would never resolve).
        if not pollers or state.backlog_count < backlog_min:
            continue
        series = evidence.metrics_for(state.name, state.kind)
        p95 = None
        if series is not None and series.schedule_to_start_samples >= min_samples:
            p95 = series.schedule_to_start_quantile_ms(0.95)
        old = state.backlog_age_seconds >= age_limit
        growing = state.add_rate > state.dispatch_rate * growth
        slow_start = p95 is not None and p95 >= p95_limit
        if not (old or growing or slow_start):
            continue
        numbers: dict[str, int | float | str] = {
            "task_type": state.kind,
            "backlog_count": state.backlog_count,
            "backlog_age_seconds": round(state.backlog_age_seconds, 1),
            "tasks_add_rate": round(state.add_rate, 3),
            "tasks_dispatch_rate": round(state.dispatch_rate, 3),
            "pollers": len(pollers),
        }
        if p95 is not None and series is not None:
            numbers["schedule_to_start_p95_ms"] = round(p95)
            numbers["schedule_to_start_samples"] = series.schedule_to_start_samples
        concurrency = (
            "max_concurrent_activities"
            if state.kind == "activity"
            else "max_concurrent_workflow_tasks"
        )
        yield Finding(
            kind=FindingKind.UNDER_PROVISIONED_WORKERS,
            severity=(
                Severity.CRITICAL
                if state.backlog_age_seconds >= 10 * age_limit
                else Severity.WARNING
            ),
            subject=_task_queue(state.name),
            evidence=numbers,
            window=context.window,
            recommendation=(
                f"{state.kind.capitalize()} tasks on '{state.name}' queue up: "
                f"{state.backlog_count} waiting, the oldest for "
                f"{round(state.backlog_age_seconds, 1)} s (added {state.add_rate:.2f}/s, "
                f"dispatched {state.dispatch_rate:.2f}/s) with {len(pollers)} worker(s) polling. "
                f"The workers cannot keep up: run more workers on '{state.name}', or raise "
                f"{concurrency} where their hosts have headroom (CPU, memory, the services "
                "the tasks call)."
            ),
            examples=_examples(uses_by_name[state.name]),
        )


def _greedy(evidence: QueueEvidence, context: AnalysisContext) -> Iterable[Finding]:
    stale = threshold(context, "poller_stale_seconds")
    min_polls = threshold(context, "greedy_min_polls")
    max_rate = threshold(context, "greedy_max_success_rate")
    min_outcomes = threshold(context, "greedy_min_poll_outcomes")
    for state in evidence.states:
        pollers = state.recent_pollers(context.now, stale)
        if not pollers:
            continue
        series = evidence.metrics_for(state.name, state.kind)
        waiting = series.pending_polls if series is not None else float(len(pollers))
        if waiting < min_polls:
            continue
        outcomes = series.poll_successes + series.poll_timeouts if series is not None else 0.0
        if series is not None and series.poll_timeouts > 0 and outcomes >= min_outcomes:
            rate = series.poll_successes / outcomes
            basis = "the cell's poll counters"
        else:
            # Each waiting poll that gets no task times out after a long poll.
            timing_out = waiting / LONG_POLL_SECONDS
            rate = state.dispatch_rate / (state.dispatch_rate + timing_out)
            basis = "dispatch rate against waiting polls"
        if rate >= max_rate:
            continue
        polls = (
            "max_concurrent_activity_task_polls"
            if state.kind == "activity"
            else "max_concurrent_workflow_task_polls"
        )
        yield Finding(
            kind=FindingKind.GREEDY_WORKERS,
            severity=Severity.INFO,
            subject=_task_queue(state.name),
            evidence={
                "task_type": state.kind,
                "polls_waiting": round(waiting),
                "pollers": len(pollers),
                "poll_success_rate": round(rate, 3),
                "poll_success_rate_basis": basis,
                "tasks_dispatch_rate": round(state.dispatch_rate, 3),
            },
            window=context.window,
            recommendation=(
                f"{round(waiting)} polls wait on '{state.name}' for {state.kind} tasks, and "
                f"only {rate:.0%} of polls get one: the workers poll far more than the queue "
                f"needs. Lower {polls} (or run fewer workers on this queue); each idle poll "
                "holds a connection and a server slot."
            ),
            examples=_examples(use for use in evidence.uses if use.name == state.name),
        )


def _unused_queue_pollers(evidence: QueueEvidence, context: AnalysisContext) -> Iterable[Finding]:
    stale = threshold(context, "poller_stale_seconds")
    used = _used_names(evidence)
    used_labels = {metric_label(name) for name in used}
    polled: dict[str, dict[QueueKind, tuple[Poller, ...]]] = collections.defaultdict(dict)
    for state in evidence.states:
        if state.name in used or metric_label(state.name) in used_labels:
            continue
        pollers = state.recent_pollers(context.now, stale)
        if pollers:
            polled[state.name][state.kind] = pollers
    for name, by_kind in sorted(polled.items()):
        identities = sorted(
            {
                poller.identity[:MAX_IDENTITY_CHARACTERS]
                for pollers in by_kind.values()
                for poller in pollers
            }
        )
        yield Finding(
            kind=FindingKind.UNUSED_QUEUE_POLLERS,
            severity=Severity.WARNING,
            subject=_task_queue(name),
            evidence={
                "task_types": ",".join(sorted(by_kind)),
                "pollers": len(identities),
                "worker_identities": ", ".join(identities[:MAX_EXAMPLES]),
            },
            window=context.window,
            recommendation=(
                f"Workers ({', '.join(identities[:MAX_EXAMPLES])}) poll task queue '{name}', but "
                f"no sampled workflow of the last {context.window.value} scheduled a task on it. "
                "If these workers should serve your workflows, the queue name differs between "
                "the worker and the code that starts the workflows; if the queue is retired, "
                "stop these workers."
            ),
        )


def _throttling(evidence: QueueEvidence, context: AnalysisContext) -> Iterable[Finding]:
    count = context.throttled_requests
    if count < threshold(context, "throttling_min_requests"):
        return
    per_second = count / context.window.duration.total_seconds()
    numbers: dict[str, int | float | str] = {
        "throttled_requests": count,
        "throttled_per_second": round(per_second, 4),
    }
    limits = []
    if context.requests_per_second_limit > 0:
        numbers["requests_per_second_limit"] = context.requests_per_second_limit
        limits.append(f"{context.requests_per_second_limit:g} requests/s")
    if context.actions_per_second_limit > 0:
        numbers["actions_per_second_limit"] = context.actions_per_second_limit
        limits.append(f"{context.actions_per_second_limit:g} actions/s")
    limit_text = f" (its limits: {', '.join(limits)})" if limits else ""
    yield Finding(
        kind=FindingKind.THROTTLING,
        severity=(
            Severity.CRITICAL
            if per_second >= threshold(context, "throttling_critical_per_second")
            else Severity.WARNING
        ),
        subject=Subject(SubjectKind.NAMESPACE, evidence.namespace),
        evidence=numbers,
        window=context.window,
        recommendation=(
            f"The gateway refused {count} requests in the last {context.window.value} with "
            f"RESOURCE_EXHAUSTED ({per_second:.3g}/s on average) because the namespace went over "
            f"its rate limits{limit_text}. Smooth the load: rate-limit the workers "
            "(max_activities_per_second, max_task_queue_activities_per_second), use fewer "
            "pollers (max_concurrent_*_task_polls), spread bursts of workflow starts; or ask "
            "the operator for higher limits."
        ),
    )
