"""Detectors over workflow histories and visibility: pure functions of :class:`EventEvidence`.

Each threshold is a module constant; ``AnalysisContext.overrides`` changes it under the
constant's name in lower case (``ACTIVITY_FAILURE_MIN_ATTEMPTS`` →
``"activity_failure_min_attempts"``). docs/insights.md describes every detector.
"""

from __future__ import annotations

import collections
import datetime as dt
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from temporalio.api.enums.v1 import event_type_pb2 as et
from temporalio.api.enums.v1 import task_queue_pb2, workflow_pb2
from temporalio.api.enums.v1.failed_cause_pb2 import WorkflowTaskFailedCause

from controlplane.insights._queues import TaskQueueUse
from controlplane.insights.findings import (
    MAX_EXAMPLES,
    AnalysisContext,
    Finding,
    FindingKind,
    Severity,
    Subject,
    SubjectKind,
)

# 1. Activity failure storms: failed attempts of one activity type in the window.
ACTIVITY_FAILURE_MIN_ATTEMPTS = 10
ACTIVITY_FAILURE_MIN_RATE = 0.2
ACTIVITY_FAILURE_CRITICAL_RATE = 0.5
# 2. Activities without heartbeats: configured start-to-close or observed run time.
LONG_ACTIVITY_TIMEOUT_SECONDS = 300.0
LONG_ACTIVITY_OBSERVED_SECONDS = 60.0
# 3. Workflow task failures and timeouts (start-to-close) of one workflow type.
WORKFLOW_TASK_MIN_FAILURES = 1
# 4. Histories near Temporal's limits (the server warns at the first pair, fails at the second).
HISTORY_WARN_EVENTS = 10_240
HISTORY_WARN_BYTES = 10 * 1024 * 1024
HISTORY_LIMIT_EVENTS = 51_200
HISTORY_LIMIT_BYTES = 50 * 1024 * 1024
HISTORY_CRITICAL_SHARE = 0.8
# 5. Hot workflows: signals + updates on one execution.
HOT_WORKFLOW_PER_SECOND = 10.0
HOT_WORKFLOW_BUCKET_SECONDS = 60.0
HOT_WORKFLOW_MIN_MESSAGES = 100
# 6. Sticky cache too small: workflow tasks after the first that went to the normal queue.
STICKY_MISS_MIN_TASKS = 20
STICKY_MISS_MIN_RATE = 0.2
# 7. Short-timer polling: many short timers in one execution.
SHORT_TIMER_SECONDS = 60.0
SHORT_TIMER_MIN_PER_EXECUTION = 20
# 8. Action spend: the types whose share of the namespace's actions is at least this.
ACTION_SPEND_MIN_SHARE = 0.1
ACTION_SPEND_TOP = 3

_MONTH = dt.timedelta(days=30)


def knob(context: AnalysisContext, name: str, default: float) -> float:
    """A threshold: ``default`` unless ``context.overrides`` names ``name``."""
    return float(context.overrides.get(name, default))


@dataclass(frozen=True)
class ExecutionSample:
    """One execution as visibility lists it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    running: bool
    history_length: int
    history_size_bytes: int
    start_time: dt.datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.workflow_id, self.run_id)


@dataclass(frozen=True)
class HistorySample:
    """The events read of one execution (``complete``: all of them)."""

    execution: ExecutionSample
    events: Sequence[Any]  # temporalio.api.history.v1.HistoryEvent
    complete: bool


@dataclass(frozen=True)
class EventEvidence:
    executions: Sequence[ExecutionSample]  # open, or closed in the window (bounded listing)
    histories: Sequence[HistorySample]  # the sample read
    executions_by_type: Mapping[str, int]  # open or closed in the window, per workflow type
    since: dt.datetime  # the window's start


def event_findings(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    return [
        *activity_failure_storms(evidence, context),
        *activities_without_heartbeat(evidence, context),
        *workflow_task_failures(evidence, context),
        *histories_near_limit(evidence, context),
        *hot_workflows(evidence, context),
        *sticky_cache_too_small(evidence, context),
        *short_timer_polling(evidence, context),
        *action_spend(evidence, context),
    ]


def _time(event: Any) -> dt.datetime:
    moment: dt.datetime = event.event_time.ToDatetime(tzinfo=dt.UTC)
    return moment


def _in_window(evidence: EventEvidence, history: HistorySample) -> Iterator[Any]:
    for event in history.events:
        if _time(event) >= evidence.since:
            yield event


def _examples(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))[:MAX_EXAMPLES]


def _dominant(messages: collections.Counter[str]) -> tuple[str, float]:
    if not messages:
        return ("", 0.0)
    message, count = messages.most_common(1)[0]
    return (message[:300], round(count / sum(messages.values()), 3))


def _activity_types(history: HistorySample) -> dict[int, Any]:
    """Scheduled event id -> the ActivityTaskScheduled attributes of the history."""
    return {
        event.event_id: event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == et.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }


def activity_failure_storms(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """Activity types whose attempts fail often: each ActivityTaskStarted of attempt n records
    n-1 failed attempts before it (its ``last_failure`` the latest), each ActivityTaskFailed or
    TimedOut one more."""
    attempts: collections.Counter[str] = collections.Counter()
    failed: collections.Counter[str] = collections.Counter()
    final_failures: collections.Counter[str] = collections.Counter()
    timeouts: collections.Counter[str] = collections.Counter()
    messages: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    workflows: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for history in evidence.histories:
        scheduled = _activity_types(history)
        for event in _in_window(evidence, history):
            kind = event.event_type
            if kind == et.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                name = scheduled[started.scheduled_event_id].activity_type.name
                attempts[name] += max(1, started.attempt)
                retried = max(0, started.attempt - 1)
                failed[name] += retried
                if retried:
                    messages[name][started.last_failure.message] += retried
                    workflows[name][history.execution.workflow_id] += retried
            elif kind == et.EVENT_TYPE_ACTIVITY_TASK_FAILED:
                attributes = event.activity_task_failed_event_attributes
                name = scheduled[attributes.scheduled_event_id].activity_type.name
                failed[name] += 1
                final_failures[name] += 1
                messages[name][attributes.failure.message] += 1
                workflows[name][history.execution.workflow_id] += 1
            elif kind == et.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
                attributes = event.activity_task_timed_out_event_attributes
                name = scheduled[attributes.scheduled_event_id].activity_type.name
                failed[name] += 1
                final_failures[name] += 1
                timeouts[name] += 1
                messages[name][attributes.failure.message or "timed out"] += 1
                workflows[name][history.execution.workflow_id] += 1
    minimum = knob(context, "activity_failure_min_attempts", ACTIVITY_FAILURE_MIN_ATTEMPTS)
    min_rate = knob(context, "activity_failure_min_rate", ACTIVITY_FAILURE_MIN_RATE)
    critical = knob(context, "activity_failure_critical_rate", ACTIVITY_FAILURE_CRITICAL_RATE)
    findings = []
    for name, failures in failed.items():
        # A timed-out attempt never started has no Started event: count it as an attempt.
        total = max(attempts[name] + timeouts[name], failures)
        rate = failures / total if total else 0.0
        if failures < minimum or rate < min_rate:
            continue
        message, share = _dominant(messages[name])
        findings.append(
            Finding(
                kind=FindingKind.ACTIVITY_FAILURE_STORM,
                severity=Severity.CRITICAL if rate >= critical else Severity.WARNING,
                subject=Subject(SubjectKind.ACTIVITY_TYPE, name),
                evidence={
                    "failed_attempts": failures,
                    "attempts": total,
                    "failure_rate": round(rate, 3),
                    "final_failures": final_failures[name],
                    "timeouts": timeouts[name],
                    "workflows_affected": len(workflows[name]),
                    "dominant_failure": message,
                    "dominant_failure_share": share,
                    "histories_sampled": len(evidence.histories),
                },
                window=context.window,
                recommendation=(
                    f"{round(rate * 100)}% of the attempts of activity {name} failed "
                    f"({failures} of {total}), most with: {message or '(no message)'}. Fix the "
                    "cause (a dependency down, bad input); make errors that retrying cannot fix "
                    "non-retryable, and give the retry policy a backoff and a maximum so a "
                    "failing dependency is not hammered."
                ),
                examples=_examples(w for w, _ in workflows[name].most_common()),
            )
        )
    return findings


def activities_without_heartbeat(
    evidence: EventEvidence, context: AnalysisContext
) -> list[Finding]:
    """Activity types that run long (configured start-to-close, or observed run time) with no
    heartbeat timeout: a crashed worker's activity is only retried at start-to-close."""
    long_timeout = knob(context, "long_activity_timeout_seconds", LONG_ACTIVITY_TIMEOUT_SECONDS)
    long_observed = knob(context, "long_activity_observed_seconds", LONG_ACTIVITY_OBSERVED_SECONDS)
    scheduled_count: collections.Counter[str] = collections.Counter()
    timeout_seconds: dict[str, float] = {}
    observed: dict[str, list[float]] = collections.defaultdict(list)
    workflows: dict[str, list[str]] = collections.defaultdict(list)
    for history in evidence.histories:
        scheduled = _activity_types(history)
        started_at: dict[int, dt.datetime] = {}
        for event in _in_window(evidence, history):
            if event.event_type == et.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.heartbeat_timeout.ToTimedelta():
                    continue
                name = attributes.activity_type.name
                seconds = attributes.start_to_close_timeout.ToTimedelta().total_seconds()
                scheduled_count[name] += 1
                timeout_seconds[name] = max(timeout_seconds.get(name, 0.0), seconds)
                if seconds >= long_timeout:
                    workflows[name].append(history.execution.workflow_id)
            elif event.event_type == et.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                started_at[started.scheduled_event_id] = _time(event)
            elif event.event_type in (
                et.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                et.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            ):
                attributes = (
                    event.activity_task_completed_event_attributes
                    if event.event_type == et.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                    else event.activity_task_failed_event_attributes
                )
                schedule = scheduled.get(attributes.scheduled_event_id)
                start = started_at.get(attributes.scheduled_event_id)
                if schedule is None or start is None or schedule.heartbeat_timeout.ToTimedelta():
                    continue
                name = schedule.activity_type.name
                ran = (_time(event) - start).total_seconds()
                observed[name].append(ran)
                if ran >= long_observed:
                    workflows[name].append(history.execution.workflow_id)
    findings = []
    for name, count in scheduled_count.items():
        longest = max(observed.get(name, [0.0]))
        configured = timeout_seconds.get(name, 0.0)
        if configured < long_timeout and longest < long_observed:
            continue
        findings.append(
            Finding(
                kind=FindingKind.ACTIVITY_WITHOUT_HEARTBEAT,
                severity=Severity.WARNING,
                subject=Subject(SubjectKind.ACTIVITY_TYPE, name),
                evidence={
                    "activities_without_heartbeat_timeout": count,
                    "start_to_close_timeout_seconds": configured,
                    "longest_observed_seconds": round(longest, 3),
                    "histories_sampled": len(evidence.histories),
                },
                window=context.window,
                recommendation=(
                    f"Activity {name} runs up to {configured:.0f} s (start-to-close) without a "
                    "heartbeat timeout: if its worker crashes, Temporal notices only when "
                    "start-to-close expires. Call activity.heartbeat() as it progresses and set "
                    "a heartbeat_timeout of a few heartbeat intervals, so a lost attempt is "
                    "retried within seconds (heartbeat details also let the retry resume)."
                ),
                examples=_examples(workflows[name]),
            )
        )
    return findings


def workflow_task_failures(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """Workflow types whose workflow tasks fail (non-determinism, a bug in workflow code) or
    time out start-to-close (workflow code that blocks)."""
    failures: collections.Counter[str] = collections.Counter()
    timeouts: collections.Counter[str] = collections.Counter()
    causes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    messages: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    workflows: dict[str, list[str]] = collections.defaultdict(list)
    for history in evidence.histories:
        name = history.execution.workflow_type
        for event in _in_window(evidence, history):
            if event.event_type == et.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                attributes = event.workflow_task_failed_event_attributes
                if attributes.cause == WorkflowTaskFailedCause.Value(
                    "WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE"
                ):
                    continue  # the server moving a task off a gone worker, not a failure
                failures[name] += 1
                causes[name][_cause_name(attributes.cause)] += 1
                messages[name][attributes.failure.message] += 1
                workflows[name].append(history.execution.workflow_id)
            elif event.event_type == et.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                attributes = event.workflow_task_timed_out_event_attributes
                # Schedule-to-start timeouts are sticky misses (sticky_cache_too_small).
                if attributes.timeout_type == workflow_pb2.TIMEOUT_TYPE_START_TO_CLOSE:
                    timeouts[name] += 1
                    workflows[name].append(history.execution.workflow_id)
    minimum = knob(context, "workflow_task_min_failures", WORKFLOW_TASK_MIN_FAILURES)
    findings = []
    for name in {*failures, *timeouts}:
        if failures[name] + timeouts[name] < minimum:
            continue
        cause, _ = _dominant(causes[name])
        message, _ = _dominant(messages[name])
        non_deterministic = cause == "NON_DETERMINISTIC_ERROR"
        if non_deterministic:
            advice = (
                "The workflow code no longer replays its history (non-determinism, often after "
                "a deploy): put the change behind workflow.patched(), or version the workers, "
                "and replay recent histories in CI before deploying."
            )
        elif failures[name]:
            advice = (
                "The workflow code raises while running a task: the workflow is stuck, retried "
                "task after task, until the code is fixed and deployed."
            )
        else:
            advice = ""
        if timeouts[name]:
            advice += (
                " Workflow tasks timed out: workflow code blocks (sleeps, I/O, heavy CPU) "
                "instead of yielding; move that work into activities."
            )
        findings.append(
            Finding(
                kind=FindingKind.WORKFLOW_TASK_FAILURES,
                severity=Severity.CRITICAL,
                subject=Subject(SubjectKind.WORKFLOW_TYPE, name),
                evidence={
                    "workflow_task_failures": failures[name],
                    "workflow_task_timeouts": timeouts[name],
                    "workflows_affected": len(set(workflows[name])),
                    "dominant_cause": cause,
                    "dominant_failure": message,
                    "histories_sampled": len(evidence.histories),
                },
                window=context.window,
                recommendation=advice.strip(),
                examples=_examples(workflows[name]),
            )
        )
    return findings


def _cause_name(cause: int) -> str:
    try:
        name = WorkflowTaskFailedCause.Name(WorkflowTaskFailedCause.ValueType(cause))
        return name.removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
    except ValueError:
        return str(cause)


def histories_near_limit(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """Open executions whose history (events or bytes, from visibility) passed the server's
    warning level: the hard limit terminates them."""
    warn_events = knob(context, "history_warn_events", HISTORY_WARN_EVENTS)
    warn_bytes = knob(context, "history_warn_bytes", HISTORY_WARN_BYTES)
    limit_events = knob(context, "history_limit_events", HISTORY_LIMIT_EVENTS)
    limit_bytes = knob(context, "history_limit_bytes", HISTORY_LIMIT_BYTES)
    critical = knob(context, "history_critical_share", HISTORY_CRITICAL_SHARE)
    lengths = {h.execution.key: len(h.events) for h in evidence.histories if h.complete}
    findings = []
    for execution in evidence.executions:
        if not execution.running:
            continue
        events = max(execution.history_length, lengths.get(execution.key, 0))
        size = execution.history_size_bytes
        if events < warn_events and size < warn_bytes:
            continue
        share = max(events / limit_events, size / limit_bytes)
        findings.append(
            Finding(
                kind=FindingKind.HISTORY_NEAR_LIMIT,
                severity=Severity.CRITICAL if share >= critical else Severity.WARNING,
                subject=Subject(SubjectKind.WORKFLOW_ID, execution.workflow_id),
                evidence={
                    "history_events": events,
                    "history_bytes": size,
                    "limit_events": int(limit_events),
                    "limit_bytes": int(limit_bytes),
                    "share_of_limit": round(share, 3),
                    "workflow_type": execution.workflow_type,
                },
                window=context.window,
                recommendation=(
                    f"Workflow {execution.workflow_id} ({execution.workflow_type}) has "
                    f"{events} events and {size} bytes of history, {round(share * 100)}% of the "
                    "limit at which Temporal terminates it. Call continue-as-new (when "
                    "workflow.info().is_continue_as_new_suggested() says so) to carry its "
                    "state into a fresh history; keep large payloads out of it."
                ),
                examples=(execution.workflow_id,),
            )
        )
    return findings


def hot_workflows(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """Executions receiving signals and updates at a rate near what one execution sustains:
    all of them go through the one history shard and workflow task queue of that execution."""
    per_second = knob(context, "hot_workflow_per_second", HOT_WORKFLOW_PER_SECOND)
    bucket = knob(context, "hot_workflow_bucket_seconds", HOT_WORKFLOW_BUCKET_SECONDS)
    minimum = knob(context, "hot_workflow_min_messages", HOT_WORKFLOW_MIN_MESSAGES)
    findings = []
    for history in evidence.histories:
        signals = updates = 0
        buckets: collections.Counter[int] = collections.Counter()
        for event in _in_window(evidence, history):
            if event.event_type == et.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signals += 1
            elif event.event_type == et.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                updates += 1
            else:
                continue
            buckets[int(_time(event).timestamp() // bucket)] += 1
        if signals + updates < minimum or not buckets:
            continue
        peak = max(buckets.values()) / bucket
        if peak < per_second:
            continue
        execution = history.execution
        findings.append(
            Finding(
                kind=FindingKind.HOT_WORKFLOW,
                severity=Severity.WARNING,
                subject=Subject(SubjectKind.WORKFLOW_ID, execution.workflow_id),
                evidence={
                    "signals": signals,
                    "updates": updates,
                    "peak_per_second": round(peak, 2),
                    "threshold_per_second": per_second,
                    "bucket_seconds": bucket,
                    "workflow_type": execution.workflow_type,
                },
                window=context.window,
                recommendation=(
                    f"Workflow {execution.workflow_id} receives up to {peak:.1f} signals and "
                    "updates per second: one execution processes them one workflow task at a "
                    "time, so senders queue up and its history grows fast. Spread the traffic "
                    "over several workflows (shard by key), batch messages, or keep the "
                    "high-rate data out of the workflow."
                ),
                examples=(execution.workflow_id,),
            )
        )
    return findings


def sticky_cache_too_small(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """Task queues whose workflows' later workflow tasks go to the normal queue (the worker
    that ran the previous task no longer had the workflow cached, so it replays the whole
    history) or time out schedule-to-start on the sticky queue."""
    tasks: collections.Counter[str] = collections.Counter()
    misses: collections.Counter[str] = collections.Counter()
    sticky_timeouts: collections.Counter[str] = collections.Counter()
    workflows: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for history in evidence.histories:
        queue = history.execution.task_queue
        first = True
        after_failure = False
        for event in history.events:
            kind = event.event_type
            if kind == et.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                scheduled = event.workflow_task_scheduled_event_attributes
                normal = scheduled.task_queue.kind != task_queue_pb2.TASK_QUEUE_KIND_STICKY
                if not first and not after_failure and _time(event) >= evidence.since:
                    tasks[queue] += 1
                    if normal:
                        misses[queue] += 1
                        workflows[queue][history.execution.workflow_id] += 1
                first = False
                after_failure = False
            elif kind == et.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                attributes = event.workflow_task_timed_out_event_attributes
                if attributes.timeout_type == workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_START:
                    if _time(event) >= evidence.since:
                        sticky_timeouts[queue] += 1
                else:
                    after_failure = True
            elif kind == et.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                after_failure = True
    min_tasks = knob(context, "sticky_miss_min_tasks", STICKY_MISS_MIN_TASKS)
    min_rate = knob(context, "sticky_miss_min_rate", STICKY_MISS_MIN_RATE)
    findings = []
    for queue, count in tasks.items():
        rate = misses[queue] / count
        if count < min_tasks or rate < min_rate:
            continue
        findings.append(
            Finding(
                kind=FindingKind.STICKY_CACHE_TOO_SMALL,
                severity=Severity.WARNING,
                subject=Subject(SubjectKind.TASK_QUEUE, queue),
                evidence={
                    "workflow_tasks": count,
                    "sticky_misses": misses[queue],
                    "sticky_miss_rate": round(rate, 3),
                    "sticky_schedule_to_start_timeouts": sticky_timeouts[queue],
                    "histories_sampled": len(evidence.histories),
                },
                window=context.window,
                recommendation=(
                    f"{round(rate * 100)}% of the workflow tasks on {queue} after the first "
                    "missed the worker's cache: each miss replays the whole history. Raise the "
                    "worker's max_cached_workflows (sticky cache) to cover the workflows open at "
                    "once per worker (memory permitting), or add workers; keep workers running "
                    "rather than restarting them often."
                ),
                examples=_examples(w for w, _ in workflows[queue].most_common()),
            )
        )
    return findings


def _monthly(actions_in_window: float, context: AnalysisContext) -> float:
    return actions_in_window * (_MONTH / context.window.duration)


def short_timer_polling(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """Workflow types that poll with loops of short timers: each timer is a billable action
    and a workflow task."""
    short = knob(context, "short_timer_seconds", SHORT_TIMER_SECONDS)
    minimum = knob(context, "short_timer_min_per_execution", SHORT_TIMER_MIN_PER_EXECUTION)
    timers: collections.Counter[str] = collections.Counter()
    durations: dict[str, list[float]] = collections.defaultdict(list)
    sampled: collections.Counter[str] = collections.Counter()
    polling: dict[str, list[str]] = collections.defaultdict(list)
    for history in evidence.histories:
        name = history.execution.workflow_type
        sampled[name] += 1
        seconds = [
            event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
            for event in _in_window(evidence, history)
            if event.event_type == et.EVENT_TYPE_TIMER_STARTED
        ]
        short_ones = [s for s in seconds if s <= short]
        if len(short_ones) >= minimum:
            timers[name] += len(short_ones)
            durations[name] += short_ones
            polling[name].append(history.execution.workflow_id)
    findings = []
    for name, count in timers.items():
        scale = evidence.executions_by_type.get(name, sampled[name]) / sampled[name]
        estimated = count * max(1.0, scale)
        monthly = _monthly(estimated, context)
        evidence_numbers: dict[str, int | float | str] = {
            "executions_polling": len(polling[name]),
            "executions_sampled": sampled[name],
            "short_timers": count,
            "median_timer_seconds": round(statistics.median(durations[name]), 3),
            "estimated_timer_actions": round(estimated),
            "estimated_monthly_actions": round(monthly),
        }
        cost = ""
        if context.price_per_action:
            monthly_cost = Decimal(round(monthly)) * context.price_per_action
            evidence_numbers["estimated_monthly_cost"] = float(round(monthly_cost, 2))
            evidence_numbers["currency"] = context.currency
            cost = f" (about {monthly_cost:.2f} {context.currency} a month)"
        findings.append(
            Finding(
                kind=FindingKind.SHORT_TIMER_POLLING,
                severity=Severity.WARNING,
                subject=Subject(SubjectKind.WORKFLOW_TYPE, name),
                evidence=evidence_numbers,
                window=context.window,
                recommendation=(
                    f"Workflow {name} polls with short timers (median "
                    f"{statistics.median(durations[name]):.1f} s): about {round(monthly)} timer "
                    f"actions a month{cost}, and a workflow task each. Wait for a signal "
                    "instead, back off exponentially, or poll from one activity that loops "
                    "and heartbeats."
                ),
                examples=_examples(polling[name]),
            )
        )
    return findings


def history_actions(history: HistorySample, since: dt.datetime) -> tuple[int, dict[str, int]]:
    """Billable actions an execution's events show in the window (Temporal Cloud's action
    definitions, as billing's ``ACTION_KINDS`` maps the cell's counter): the workflow's total,
    and per activity type. Heartbeats and queries leave no event: not counted here."""
    total = 0
    by_activity: collections.Counter[str] = collections.Counter()
    scheduled = _activity_types(history)
    marker_tasks: set[int] = set()
    for event in history.events:
        if _time(event) < since:
            continue
        kind = event.event_type
        if kind == et.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            # A child's start is its parent's action (two), a new run's its ContinueAsNew.
            if not started.parent_workflow_execution.workflow_id and not (
                started.continued_execution_run_id
            ):
                total += 1
        elif kind in _ONE_ACTION:
            total += 1
        elif kind == et.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            total += 2
        elif kind == et.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            total += 1
            by_activity[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
        elif kind == et.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            retries = max(0, started.attempt - 1)
            total += retries
            schedule = scheduled.get(started.scheduled_event_id)
            if schedule is not None and retries:
                by_activity[schedule.activity_type.name] += retries
        elif kind == et.EVENT_TYPE_MARKER_RECORDED:
            # All local activities (markers) of one workflow task are one action.
            task = event.marker_recorded_event_attributes.workflow_task_completed_event_id
            if task not in marker_tasks:
                marker_tasks.add(task)
                total += 1
    return total, dict(by_activity)


_ONE_ACTION = frozenset(
    {
        et.EVENT_TYPE_TIMER_STARTED,
        et.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        et.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        et.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        et.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        et.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    }
)


def action_spend(evidence: EventEvidence, context: AnalysisContext) -> list[Finding]:
    """The workflow and activity types that spend most of the namespace's actions: actions
    counted in the sampled histories, scaled to each workflow type's executions in the window,
    then applied to metering's count (when given) and the account's price."""
    sampled: collections.Counter[str] = collections.Counter()
    per_type: dict[str, float] = collections.defaultdict(float)
    per_activity: dict[str, float] = collections.defaultdict(float)
    examples: dict[str, list[str]] = collections.defaultdict(list)
    activity_examples: dict[str, list[str]] = collections.defaultdict(list)
    counted = [(h, *history_actions(h, evidence.since)) for h in evidence.histories]
    for history, _, _ in counted:
        sampled[history.execution.workflow_type] += 1
    for history, total, activities in counted:
        name = history.execution.workflow_type
        scale = max(1.0, evidence.executions_by_type.get(name, sampled[name]) / sampled[name])
        per_type[name] += total * scale
        examples[name].append(history.execution.workflow_id)
        for activity_name, actions in activities.items():
            per_activity[activity_name] += actions * scale
            activity_examples[activity_name].append(history.execution.workflow_id)
    estimated_total = sum(per_type.values())
    if not estimated_total:
        return []
    min_share = knob(context, "action_spend_min_share", ACTION_SPEND_MIN_SHARE)
    top = int(knob(context, "action_spend_top", ACTION_SPEND_TOP))
    total = context.metered_actions or round(estimated_total)
    findings = []
    for subject_kind, spend, subject_examples in (
        (SubjectKind.WORKFLOW_TYPE, per_type, examples),
        (SubjectKind.ACTIVITY_TYPE, per_activity, activity_examples),
    ):
        ranked = sorted(spend.items(), key=lambda item: -item[1])[:top]
        for name, spent in ranked:
            share = spent / estimated_total
            if share < min_share:
                continue
            in_window = share * total
            monthly = _monthly(in_window, context)
            numbers: dict[str, int | float | str] = {
                "share_of_actions": round(share, 3),
                "actions_in_window": round(in_window),
                "estimated_monthly_actions": round(monthly),
                "metered_actions_in_window": context.metered_actions,
                "histories_sampled": len(evidence.histories),
            }
            cost = ""
            if context.price_per_action:
                monthly_cost = Decimal(round(monthly)) * context.price_per_action
                numbers["estimated_monthly_cost"] = float(round(monthly_cost, 2))
                numbers["currency"] = context.currency
                cost = f", about {monthly_cost:.2f} {context.currency} a month at your price"
            what = "workflow" if subject_kind is SubjectKind.WORKFLOW_TYPE else "activity"
            findings.append(
                Finding(
                    kind=FindingKind.ACTION_SPEND,
                    severity=Severity.INFO,
                    subject=Subject(subject_kind, name),
                    evidence=numbers,
                    window=context.window,
                    recommendation=(
                        f"{what.capitalize()} type {name} spends {round(share * 100)}% of the "
                        f"namespace's actions (about {round(monthly)} a month{cost}). To spend "
                        "fewer: batch small activities (or use local activities), avoid retry "
                        "storms and short-timer polling, and signal rather than poll."
                    ),
                    examples=_examples(subject_examples[name]),
                )
            )
    return findings


def task_queue_uses(evidence: EventEvidence) -> list[TaskQueueUse]:
    """The normal task queues the namespace's workflows and activities use, from the listing
    (open workflows per workflow task queue) and the sampled histories (tasks scheduled)."""
    open_by_queue: collections.Counter[str] = collections.Counter()
    ids: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for execution in evidence.executions:
        if execution.running:
            open_by_queue[execution.task_queue] += 1
        ids[(execution.task_queue, "workflow")].append(execution.workflow_id)
    scheduled: collections.Counter[tuple[str, str]] = collections.Counter()
    for history in evidence.histories:
        for event in _in_window(evidence, history):
            if event.event_type == et.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                queue = event.workflow_task_scheduled_event_attributes.task_queue
                name = queue.normal_name or queue.name
                if queue.kind == task_queue_pb2.TASK_QUEUE_KIND_STICKY:
                    name = history.execution.task_queue
                scheduled[(name, "workflow")] += 1
            elif event.event_type == et.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.task_queue.name
                scheduled[(name, "activity")] += 1
                ids[(name, "activity")].append(history.execution.workflow_id)
    uses = []
    for name, kind in sorted({*ids, *scheduled}):
        uses.append(
            TaskQueueUse(
                name=name,
                kind="workflow" if kind == "workflow" else "activity",
                open_workflows=open_by_queue[name] if kind == "workflow" else 0,
                scheduled_in_window=scheduled[(name, kind)],
                example_workflow_ids=_examples(ids[(name, kind)]),
            )
        )
    return uses
