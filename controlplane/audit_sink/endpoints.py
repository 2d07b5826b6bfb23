"""The account's audit log sink (S3): hourly JSON Lines objects of its audit events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.audit_sink import service
from controlplane.audit_sink.schemas import AuditLogSinkOut, AuditLogSinkSet
from controlplane.kit.db import utcnow
from controlplane.kit.deps import SecretBoxDep, SessionDep, SettingsDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import AuditSink

router = APIRouter(route_class=ApiRoute, prefix="/audit-log-sink", tags=["audit"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


def _out(sink: AuditSink) -> AuditLogSinkOut:
    return AuditLogSinkOut(
        account_id=sink.account_id,
        bucket=sink.bucket,
        prefix=sink.prefix,
        region=sink.region,
        endpoint_url=sink.endpoint_url,
        access_key_id=sink.access_key_id,
        export_from=sink.export_from,
        exported_through=sink.exported_through,
        last_success_at=sink.last_success_at,
        last_error=sink.last_error,
        last_error_at=sink.last_error_at,
        lag_seconds=service.lag(sink, utcnow()),
    )


@router.get("", response_model=AuditLogSinkOut, responses=Problems)
async def get_audit_log_sink(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.AUDIT_LOG_READ))],
) -> AuditLogSinkOut:
    """The sink and its health: the last hour exported, the last success, the last error and
    the lag (the secret is never returned)."""
    return _out(await service.get(session, principal))


@router.put("", response_model=AuditLogSinkOut, responses=Problems)
async def put_audit_log_sink(
    body: AuditLogSinkSet,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.AUDIT_SINK_UPDATE))],
) -> AuditLogSinkOut:
    """Create or replace the sink: each closed UTC hour's events are written as one JSON Lines
    object at ``<prefix>/<account>/YYYY/MM/DD/HH.jsonl`` (a retry rewrites the same key with
    the same content; hours without events write nothing). The endpoint must resolve to public
    addresses (or networks the operator allows): 400 ``address-not-allowed`` otherwise."""
    return _out(await service.put(session, principal, box, body, egress=settings.export_egress))


@router.delete("", status_code=204, responses=Problems)
async def delete_audit_log_sink(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.AUDIT_SINK_UPDATE))],
) -> Response:
    await service.delete(session, principal)
    return Response(status_code=204)
