"""The analysis of one namespace: gathers bounded evidence from its cell and runs the detectors.

Placeholder with the contract of issue 14 (ins-events owns this module and replaces it on
merge): :class:`CellSource`, :class:`AnalysisResult` and :func:`analyse`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import grpc.aio

from controlplane.insights.findings import AnalysisContext, Finding

__all__ = ["AnalysisResult", "CellSource", "analyse"]


@dataclass(frozen=True)
class CellSource:
    """Where a namespace's evidence is read: its cell's frontend and metrics."""

    channel: grpc.aio.Channel
    # The namespace as the cell knows it (= the namespace id).
    namespace: str
    # The cell's Prometheus endpoint ("" / None: none).
    metrics_url: str | None


@dataclass
class AnalysisResult:
    findings: list[Finding]
    # RPC name -> count (plus "metrics" for scrapes).
    calls: collections.Counter[str] = field(default_factory=collections.Counter)


async def analyse(source: CellSource, context: AnalysisContext) -> AnalysisResult:
    """The findings about ``source``'s namespace over ``context.window``."""
    return AnalysisResult(findings=[], calls=collections.Counter())
