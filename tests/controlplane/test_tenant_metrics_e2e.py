"""The tenant metrics endpoint, scraped by a real Prometheus (Debian package) with API keys.

One account holds namespaces alpha and bravo, another account other; workflows run on all
three. Prometheus scrapes ``GET /api/v1/metrics`` twice: with the key of a service account
scoped to alpha (job ``alpha``) and with one scoped to bravo (job ``bravo``). Each job sees
its own namespace's series, with the right counts, and nothing of any other namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from billing_support import record_usage
from identity_support import assert_problem, service_account_with_key, user_with_key
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from support import StratusUp, create_active_namespace, free_port, http, new_tenant, run_greeting

from controlplane.kit.db import utcnow
from controlplane.models.usage_record import month_of

pytestmark = pytest.mark.sqlite_only  # HTTP behaviour: the same on both databases

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
ALPHA_RUNS = 3
WORKFLOW_TYPE = "GreetingWorkflow"


@dataclass(frozen=True)
class World:
    alpha: str  # namespace ids
    bravo: str
    other: str  # another account's
    alpha_key: str  # service account scoped to alpha, read
    bravo_key: str
    metrics_key: str  # a metrics_read user of the account
    developer_key: str  # a developer without namespace permissions


@pytest.fixture(scope="module")
def world(stratus: StratusUp) -> World:
    tenant = new_tenant(stratus, "Metrics")
    other_tenant = new_tenant(stratus, "MetricsOther")
    alpha = create_active_namespace(stratus, tenant, "alpha")
    bravo = create_active_namespace(stratus, tenant, "bravo")
    other = create_active_namespace(stratus, other_tenant, "alpha")
    keys = {
        namespace_id: service_account_with_key(
            stratus,
            tenant.api_key,
            {
                "name": f"scraper-{namespace_id.split('.')[0]}",
                "namespace_scope": {"namespace_id": namespace_id, "permission": "read"},
            },
        )[1]
        for namespace_id in (alpha, bravo)
    }
    _, metrics_key = user_with_key(stratus, tenant.api_key, "prom@metrics.example", "metrics_read")
    _, developer_key = user_with_key(stratus, tenant.api_key, "dev@metrics.example", "developer")

    async def run_all() -> None:
        for index in range(ALPHA_RUNS):
            await run_greeting(stratus, alpha, tenant.client_cert, f"alpha-{index}")
        await run_greeting(stratus, bravo, tenant.client_cert, "bravo-0")
        await run_greeting(stratus, other, other_tenant.client_cert, "other-0")

    asyncio.run(run_all())
    # Metered usage of kinds the runs above never meter: this month's count, last month's not.
    month = month_of(utcnow())
    last_month = month_of(month - dt.timedelta(days=1))
    usage = [
        (alpha, month, "actions.schedule", 7),
        (alpha, month, "storage.retained", 3600),
        (alpha, last_month, "actions.schedule", 1000),
        (other, month, "actions.schedule", 99),
    ]
    asyncio.run(record_usage(stratus, usage))
    return World(alpha, bravo, other, keys[alpha], keys[bravo], metrics_key, developer_key)


@pytest.fixture(scope="module")
def prometheus(
    stratus: StratusUp, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus scraping the endpoint every second with each scoped key (its URL)."""
    binary = shutil.which("prometheus")
    assert binary, "the Debian package `prometheus` is not installed (make setup)"
    directory = tmp_path_factory.mktemp("prometheus")
    jobs = []
    for job, key in (("alpha", world.alpha_key), ("bravo", world.bravo_key)):
        (directory / f"{job}.key").write_text(key)
        jobs.append(
            f"""  - job_name: {job}
    scrape_interval: 1s
    scrape_timeout: 1s
    metrics_path: /api/v1/metrics
    authorization:
      type: Bearer
      credentials_file: {directory / f"{job}.key"}
    static_configs:
      - targets: ["127.0.0.1:{stratus.api_port}"]
"""
        )
    config = directory / "prometheus.yml"
    config.write_text("scrape_configs:\n" + "".join(jobs))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "prometheus.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    try:
        response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    except httpx.TransportError:
        return []  # not listening yet
    if response.status_code != 200:
        return []
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _wait_for(url: str, promql: str, expected: float, timeout: float = 90.0) -> None:
    """Poll Prometheus until ``promql`` answers ``expected`` (a condition, not a duration)."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = _query(url, promql)
        if [float(sample["value"][1]) for sample in seen] == [expected]:
            return
        time.sleep(0.5)
    raise AssertionError(f"{promql} never answered {expected}: {seen}")


def _namespaces(url: str, job: str) -> set[str]:
    found = _query(url, f'count by (namespace) ({{job="{job}", namespace!=""}})')
    return {sample["metric"]["namespace"] for sample in found}


def test_prometheus_sees_the_keys_namespace_with_the_right_counts(
    prometheus: str, world: World
) -> None:
    """The alpha job's series: the workflows run on alpha, its schedule-to-start histogram,
    its throttled counter; and the bravo job's count its own single run."""
    alpha = f'job="alpha", namespace="{world.alpha}"'
    _wait_for(prometheus, 'up{job="alpha"}', 1)
    _wait_for(
        prometheus,
        f'stratus_workflows_completed_total{{{alpha}, workflow_type="{WORKFLOW_TYPE}"}}',
        ALPHA_RUNS,
    )
    _wait_for(prometheus, f"stratus_workflows_started_total{{{alpha}}}", ALPHA_RUNS)
    _wait_for(prometheus, f"stratus_throttled_requests_total{{{alpha}}}", 0)
    _wait_for(prometheus, f"stratus_namespace_cell_metrics_up{{{alpha}}}", 1)
    # Every run's first workflow task waited on a queue of its own (activities may start
    # eagerly, later workflow tasks on the worker's sticky queue: neither is counted).
    _wait_for(
        prometheus,
        "count(count by (task_queue) (stratus_schedule_to_start_latency_seconds_count"
        f"{{{alpha}, task_type='workflow'}} > 0))",
        ALPHA_RUNS,
    )
    # The gateway's latency of alpha's calls (starts, completions; long polls aside) arrives
    # with its route polls.
    _wait_for(
        prometheus,
        f"count(stratus_gateway_request_duration_seconds_count{{{alpha}}} >= {ALPHA_RUNS})",
        1,
    )
    _wait_for(
        prometheus,
        f'stratus_workflows_completed_total{{job="bravo", namespace="{world.bravo}"}}',
        1,
    )


def test_a_key_sees_no_series_of_another_namespace(prometheus: str, world: World) -> None:
    """Each scoped key's scrape carries its namespace only: not the account's other one, not
    another account's (whose namespace has the same name)."""
    _wait_for(prometheus, 'up{job="bravo"}', 1)
    _wait_for(prometheus, 'count(stratus_workflows_started_total{job="bravo"})', 1)
    assert _namespaces(prometheus, "alpha") == {world.alpha}
    assert _namespaces(prometheus, "bravo") == {world.bravo}
    for namespace in (world.bravo, world.other):
        assert _query(prometheus, f'{{job="alpha", namespace="{namespace}"}}') == []
    assert _query(prometheus, f'{{job="bravo", namespace="{world.alpha}"}}') == []


def _values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named ``name`` in OpenMetrics ``text``, by their sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _scrape(stratus: StratusUp, key: str, **params: str) -> tuple[httpx.Response, set[str]]:
    """The endpoint's answer and the namespaces its samples name (parsed as OpenMetrics)."""
    with http(stratus, key) as client:
        response = client.get("/metrics", params=params)
    if response.status_code != 200:
        return response, set()
    assert response.headers["content-type"] == OPENMETRICS
    assert response.text.endswith("# EOF\n")
    namespaces = {
        sample.labels["namespace"]
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response, namespaces


def test_the_metrics_read_role_sees_every_namespace_of_its_account(
    stratus: StratusUp, world: World
) -> None:
    """Valid OpenMetrics (the parser reads it), both of the account's namespaces, and not the
    other account's; asking for that one answers as for an unknown namespace."""
    response, namespaces = _scrape(stratus, world.metrics_key)
    assert namespaces == {world.alpha, world.bravo}
    assert "# TYPE stratus_schedule_to_start_latency_seconds histogram" in response.text
    # This month's metered usage of the account's namespaces only.
    actions = _values(response.text, "stratus_actions_total")
    assert actions[(("kind", "schedule"), ("namespace", world.alpha))] == 7
    assert (("kind", "schedule"), ("namespace", world.other)) not in actions
    storage = _values(response.text, "stratus_storage_byte_hours_total")
    assert storage[(("kind", "retained"), ("namespace", world.alpha))] == 3600
    response, namespaces = _scrape(stratus, world.metrics_key, namespace_id=world.alpha)
    assert namespaces == {world.alpha}
    for foreign in (world.other, "zz-unknown.nobody"):
        response, _ = _scrape(stratus, world.metrics_key, namespace_id=foreign)
        assert_problem(response, 404, "not-found")


def test_refusals(stratus: StratusUp, world: World) -> None:
    """No key: 401; the operator (no account): 403; a scoped key asking for the account's
    other namespace: 404; a developer without namespace permissions: no series at all."""
    with http(stratus, None) as client:
        assert_problem(client.get("/metrics"), 401, "unauthenticated")
    response, _ = _scrape(stratus, stratus.operator_key)
    assert_problem(response, 403, "forbidden")
    response, _ = _scrape(stratus, world.alpha_key, namespace_id=world.bravo)
    assert_problem(response, 404, "not-found")
    response, namespaces = _scrape(stratus, world.developer_key)
    assert namespaces == set()
    assert [line for line in response.text.splitlines() if not line.startswith("#")] == []


def test_the_scrape_config_in_the_docs_is_the_one_tested() -> None:
    """docs/teams.md shows the same authorization block Prometheus is given here."""
    document = (Path(__file__).resolve().parents[2] / "docs" / "teams.md").read_text()
    section = document[document.index("## Metrics endpoint") :]
    assert "metrics_path: /api/v1/metrics" in section
    assert "type: Bearer" in section
    assert "credentials_file:" in section


def test_the_cli_prints_the_same_text(stratus: StratusUp, world: World) -> None:
    """`stratus metrics --namespace` prints the endpoint's text for that namespace; one the key
    may not read fails with the API's problem."""
    printed = stratus.cli("metrics", "--namespace", world.alpha, api_key=world.metrics_key)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.endswith("# EOF\n")
    assert f'namespace="{world.alpha}"' in printed.stdout
    assert f'namespace="{world.bravo}"' not in printed.stdout
    refused = stratus.cli("metrics", "--namespace", world.bravo, api_key=world.alpha_key)
    assert refused.returncode != 0
    assert "not found" in refused.stderr
