"""Usage exports: FOCUS-style CSV, written per account and UTC hour to the account's S3 sink.

Delivery is at-least-once: an hour's object has a deterministic key, so exporting the same hour
again (a retry, a re-run after a crash) overwrites the object instead of adding a second one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

# FOCUS (FinOps Open Cost and Usage Specification) column names, the subset that usage without
# prices can fill. Costs are not in this file: they belong to invoices.
USAGE_CSV_COLUMNS: tuple[str, ...] = (
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
)

_HOUR = dt.timedelta(hours=1)
# Units by kind family; a kind of an unknown family still exports, in plain units.
_UNITS = {"actions": "Actions", "storage": "Byte-Hours"}


class UsageRow(Protocol):
    """One metered (namespace, UTC hour, kind) quantity; ``UsageRecord`` is one."""

    @property
    def namespace_id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def hour_start(self) -> dt.datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def quantity(self) -> int | Decimal: ...


@dataclass(frozen=True)
class ExportSink:
    """Where one account's exports go: a bucket and key prefix on an S3-compatible store."""

    bucket: str
    prefix: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    # None means AWS itself; set for any other S3-compatible store.
    endpoint_url: str | None = None


def s3_client(
    sink: ExportSink,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    max_attempts: int = 3,
) -> S3Client:
    """A boto3 S3 client for ``sink``, to build once and reuse for its exports.

    Path-style addressing (``endpoint/bucket/key``) works on every S3-compatible store, where
    virtual-host buckets need DNS per bucket. Timeouts are explicit so a stalled store fails an
    export (to be retried) instead of hanging the exporter.
    """
    # Imported here: boto3 takes ~150 ms to import and only the exporter needs it.
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.client(
        "s3",
        endpoint_url=sink.endpoint_url,
        region_name=sink.region,
        aws_access_key_id=sink.access_key_id,
        aws_secret_access_key=sink.secret_access_key,
        config=config,
    )


def usage_csv(rows: Iterable[UsageRow]) -> bytes:
    """Usage rows as UTF-8 CSV with FOCUS-style columns, one line per row.

    Lines are ordered by account, hour, namespace and kind, so the same rows always give the
    same bytes whatever order they were read in. Quantities are exact integers or decimals.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(USAGE_CSV_COLUMNS)
    ordered = sorted(
        rows, key=lambda row: (row.account_id, _utc(row.hour_start), row.namespace_id, row.kind)
    )
    for row in ordered:
        start = _utc(row.hour_start)
        writer.writerow(
            (
                row.account_id,
                row.namespace_id,
                "Stratus",
                "Temporal",
                "Usage",
                _timestamp(start),
                _timestamp(start + _HOUR),
                row.kind,
                _description(row.kind),
                _quantity(row.quantity),
                _UNITS.get(row.kind.partition(".")[0], "Units"),
            )
        )
    return buffer.getvalue().encode("utf-8")


def usage_object_key(sink: ExportSink, account_id: str, hour_start: dt.datetime) -> str:
    """The object key of one account's usage in one UTC hour:
    ``{prefix}/usage/{account_id}/{YYYY}/{MM}/{DD}/{HH}.csv``."""
    start = _hour(hour_start)
    key = f"usage/{account_id}/{start:%Y/%m/%d/%H}.csv"
    prefix = sink.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def export_usage_hour(
    s3: S3Client,
    sink: ExportSink,
    account_id: str,
    hour_start: dt.datetime,
    rows: Iterable[UsageRow],
) -> str:
    """Write one account's usage of one UTC hour to its sink and return the object key.

    ``rows`` must all belong to that account and hour (anything else raises ``ValueError``
    before a byte is written: a foreign row would leak into this account's bucket). An hour
    without usage is written as a header-only file, so a consumer can tell "nothing used" from
    "not exported yet". Repeating the call rewrites the same key.
    """
    start = _hour(hour_start)
    rows = list(rows)
    for row in rows:
        if row.account_id != account_id or _utc(row.hour_start) != start:
            raise ValueError(
                f"usage row of account {row.account_id!r}, hour {_timestamp(row.hour_start)} "
                f"does not belong in the export of account {account_id!r}, "
                f"hour {_timestamp(start)}"
            )
    key = usage_object_key(sink, account_id, start)
    s3.put_object(
        Bucket=sink.bucket, Key=key, Body=usage_csv(rows), ContentType="text/csv; charset=utf-8"
    )
    return key


def invoice_object_keys(
    sink: ExportSink, account_id: str, period_start: dt.date, invoice_id: str
) -> tuple[str, str]:
    """The JSON and CSV object keys of one invoice:
    ``{prefix}/invoices/{account_id}/{YYYY-MM}/{invoice_id}.json`` (and ``.csv``)."""
    key = f"invoices/{account_id}/{period_start:%Y-%m}/{invoice_id}"
    prefix = sink.prefix.strip("/")
    base = f"{prefix}/{key}" if prefix else key
    return f"{base}.json", f"{base}.csv"


def export_invoice(
    s3: S3Client,
    sink: ExportSink,
    account_id: str,
    period_start: dt.date,
    invoice_id: str,
    *,
    json_document: bytes,
    csv_document: bytes,
) -> tuple[str, str]:
    """Write one invoice as JSON and CSV to its account's sink; returns the two keys. The keys
    depend only on the invoice, so a repeated delivery overwrites the same two objects."""
    json_key, csv_key = invoice_object_keys(sink, account_id, period_start, invoice_id)
    s3.put_object(
        Bucket=sink.bucket, Key=json_key, Body=json_document, ContentType="application/json"
    )
    s3.put_object(
        Bucket=sink.bucket, Key=csv_key, Body=csv_document, ContentType="text/csv; charset=utf-8"
    )
    return json_key, csv_key


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: usage hours are UTC")
    return moment.astimezone(dt.UTC)


def _hour(moment: dt.datetime) -> dt.datetime:
    start = _utc(moment)
    if start != start.replace(minute=0, second=0, microsecond=0):
        raise ValueError(f"{start.isoformat()} is not the start of an hour")
    return start


def _timestamp(moment: dt.datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _description(kind: str) -> str:
    family, _, detail = kind.partition(".")
    return f"Temporal {family}: {detail.replace('_', ' ')}" if detail else f"Temporal {family}"


def _quantity(quantity: int | Decimal) -> str:
    # "f" keeps decimals out of exponent notation (Decimal("1E+3") would print as "1E+3").
    return str(quantity) if isinstance(quantity, int) else format(quantity, "f")
