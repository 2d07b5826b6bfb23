"""Exports end to end: an account's sink configured through the API (secret stored encrypted,
never returned), the exporter writing each closed usage hour and each finalized invoice to a
real S3 server (SeaweedFS), at-least-once with one object per key, and a sink that fails
without losing its place."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from billing_support import bill, export, record_usage
from identity_support import assert_problem, user_with_key
from seaweed_server import LOOPBACK, LOOPBACK_NETWORKS, SeaweedS3
from support import StratusUp, Tenant, free_port, http, new_tenant
from test_invoices_e2e import MONTH, MONTH_END

from billing import s3_client

DAY = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
# 05:03 with a 2-minute settle: hours 00-04 are closed and final, 05 is not.
NOW = DAY.replace(hour=5, minute=3)
SECRET = "s3cr3t-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stratus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratusUp]:
    """A Stratus of this module's own whose worker leaves exports to the tests (its own run
    happens once at start, before any sink exists)."""
    up = StratusUp(
        tmp_path_factory.mktemp("exports"),
        free_port(),
        free_port(),
        extra_env={
            "STRATUS_BILLING_INTERVAL_SECONDS": "3600",
            "STRATUS_EXPORT_SINK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
        },
    )
    try:
        up.start()
        yield up
    finally:
        up.cleanup()


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> tuple[Tenant, Tenant]:
    tenant, other = new_tenant(stratus, "Exporter"), new_tenant(stratus, "Neighbour")
    asyncio.run(
        record_usage(
            stratus,
            [
                (f"orders.{tenant.account_id}", DAY.replace(hour=1), "actions.workflow", 3),
                (f"orders.{tenant.account_id}", DAY.replace(hour=3), "actions.activity", 12),
                (f"orders.{other.account_id}", DAY.replace(hour=1), "actions.workflow", 99),
                (f"orders.{tenant.account_id}", DAY.replace(hour=5), "actions.timer", 1),
            ],
        )
    )
    return tenant, other


def _sink_body(seaweed: SeaweedS3, bucket_name: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "bucket": bucket_name,
        "prefix": "stratus/exports",
        "endpoint_url": seaweed.endpoint_url,
        "access_key_id": "stratus-test",
        "secret_access_key": SECRET,
        "export_from": str(DAY.date()),
    }
    body.update(overrides)
    return body


def _objects(seaweed: SeaweedS3, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = s3_client(seaweed.sink(bucket), egress=LOOPBACK)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed
    }


def test_sink_api_validates_and_never_returns_or_stores_the_secret_in_clear(
    stratus: StratusUp, seaweed_s3: SeaweedS3, bucket: str, tenant: tuple[Tenant, Tenant]
) -> None:
    """Bad bucket, prefix and endpoint are 400 on the field; a developer may not set it
    (403); the answer and the database hold no plaintext secret; the change is audited."""
    owner, _ = tenant
    _, developer = user_with_key(stratus, owner.api_key, "dev@exporter.example", "developer")
    with http(stratus, owner.api_key) as client:
        assert_problem(client.get("/billing/export-sink"), 404, "not-found")
        for field, value in (
            ("bucket", "Bad_Bucket"),
            ("prefix", "/abs"),
            ("endpoint_url", "ftp://127.0.0.1/x"),
            ("region", "Not A Region"),
        ):
            response = client.put(
                "/billing/export-sink", json=_sink_body(seaweed_s3, bucket, **{field: value})
            )
            assert_problem(response, 400, "invalid-field")
            assert response.json()["field"] == field
        created = client.put("/billing/export-sink", json=_sink_body(seaweed_s3, bucket))
        assert created.status_code == 200, created.text
        assert SECRET not in created.text
        shown = client.get("/billing/export-sink").json()
        events = client.get("/audit-logs").json()["audit_logs"]
    assert shown["bucket"] == bucket
    assert shown["usage_exported_through"] is None
    assert SECRET not in json.dumps(shown)
    assert "export_sink.set" in {event["action"] for event in events}
    assert SECRET not in json.dumps(events)
    with http(stratus, developer) as client:
        denied = client.put("/billing/export-sink", json=_sink_body(seaweed_s3, bucket))
    assert_problem(denied, 403, "forbidden")
    # The database file and its write-ahead log (recent writes live there first).
    for name in ("stratus.db", "stratus.db-wal"):
        path = Path(stratus.data_dir) / name
        if path.exists():
            assert SECRET.encode() not in path.read_bytes()


def test_closed_hours_are_exported_once_per_key_with_only_the_accounts_rows(
    stratus: StratusUp, seaweed_s3: SeaweedS3, bucket: str, tenant: tuple[Tenant, Tenant]
) -> None:
    """At 05:03 hours 00-04 are written (00, 02 and 04 header-only), hour 05 is not final yet;
    the neighbour's 99 never appears. A second run writes nothing new; re-exporting from the
    same day rewrites the same five keys with the same bytes."""
    owner, _ = tenant
    first = asyncio.run(export(stratus, now=NOW))
    assert first.failed == {}
    assert first.usage_hours[owner.account_id] == [DAY.replace(hour=h) for h in range(5)]
    prefix = f"stratus/exports/usage/{owner.account_id}/2026/03/10/"
    objects = _objects(seaweed_s3, bucket, prefix)
    assert sorted(objects) == [f"{prefix}{hour:02d}.csv" for hour in range(5)]
    hour_1 = list(csv.DictReader(io.StringIO(objects[f"{prefix}01.csv"].decode())))
    assert [(r["SubAccountId"], r["SkuId"], r["ConsumedQuantity"]) for r in hour_1] == [
        (f"orders.{owner.account_id}", "actions.workflow", "3")
    ]
    assert objects[f"{prefix}00.csv"].decode().count("\r\n") == 1  # the header alone
    with http(stratus, owner.api_key) as client:
        assert client.get("/billing/export-sink").json()["usage_exported_through"] == (
            "2026-03-10T04:00:00Z"
        )

    second = asyncio.run(export(stratus, now=NOW))
    assert owner.account_id not in second.usage_hours

    with http(stratus, owner.api_key) as client:
        reset = client.put("/billing/export-sink", json=_sink_body(seaweed_s3, bucket))
        assert reset.json()["usage_exported_through"] is None
    again = asyncio.run(export(stratus, now=NOW))
    assert len(again.usage_hours[owner.account_id]) == 5
    assert _objects(seaweed_s3, bucket, prefix) == objects


def test_finalized_invoices_are_delivered_as_json_and_csv_and_again_after_a_credit_note(
    stratus: StratusUp, seaweed_s3: SeaweedS3, bucket: str, tenant: tuple[Tenant, Tenant]
) -> None:
    """A draft is not exported; once finalized, the invoice's JSON (the API's document) and
    CSV land at deterministic keys, once. A credit note makes the exporter write the two
    objects again, now showing the note: still two objects."""
    owner, _ = tenant
    asyncio.run(
        bill(stratus, now=MONTH.replace(day=5), account_ids=[owner.account_id], month=MONTH)
    )
    draft_run = asyncio.run(export(stratus, now=NOW))
    assert owner.account_id not in draft_run.invoices

    asyncio.run(
        bill(stratus, now=MONTH_END + dt.timedelta(days=4), account_ids=[owner.account_id],
             month=MONTH)
    )  # fmt: skip
    delivered = asyncio.run(export(stratus, now=NOW))
    (invoice_id,) = delivered.invoices[owner.account_id]
    prefix = f"stratus/exports/invoices/{owner.account_id}/{MONTH:%Y-%m}/"
    objects = _objects(seaweed_s3, bucket, prefix)
    assert sorted(objects) == [f"{prefix}{invoice_id}.csv", f"{prefix}{invoice_id}.json"]
    with http(stratus, owner.api_key) as client:
        api_invoice = client.get(f"/invoices/{invoice_id}").json()
    assert json.loads(objects[f"{prefix}{invoice_id}.json"]) == api_invoice
    assert api_invoice["status"] == "FINALIZED"
    assert asyncio.run(export(stratus, now=NOW)).invoices == {}

    with http(stratus, stratus.operator_key) as operator:
        note = operator.post(
            f"/invoices/{invoice_id}/credit-notes", json={"amount": "1.00", "reason": "goodwill"}
        )
        assert note.status_code == 201, note.text
    redelivered = asyncio.run(export(stratus, now=NOW))
    assert redelivered.invoices[owner.account_id] == [invoice_id]
    objects = _objects(seaweed_s3, bucket, prefix)
    assert len(objects) == 2
    document = json.loads(objects[f"{prefix}{invoice_id}.json"])
    assert [n["reason"] for n in document["credit_notes"]] == ["goodwill"]


def test_a_failing_sink_keeps_its_place_and_says_why(
    stratus: StratusUp, seaweed_s3: SeaweedS3, bucket: str, tenant: tuple[Tenant, Tenant]
) -> None:
    """Pointed at a port where nothing listens, the run fails for this account only, the
    position stays, and the sink shows the error; deleting the sink stops its exports."""
    owner, _ = tenant
    with http(stratus, owner.api_key) as client:
        before = client.get("/billing/export-sink").json()["usage_exported_through"]
        dead = f"http://127.0.0.1:{free_port()}"
        client.put(
            "/billing/export-sink",
            json={**_sink_body(seaweed_s3, bucket, endpoint_url=dead), "export_from": None},
        )
    report = asyncio.run(export(stratus, now=NOW + dt.timedelta(hours=3)))
    assert owner.account_id in report.failed
    with http(stratus, owner.api_key) as client:
        sink = client.get("/billing/export-sink").json()
        assert sink["usage_exported_through"] == before
        assert sink["last_error"] == "connection refused"
        assert client.delete("/billing/export-sink").status_code == 204
        assert_problem(client.get("/billing/export-sink"), 404, "not-found")
    assert owner.account_id not in asyncio.run(export(stratus, now=NOW)).failed
