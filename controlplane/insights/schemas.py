from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from controlplane.insights.findings import FindingKind, Severity, SubjectKind, Window


class SubjectOut(BaseModel):
    kind: SubjectKind
    name: str = Field(description="The task queue, type or workflow id the finding is about")


class FindingOut(BaseModel):
    """One finding: a pathology of one subject, shown by numbers over ``window``."""

    kind: FindingKind
    severity: Severity
    subject: SubjectOut
    window: Window = Field(description="What the evidence covers: the last 1h, 24h or 7d")
    evidence: dict[str, int | float | str] = Field(
        description="The numbers that show it (docs/insights.md names each detector's keys)"
    )
    examples: list[str] = Field(description="Up to 5 workflow ids to look at first")
    recommendation: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    resolved_at: dt.datetime | None = Field(
        description="When the evidence went away (null while the finding is active)"
    )


class AnalysisStatusOut(BaseModel):
    """The namespace's last analysis over the window (null fields: never analysed yet)."""

    analysed_at: dt.datetime | None
    duration_ms: int | None
    calls: dict[str, int] = Field(description="Calls made to the cell, by RPC name")
    error: str | None = Field(description="Why the last analysis failed (null: it succeeded)")


class InsightsOut(BaseModel):
    namespace_id: str
    window: Window
    analysis: AnalysisStatusOut
    findings: list[FindingOut] = Field(
        description="Active findings by severity (critical first), then the most recently "
        "seen; with include_resolved, those resolved in the last 7 days follow"
    )
