"""What a finding is: the contract between the detectors (``analysis``) and everything that
stores and shows findings (store, job, API, CLI, console).

A finding names one pathology (``kind``) of one ``subject`` (a task queue, a workflow or
activity type, a workflow id, or the namespace), with the numbers that show it over a
``window``, up to :data:`MAX_EXAMPLES` workflow ids to look at, and a recommendation written
for the developer who owns the workers. The store keys a finding by :meth:`Finding.key`: the
same key seen again updates ``last_seen``; a key the detectors no longer report is resolved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "MAX_EXAMPLES",
    "AnalysisContext",
    "Evidence",
    "Finding",
    "FindingKind",
    "Severity",
    "Subject",
    "SubjectKind",
    "Window",
]

MAX_EXAMPLES = 5


class Window(StrEnum):
    """How far back a finding's evidence reaches (the API's ``window`` parameter)."""

    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"

    @property
    def duration(self) -> dt.timedelta:
        return {
            Window.HOUR: dt.timedelta(hours=1),
            Window.DAY: dt.timedelta(days=1),
            Window.WEEK: dt.timedelta(days=7),
        }[self]


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SubjectKind(StrEnum):
    NAMESPACE = "namespace"
    TASK_QUEUE = "task_queue"
    WORKFLOW_TYPE = "workflow_type"
    ACTIVITY_TYPE = "activity_type"
    WORKFLOW_ID = "workflow_id"


class FindingKind(StrEnum):
    """One value per detector outcome (docs/insights.md describes each)."""

    # Task queues and workers.
    UNDER_PROVISIONED_WORKERS = "under_provisioned_workers"
    NO_POLLERS = "no_pollers"
    GREEDY_WORKERS = "greedy_workers"
    UNUSED_QUEUE_POLLERS = "unused_queue_pollers"
    STICKY_CACHE_TOO_SMALL = "sticky_cache_too_small"
    THROTTLING = "throttling"
    # Events of workflows and activities.
    ACTIVITY_FAILURE_STORM = "activity_failure_storm"
    ACTIVITY_WITHOUT_HEARTBEAT = "activity_without_heartbeat"
    WORKFLOW_TASK_FAILURES = "workflow_task_failures"
    HISTORY_NEAR_LIMIT = "history_near_limit"
    HOT_WORKFLOW = "hot_workflow"
    # Cost.
    SHORT_TIMER_POLLING = "short_timer_polling"
    ACTION_SPEND = "action_spend"


@dataclass(frozen=True)
class Subject:
    kind: SubjectKind
    name: str


# Evidence: numbers (and a few short strings, such as the dominant failure message) that show
# the pathology; each detector documents its keys. Always covers ``Finding.window``.
Evidence = Mapping[str, int | float | str]


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    severity: Severity
    subject: Subject
    evidence: Evidence
    window: Window
    recommendation: str
    # At most MAX_EXAMPLES workflow ids (the workflows to look at first), most telling first.
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.examples) > MAX_EXAMPLES:
            raise ValueError(f"a finding carries at most {MAX_EXAMPLES} example workflow ids")

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes a finding the same one when seen again (kind and subject)."""
        return (self.kind.value, self.subject.kind.value, self.subject.name)


@dataclass(frozen=True)
class AnalysisContext:
    """What the control plane knows about a namespace that its cell does not: given to the
    analysis by the job (controlplane.insights' store/job side fills it)."""

    window: Window
    now: dt.datetime
    # RESOURCE_EXHAUSTED answers the gateways gave this namespace's callers in the window.
    throttled_requests: int = 0
    # The namespace's rate limits as published to the gateways (0: unknown).
    requests_per_second_limit: float = 0.0
    actions_per_second_limit: float = 0.0
    # Metering's actions for the namespace in the window, and the account's price per action
    # (its plan's unit price; the cost finding multiplies the per-type share by it).
    metered_actions: int = 0
    price_per_action: Decimal = Decimal(0)
    currency: str = "USD"
    # Extra knobs for tests and the bench (thresholds documented in docs/insights.md).
    overrides: Mapping[str, float] = field(default_factory=dict)
