"""The event detectors as pure functions: thresholds, overrides, the window, and the cases a
real cell makes slow to reproduce (sticky timeouts, histories near the hard limit)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from temporalio.api.enums.v1 import event_type_pb2 as et
from temporalio.api.enums.v1 import task_queue_pb2, workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb2

from controlplane.insights._events import (
    EventEvidence,
    ExecutionSample,
    HistorySample,
    activity_failure_storms,
    histories_near_limit,
    history_actions,
    short_timer_polling,
    sticky_cache_too_small,
)
from controlplane.insights.findings import AnalysisContext, FindingKind, Severity, Window

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
CONTEXT = AnalysisContext(window=Window.HOUR, now=NOW)


def _execution(
    workflow_id: str = "wf", *, running: bool = False, length: int = 0
) -> ExecutionSample:
    return ExecutionSample(
        workflow_id=workflow_id,
        run_id="run",
        workflow_type="Flow",
        task_queue="q",
        running=running,
        history_length=length,
        history_size_bytes=0,
        start_time=NOW - dt.timedelta(minutes=30),
    )


def _event(event_id: int, event_type: int, minutes_ago: float = 10, **attributes: object) -> object:
    event = history_pb2.HistoryEvent(event_id=event_id, event_type=event_type, **attributes)  # type: ignore[arg-type]
    event.event_time.FromDatetime(NOW - dt.timedelta(minutes=minutes_ago))
    return event


def _evidence(*histories: HistorySample, counts: dict[str, int] | None = None) -> EventEvidence:
    return EventEvidence(
        executions=tuple(h.execution for h in histories),
        histories=histories,
        executions_by_type=counts or {},
        since=NOW - Window.HOUR.duration,
    )


def _retried_activity(attempt: int, minutes_ago: float = 10) -> HistorySample:
    scheduled = history_pb2.ActivityTaskScheduledEventAttributes()
    scheduled.activity_type.name = "charge"
    started = history_pb2.ActivityTaskStartedEventAttributes(scheduled_event_id=1, attempt=attempt)
    started.last_failure.message = "gateway down"
    return HistorySample(
        execution=_execution(),
        events=(
            _event(
                1,
                et.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                minutes_ago,
                activity_task_scheduled_event_attributes=scheduled,
            ),
            _event(
                2,
                et.EVENT_TYPE_ACTIVITY_TASK_STARTED,
                minutes_ago,
                activity_task_started_event_attributes=started,
            ),
        ),
        complete=True,
    )


def test_a_failure_storm_needs_enough_failed_attempts_and_its_threshold_can_be_lowered() -> None:
    # Nine retries before a success: 9 failed attempts of 10, under the 10-attempt floor.
    evidence = _evidence(_retried_activity(10))
    assert activity_failure_storms(evidence, CONTEXT) == []
    lowered = AnalysisContext(
        window=Window.HOUR, now=NOW, overrides={"activity_failure_min_attempts": 5}
    )
    (storm,) = activity_failure_storms(evidence, lowered)
    assert storm.kind is FindingKind.ACTIVITY_FAILURE_STORM
    assert storm.severity is Severity.CRITICAL  # 90% of attempts failed
    assert storm.evidence["failed_attempts"] == 9
    assert storm.evidence["dominant_failure"] == "gateway down"


def test_events_before_the_window_are_not_evidence() -> None:
    old = _evidence(_retried_activity(50, minutes_ago=90))
    assert activity_failure_storms(old, CONTEXT) == []


def test_history_near_limit_is_critical_past_80_percent_and_ignores_closed_executions() -> None:
    evidence = EventEvidence(
        executions=(
            _execution("big", running=True, length=45_000),
            _execution("warned", running=True, length=11_000),
            _execution("small", running=True, length=10_000),
            _execution("closed", running=False, length=50_000),
        ),
        histories=(),
        executions_by_type={},
        since=NOW - Window.HOUR.duration,
    )
    found = {f.subject.name: f.severity for f in histories_near_limit(evidence, CONTEXT)}
    assert found == {"big": Severity.CRITICAL, "warned": Severity.WARNING}


def test_sticky_schedule_to_start_timeouts_and_misses_make_the_finding() -> None:
    def scheduled(event_id: int, kind: int) -> object:
        attributes = history_pb2.WorkflowTaskScheduledEventAttributes()
        attributes.task_queue.name = (
            "q" if kind == task_queue_pb2.TASK_QUEUE_KIND_NORMAL else "sticky"
        )
        attributes.task_queue.kind = kind  # type: ignore[assignment]
        return _event(
            event_id,
            et.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            workflow_task_scheduled_event_attributes=attributes,
        )

    timed_out = history_pb2.WorkflowTaskTimedOutEventAttributes(
        timeout_type=workflow_pb2.TIMEOUT_TYPE_SCHEDULE_TO_START
    )
    normal, sticky = task_queue_pb2.TASK_QUEUE_KIND_NORMAL, task_queue_pb2.TASK_QUEUE_KIND_STICKY
    events = [scheduled(1, normal)]
    for i in range(10):  # each later task: sticky, timed out, then rescheduled on the normal queue
        base = 10 + i * 3
        events += [
            scheduled(base, sticky),
            _event(
                base + 1,
                et.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
                workflow_task_timed_out_event_attributes=timed_out,
            ),
            scheduled(base + 2, normal),
        ]
    evidence = _evidence(HistorySample(_execution(), tuple(events), True))
    (finding,) = sticky_cache_too_small(evidence, CONTEXT)
    assert finding.evidence["sticky_schedule_to_start_timeouts"] == 10
    assert finding.evidence["sticky_misses"] == 10
    assert finding.evidence["workflow_tasks"] == 20


def test_timer_polling_cost_scales_to_the_types_executions_and_the_month() -> None:
    timer = history_pb2.TimerStartedEventAttributes()
    timer.start_to_fire_timeout.FromTimedelta(dt.timedelta(seconds=5))
    events = tuple(
        _event(i, et.EVENT_TYPE_TIMER_STARTED, timer_started_event_attributes=timer)
        for i in range(1, 31)
    )
    evidence = _evidence(HistorySample(_execution(), events, True), counts={"Flow": 10})
    priced = AnalysisContext(window=Window.HOUR, now=NOW, price_per_action=Decimal("0.00005"))
    (finding,) = short_timer_polling(evidence, priced)
    # 30 timers in the one sampled execution of ten: 300 an hour, 216,000 in 30 days.
    assert finding.evidence["estimated_timer_actions"] == 300
    assert finding.evidence["estimated_monthly_actions"] == 216_000
    assert finding.evidence["estimated_monthly_cost"] == 10.8
    assert history_actions(evidence.histories[0], evidence.since) == (30, {})
