"""Insights API: a namespace's findings over a window (issue 14)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.insights import service
from controlplane.insights.schemas import AnalysisStatusOut, FindingOut, InsightsOut, SubjectOut
from controlplane.kit.deps import ReadSessionDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import InsightFinding

router = APIRouter(route_class=ApiRoute, prefix="/namespaces", tags=["insights"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


@router.get("/{namespace_id}/insights", response_model=InsightsOut, responses=Problems)
async def get_insights(
    namespace_id: str,
    session: ReadSessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_READ, read_only=True))],
    window: Annotated[str | None, Query(description="1h (default), 24h or 7d")] = None,
    include_resolved: Annotated[
        bool, Query(description="Also list findings resolved in the last 7 days")
    ] = False,
) -> InsightsOut:
    """Where the namespace's workload has a bottleneck: the findings of the insights job
    (docs/insights.md), active ones by severity, with the job's last analysis."""
    insights = await service.get(
        session, principal, namespace_id, window=window, include_resolved=include_resolved
    )
    return insights_out(insights)


def finding_out(row: InsightFinding) -> FindingOut:
    return FindingOut.model_validate(
        {
            "kind": row.kind,
            "severity": row.severity,
            "subject": SubjectOut.model_validate(
                {"kind": row.subject_kind, "name": row.subject_name}
            ),
            "window": row.window,
            "evidence": row.evidence,
            "examples": row.examples,
            "recommendation": row.recommendation,
            "first_seen": row.first_seen,
            "last_seen": row.last_seen,
            "resolved_at": row.resolved_at,
        }
    )


def insights_out(insights: service.Insights) -> InsightsOut:
    analysis = insights.analysis
    return InsightsOut(
        namespace_id=insights.namespace.id,
        window=insights.window,
        analysis=AnalysisStatusOut(
            analysed_at=analysis.analysed_at if analysis else None,
            duration_ms=analysis.duration_ms if analysis else None,
            calls=dict(analysis.calls) if analysis else {},
            error=analysis.error if analysis else None,
        ),
        findings=[finding_out(row) for row in insights.findings],
    )
