"""Usage exports: the FOCUS-style CSV, and hourly objects on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from seaweed_server import LOOPBACK, SeaweedS3
from types_boto3_s3 import S3Client

from billing import (
    USAGE_CSV_COLUMNS,
    S3ExportTarget,
    export_usage_hour,
    s3_client,
    usage_csv,
    usage_object_key,
)
from controlplane.models.usage_record import UsageRecord

HOUR = dt.datetime(2026, 11, 24, 13, tzinfo=dt.UTC)
NEXT_HOUR = HOUR + dt.timedelta(hours=1)


def record(namespace_id: str, kind: str, quantity: int, hour: dt.datetime = HOUR) -> UsageRecord:
    account_id = namespace_id.rsplit(".", 1)[1]
    return UsageRecord(
        namespace_id=namespace_id,
        account_id=account_id,
        hour_start=hour,
        kind=kind,
        quantity=quantity,
    )


ROWS = [
    record("orders.a1b2c", "actions.workflow", 3),
    record("billing.a1b2c", "actions.signal", 1),
    record("orders.a1b2c", "actions.activity", 12),
    record("billing.a1b2c", "actions.child_workflow", 2),
]


@pytest.fixture
def sink(seaweed_s3: SeaweedS3, bucket: str) -> S3ExportTarget:
    """The sink of one test: its own prefix in the shared bucket."""
    return seaweed_s3.sink(bucket, prefix=f"t{uuid.uuid4().hex[:8]}/exports/")


@pytest.fixture
def s3(sink: S3ExportTarget) -> S3Client:
    return s3_client(sink, egress=LOOPBACK)


def keys_under(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def read_object(s3: S3Client, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_usage_csv_has_focus_columns_and_one_ordered_line_per_row() -> None:
    """Each row becomes one line with the FOCUS columns, ordered by account, hour, namespace
    and kind whatever the input order, so the same usage always gives the same bytes."""
    other_account = record("orders.zz9zz", "actions.workflow", 7)
    earlier = record("orders.a1b2c", "actions.timer", 5, hour=HOUR - dt.timedelta(hours=1))

    data = usage_csv([*ROWS, other_account, earlier])

    assert data == usage_csv(reversed([*ROWS, other_account, earlier]))
    assert data.decode("utf-8").split("\r\n") == [
        ",".join(USAGE_CSV_COLUMNS),
        "a1b2c,orders.a1b2c,Stratus,Temporal,Usage,2026-11-24T12:00:00Z,2026-11-24T13:00:00Z,"
        "actions.timer,Temporal actions: timer,5,Actions,{}",
        "a1b2c,billing.a1b2c,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "actions.child_workflow,Temporal actions: child workflow,2,Actions,{}",
        "a1b2c,billing.a1b2c,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "actions.signal,Temporal actions: signal,1,Actions,{}",
        "a1b2c,orders.a1b2c,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "actions.activity,Temporal actions: activity,12,Actions,{}",
        "a1b2c,orders.a1b2c,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "actions.workflow,Temporal actions: workflow,3,Actions,{}",
        "zz9zz,orders.zz9zz,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "actions.workflow,Temporal actions: workflow,7,Actions,{}",
        "",
    ]
    assert USAGE_CSV_COLUMNS == (
        "BillingAccountId",
        "SubAccountId",
        "ProviderName",
        "ServiceName",
        "ChargeCategory",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "SkuId",
        "ChargeDescription",
        "ConsumedQuantity",
        "ConsumedUnit",
        "Tags",
    )


@dataclass(frozen=True)
class StorageRow:
    """A usage row with a decimal quantity, as storage GB-hours will have."""

    namespace_id: str
    account_id: str
    hour_start: dt.datetime
    kind: str
    quantity: Decimal


def test_usage_csv_writes_decimals_exactly_and_hours_in_utc() -> None:
    """Decimal quantities keep every digit and never use exponent notation; an hour given in
    another zone is written as its UTC instant."""
    berlin = dt.timezone(dt.timedelta(hours=1))
    rows = [
        StorageRow(
            "orders.a1b2c",
            "a1b2c",
            dt.datetime(2026, 11, 24, 14, tzinfo=berlin),
            "storage.active",
            Decimal("1E+3"),
        ),
        StorageRow("orders.a1b2c", "a1b2c", HOUR, "storage.retained", Decimal("0.125")),
    ]

    lines = usage_csv(rows).decode("utf-8").split("\r\n")

    assert lines[1:3] == [
        "a1b2c,orders.a1b2c,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "storage.active,Temporal storage: active,1000,Byte-Hours,{}",
        "a1b2c,orders.a1b2c,Stratus,Temporal,Usage,2026-11-24T13:00:00Z,2026-11-24T14:00:00Z,"
        "storage.retained,Temporal storage: retained,0.125,Byte-Hours,{}",
    ]


def test_usage_csv_carries_each_namespace_tags_for_chargeback() -> None:
    """The Tags column holds the row's namespace's tags as a JSON object (keys sorted, quoted
    as CSV requires); a namespace without tags gets ``{}``."""
    tags = {"orders.a1b2c": {"team": "payments", "cost-center": "cc-42"}}

    rows = list(csv.reader(io.StringIO(usage_csv(ROWS, tags).decode("utf-8"))))

    by_namespace = {row[1]: json.loads(row[-1]) for row in rows[1:]}
    assert by_namespace == {
        "orders.a1b2c": {"cost-center": "cc-42", "team": "payments"},
        "billing.a1b2c": {},
    }
    assert '"{""cost-center"":""cc-42"",""team"":""payments""}"' in usage_csv(ROWS, tags).decode()


def test_usage_csv_of_no_rows_is_the_header_alone() -> None:
    assert usage_csv([]) == (",".join(USAGE_CSV_COLUMNS) + "\r\n").encode()


def test_object_key_is_prefix_account_and_utc_hour() -> None:
    """The key depends only on prefix, account and hour, so every retry hits the same object."""

    def sink(prefix: str) -> S3ExportTarget:
        return S3ExportTarget(
            bucket="b", prefix=prefix, region="r", access_key_id="k", secret_access_key="s"
        )

    expected = "stratus/exports/usage/a1b2c/2026/11/24/13.csv"
    assert usage_object_key(sink("stratus/exports/"), "a1b2c", HOUR) == expected
    assert usage_object_key(sink("/stratus/exports"), "a1b2c", HOUR) == expected
    assert usage_object_key(sink(""), "a1b2c", HOUR) == "usage/a1b2c/2026/11/24/13.csv"
    assert "secret" not in repr(sink(""))


def test_export_writes_the_hour_csv_at_its_key(s3: S3Client, sink: S3ExportTarget) -> None:
    """One export puts exactly one object, at the hour's key, holding the hour's CSV."""
    key = export_usage_hour(s3, sink, "a1b2c", HOUR, ROWS)

    assert key == f"{sink.prefix}usage/a1b2c/2026/11/24/13.csv"
    assert keys_under(s3, sink.bucket, sink.prefix) == [key]
    assert read_object(s3, sink.bucket, key) == usage_csv(ROWS)
    assert s3.head_object(Bucket=sink.bucket, Key=key)["ContentType"] == "text/csv; charset=utf-8"


def test_repeated_export_overwrites_the_same_object(s3: S3Client, sink: S3ExportTarget) -> None:
    """A retry of the same hour (at-least-once delivery) rewrites its object: still exactly one
    object under the prefix, with the same bytes; a re-run after late usage replaces them."""
    first = export_usage_hour(s3, sink, "a1b2c", HOUR, ROWS)
    second = export_usage_hour(s3, sink, "a1b2c", HOUR, list(reversed(ROWS)))

    assert second == first
    assert keys_under(s3, sink.bucket, sink.prefix) == [first]
    assert read_object(s3, sink.bucket, first) == usage_csv(ROWS)

    late = [*ROWS, record("orders.a1b2c", "actions.query", 4)]
    export_usage_hour(s3, sink, "a1b2c", HOUR, late)
    assert keys_under(s3, sink.bucket, sink.prefix) == [first]
    assert read_object(s3, sink.bucket, first) == usage_csv(late)


def test_two_hours_are_two_objects(s3: S3Client, sink: S3ExportTarget) -> None:
    """Each hour has its own object; an hour without usage is a header-only file."""
    next_rows = [record("orders.a1b2c", "actions.workflow", 9, hour=NEXT_HOUR)]
    export_usage_hour(s3, sink, "a1b2c", HOUR, ROWS)
    export_usage_hour(s3, sink, "a1b2c", NEXT_HOUR, next_rows)
    export_usage_hour(s3, sink, "a1b2c", NEXT_HOUR + dt.timedelta(hours=1), [])

    prefix = f"{sink.prefix}usage/a1b2c/2026/11/24/"
    assert keys_under(s3, sink.bucket, sink.prefix) == [
        f"{prefix}13.csv",
        f"{prefix}14.csv",
        f"{prefix}15.csv",
    ]
    assert read_object(s3, sink.bucket, f"{prefix}14.csv") == usage_csv(next_rows)
    assert read_object(s3, sink.bucket, f"{prefix}15.csv") == usage_csv([])


@pytest.mark.parametrize(
    ("account_id", "hour", "message"),
    [
        ("zz9zz", HOUR, "does not belong in the export of account 'zz9zz'"),
        (
            "a1b2c",
            NEXT_HOUR,
            "does not belong in the export of account 'a1b2c', hour 2026-11-24T14",
        ),
        ("a1b2c", HOUR.replace(minute=30), "is not the start of an hour"),
        ("a1b2c", HOUR.replace(tzinfo=None), "naive datetime"),
    ],
)
def test_export_refuses_rows_of_another_account_or_hour(
    s3: S3Client, sink: S3ExportTarget, account_id: str, hour: dt.datetime, message: str
) -> None:
    """A row of another account or hour, or an hour that is not a UTC hour start, is refused
    before anything is written: a foreign row must never reach this account's bucket."""
    with pytest.raises(ValueError, match=message):
        export_usage_hour(s3, sink, account_id, hour, ROWS)

    assert keys_under(s3, sink.bucket, sink.prefix) == []
