"""Findings seeded through the insights store, for the console's insights tests."""

from __future__ import annotations

import datetime as dt

from support import StratusUp

from controlplane.insights.findings import (
    Finding,
    FindingKind,
    Severity,
    Subject,
    SubjectKind,
    Window,
)
from controlplane.insights.repository import SystemInsightsStore
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import Namespace

HOSTILE = '<script>alert("q")</script>'
SEEN = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


async def seed_findings(stratus: StratusUp, namespace_id: str) -> None:
    findings = [
        Finding(
            kind=FindingKind.ACTIVITY_FAILURE_STORM,
            severity=Severity.WARNING,
            subject=Subject(SubjectKind.ACTIVITY_TYPE, "ChargeCard"),
            evidence={"failures": 120, "dominant_failure": HOSTILE},
            window=Window.HOUR,
            recommendation="fix the card gateway timeout",
            examples=("order-7",),
        ),
        Finding(
            kind=FindingKind.NO_POLLERS,
            severity=Severity.CRITICAL,
            subject=Subject(SubjectKind.TASK_QUEUE, HOSTILE),
            evidence={"open_workflows": 3},
            window=Window.HOUR,
            recommendation="start a worker polling the queue",
            examples=('order "1"', "order-2"),
        ),
    ]
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            namespace = await session.get(Namespace, namespace_id)
            assert namespace is not None
            await SystemInsightsStore(session).record(
                namespace,
                Window.HOUR,
                findings,
                now=SEEN,
                duration=dt.timedelta(milliseconds=7),
                calls={"ListWorkflowExecutions": 2},
            )
    finally:
        await engine.dispose()
