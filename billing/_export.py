"""Usage exports: FOCUS-style CSV, written per account and UTC hour to the account's S3 sink.

Delivery is at-least-once: an hour's object has a deterministic key, so exporting the same hour
again (a retry, a re-run after a crash) overwrites the object instead of adding a second one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from billing._egress import EgressPolicy, EndpointNotAllowed

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from botocore.httpsession import URLLib3Session
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
    "Tags",
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
class S3ExportTarget:
    """Where one account's exports go: a bucket and key prefix on an S3-compatible store."""

    bucket: str
    prefix: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    # None means AWS itself; set for any other S3-compatible store.
    endpoint_url: str | None = None


def s3_client(
    sink: S3ExportTarget,
    *,
    egress: EgressPolicy,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
    max_attempts: int = 3,
) -> S3Client:
    """A boto3 S3 client for ``sink``, to build once and reuse for its exports.

    Path-style addressing (``endpoint/bucket/key``) works on every S3-compatible store, where
    virtual-host buckets need DNS per bucket. Timeouts are explicit so a stalled store fails an
    export (to be retried) instead of hanging the exporter. Every connection the client opens
    goes through ``egress``: the host is resolved once, every address checked, and the socket
    opened to a checked address only (no proxy from the environment is used).
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
    client = boto3.client(
        "s3",
        endpoint_url=sink.endpoint_url,
        region_name=sink.region,
        aws_access_key_id=sink.access_key_id,
        aws_secret_access_key=sink.secret_access_key,
        config=config,
    )
    session = _pinned_http_session(egress, connect_timeout, read_timeout)

    # botocore's documented hook: a "before-send" handler that answers sends the request
    # itself, here through the pinned session, so no request leaves by botocore's own pool.
    def send(request: AWSPreparedRequest, **_: Any) -> Any:
        response: AWSResponse = session.send(request)
        return response

    client.meta.events.register("before-send.s3", send)
    return client


def _pinned_http_session(
    egress: EgressPolicy, connect_timeout: float, read_timeout: float
) -> URLLib3Session:
    """botocore's urllib3 session whose connections resolve, check and pin through ``egress``."""
    from botocore.awsrequest import (
        AWSHTTPConnection,
        AWSHTTPConnectionPool,
        AWSHTTPSConnection,
        AWSHTTPSConnectionPool,
    )
    from botocore.httpsession import URLLib3Session
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.connection import create_connection

    def connect(connection: AWSHTTPConnection | AWSHTTPSConnection) -> socket.socket:
        # The one place a sink's socket is opened: to an address that passed the check.
        # The TLS server name and the Host header stay the URL's host (connection.host).
        try:
            addresses = egress.allowed_addresses(connection.host, connection.port)
        except socket.gaierror as exc:
            raise NameResolutionError(connection.host, connection, exc) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return create_connection(
                    (str(address), connection.port),
                    connection.timeout,
                    source_address=connection.source_address,
                    socket_options=connection.socket_options,
                )
            except TimeoutError as exc:
                failure = ConnectTimeoutError(connection, f"connect timeout: {exc}")
            except OSError as exc:
                failure = NewConnectionError(connection, f"connection failed: {exc}")
                failure.__cause__ = exc
        assert failure is not None
        raise failure

    class PinnedHTTPConnection(AWSHTTPConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self)

    class PinnedHTTPSConnection(AWSHTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self)

    class PinnedHTTPConnectionPool(AWSHTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSConnectionPool(AWSHTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    timeout: Any = (connect_timeout, read_timeout)  # the stubs say int; botocore takes a pair
    session = URLLib3Session(timeout=timeout)
    pools = {"http": PinnedHTTPConnectionPool, "https": PinnedHTTPSConnectionPool}
    # URLLib3Session has no public way to choose its pool classes; it keeps them here and
    # hands them to its pool manager (botocore 1.3x-1.4x). tests/billing/test_export_egress.py
    # proves the pinning on a real connection.
    internals: Any = session
    internals._pool_classes_by_scheme = pools
    internals._manager.pool_classes_by_scheme = pools
    return session


def failure_category(error: BaseException) -> str:
    """What a sink's failed export shows its tenant: a category, never the target's answer
    (its body or headers could be anything, e.g. a loopback service's secrets)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
        SSLError,
    )

    seen: set[int] = set()
    current: BaseException | None = error
    chain: list[BaseException] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        wrapped = getattr(current, "kwargs", {}).get("error")  # botocore keeps the cause here
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    for item in chain:
        if isinstance(item, EndpointNotAllowed):
            return str(item)
    for item in chain:
        if isinstance(item, ClientError):
            status = int(item.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            return _http_category(status)
        if isinstance(item, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
            return "timeout"
        if isinstance(item, SSLError):
            return "TLS error"
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, ConnectionClosedError):
            return "connection closed by the endpoint"
        if isinstance(item, NoCredentialsError):
            return "no credentials"
    for item in chain:
        if isinstance(item, socket.gaierror):
            return "endpoint name not resolved"
        if isinstance(item, EndpointConnectionError):
            return "could not connect to the endpoint"
    return f"export failed ({type(error).__name__})"


def _http_category(status: int) -> str:
    if status in (401, 403):
        return f"access denied (HTTP {status})"
    if status == 404:
        return "bucket not found (HTTP 404)"
    if status in (301, 307, 308):
        return f"wrong region or endpoint (HTTP {status})"
    if 500 <= status <= 599:
        return f"endpoint server error (HTTP {status})"
    if status:
        return f"request refused (HTTP {status})"
    return "invalid answer from the endpoint"


NamespaceTags = Mapping[str, Mapping[str, str]]
"""Each namespace's tags by namespace id (for chargeback: FOCUS's ``Tags`` column)."""


def usage_csv(rows: Iterable[UsageRow], tags: NamespaceTags | None = None) -> bytes:
    """Usage rows as UTF-8 CSV with FOCUS-style columns, one line per row.

    Lines are ordered by account, hour, namespace and kind, so the same rows always give the
    same bytes whatever order they were read in. Quantities are exact integers or decimals.
    ``Tags`` is the row's namespace's tags as a JSON object (keys sorted; ``{}`` when it has
    none or is not in ``tags``).
    """
    tags = tags or {}
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
                json.dumps(
                    dict(tags.get(row.namespace_id, {})), sort_keys=True, separators=(",", ":")
                ),
            )
        )
    return buffer.getvalue().encode("utf-8")


def usage_object_key(sink: S3ExportTarget, account_id: str, hour_start: dt.datetime) -> str:
    """The object key of one account's usage in one UTC hour:
    ``{prefix}/usage/{account_id}/{YYYY}/{MM}/{DD}/{HH}.csv``."""
    start = _hour(hour_start)
    key = f"usage/{account_id}/{start:%Y/%m/%d/%H}.csv"
    prefix = sink.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def export_usage_hour(
    s3: S3Client,
    sink: S3ExportTarget,
    account_id: str,
    hour_start: dt.datetime,
    rows: Iterable[UsageRow],
    tags: NamespaceTags | None = None,
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
        Bucket=sink.bucket,
        Key=key,
        Body=usage_csv(rows, tags),
        ContentType="text/csv; charset=utf-8",
    )
    return key


def invoice_object_keys(
    sink: S3ExportTarget, account_id: str, period_start: dt.date, invoice_id: str
) -> tuple[str, str]:
    """The JSON and CSV object keys of one invoice:
    ``{prefix}/invoices/{account_id}/{YYYY-MM}/{invoice_id}.json`` (and ``.csv``)."""
    key = f"invoices/{account_id}/{period_start:%Y-%m}/{invoice_id}"
    prefix = sink.prefix.strip("/")
    base = f"{prefix}/{key}" if prefix else key
    return f"{base}.json", f"{base}.csv"


def export_invoice(
    s3: S3Client,
    sink: S3ExportTarget,
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
