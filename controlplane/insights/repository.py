"""Stored findings: the tenant's reads (:class:`InsightsRepository`, scoped to the caller's
account) and the job's writes (:class:`SystemInsightsStore`, every namespace)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.insights.findings import Finding, Window
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import (
    AccountPlan,
    InsightAnalysis,
    InsightFinding,
    Namespace,
    UsageRecord,
)


class InsightsRepository(TenantRepository):
    """The caller's account's findings and analyses."""

    async def findings(
        self, namespace_id: str, window: Window, *, resolved_since: dt.datetime | None
    ) -> list[InsightFinding]:
        """The active findings of ``namespace_id`` over ``window`` and, with ``resolved_since``,
        those resolved since then too (unsorted: the service orders them)."""
        statement = select(InsightFinding).where(
            InsightFinding.namespace_id == namespace_id, InsightFinding.window == window.value
        )
        if resolved_since is None:
            statement = statement.where(InsightFinding.resolved_at.is_(None))
        else:
            statement = statement.where(
                or_(
                    InsightFinding.resolved_at.is_(None),
                    InsightFinding.resolved_at >= resolved_since,
                )
            )
        statement = self._scoped(statement, InsightFinding.account_id)
        return list((await self.session.execute(statement)).scalars())

    async def analysis(self, namespace_id: str, window: Window) -> InsightAnalysis | None:
        statement = self._scoped(
            select(InsightAnalysis).where(
                InsightAnalysis.namespace_id == namespace_id,
                InsightAnalysis.window == window.value,
            ),
            InsightAnalysis.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()


class SystemInsightsStore:
    """Every namespace's findings, for the insights job (and tests that seed findings)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def last_analyses(self) -> dict[tuple[str, str], dt.datetime]:
        """When each (namespace, window) was last analysed."""
        rows = await self.session.execute(
            select(
                InsightAnalysis.namespace_id, InsightAnalysis.window, InsightAnalysis.analysed_at
            )
        )
        return {(namespace_id, window): at for namespace_id, window, at in rows}

    async def record(
        self,
        namespace: Namespace,
        window: Window,
        findings: Sequence[Finding],
        *,
        now: dt.datetime,
        duration: dt.timedelta,
        calls: Mapping[str, int],
    ) -> None:
        """Store one successful analysis: a finding of a known key updates its row (active
        again if it was resolved, ``first_seen`` kept), a new key adds one, an active row whose
        key is absent from ``findings`` is resolved at ``now``."""
        by_key = {finding.key: finding for finding in findings if finding.window is window}
        rows = (
            await self.session.execute(
                select(InsightFinding).where(
                    InsightFinding.namespace_id == namespace.id,
                    InsightFinding.window == window.value,
                )
            )
        ).scalars()
        for row in rows:
            finding = by_key.pop((row.kind, row.subject_kind, row.subject_name), None)
            if finding is None:
                if row.resolved_at is None:
                    row.resolved_at = now
                continue
            _update(row, finding, now)
            row.resolved_at = None
        for finding in by_key.values():
            row = InsightFinding(
                namespace_id=namespace.id,
                account_id=namespace.account_id,
                window=window.value,
                kind=finding.kind.value,
                subject_kind=finding.subject.kind.value,
                subject_name=finding.subject.name,
                first_seen=now,
                resolved_at=None,
            )
            _update(row, finding, now)
            self.session.add(row)
        await self._status(namespace, window, now=now, duration=duration, calls=calls, error=None)
        await self.session.flush()

    async def record_failure(
        self,
        namespace: Namespace,
        window: Window,
        *,
        now: dt.datetime,
        duration: dt.timedelta,
        calls: Mapping[str, int],
        error: str,
    ) -> None:
        """Store a failed analysis: the findings stay as the last success left them."""
        await self._status(namespace, window, now=now, duration=duration, calls=calls, error=error)
        await self.session.flush()

    async def _status(
        self,
        namespace: Namespace,
        window: Window,
        *,
        now: dt.datetime,
        duration: dt.timedelta,
        calls: Mapping[str, int],
        error: str | None,
    ) -> None:
        status = await self.session.get(InsightAnalysis, (namespace.id, window.value))
        if status is None:
            status = InsightAnalysis(
                namespace_id=namespace.id, window=window.value, account_id=namespace.account_id
            )
            self.session.add(status)
        status.analysed_at = now
        status.duration_ms = int(duration.total_seconds() * 1000)
        status.calls = dict(sorted(calls.items()))
        status.error = error


def _update(row: InsightFinding, finding: Finding, now: dt.datetime) -> None:
    row.severity = finding.severity.value
    row.evidence = dict(finding.evidence)
    row.examples = list(finding.examples)
    row.recommendation = finding.recommendation
    row.last_seen = now


class InsightsContextReader:
    """What the job gives the analysis beside the cell's evidence, read from the control
    plane's tables (usage, plans) for any namespace."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def metered_actions(
        self, namespace_id: str, *, since: dt.datetime, until: dt.datetime
    ) -> int:
        """Metering's actions of ``namespace_id`` in the hours that start in [since, until)."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(UsageRecord.quantity), 0)).where(
                UsageRecord.namespace_id == namespace_id,
                UsageRecord.kind.like("actions.%"),
                UsageRecord.hour_start >= since,
                UsageRecord.hour_start < until,
            )
        )
        return int(total or 0)

    async def plan_of(self, account_id: str, at: dt.datetime) -> str | None:
        """The plan ``account_id`` is on at ``at`` (None: the operator's default plan)."""
        return await self.session.scalar(
            select(AccountPlan.plan)
            .where(AccountPlan.account_id == account_id, AccountPlan.effective_from <= at)
            .order_by(AccountPlan.effective_from.desc())
            .limit(1)
        )
