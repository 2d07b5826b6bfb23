"""The audit log sink end to end: configured through the API (secret encrypted, never
returned, egress checked), the exporter writing each closed UTC hour of an account's audit
events to a real S3 server (SeaweedFS) as one JSON Lines object at a deterministic key,
idempotently, and never another account's events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from identity_support import assert_problem, expiry
from seaweed_server import LOOPBACK, LOOPBACK_NETWORKS, SeaweedS3
from support import ApiAlone

from auth import SecretBox
from billing import s3_client
from controlplane.audit_sink.exporter import AuditExportReport, AuditSinkExporter, object_key
from controlplane.audit_sink.repository import SystemAuditSinkRepository
from controlplane.config import Settings
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work

SECRET = "s3cr3t-" + uuid.uuid4().hex
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiAlone]:
    """The API alone (no worker: the tests run the exporter), allowed to reach the loopback
    SeaweedFS."""
    api = ApiAlone(
        tmp_path_factory.mktemp("audit-sink"),
        extra_env={"STRATUS_EXPORT_SINK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS},
    )
    try:
        api.start()
        yield api
    finally:
        api.stop()


def _client(api: ApiAlone, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=api.url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _invite(client: httpx.Client, email: str) -> None:
    response = client.post("/users", json={"email": email, "account_role": "read"})
    assert response.status_code == 201, response.text


def _reader_key(client: httpx.Client) -> str:
    """The key of a new read-only service account of the client's account."""
    made = client.post("/service-accounts", json={"name": "reader", "account_role": "read"})
    assert made.status_code == 201, made.text
    key = client.post(
        "/api-keys",
        json={
            "display_name": "reader",
            "expiry": expiry(),
            "owner_type": "service_account",
            "owner_id": made.json()["id"],
        },
    )
    assert key.status_code == 201, key.text
    token: str = key.json()["token"]
    return token


def _body(seaweed: SeaweedS3, bucket: str, prefix: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_url": seaweed.endpoint_url,
        "access_key_id": "stratus-test",
        "secret_access_key": SECRET,
        **overrides,
    }


def _export(api: ApiAlone, now: dt.datetime) -> AuditExportReport:
    settings = Settings(data_dir=api.data_dir)

    async def run() -> AuditExportReport:
        engine = create_engine(settings.sqlalchemy_url)
        try:
            exporter = AuditSinkExporter(
                SecretBox.from_file(settings.secrets_key_path, create=False),
                egress=LOOPBACK,
                clock=lambda: now,
            )
            return await exporter.export_once(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _lose_cursor(api: ApiAlone, account_id: str) -> None:
    """What a crash after the writes and before the cursor's update leaves: no cursor."""
    settings = Settings(data_dir=api.data_dir)

    async def run() -> None:
        engine = create_engine(settings.sqlalchemy_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                sink = await SystemAuditSinkRepository(session).get(account_id)
                assert sink is not None
                sink.exported_through = None
        finally:
            await engine.dispose()

    asyncio.run(run())


def _events_by_hour(client: httpx.Client) -> dict[dt.datetime, list[dict[str, Any]]]:
    """The account's audit events through the API, oldest first, by UTC hour."""
    events = client.get("/audit-logs", params={"page_size": 1000}).json()["audit_logs"]
    hours: dict[dt.datetime, list[dict[str, Any]]] = {}
    for event in reversed(events):
        at = dt.datetime.fromisoformat(event["at"]).astimezone(dt.UTC)
        hours.setdefault(at.replace(minute=0, second=0, microsecond=0), []).append(event)
    return hours


def _objects(seaweed: SeaweedS3, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = s3_client(seaweed.sink(bucket), egress=LOOPBACK)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return {
        item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed.get("Contents", [])
    }


def test_each_hour_is_one_object_of_exactly_its_events_rewritten_identically(
    api: ApiAlone, seaweed_s3: SeaweedS3, bucket: str
) -> None:
    alpha_key, bravo_key = api.new_tenant("Sinkalpha"), api.new_tenant("Sinkbravo")
    alpha_prefix, bravo_prefix = f"audit-{uuid.uuid4().hex[:8]}", f"audit-{uuid.uuid4().hex[:8]}"
    with _client(api, alpha_key) as alpha, _client(api, bravo_key) as bravo:
        start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        start -= dt.timedelta(hours=1)
        body = _body(seaweed_s3, bucket, alpha_prefix, export_from=start.isoformat())
        created = alpha.put("/audit-log-sink", json=body)
        assert created.status_code == 200, created.text
        assert "secret_access_key" not in created.text
        assert SECRET not in created.text
        put_b = bravo.put(
            "/audit-log-sink",
            json=_body(seaweed_s3, bucket, bravo_prefix, export_from=start.isoformat()),
        )
        assert put_b.status_code == 200, put_b.text
        for index in range(3):
            _invite(alpha, f"a{index}@sinkalpha.example")
            _invite(bravo, f"b{index}@sinkbravo.example")
        alpha_hours = _events_by_hour(alpha)
        bravo_ids = {e["id"] for events in _events_by_hour(bravo).values() for e in events}
        alpha_id = alpha.get("/current-identity").json()["account_id"]

        # Nothing is written before the hour is closed and settled.
        last_hour = max(alpha_hours)
        early = _export(api, last_hour + dt.timedelta(minutes=30))
        assert object_key(alpha_prefix, alpha_id, last_hour) not in early.written.get(alpha_id, [])

        later = last_hour + dt.timedelta(hours=1, minutes=5)
        report = _export(api, later)
        assert not report.failed, report.failed
        objects = _objects(seaweed_s3, bucket, alpha_prefix)
        expected_keys = {object_key(alpha_prefix, alpha_id, hour) for hour in alpha_hours}
        assert set(objects) == expected_keys
        for hour, events in alpha_hours.items():
            lines = [
                json.loads(line)
                for line in objects[object_key(alpha_prefix, alpha_id, hour)].splitlines()
            ]
            assert [line["id"] for line in lines] == [e["id"] for e in events]
            assert [line["action"] for line in lines] == [e["action"] for e in events]
            assert {line["account_id"] for line in lines} == {alpha_id}
            assert not {line["id"] for line in lines} & bravo_ids

        sink = alpha.get("/audit-log-sink").json()
        assert sink["exported_through"] is not None
        assert dt.datetime.fromisoformat(sink["exported_through"]) == last_hour
        assert sink["last_success_at"] is not None
        assert sink["last_error"] is None
        assert isinstance(sink["lag_seconds"], int)

        # A crash between the write and the cursor's update, replayed: with the cursor back
        # where it was, the next run rewrites the same keys with the same bytes.
        _lose_cursor(api, alpha_id)
        again = _export(api, later)
        assert sorted(again.written[alpha_id]) == sorted(expected_keys)
        rewritten = _objects(seaweed_s3, bucket, alpha_prefix)
        assert {k: v for k, v in rewritten.items() if k in objects} == objects

        # Bravo's sink holds Bravo's events only.
        for content in _objects(seaweed_s3, bucket, bravo_prefix).values():
            assert {json.loads(line)["id"] for line in content.splitlines()} <= bravo_ids


def test_sink_refusals(api: ApiAlone, seaweed_s3: SeaweedS3, bucket: str) -> None:
    owner_key = api.new_tenant("Sinkrules")
    with _client(api, owner_key) as owner:
        missing = owner.get("/audit-log-sink")
        assert_problem(missing, 404, "not-found")
        assert missing.json()["detail"] == "this account has no audit log sink"
        assert_problem(owner.delete("/audit-log-sink"), 404, "not-found")
        private = owner.put(
            "/audit-log-sink",
            json=_body(seaweed_s3, bucket, "p", endpoint_url="http://127.0.0.2:9000"),
        )
        assert_problem(private, 400, "address-not-allowed")
        assert private.json()["field"] == "endpoint_url"
        bad_bucket = owner.put("/audit-log-sink", json=_body(seaweed_s3, "B!", "p"))
        assert_problem(bad_bucket, 400, "invalid-field")
        assert bad_bucket.json()["field"] == "bucket"
        far = owner.put(
            "/audit-log-sink", json=_body(seaweed_s3, bucket, "p", export_from="1999-01-01T00:00")
        )
        assert_problem(far, 400, "invalid-field")
        assert far.json()["field"] == "export_from"
        assert owner.put("/audit-log-sink", json=_body(seaweed_s3, bucket, "p")).is_success
        actions = [e["action"] for e in owner.get("/audit-logs").json()["audit_logs"]]
        assert actions[0] == "audit_sink.set"
        reader_key = _reader_key(owner)
    with _client(api, reader_key) as reader:
        refused = reader.put("/audit-log-sink", json=_body(seaweed_s3, bucket, "p"))
        assert_problem(refused, 403, "forbidden")
        assert_problem(reader.get("/audit-log-sink"), 403, "forbidden")
        assert_problem(reader.delete("/audit-log-sink"), 403, "forbidden")
    with _client(api, owner_key) as owner:
        assert owner.delete("/audit-log-sink").status_code == 204
        actions = [e["action"] for e in owner.get("/audit-logs").json()["audit_logs"]]
        assert actions[0] == "audit_sink.delete"
