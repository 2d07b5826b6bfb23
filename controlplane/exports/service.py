"""An account's export sink: configured by owners and finance admins, the secret encrypted."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, SecretBox
from billing import (
    EgressPolicy,
    EndpointNotAllowed,
    InvalidEndpoint,
    S3ExportTarget,
    parse_endpoint_url,
)
from controlplane.audit import service as audit
from controlplane.exports.repository import ExportSinkRepository
from controlplane.exports.schemas import ExportSinkSet, S3TargetSet
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import AddressNotAllowed, InvalidField, NotFound
from controlplane.models import ExportSink
from controlplane.models.s3_sink import S3SinkColumns

# S3 bucket naming rules (lowercase letters, digits, dots, hyphens; 3-63; alphanumeric ends).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,32}$")
MAX_PREFIX = 512


def secret_binding(account_id: str) -> str:
    """What a sink's secret is bound to: it decrypts only on that account's row."""
    return f"export-sink:{account_id}"


def validate_target(body: S3TargetSet) -> None:
    """An S3 sink's bucket, prefix, region and credentials, checked (400 on the field)."""
    if not _BUCKET_RE.match(body.bucket) or ".." in body.bucket:
        raise InvalidField(
            "bucket must be an S3 bucket name: 3-63 lowercase letters, digits, dots or hyphens",
            field="bucket",
        )
    if len(body.prefix) > MAX_PREFIX or body.prefix.startswith("/") or ".." in body.prefix:
        raise InvalidField(
            f"prefix must be at most {MAX_PREFIX} characters, not start with / nor contain ..",
            field="prefix",
        )
    if not _REGION_RE.match(body.region):
        raise InvalidField("region must look like us-east-1", field="region")
    if not body.access_key_id.strip():
        raise InvalidField("access_key_id is required", field="access_key_id")
    if not body.secret_access_key:
        raise InvalidField("secret_access_key is required", field="secret_access_key")


async def check_endpoint(endpoint_url: str, egress: EgressPolicy) -> None:
    """The endpoint must be a plain http(s) URL whose host resolves only to addresses sinks may
    reach. A name that does not resolve yet is accepted: it is checked again on every
    connection the exporter opens, which is what stops DNS rebinding anyway."""
    try:
        parts = parse_endpoint_url(endpoint_url)
    except InvalidEndpoint as exc:
        raise InvalidField(str(exc), field="endpoint_url") from None
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        await asyncio.to_thread(egress.allowed_addresses, parts.hostname, port)
    except EndpointNotAllowed as exc:
        raise AddressNotAllowed(
            f"endpoint_url resolves to an address export sinks may not reach ({exc.reason}); "
            "sinks must be reachable at public addresses (the operator can allow other "
            "networks with STRATUS_EXPORT_SINK_ALLOWED_NETWORKS)",
            field="endpoint_url",
        ) from None
    except (socket.gaierror, UnicodeError):
        pass


def store_target(
    sink: S3SinkColumns, body: S3TargetSet, box: SecretBox, *, bound_to: str
) -> dict[str, object]:
    """Set the sink's target from a validated ``body``, its secret sealed to ``bound_to``, and
    clear its last error; the target as the audit event records it (never the secret)."""
    sink.bucket = body.bucket
    sink.prefix = body.prefix
    sink.region = body.region
    sink.endpoint_url = body.endpoint_url
    sink.access_key_id = body.access_key_id.strip()
    sink.secret_access_key_encrypted = box.seal(body.secret_access_key, bound_to=bound_to)
    sink.last_error = None
    sink.last_error_at = None
    return {
        "bucket": body.bucket,
        "prefix": body.prefix,
        "region": body.region,
        "endpoint_url": body.endpoint_url,
        "access_key_id": sink.access_key_id,
    }


def open_target(sink: S3SinkColumns, box: SecretBox, *, bound_to: str) -> S3ExportTarget:
    """The sink as the S3 code takes it, its secret opened (sealed to ``bound_to``)."""
    return S3ExportTarget(
        bucket=sink.bucket,
        prefix=sink.prefix,
        region=sink.region,
        access_key_id=sink.access_key_id,
        secret_access_key=box.open(sink.secret_access_key_encrypted, bound_to=bound_to),
        endpoint_url=sink.endpoint_url,
    )


async def get(session: AsyncSession, principal: Principal) -> ExportSink:
    require(principal, Action.BILLING_READ)
    sink = await ExportSinkRepository(session, principal).get()
    if sink is None:
        raise NotFound("this account has no export sink")
    return sink


async def put(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    body: ExportSinkSet,
    *,
    egress: EgressPolicy,
) -> ExportSink:
    """Create or replace the account's sink. Replacing keeps the export position unless
    ``export_from`` is given (then usage is exported again from that day). The endpoint must
    resolve to addresses ``egress`` allows."""
    require(principal, Action.EXPORT_SINK_UPDATE)
    if body.export_from is not None:
        fields.day(body.export_from, field="export_from")
    validate_target(body)
    if body.endpoint_url is not None:
        await check_endpoint(body.endpoint_url, egress)
    repository = ExportSinkRepository(session, principal)
    account_id = repository.account_id
    sink = await repository.get()
    export_from = (
        dt.datetime.combine(body.export_from, dt.time(), tzinfo=dt.UTC)
        if body.export_from is not None
        else None
    )
    if sink is None:
        sink = ExportSink(
            account_id=account_id,
            export_from=export_from or utcnow().replace(hour=0, minute=0, second=0, microsecond=0),
        )
        repository.add(sink)
    elif export_from is not None:
        sink.export_from = export_from
        sink.usage_exported_through = None
    details = store_target(sink, body, box, bound_to=secret_binding(account_id))
    audit.record(
        session,
        principal,
        action="export_sink.set",
        target=account_id,
        account_id=account_id,
        details={**details, "export_from": sink.export_from.isoformat()},
    )
    await session.flush()
    return sink


async def delete(session: AsyncSession, principal: Principal) -> None:
    require(principal, Action.EXPORT_SINK_UPDATE)
    repository = ExportSinkRepository(session, principal)
    sink = await repository.get()
    if sink is None:
        raise NotFound("this account has no export sink")
    await repository.delete(sink)
    audit.record(
        session,
        principal,
        action="export_sink.delete",
        target=sink.account_id,
        account_id=sink.account_id,
    )
    await session.flush()
