"""Workflow history export end to end, on the shared Stratus with a real cell and a real S3
server (SeaweedFS): a namespace's sink set through the API (refusals exact, secret never
returned, audited), the probe that validates it, and the history-export job writing each
closed run once, as Temporal's ``History`` protobuf equal to what GetWorkflowExecutionHistory
returns; again, after its cursor is lost, and after the exporter process is killed between its
writes and its commit: still one identical object per run, each counted once."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from billing_support import settings_of
from identity_support import assert_problem, user_with_key
from seaweed_server import SeaweedS3
from sqlalchemy import text
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant, tls_for
from support_workflows import GreetingWorkflow, compose_greeting
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.worker import Worker

from auth import SecretBox
from billing import EgressPolicy, s3_client
from controlplane.history_exports.exporter import HistoryExporter, HistoryExportReport
from controlplane.history_exports.objects import probe
from controlplane.kit.db import create_engine, create_sessionmaker, utcnow
from controlplane.workflows.service import CellChannels

SECRET = "s3cr3t-" + uuid.uuid4().hex
EXPORT_PROCESS = Path(__file__).with_name("history_export_process.py")
ROOT = Path(__file__).resolve().parents[2]
# Workflow ids, one with the characters a key must not carry as they are.
WORKFLOW_IDS = ("greet-1", "greet-2", "orders/2026 #3")
# A name no resolver of the API knows: the API accepts it (it is checked on every connection)
# and the exporter reaches SeaweedFS through a resolver that pins it to loopback.
SINK_HOST = "s3.history-export.test"
# What SeaweedFS (no IAM configured) answers a write to a bucket that does not exist: it
# refuses to create it (AWS answers 404 NoSuchBucket, shown as "bucket not found ...").
MISSING_BUCKET_ERROR = "access denied (HTTP 403): AccessDenied"


def _pinned(host: str, port: int) -> list[str]:
    assert host == SINK_HOST, host
    return ["127.0.0.1"]


EGRESS = EgressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),), resolver=_pinned)


@dataclass
class Exported:
    tenant: Tenant
    namespace_id: str
    # Workflow id → (run id, the history GetWorkflowExecutionHistory returns).
    runs: dict[str, tuple[str, History]]
    prefix: str
    endpoint_url: str

    @property
    def first_close(self) -> dt.datetime:
        """When the first of the runs closed (they are exported from that UTC day)."""
        return min(
            history.events[-1].event_time.ToDatetime(tzinfo=dt.UTC)
            for _, history in self.runs.values()
        )


def _body(bucket: str, prefix: str, endpoint_url: str, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_url": endpoint_url,
        "access_key_id": "history-test",
        "secret_access_key": SECRET,
    }
    body.update(overrides)
    return body


async def _run_workflows(
    stratus: StratusUp, tenant: Tenant, namespace_id: str
) -> dict[str, tuple[str, History]]:
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    queue = f"history-{uuid.uuid4().hex[:8]}"
    runs: dict[str, tuple[str, History]] = {}
    async with Worker(
        client, task_queue=queue, workflows=[GreetingWorkflow], activities=[compose_greeting]
    ):
        for workflow_id in WORKFLOW_IDS:
            handle = await client.start_workflow(
                GreetingWorkflow.run, workflow_id, id=workflow_id, task_queue=queue
            )
            await handle.result()
            history = await handle.fetch_history()
            assert handle.result_run_id is not None
            runs[workflow_id] = (handle.result_run_id, History(events=history.events))
    # A run that never closes (no worker polls its queue): never exported.
    await client.start_workflow(
        GreetingWorkflow.run, "nobody", id="still-running", task_queue=f"{queue}-unpolled"
    )
    # Visibility is written just after the close: wait until it lists every run.
    query = "ExecutionStatus != 'Running'"
    for _ in range(600):
        if len([w async for w in client.list_workflows(query)]) == len(WORKFLOW_IDS):
            break
        await asyncio.sleep(0.1)
    else:
        raise TimeoutError("visibility never listed every closed run")
    return runs


@pytest.fixture(scope="module")
def exported(stratus: StratusUp, seaweed_s3: SeaweedS3) -> Exported:
    tenant = new_tenant(stratus, "Historian")
    namespace_id = create_active_namespace(stratus, tenant, "ledger")
    runs = asyncio.run(_run_workflows(stratus, tenant, namespace_id))
    port = urlsplit(seaweed_s3.endpoint_url).port
    return Exported(
        tenant,
        namespace_id,
        runs,
        prefix=f"history/{uuid.uuid4().hex[:8]}",
        endpoint_url=f"http://{SINK_HOST}:{port}",
    )


@pytest.fixture
def owner(stratus: StratusUp, exported: Exported) -> Iterator[httpx.Client]:
    with http(stratus, exported.tenant.api_key) as client:
        yield client


async def _export(stratus: StratusUp, *, now: dt.datetime) -> HistoryExportReport:
    """One run of the history-export job at ``now`` (the worker's runs are the same code)."""
    settings = settings_of(stratus)
    engine = create_engine(settings.sqlalchemy_url)
    box = SecretBox.from_file(settings.secrets_key_path, create=False)
    channels = CellChannels(box)
    try:
        exporter = HistoryExporter(box, channels, egress=EGRESS, clock=lambda: now)
        return await exporter.export_once(create_sessionmaker(engine))
    finally:
        await channels.close()
        await engine.dispose()


def _objects(seaweed: SeaweedS3, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = s3_client(seaweed.sink(bucket), egress=EGRESS_LOOPBACK)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed
    }


EGRESS_LOOPBACK = EgressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))


def _segment(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def test_the_sink_api_refuses_exactly_and_never_returns_the_secret(
    stratus: StratusUp, exported: Exported, owner: httpx.Client, bucket: str
) -> None:
    """No sink yet is 404; a bad bucket or prefix is 400 on the field; a loopback endpoint is
    400 ``address-not-allowed``; a developer may not set it (403); another account's owner does
    not learn the namespace exists (404); a sink set is shown without its secret and audited."""
    path = f"/namespaces/{exported.namespace_id}/export-sink"
    missing = owner.get(path)
    assert_problem(missing, 404, "not-found")
    assert missing.json()["detail"] == f"namespace {exported.namespace_id} has no export sink"
    for field, value, detail in (
        ("bucket", "Bad_Bucket", "bucket must be an S3 bucket name"),
        ("prefix", "/abs", "prefix must be at most 512 characters"),
    ):
        response = owner.put(
            path, json=_body(bucket, exported.prefix, exported.endpoint_url, **{field: value})
        )
        assert_problem(response, 400, "invalid-field")
        assert response.json()["field"] == field
        assert response.json()["detail"].startswith(detail)
    loopback = owner.put(path, json=_body(bucket, exported.prefix, "http://127.0.0.1:9000"))
    assert_problem(loopback, 400, "address-not-allowed")
    assert "may not reach (loopback address)" in loopback.json()["detail"]

    # A developer with no permission on the namespace does not see it; one granted `read`
    # sees the sink but may not change it.
    developer, developer_key = user_with_key(
        stratus, exported.tenant.api_key, "dev@historian.example", "developer"
    )
    with http(stratus, developer_key) as client:
        unseen = client.put(path, json=_body(bucket, exported.prefix, exported.endpoint_url))
    assert_problem(unseen, 404, "not-found")
    with exported.tenant.client(stratus) as client:
        client.set_namespace_access(exported.namespace_id, developer["id"], "read")
    with http(stratus, developer_key) as client:
        for denied in (
            client.put(path, json=_body(bucket, exported.prefix, exported.endpoint_url)),
            client.delete(path),
            client.post(path + "/validate"),
        ):
            assert_problem(denied, 403, "forbidden")
            assert denied.json()["detail"] == (
                f"this credential may not change the export sink of namespace "
                f"{exported.namespace_id}"
            )
    stranger = new_tenant(stratus, "Stranger")
    with http(stratus, stranger.api_key) as client:
        for method in ("GET", "PUT", "DELETE"):
            response = client.request(
                method,
                path,
                json=_body(bucket, exported.prefix, exported.endpoint_url)
                if method == "PUT"
                else None,
            )
            assert_problem(response, 404, "not-found")
            assert response.json()["detail"] == f"namespace {exported.namespace_id} not found"
        assert_problem(client.post(path + "/validate"), 404, "not-found")
    assert_problem(owner.get(path), 404, "not-found")  # nothing stored by any refusal

    created = owner.put(path, json=_body(bucket, exported.prefix, exported.endpoint_url))
    assert created.status_code == 200, created.text
    shown = owner.get(path).json()
    assert SECRET not in created.text
    assert SECRET not in json.dumps(shown)
    assert shown["bucket"] == bucket
    assert shown["exported_count"] == 0
    assert shown["exported_until"] is None
    assert shown["last_error"] is None
    events = owner.get("/audit-logs").json()["audit_logs"]
    assert {"namespace.export_sink.set"} <= {event["action"] for event in events}
    assert SECRET not in json.dumps(events)


def test_validate_writes_and_deletes_a_probe_or_names_the_s3_error(
    stratus: StratusUp,
    exported: Exported,
    owner: httpx.Client,
    seaweed_s3: SeaweedS3,
    bucket: str,
) -> None:
    """Through the API the sink's name resolves nowhere the API may go: the probe says so.
    With the exporter's pinned resolver it writes and deletes the probe (nothing is left), and
    a bucket that does not exist is what S3 answers for it."""
    path = f"/namespaces/{exported.namespace_id}/export-sink"
    if owner.get(path).status_code == 404:
        owner.put(path, json=_body(bucket, exported.prefix, exported.endpoint_url))
    answer = owner.post(path + "/validate")
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is False
    assert answer.json()["error"] == "could not connect to the endpoint"
    assert answer.json()["probe_key"].startswith(
        f"{exported.prefix}/{exported.namespace_id}/.stratus-probe/"
    )
    events = owner.get("/audit-logs").json()["audit_logs"]
    assert "namespace.export_sink.validate" in {event["action"] for event in events}

    pinned = replace(seaweed_s3.sink(bucket, exported.prefix), endpoint_url=exported.endpoint_url)
    good = probe(pinned, exported.namespace_id, egress=EGRESS)
    assert good.ok
    assert good.error is None
    assert _objects(seaweed_s3, bucket, f"{exported.prefix}/{exported.namespace_id}") == {}
    missing_bucket = replace(pinned, bucket=f"absent-{uuid.uuid4().hex[:8]}")
    bad = probe(missing_bucket, exported.namespace_id, egress=EGRESS)
    assert not bad.ok
    assert bad.error == MISSING_BUCKET_ERROR


def test_each_closed_run_is_exported_once_as_its_history(
    stratus: StratusUp,
    exported: Exported,
    owner: httpx.Client,
    seaweed_s3: SeaweedS3,
    bucket: str,
) -> None:
    """After the job: one object per closed run (none for the running one) at its key, each a
    ``History`` equal to GetWorkflowExecutionHistory's; progress on GET. Run again: nothing
    written, the same objects. Cursor lost (the sink re-set to export from that day, as a crash
    between the writes and the commit leaves it): the same keys, same bytes, no other object."""
    path = f"/namespaces/{exported.namespace_id}/export-sink"
    today = exported.first_close.date().isoformat()
    body = _body(bucket, exported.prefix, exported.endpoint_url, export_from=today)
    assert owner.put(path, json=body).status_code == 200
    # Two hours on: the hour the runs closed in has ended and settled.
    later = utcnow() + dt.timedelta(hours=2)
    first = asyncio.run(_export(stratus, now=later))
    assert first.failed == {}
    namespace_prefix = f"{exported.prefix}/{exported.namespace_id}"
    # Everything under the sink's prefix: the closed runs of this namespace, nothing else.
    objects = _objects(seaweed_s3, bucket, exported.prefix)
    assert all(key.startswith(namespace_prefix + "/") for key in objects)
    assert sorted(first.written[exported.namespace_id]) == sorted(objects)
    assert len(objects) == len(WORKFLOW_IDS)
    for workflow_id, (run_id, expected) in exported.runs.items():
        [key] = [k for k in objects if f"/{_segment(workflow_id)}/{_segment(run_id)}." in k]
        assert key.endswith(".history.binpb")
        decoded = History.FromString(objects[key])
        assert decoded == expected
        closed = expected.events[-1].event_time.ToDatetime(tzinfo=dt.UTC)
        assert f"/{closed:%Y/%m/%d/%H}/" in key
    progress = owner.get(path).json()
    assert progress["exported_count"] == len(WORKFLOW_IDS)
    assert progress["last_error"] is None
    assert dt.datetime.fromisoformat(progress["exported_until"]) <= later

    again = asyncio.run(_export(stratus, now=later))
    assert again.failed == {}
    assert again.written.get(exported.namespace_id, []) == []
    assert _objects(seaweed_s3, bucket, exported.prefix) == objects

    assert owner.put(path, json=body).status_code == 200
    assert owner.get(path).json()["exported_until"] is None
    redone = asyncio.run(_export(stratus, now=later))
    assert sorted(redone.written[exported.namespace_id]) == sorted(objects)
    assert _objects(seaweed_s3, bucket, exported.prefix) == objects
    assert owner.get(path).json()["exported_count"] == len(WORKFLOW_IDS)


async def _crash_between_writes_and_commit(
    stratus: StratusUp, namespace_id: str, now: dt.datetime, objects_written: Any
) -> None:
    """Run the exporter in a process of its own while the test holds the sink's row (its
    commit waits), and kill it once its objects are in the bucket: it wrote, it never
    committed."""
    settings = settings_of(stratus)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(
                text("UPDATE history_export_sinks SET prefix = prefix WHERE namespace_id = :id"),
                {"id": namespace_id},
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(EXPORT_PROCESS),
                settings.sqlalchemy_url,
                str(settings.secrets_key_path),
                now.isoformat(),
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                for _ in range(600):
                    if objects_written():
                        break
                    assert process.returncode is None, "the exporter exited before writing"
                    await asyncio.sleep(0.1)
                else:
                    raise TimeoutError("the exporter never wrote its objects")
            finally:
                process.kill()
                await process.wait()
            await holder.rollback()
    finally:
        await engine.dispose()


def test_a_crash_between_the_writes_and_the_commit_loses_nothing_and_duplicates_nothing(
    stratus: StratusUp,
    exported: Exported,
    owner: httpx.Client,
    seaweed_s3: SeaweedS3,
    bucket: str,
) -> None:
    """A real crash: the exporter process is killed after writing the hour's objects, before
    its commit. The watermark and count have not moved; the next run writes the same keys with
    the same bytes, and the count is the number of runs."""
    path = f"/namespaces/{exported.namespace_id}/export-sink"
    prefix = f"{exported.prefix}-crash"
    today = exported.first_close.date().isoformat()
    body = _body(bucket, prefix, exported.endpoint_url, export_from=today)
    assert owner.put(path, json=body).status_code == 200
    closes = sorted(
        history.events[-1].event_time.ToDatetime(tzinfo=dt.UTC)
        for _, history in exported.runs.values()
    )
    first_hour = closes[0].replace(minute=0, second=0, microsecond=0)
    in_first_hour = sum(1 for close in closes if close < first_hour + dt.timedelta(hours=1))
    # The hours before the runs' first hour are exported (nothing in them) ...
    before = asyncio.run(_export(stratus, now=first_hour + dt.timedelta(minutes=6)))
    assert before.written.get(exported.namespace_id, []) == []
    # None when the runs closed in the day's first hour: no hour went by before them.
    until = None if first_hour.hour == 0 else first_hour.isoformat().replace("+00:00", "Z")
    assert owner.get(path).json()["exported_until"] == until
    # ... then the process that writes the runs' hour dies before it commits.
    later = utcnow() + dt.timedelta(hours=2)
    asyncio.run(
        _crash_between_writes_and_commit(
            stratus,
            exported.namespace_id,
            later,
            lambda: len(_objects(seaweed_s3, bucket, prefix)) >= in_first_hour,
        )
    )
    crashed = _objects(seaweed_s3, bucket, prefix)
    left = owner.get(path).json()
    assert left["exported_until"] == until
    assert left["exported_count"] == 0
    redone = asyncio.run(_export(stratus, now=later))
    assert redone.failed == {}
    after = _objects(seaweed_s3, bucket, prefix)
    assert len(after) == len(WORKFLOW_IDS)
    assert {key: after[key] for key in crashed} == crashed
    assert owner.get(path).json()["exported_count"] == len(WORKFLOW_IDS)


def test_a_failing_sink_shows_its_error_and_keeps_its_place(
    stratus: StratusUp, exported: Exported, owner: httpx.Client, bucket: str
) -> None:
    """A sink whose bucket does not exist: the job records S3's answer on GET and the cursor
    stops before the runs it could not write; deleting the sink stops the export (audited)."""
    path = f"/namespaces/{exported.namespace_id}/export-sink"
    today = exported.first_close.date().isoformat()
    missing = f"absent-{uuid.uuid4().hex[:8]}"
    body = _body(missing, exported.prefix, exported.endpoint_url, export_from=today)
    assert owner.put(path, json=body).status_code == 200
    report = asyncio.run(_export(stratus, now=utcnow() + dt.timedelta(hours=2)))
    assert report.failed[exported.namespace_id] == MISSING_BUCKET_ERROR
    shown = owner.get(path).json()
    assert shown["last_error"] == MISSING_BUCKET_ERROR
    # Hours without runs went by; the hour the runs closed in is still to do.
    until = shown["exported_until"]
    assert until is None or dt.datetime.fromisoformat(until) <= exported.first_close
    assert shown["exported_count"] == 0
    deleted = owner.delete(path)
    assert deleted.status_code == 204
    assert_problem(owner.get(path), 404, "not-found")
    events = owner.get("/audit-logs").json()["audit_logs"]
    assert "namespace.export_sink.delete" in {event["action"] for event in events}


def test_the_cli_sets_shows_validates_and_deletes_the_sink(
    stratus: StratusUp, exported: Exported, bucket: str
) -> None:
    """``stratus namespace export-sink set|get|validate|delete``: the secret never printed;
    ``validate`` exits 1 naming the S3 error; a missing sink is the API's exact refusal."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return stratus.cli(
            "namespace",
            "export-sink",
            *args,
            "--namespace",
            exported.namespace_id,
            api_key=exported.tenant.api_key,
        )

    done = cli(
        "set",
        "--bucket",
        bucket,
        "--prefix",
        exported.prefix,
        "--endpoint-url",
        exported.endpoint_url,
        "--access-key-id",
        "history-test",
        "--secret-access-key",
        SECRET,
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    assert f"s3://{bucket}/{exported.prefix} ({exported.endpoint_url}" in done.stdout
    shown = cli("get", "--output", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["bucket"] == bucket
    validated = cli("validate")
    assert validated.returncode == 1
    assert validated.stdout.strip() == "failed: could not connect to the endpoint"
    assert cli("delete").returncode == 0
    missing = cli("get")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: namespace {exported.namespace_id} has no export sink "
        "[404 https://stratus.dev/problems/not-found]"
    )
