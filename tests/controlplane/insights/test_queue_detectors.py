"""The task-queue and worker detectors as pure functions over constructed evidence: each fires
on its pathology with the numbers that show it, stays quiet on a healthy queue, and turns at
its threshold (and at the override of it); the metrics reader keeps one namespace's series."""

from __future__ import annotations

import datetime as dt

import pytest

from controlplane.insights._queues import (
    THRESHOLDS,
    Poller,
    QueueEvidence,
    QueueMetrics,
    QueueState,
    TaskQueueUse,
    edit_distance,
    metric_label,
    queue_findings,
    read_queue_metrics,
)
from controlplane.insights.findings import (
    AnalysisContext,
    Finding,
    FindingKind,
    Severity,
    Subject,
    SubjectKind,
    Window,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
NAMESPACE = "shop.a1b2c"


def _context(**overrides: float) -> AnalysisContext:
    return AnalysisContext(window=Window.HOUR, now=NOW, overrides=overrides)


def _poller(seconds_ago: float, identity: str = "1@host") -> Poller:
    return Poller(identity, NOW - dt.timedelta(seconds=seconds_ago))


def _use(
    name: str, kind: str = "workflow", open_workflows: int = 3, ids: tuple[str, ...] = ("wf-1",)
) -> TaskQueueUse:
    assert kind in ("workflow", "activity")
    return TaskQueueUse(name, kind, open_workflows, 10, ids)  # type: ignore[arg-type]


def _of(kind: FindingKind, findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.kind is kind]


def _healthy(name: str = "billing") -> QueueEvidence:
    return QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use(name), _use(name, "activity", 0)),
        states=(
            QueueState(
                name, "workflow", (_poller(1),), backlog_count=0, add_rate=2, dispatch_rate=2
            ),
            QueueState(name, "activity", (_poller(1),), backlog_count=2, backlog_age_seconds=0.2),
        ),
        metrics={
            (name, "activity"): QueueMetrics(
                schedule_to_start_buckets=((0.01, 90.0), (0.1, 100.0), (float("inf"), 100.0)),
                poll_successes=100,
                poll_timeouts=5,
                pending_polls=5,
            )
        },
        metrics_scraped=True,
    )


def test_a_healthy_namespace_has_no_finding() -> None:
    assert queue_findings(_healthy(), _context()) == []


# NO_POLLERS ------------------------------------------------------------------------------------


def test_work_without_a_recent_poller_is_no_pollers_naming_the_misspelt_queue() -> None:
    evidence = QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("ordres", open_workflows=4, ids=("o-1", "o-2")),),
        states=(
            QueueState(
                "ordres", "workflow", (_poller(600),), backlog_count=4, backlog_age_seconds=30
            ),
            QueueState("orders", "workflow", (_poller(2, "7@worker"),)),
        ),
    )
    (finding,) = _of(FindingKind.NO_POLLERS, queue_findings(evidence, _context()))
    assert finding.subject == Subject(SubjectKind.TASK_QUEUE, "ordres")
    assert finding.severity is Severity.CRITICAL  # tasks wait right now
    assert finding.evidence == {
        "task_type": "workflow",
        "open_workflows": 4,
        "scheduled_in_window": 10,
        "backlog_count": 4,
        "backlog_age_seconds": 30.0,
        "seconds_since_last_poll": 600,
        "closest_polled_queue": "orders",
        "edit_distance": 1,
    }
    assert finding.examples == ("o-1", "o-2")
    assert "'orders'" in finding.recommendation
    assert "misspelt" in finding.recommendation


def test_no_pollers_hint_comes_from_the_metrics_and_stays_away_from_far_names() -> None:
    evidence = QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("payments"),),
        states=(QueueState("payments", "workflow"),),
        metrics={
            ("paymnets", "workflow"): QueueMetrics(pending_polls=2),
            ("shipping", "workflow"): QueueMetrics(pending_polls=2),
        },
    )
    (finding,) = _of(FindingKind.NO_POLLERS, queue_findings(evidence, _context()))
    assert finding.severity is Severity.WARNING  # open workflows, nothing queued yet
    assert finding.evidence["closest_polled_queue"] == "paymnets"
    assert "seconds_since_last_poll" not in finding.evidence  # never polled
    far = QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("payments"),),
        states=(QueueState("payments", "workflow"),),
        metrics={("shipping", "workflow"): QueueMetrics(pending_polls=2)},
    )
    (finding,) = _of(FindingKind.NO_POLLERS, queue_findings(far, _context()))
    assert "closest_polled_queue" not in finding.evidence
    assert "misspelt" not in finding.recommendation


def test_no_pollers_turns_at_the_stale_threshold_and_needs_work() -> None:
    def evidence(seconds_ago: float, open_workflows: int, backlog: int) -> QueueEvidence:
        return QueueEvidence(
            namespace=NAMESPACE,
            uses=(_use("q", open_workflows=open_workflows),),
            states=(QueueState("q", "workflow", (_poller(seconds_ago),), backlog_count=backlog),),
        )

    stale = THRESHOLDS["poller_stale_seconds"]
    assert not _of(FindingKind.NO_POLLERS, queue_findings(evidence(stale, 1, 0), _context()))
    assert _of(FindingKind.NO_POLLERS, queue_findings(evidence(stale + 1, 1, 0), _context()))
    # No open workflow and no backlog: nothing waits, the worker may be gone for good reason.
    assert not _of(FindingKind.NO_POLLERS, queue_findings(evidence(stale + 1, 0, 0), _context()))
    assert _of(FindingKind.NO_POLLERS, queue_findings(evidence(stale + 1, 0, 1), _context()))
    # The override moves the threshold.
    assert not _of(
        FindingKind.NO_POLLERS,
        queue_findings(evidence(stale + 1, 1, 0), _context(poller_stale_seconds=stale + 5)),
    )


def test_a_queue_without_pollers_for_both_task_types_is_one_finding() -> None:
    evidence = QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("q"), _use("q", "activity", 0)),
        states=(QueueState("q", "workflow"), QueueState("q", "activity", backlog_count=3)),
    )
    (finding,) = queue_findings(evidence, _context())
    assert finding.kind is FindingKind.NO_POLLERS
    assert finding.evidence["task_type"] == "activity"  # the worse one: tasks queued
    assert finding.severity is Severity.CRITICAL


# UNDER_PROVISIONED_WORKERS ---------------------------------------------------------------------


def _busy(backlog: int, age: float, add: float = 1.0, dispatch: float = 1.0) -> QueueEvidence:
    return QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("busy", "activity", 0, ids=("b-1",)),),
        states=(
            QueueState(
                "busy",
                "activity",
                (_poller(1),),
                backlog,
                age,
                add_rate=add,
                dispatch_rate=dispatch,
            ),
        ),
    )


def test_an_old_backlog_is_under_provisioned_workers() -> None:
    (finding,) = queue_findings(_busy(backlog=40, age=90, add=4.5, dispatch=4.0), _context())
    assert finding.kind is FindingKind.UNDER_PROVISIONED_WORKERS
    assert finding.subject == Subject(SubjectKind.TASK_QUEUE, "busy")
    assert finding.severity is Severity.WARNING
    assert finding.evidence == {
        "task_type": "activity",
        "backlog_count": 40,
        "backlog_age_seconds": 90.0,
        "tasks_add_rate": 4.5,
        "tasks_dispatch_rate": 4.0,
        "pollers": 1,
    }
    assert finding.examples == ("b-1",)
    assert "max_concurrent_activities" in finding.recommendation
    (critical,) = queue_findings(_busy(backlog=40, age=600), _context())
    assert critical.severity is Severity.CRITICAL


def test_under_provisioned_turns_at_backlog_size_age_and_growth() -> None:
    age = THRESHOLDS["backlog_age_seconds"]
    size = int(THRESHOLDS["backlog_min_tasks"])
    assert queue_findings(_busy(size, age), _context())
    assert not queue_findings(_busy(size, age - 1), _context())
    assert not queue_findings(_busy(size - 1, age * 5), _context())  # too small to matter
    # A young backlog that grows (tasks arrive faster than dispatched) is one too.
    assert queue_findings(_busy(size, 1, add=2.5, dispatch=2.0), _context())
    assert not queue_findings(_busy(size, 1, add=2.3, dispatch=2.0), _context())
    # Overrides make a small, young backlog a finding (what the real-cell test uses).
    assert queue_findings(_busy(3, 1.0), _context(backlog_min_tasks=3, backlog_age_seconds=1))


def test_a_slow_schedule_to_start_p95_confirms_a_backlog_but_never_fires_alone() -> None:
    slow = QueueMetrics(schedule_to_start_buckets=((0.5, 10.0), (2.0, 18.0), (5.0, 40.0)))
    p95 = slow.schedule_to_start_quantile_ms(0.95)
    assert p95 == pytest.approx(2000 + 3000 * (38 - 18) / (40 - 18))
    young = _busy(backlog=12, age=1)
    with_latency = QueueEvidence(
        namespace=NAMESPACE,
        uses=young.uses,
        states=young.states,
        metrics={("busy", "activity"): slow},
    )
    (finding,) = queue_findings(with_latency, _context())
    assert finding.evidence["schedule_to_start_p95_ms"] == round(p95)
    assert finding.evidence["schedule_to_start_samples"] == 40
    # The histogram counts since the cell started: without a backlog now it says nothing.
    drained = _busy(backlog=0, age=0)
    assert not queue_findings(
        QueueEvidence(NAMESPACE, drained.uses, drained.states, {("busy", "activity"): slow}),
        _context(),
    )
    # Too few samples for a p95.
    assert not queue_findings(with_latency, _context(schedule_to_start_min_samples=41))


def test_a_backlog_without_pollers_is_no_pollers_not_under_provisioned() -> None:
    evidence = _busy(backlog=50, age=900)
    orphaned = QueueEvidence(
        NAMESPACE, evidence.uses, (QueueState("busy", "activity", (), 50, 900.0),)
    )
    (finding,) = queue_findings(orphaned, _context())
    assert finding.kind is FindingKind.NO_POLLERS


# GREEDY_WORKERS --------------------------------------------------------------------------------


def _polled(
    pending: float, successes: float, timeouts: float, dispatch: float = 0.1
) -> QueueEvidence:
    return QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("reports", "activity", 0),),
        states=(
            QueueState(
                "reports", "activity", (_poller(1, "a"), _poller(2, "b")), dispatch_rate=dispatch
            ),
        ),
        metrics={
            ("reports", "activity"): QueueMetrics(
                poll_successes=successes, poll_timeouts=timeouts, pending_polls=pending
            )
        },
    )


def test_many_idle_polls_are_greedy_workers() -> None:
    (finding,) = queue_findings(_polled(pending=40, successes=10, timeouts=90), _context())
    assert finding.kind is FindingKind.GREEDY_WORKERS
    assert finding.severity is Severity.INFO
    assert finding.evidence == {
        "task_type": "activity",
        "polls_waiting": 40,
        "pollers": 2,
        "poll_success_rate": 0.1,
        "poll_success_rate_basis": "the cell's poll counters",
        "tasks_dispatch_rate": 0.1,
    }
    assert "max_concurrent_activity_task_polls" in finding.recommendation


def test_greedy_turns_at_its_thresholds_and_estimates_without_timeouts() -> None:
    min_polls = THRESHOLDS["greedy_min_polls"]
    assert not queue_findings(_polled(min_polls - 1, 10, 90), _context())  # few polls
    assert not queue_findings(_polled(40, 20, 80), _context())  # 20 % succeed: the limit
    assert queue_findings(_polled(40, 19, 81), _context())
    # No timeout counted yet: estimated from the dispatch rate (0.1/s against 40/60 s).
    (estimated,) = queue_findings(_polled(40, 5, 0, dispatch=0.1), _context())
    assert estimated.evidence["poll_success_rate_basis"] == "dispatch rate against waiting polls"
    assert estimated.evidence["poll_success_rate"] == round(0.1 / (0.1 + 40 / 60), 3)
    assert not queue_findings(_polled(40, 5, 0, dispatch=1.0), _context())


# UNUSED_QUEUE_POLLERS --------------------------------------------------------------------------


def test_pollers_on_a_queue_no_workflow_used_are_named() -> None:
    evidence = _healthy()
    with_stray = QueueEvidence(
        namespace=NAMESPACE,
        uses=evidence.uses,
        states=(
            *evidence.states,
            QueueState("billing_v0", "workflow", (_poller(3, "9@old-host"),)),
            QueueState("billing_v0", "activity", (_poller(3, "9@old-host"),)),
            QueueState("gone", "activity", (_poller(900, "3@gone"),)),  # stale pollers only
        ),
        metrics=evidence.metrics,
    )
    (finding,) = queue_findings(with_stray, _context())
    assert finding.kind is FindingKind.UNUSED_QUEUE_POLLERS
    assert finding.subject == Subject(SubjectKind.TASK_QUEUE, "billing_v0")
    assert finding.evidence == {
        "task_types": "activity,workflow",
        "pollers": 1,
        "worker_identities": "9@old-host",
    }
    assert finding.examples == ()


def test_a_used_queue_seen_under_its_metric_label_is_not_unused() -> None:
    evidence = QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("orders-v2"),),
        states=(
            QueueState("orders-v2", "workflow", (_poller(1),)),
            QueueState(metric_label("orders-v2"), "workflow", (_poller(1),)),
        ),
    )
    assert queue_findings(evidence, _context()) == []


# THROTTLING ------------------------------------------------------------------------------------


def test_throttled_requests_over_the_threshold_are_throttling() -> None:
    context = AnalysisContext(
        window=Window.HOUR,
        now=NOW,
        throttled_requests=7200,
        requests_per_second_limit=50,
        actions_per_second_limit=20,
    )
    (finding,) = queue_findings(QueueEvidence(namespace=NAMESPACE), context)
    assert finding.kind is FindingKind.THROTTLING
    assert finding.subject == Subject(SubjectKind.NAMESPACE, NAMESPACE)
    assert finding.severity is Severity.CRITICAL  # 2 refusals per second
    assert finding.evidence == {
        "throttled_requests": 7200,
        "throttled_per_second": 2.0,
        "requests_per_second_limit": 50,
        "actions_per_second_limit": 20,
    }
    assert "50 requests/s" in finding.recommendation
    assert "higher limits" in finding.recommendation


def test_throttling_turns_at_its_thresholds() -> None:
    minimum = int(THRESHOLDS["throttling_min_requests"])

    def found(count: int, **overrides: float) -> list[Finding]:
        context = AnalysisContext(
            window=Window.HOUR, now=NOW, throttled_requests=count, overrides=overrides
        )
        return queue_findings(QueueEvidence(namespace=NAMESPACE), context)

    assert not found(minimum - 1)
    (warning,) = found(minimum)
    assert warning.severity is Severity.WARNING
    assert "requests_per_second_limit" not in warning.evidence  # unknown limits are left out
    assert found(1, throttling_min_requests=1)


# The metrics reader ----------------------------------------------------------------------------


def _series(family: str, namespace: str, partition: str, kind: str, queue: str, *extra: str) -> str:
    labels = [
        f'namespace="{namespace}"',
        f'partition="{partition}"',
        f'task_type="{kind}"',
        f'taskqueue="{queue}"',
        *extra,
    ]
    return f"{family}{{{','.join(labels)}}}"


_SHOP = "shop_a1b2c"
_LATENCY = "task_schedule_to_start_latency"
_EXPOSITION = "\n".join(
    [
        "# HELP pending_polls pending_polls gauge",
        "# TYPE pending_polls gauge",
        _series("pending_polls", _SHOP, "0", "Activity", "busy") + " 2",
        _series("pending_polls", _SHOP, "1", "Activity", "busy") + " 3",
        _series("pending_polls", _SHOP, "__sticky__", "Workflow", "busy") + " 4",
        _series("pending_polls", _SHOP, "0", "Activity", "temporal_sys_per_ns_tq") + " 2",
        _series("pending_polls", "rival_z9y8x", "0", "Activity", "secret") + " 2",
        "# HELP poll_success poll_success counter",
        "# TYPE poll_success counter",
        _series("poll_success", _SHOP, "0", "Activity", "busy") + " 7",
        _series("poll_success", _SHOP, "3", "Activity", "busy") + " 1",
        "# HELP poll_success_sync poll_success_sync counter",
        "# TYPE poll_success_sync counter",
        _series("poll_success_sync", _SHOP, "0", "Activity", "busy") + " 6",
        "# HELP poll_timeouts poll_timeouts counter",
        "# TYPE poll_timeouts counter",
        _series("poll_timeouts", _SHOP, "0", "Activity", "busy") + " 5",
        f"# HELP {_LATENCY} {_LATENCY} histogram",
        f"# TYPE {_LATENCY} histogram",
        _series(f"{_LATENCY}_bucket", _SHOP, "__normal__", "Activity", "busy", 'le="0.1"') + " 1",
        _series(f"{_LATENCY}_bucket", _SHOP, "__normal__", "Activity", "busy", 'le="1"') + " 3",
        _series(f"{_LATENCY}_bucket", _SHOP, "__normal__", "Activity", "busy", 'le="+Inf"') + " 4",
        _series(f"{_LATENCY}_sum", _SHOP, "__normal__", "Activity", "busy") + " 9.5",
        _series(f"{_LATENCY}_count", _SHOP, "__normal__", "Activity", "busy") + " 4",
        "# HELP action action counter",
        "# TYPE action counter",
        'action{namespace="shop_a1b2c",action_type="workflow_started"} 3',
        "",
    ]
)


def test_the_metrics_reader_keeps_this_namespaces_normal_queues() -> None:
    metrics = read_queue_metrics(_EXPOSITION, NAMESPACE)
    assert metrics == {
        ("busy", "activity"): QueueMetrics(
            schedule_to_start_buckets=((0.1, 1.0), (1.0, 3.0), (float("inf"), 4.0)),
            schedule_to_start_sum_seconds=9.5,
            poll_successes=8.0,
            poll_timeouts=5.0,
            pending_polls=5.0,
        )
    }
    # The other tenant's queue is not even parsed for it, and is its own when asked.
    assert set(read_queue_metrics(_EXPOSITION, "rival.z9y8x")) == {("secret", "activity")}
    # A rank in the +Inf bucket answers the largest finite bound.
    assert metrics[("busy", "activity")].schedule_to_start_quantile_ms(0.95) == 1000.0


def test_edit_distance_counts_a_transposition_as_one_edit() -> None:
    assert edit_distance("ordres", "orders") == 1
    assert edit_distance("orders", "orders") == 0
    assert edit_distance("payments", "paymnets") == 1
    assert edit_distance("billing", "billing-v2") == 3
    assert edit_distance("", "abc") == 3


def test_a_long_worker_identity_is_cut_in_the_evidence() -> None:
    evidence = QueueEvidence(
        namespace=NAMESPACE,
        states=(QueueState("stray", "activity", (_poller(1, "w" * 500),)),),
    )
    (finding,) = queue_findings(evidence, _context())
    assert finding.evidence["worker_identities"] == "w" * 80


def test_a_naive_now_is_read_as_utc() -> None:
    evidence = QueueEvidence(
        namespace=NAMESPACE,
        uses=(_use("q"),),
        states=(QueueState("q", "workflow", (_poller(600),)),),
    )
    naive = AnalysisContext(window=Window.HOUR, now=NOW.replace(tzinfo=None))
    (finding,) = queue_findings(evidence, naive)
    assert finding.evidence["seconds_since_last_poll"] == 600
