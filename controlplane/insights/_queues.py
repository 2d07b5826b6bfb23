"""Task-queue and worker detectors (owned by the task-queue helper; this is the stub the
analysis calls until that part lands: no evidence, no findings)."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from controlplane.insights.findings import AnalysisContext, Finding

if TYPE_CHECKING:
    from controlplane.insights.analysis import CellSource


@dataclass(frozen=True)
class TaskQueueUse:
    name: str
    kind: Literal["workflow", "activity"]
    open_workflows: int
    scheduled_in_window: int
    example_workflow_ids: tuple[str, ...]


@dataclass(frozen=True)
class QueueEvidence:
    pass


async def queue_evidence(
    source: CellSource,
    task_queues: Sequence[TaskQueueUse],
    context: AnalysisContext,
    calls: collections.Counter[str],
) -> QueueEvidence:
    return QueueEvidence()


def queue_findings(evidence: QueueEvidence, context: AnalysisContext) -> list[Finding]:
    return []
