"""An account's audit log sink: configured by owners and admins, the secret encrypted, the
endpoint held to the same egress rules as the usage export sink."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, SecretBox
from billing import EgressPolicy, hour_of
from controlplane.audit import service as audit
from controlplane.audit_sink.repository import AuditSinkRepository
from controlplane.audit_sink.schemas import AuditLogSinkSet
from controlplane.exports import service as exports
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import NotFound
from controlplane.models import AuditSink

HOUR = dt.timedelta(hours=1)
NO_SINK = "this account has no audit log sink"
READ_REFUSAL = "this credential may not read the audit log sink"
UPDATE_REFUSAL = "this credential may not change the audit log sink"


def secret_binding(account_id: str) -> str:
    """What a sink's secret is bound to: it decrypts only on that account's audit sink row
    (not on its usage export sink's, nor another account's)."""
    return f"audit-sink:{account_id}"


def lag(sink: AuditSink, now: dt.datetime) -> int:
    """Seconds from the end of the last hour exported (or the start of the first hour to
    export) to ``now``."""
    done = sink.exported_through + HOUR if sink.exported_through is not None else sink.export_from
    return max(0, int((now - done).total_seconds()))


async def get(session: AsyncSession, principal: Principal) -> AuditSink:
    require(principal, Action.AUDIT_LOG_READ, refusal=READ_REFUSAL)
    sink = await AuditSinkRepository(session, principal).get()
    if sink is None:
        raise NotFound(NO_SINK)
    return sink


async def put(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    body: AuditLogSinkSet,
    *,
    egress: EgressPolicy,
) -> AuditSink:
    """Create or replace the account's sink. Replacing keeps the cursor unless ``export_from``
    is given (then the hours from there are written again, over the same keys). The endpoint
    must resolve to addresses ``egress`` allows."""
    require(principal, Action.AUDIT_SINK_UPDATE, refusal=UPDATE_REFUSAL)
    exports.validate_target(body)
    start = None
    if body.export_from is not None:
        moment = body.export_from
        moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
        fields.day(moment.date(), field="export_from")
        start = hour_of(moment)
    if body.endpoint_url is not None:
        await exports.check_endpoint(body.endpoint_url, egress)
    repository = AuditSinkRepository(session, principal)
    account_id = repository.account_id
    sink = await repository.get()
    if sink is None:
        sink = AuditSink(account_id=account_id, export_from=start or hour_of(utcnow()))
        repository.add(sink)
    elif start is not None:
        sink.export_from = start
        sink.exported_through = None
    details = exports.store_target(sink, body, box, bound_to=secret_binding(account_id))
    audit.record(
        session,
        principal,
        action="audit_sink.set",
        target=account_id,
        account_id=account_id,
        details={**details, "export_from": sink.export_from.isoformat()},
    )
    await session.flush()
    return sink


async def delete(session: AsyncSession, principal: Principal) -> None:
    require(principal, Action.AUDIT_SINK_UPDATE, refusal=UPDATE_REFUSAL)
    repository = AuditSinkRepository(session, principal)
    sink = await repository.get()
    if sink is None:
        raise NotFound(NO_SINK)
    await repository.delete(sink)
    audit.record(
        session,
        principal,
        action="audit_sink.delete",
        target=sink.account_id,
        account_id=sink.account_id,
    )
    await session.flush()
