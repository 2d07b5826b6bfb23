"""Reading a namespace's findings: the namespace's read permission through the one policy,
another account's namespace (or one the caller may not read) not found."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal
from controlplane.insights.findings import Severity, Window
from controlplane.insights.repository import InsightsRepository
from controlplane.kit.db import utcnow
from controlplane.kit.errors import InvalidField
from controlplane.models import InsightAnalysis, InsightFinding, Namespace
from controlplane.namespaces import service as namespaces

# How long a resolved finding is still listed with include_resolved.
RESOLVED_SHOWN_FOR = dt.timedelta(days=7)
_SEVERITY_ORDER = {Severity.CRITICAL.value: 0, Severity.WARNING.value: 1, Severity.INFO.value: 2}
WINDOWS = ", ".join(window.value for window in Window)


@dataclass(frozen=True)
class Insights:
    namespace: Namespace
    window: Window
    analysis: InsightAnalysis | None
    findings: list[InsightFinding]


def parse_window(value: str | None) -> Window:
    """``value`` as a :class:`Window` (default 1h), or 400 naming the field."""
    if value is None or value == "":
        return Window.HOUR
    try:
        return Window(value)
    except ValueError:
        raise InvalidField(
            f"window must be one of {WINDOWS}, got {value[:20]!r}", field="window"
        ) from None


def ordered(findings: list[InsightFinding]) -> list[InsightFinding]:
    """Active before resolved; then by severity (critical first), the most recently seen
    first."""
    return sorted(
        findings,
        key=lambda row: (
            row.resolved_at is not None,
            _SEVERITY_ORDER.get(row.severity, 3),
            -row.last_seen.timestamp(),
            row.kind,
            row.subject_name,
        ),
    )


async def get(
    session: AsyncSession,
    principal: Principal,
    namespace_id: str,
    *,
    window: str | None,
    include_resolved: bool = False,
    now: dt.datetime | None = None,
) -> Insights:
    """The findings of ``namespace_id`` over ``window`` and its last analysis."""
    parsed = parse_window(window)
    namespace = await namespaces.get(session, principal, namespace_id)
    repository = InsightsRepository(session, principal)
    since = (now or utcnow()) - RESOLVED_SHOWN_FOR if include_resolved else None
    findings = await repository.findings(namespace.id, parsed, resolved_since=since)
    analysis = await repository.analysis(namespace.id, parsed)
    return Insights(namespace, parsed, analysis, ordered(findings))
