"""The insights store, API and job on the shared Stratus: findings are upserted by key, resolved
when a run no longer reports them and active again when seen again (first_seen kept); the API
shows a namespace's findings to whoever may read it, sorted by severity, and refuses a bad
window and another account's namespace exactly; the job reaches the namespace's cell through
its route and stores what the analysis found, and the periodic job's schedule runs it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
from identity_support import assert_problem, service_account_with_key, user_with_key
from product_constants import PROBLEM
from sqlalchemy import func, select
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    gateway_channel_options,
    http,
    new_tenant,
    tls_for,
)
from support_workflows import GreetingWorkflow, compose_greeting
from temporalio.api.workflowservice.v1 import request_response_pb2 as rpc
from temporalio.client import Client
from temporalio.worker import Worker

from auth import SecretBox
from controlplane.config import Settings
from controlplane.insights.analysis import AnalysisResult, CellSource
from controlplane.insights.findings import (
    AnalysisContext,
    Finding,
    FindingKind,
    Severity,
    Subject,
    SubjectKind,
    Window,
)
from controlplane.insights.job import InsightsActivities
from controlplane.insights.repository import SystemInsightsStore
from controlplane.jobs import INSIGHTS, schedule_id
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import InsightAnalysis, InsightFinding, Namespace
from controlplane.pricing import load_pricing
from controlplane.workflows.service import CellChannels
from dataplane.cells import LocalCellProvider

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Accounts:
    tenant: Tenant
    other: Tenant
    namespace_id: str


@pytest.fixture(scope="module")
def accounts(stratus: StratusUp) -> Accounts:
    tenant, other = new_tenant(stratus, "Insightful"), new_tenant(stratus, "Bystander")
    return Accounts(tenant, other, create_active_namespace(stratus, tenant, "shop"))


def _finding(
    kind: FindingKind, queue: str, severity: Severity, examples: tuple[str, ...] = ()
) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        subject=Subject(SubjectKind.TASK_QUEUE, queue),
        evidence={"open_workflows": 3, "pollers": 0},
        window=Window.HOUR,
        recommendation=f"start a worker polling {queue}",
        examples=examples,
    )


async def _record(
    stratus: StratusUp, namespace_id: str, findings: list[Finding], at: dt.datetime
) -> None:
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            namespace = await session.get(Namespace, namespace_id)
            assert namespace is not None
            await SystemInsightsStore(session).record(
                namespace,
                Window.HOUR,
                findings,
                now=at,
                duration=dt.timedelta(milliseconds=42),
                calls={"ListWorkflowExecutions": 1, "DescribeTaskQueue": 2},
            )
    finally:
        await engine.dispose()


def _summary(body: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    return [
        (f["kind"], f["subject"]["name"], f["first_seen"], f["resolved_at"])
        for f in body["findings"]
    ]


def test_findings_are_upserted_resolved_and_active_again(
    stratus: StratusUp, accounts: Accounts
) -> None:
    """Run 1 reports two findings; run 2 (an hour later) only the warning: the critical one is
    resolved; run 3 reports it again: the same finding is active again, first seen at run 1.
    The API lists active ones critical first, resolved ones only with include_resolved."""
    ns = accounts.namespace_id
    critical = _finding(FindingKind.NO_POLLERS, "orders", Severity.CRITICAL, ("wf-1", "wf-2"))
    warning = _finding(FindingKind.UNDER_PROVISIONED_WORKERS, "emails", Severity.WARNING)
    t1, t2, t3 = T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
    asyncio.run(_record(stratus, ns, [warning, critical], t1))
    with http(stratus, accounts.tenant.api_key) as client:
        body = client.get(f"/namespaces/{ns}/insights").json()
        assert body["window"] == "1h"
        assert body["analysis"] == {
            "analysed_at": "2026-03-02T12:00:00Z",
            "duration_ms": 42,
            "calls": {"DescribeTaskQueue": 2, "ListWorkflowExecutions": 1},
            "error": None,
        }
        first = body["findings"][0]
        assert first == {
            "kind": "no_pollers",
            "severity": "critical",
            "subject": {"kind": "task_queue", "name": "orders"},
            "window": "1h",
            "evidence": {"open_workflows": 3, "pollers": 0},
            "examples": ["wf-1", "wf-2"],
            "recommendation": "start a worker polling orders",
            "first_seen": "2026-03-02T12:00:00Z",
            "last_seen": "2026-03-02T12:00:00Z",
            "resolved_at": None,
        }
        assert [f["kind"] for f in body["findings"]] == ["no_pollers", "under_provisioned_workers"]

        asyncio.run(_record(stratus, ns, [warning], t2))
        active = client.get(f"/namespaces/{ns}/insights", params={"window": "1h"}).json()
        assert _summary(active) == [
            ("under_provisioned_workers", "emails", "2026-03-02T12:00:00Z", None)
        ]
        assert active["findings"][0]["last_seen"] == "2026-03-02T13:00:00Z"
        # Resolved findings are listed for 7 days after they resolved (T0 is long past).
        listed = client.get(
            f"/namespaces/{ns}/insights", params={"include_resolved": "true"}
        ).json()
        assert _summary(listed) == [
            ("under_provisioned_workers", "emails", "2026-03-02T12:00:00Z", None)
        ]

        asyncio.run(_record(stratus, ns, [critical, warning], t3))
        again = client.get(f"/namespaces/{ns}/insights").json()
        assert _summary(again) == [
            ("no_pollers", "orders", "2026-03-02T12:00:00Z", None),
            ("under_provisioned_workers", "emails", "2026-03-02T12:00:00Z", None),
        ]
        # Other windows hold their own findings: nothing was analysed over 24h.
        day = client.get(f"/namespaces/{ns}/insights", params={"window": "24h"}).json()
        assert day["findings"] == []
        assert day["analysis"] == {
            "analysed_at": None,
            "duration_ms": None,
            "calls": {},
            "error": None,
        }
    # The CLI shows the same, as text and as JSON; a bad window is the API's refusal.
    text = stratus.cli("insights", "--namespace", ns, api_key=accounts.tenant.api_key)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[:8] == [
        f"{ns}, last 1h: analysed 2026-03-02 14:00:00 UTC, 3 calls to the cell",
        "",
        "CRITICAL  no_pollers  task_queue orders  (active)",
        "  evidence: open_workflows=3, pollers=0",
        "  examples: wf-1, wf-2",
        "  do: start a worker polling orders",
        "  first seen 2026-03-02 12:00, last seen 2026-03-02 14:00 UTC",
        "",
    ]
    as_json = stratus.cli(
        "insights", "--namespace", ns, "--window", "24h", "-o", "json",
        api_key=accounts.tenant.api_key,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"namespace_id": ns, "window": "24h", **day}
    refused = stratus.cli(
        "insights", "--namespace", ns, "--window", "1d", api_key=accounts.tenant.api_key
    )
    assert refused.returncode == 1
    assert f"(field: window) [400 {PROBLEM}invalid-field]" in refused.stderr


def test_resolved_findings_are_listed_with_include_resolved(
    stratus: StratusUp, accounts: Accounts
) -> None:
    """Resolved findings are listed with include_resolved (critical first): the run before
    (five minutes ago) resolved the previous test's two, this run the one it reported."""
    ns = accounts.namespace_id
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    queue = _finding(FindingKind.GREEDY_WORKERS, "greedy", Severity.INFO)
    asyncio.run(_record(stratus, ns, [queue], now - dt.timedelta(minutes=5)))
    asyncio.run(_record(stratus, ns, [], now))
    with http(stratus, accounts.tenant.api_key) as client:
        assert client.get(f"/namespaces/{ns}/insights").json()["findings"] == []
        listed = client.get(
            f"/namespaces/{ns}/insights", params={"include_resolved": "true"}
        ).json()["findings"]
    before = (now - dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert [(f["kind"], f["resolved_at"]) for f in listed] == [
        ("no_pollers", before),
        ("under_provisioned_workers", before),
        ("greedy_workers", now.isoformat().replace("+00:00", "Z")),
    ]


def test_bad_window_and_foreign_namespaces_are_refused(
    stratus: StratusUp, accounts: Accounts
) -> None:
    """A window other than 1h/24h/7d is 400 invalid-field naming `window` (a non-boolean
    include_resolved the API's 422 malformed-request naming it); another account's
    namespace answers exactly as an unknown one (404); a `read` user without a grant on the
    namespace does not see it (404); a service account scoped to it with `read` does."""
    ns = accounts.namespace_id
    with http(stratus, accounts.tenant.api_key) as client:
        bad = client.get(f"/namespaces/{ns}/insights", params={"window": "2h"})
        assert_problem(bad, 400, "invalid-field")
        assert bad.json()["field"] == "window"
        assert "1h, 24h, 7d" in bad.json()["detail"]
        not_bool = client.get(f"/namespaces/{ns}/insights", params={"include_resolved": "maybe"})
        assert_problem(not_bool, 422, "malformed-request")
        assert not_bool.json()["field"] == "include_resolved"
        unknown = client.get(f"/namespaces/nope.{accounts.tenant.account_id}/insights")
        assert_problem(unknown, 404, "not-found")
    with http(stratus, accounts.other.api_key) as client:
        foreign = client.get(f"/namespaces/{ns}/insights")
        assert_problem(foreign, 404, "not-found")
        assert ns in foreign.json()["detail"]
    _, read_key = user_with_key(stratus, accounts.tenant.api_key, "reader@insight.example", "read")
    with http(stratus, read_key) as client:
        assert_problem(client.get(f"/namespaces/{ns}/insights"), 404, "not-found")
    _, scoped_key = service_account_with_key(
        stratus,
        accounts.tenant.api_key,
        {"name": "watcher", "namespace_scope": {"namespace_id": ns, "permission": "read"}},
    )
    with http(stratus, scoped_key) as client:
        assert client.get(f"/namespaces/{ns}/insights").status_code == 200


# The job, against the shared Stratus's cell: SQLite only (what it proves is the path to the
# cell and the store, which the tests above run on both databases).


@pytest.fixture
async def job(stratus: StratusUp) -> AsyncIterator[InsightsActivities]:
    engine = create_engine(stratus.database_url)
    channels = CellChannels(SecretBox.from_file(stratus.data_dir / "secrets.key"))
    try:
        yield InsightsActivities(
            create_sessionmaker(engine),
            channels,
            load_pricing(Settings()),
            dt.timedelta(seconds=300),
        )
    finally:
        await channels.close()
        await engine.dispose()


async def _stored_rows(job: InsightsActivities, namespace_id: str) -> tuple[int, int]:
    """How many finding and analysis rows the database holds for ``namespace_id``."""
    async with unit_of_work(job.sessionmaker) as session:
        findings = await session.scalar(
            select(func.count()).where(InsightFinding.namespace_id == namespace_id)
        )
        analyses = await session.scalar(
            select(func.count()).where(InsightAnalysis.namespace_id == namespace_id)
        )
    return int(findings or 0), int(analyses or 0)


def _insights(stratus: StratusUp, api_key: str, namespace_id: str) -> dict[str, Any]:
    with http(stratus, api_key) as client:
        response = client.get(f"/namespaces/{namespace_id}/insights")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.mark.sqlite_only
async def test_job_reads_the_cell_and_resolves_when_the_evidence_goes(
    stratus: StratusUp, accounts: Accounts, job: InsightsActivities
) -> None:
    """A workflow on a task queue nobody polls, started through the gateway: the job reaches
    the namespace's cell through its route, the real analysis finds it (NO_POLLERS, the
    workflow as the example) and it is stored with the calls made; once a worker polls that
    queue the next run resolves it."""
    tenant = accounts.tenant
    ns = create_active_namespace(stratus, tenant, "stalled")
    client = await Client.connect(
        stratus.gateway_address, namespace=ns, tls=tls_for(stratus, tenant.client_cert, ns)
    )
    workflow_id = f"stuck-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        GreetingWorkflow.run, "Stratus", id=workflow_id, task_queue="misspelt-queue"
    )

    async def analysed_until(done: Any) -> dict[str, Any]:
        # Visibility is eventually consistent: analyse again until it shows the change.
        for _ in range(100):
            await job.analyse_now(ns, Window.HOUR)
            body = _insights(stratus, tenant.api_key, ns)
            if done(body):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(body)

    def no_pollers(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [f for f in body["findings"] if f["kind"] == "no_pollers"]

    # The real analysis (controlplane.insights.analysis) through the namespace's route.
    body = await analysed_until(no_pollers)
    (finding,) = no_pollers(body)
    assert (finding["subject"], finding["examples"]) == (
        {"kind": "task_queue", "name": "misspelt-queue"},
        [workflow_id],
    )
    assert finding["severity"] == "critical"
    assert body["analysis"]["calls"]["ListWorkflowExecutions"] >= 1
    assert body["analysis"]["calls"]["DescribeTaskQueue"] >= 1
    assert body["analysis"]["error"] is None

    # The fix: a worker on that queue. It runs the waiting workflow, and the next analysis sees
    # the queue polled: the finding is resolved.
    async with Worker(
        client,
        task_queue="misspelt-queue",
        workflows=[GreetingWorkflow],
        activities=[compose_greeting],
    ):
        assert await handle.result() == "Hello, Stratus!"
        resolved = await analysed_until(lambda b: not no_pollers(b))
    assert resolved["analysis"]["error"] is None
    with http(stratus, tenant.api_key) as api:
        listed = api.get(f"/namespaces/{ns}/insights", params={"include_resolved": "true"}).json()
    assert [
        (f["subject"]["name"], f["resolved_at"] is not None)
        for f in listed["findings"]
        if f["kind"] == "no_pollers"
    ] == [("misspelt-queue", True)]

    # The findings and analyses go with the namespace.
    stored_findings, stored_analyses = await _stored_rows(job, ns)
    assert stored_findings >= 1
    assert stored_analyses == 1
    with tenant.client(stratus) as api_client:
        deleting = api_client.delete_namespace(ns)
        done = api_client.wait_for_operation(deleting.async_operation.id, timeout=120)
    assert done.state == "FULFILLED", done.failure_reason
    assert await _stored_rows(job, ns) == (0, 0)


@pytest.mark.sqlite_only
async def test_the_periodic_job_analyses_every_active_namespace(
    stratus: StratusUp, accounts: Accounts
) -> None:
    """Triggering the worker's `stratus-job-insights` schedule analyses a new ACTIVE namespace
    (the status shows the run: when, the calls, no error) without any sleep in the test."""
    tenant = accounts.tenant
    ns = create_active_namespace(stratus, tenant, "watched")
    assert _insights(stratus, tenant.api_key, ns)["analysis"]["analysed_at"] is None
    system_cell = LocalCellProvider(stratus.data_dir / "cells").address("system")
    system = await Client.connect(system_cell, namespace="default")
    await system.get_schedule_handle(schedule_id(INSIGHTS)).trigger()
    for _ in range(300):
        analysis = _insights(stratus, tenant.api_key, ns)["analysis"]
        if analysis["analysed_at"] is not None:
            break
        await asyncio.sleep(0.1)
    assert analysis["analysed_at"] is not None, "the job did not analyse the namespace"
    assert analysis["error"] is None
    # The deterministic workflow id names the namespace and the window.
    described = await system.get_workflow_handle(f"stratus-insights-{ns}-1h").describe()
    assert described.workflow_type == "AnalyseNamespaceInsights"


@pytest.mark.sqlite_only
async def test_each_window_is_due_at_its_own_cadence(
    stratus: StratusUp, accounts: Accounts, job: InsightsActivities
) -> None:
    """With a 300 s interval: a namespace never analysed is due for every window; after an
    analysis of all three at T, 1h is due again one interval later (half an interval of slack),
    24h after 6 intervals, 7d after 24. The clock is the job's, injected."""
    ns = accounts.namespace_id
    interval = dt.timedelta(seconds=300)
    t = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)  # after anything the real job wrote

    async def windows_due(at: dt.datetime) -> set[str]:
        job.clock = lambda: at
        return {request.window for request in await job.due() if request.namespace_id == ns}

    for window in Window:
        job.clock = lambda: t
        await job.analyse_now(ns, window)
    assert await windows_due(t + interval / 2 - dt.timedelta(seconds=1)) == set()
    assert await windows_due(t + interval / 2) == {"1h"}
    assert await windows_due(t + interval * 6 - interval / 2) == {"1h", "24h"}
    assert await windows_due(t + interval * 24 - interval / 2) == {"1h", "24h", "7d"}


async def _context_seen(source: CellSource, context: AnalysisContext) -> AnalysisResult:
    """A stand-in detector that shows what the job gave it, as one finding."""
    return AnalysisResult(
        findings=[
            Finding(
                kind=FindingKind.THROTTLING,
                severity=Severity.INFO,
                subject=Subject(SubjectKind.NAMESPACE, source.namespace),
                evidence={
                    "throttled_requests": context.throttled_requests,
                    "requests_per_second_limit": context.requests_per_second_limit,
                },
                window=context.window,
                recommendation="smooth the load or ask for higher limits",
            )
        ]
    )


@pytest.mark.sqlite_only
async def test_the_gateways_throttled_answers_reach_the_analysis(
    stratus: StratusUp, job: InsightsActivities
) -> None:
    """A namespace limited to 3 requests per second and called 15 times at once: the gateway
    answers RESOURCE_EXHAUSTED, reports its count with its route polls, and the job gives the
    analysis that count and the limit; a namespace of another account called as often is not
    throttled and gets 0."""
    tenant, other = new_tenant(stratus, "Throttled"), new_tenant(stratus, "Unhurried")
    limited = create_active_namespace(stratus, tenant, "busy")
    calm = create_active_namespace(stratus, other, "calm")
    changed = stratus.cli(
        "namespace", "set-limits", "--namespace", limited, "--requests-per-second", "3",
        "--actions-per-second", "2", "--wait", api_key=stratus.operator_key,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    refused, _ = await asyncio.gather(
        _burst(stratus, tenant, limited, 15), _burst(stratus, other, calm, 15)
    )
    assert refused >= 8
    job.analyse = _context_seen

    async def evidence(namespace_id: str, api_key: str) -> dict[str, Any]:
        await job.analyse_now(namespace_id, Window.HOUR)
        (finding,) = _insights(stratus, api_key, namespace_id)["findings"]
        found: dict[str, Any] = finding["evidence"]
        return found

    for _ in range(200):  # the gateway reports every 5 s, with its next route poll
        seen = await evidence(limited, tenant.api_key)
        if seen["throttled_requests"] >= refused:
            break
        await asyncio.sleep(0.1)
    assert seen == {"throttled_requests": refused, "requests_per_second_limit": 3.0}
    assert (await evidence(calm, other.api_key))["throttled_requests"] == 0


async def _burst(stratus: StratusUp, tenant: Tenant, namespace: str, count: int) -> int:
    """``count`` DescribeNamespace calls at once through the gateway: how many it refused with
    RESOURCE_EXHAUSTED."""
    credentials = grpc.ssl_channel_credentials(
        stratus.gateway_ca, tenant.client_cert.key_pem, tenant.client_cert.cert_pem
    )
    body = rpc.DescribeNamespaceRequest(namespace=namespace).SerializeToString()
    async with grpc.aio.secure_channel(
        stratus.gateway_address, credentials, options=gateway_channel_options(namespace)
    ) as channel:
        call = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
        )
        outcomes = await asyncio.gather(
            *(call(body, timeout=10) for _ in range(count)), return_exceptions=True
        )
    return sum(
        isinstance(outcome, grpc.aio.AioRpcError)
        and outcome.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        for outcome in outcomes
    )
