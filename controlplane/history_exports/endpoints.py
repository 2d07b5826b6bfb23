"""A namespace's workflow history export sink (S3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.history_exports import service
from controlplane.history_exports.schemas import (
    HistoryExportSinkOut,
    HistoryExportSinkSet,
    HistoryExportSinkValidation,
)
from controlplane.kit.deps import SecretBoxDep, SessionDep, SettingsDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import HistoryExportSink

router = APIRouter(
    route_class=ApiRoute, prefix="/namespaces/{namespace_id}/export-sink", tags=["namespaces"]
)
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


def _out(sink: HistoryExportSink) -> HistoryExportSinkOut:
    return HistoryExportSinkOut(
        namespace_id=sink.namespace_id,
        bucket=sink.bucket,
        prefix=sink.prefix,
        region=sink.region,
        endpoint_url=sink.endpoint_url,
        access_key_id=sink.access_key_id,
        export_from=sink.export_from,
        exported_until=sink.exported_until,
        exported_count=sink.exported_count,
        last_exported_at=sink.last_exported_at,
        last_error=sink.last_error,
        last_error_at=sink.last_error_at,
    )


@router.get("", response_model=HistoryExportSinkOut, responses=Problems)
async def get_history_export_sink(
    namespace_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_READ))],
) -> HistoryExportSinkOut:
    """The sink and the export's progress: every run closed before ``exported_until`` is in
    the bucket, ``exported_count`` runs so far; the last error if the last attempt failed (the
    secret is never returned)."""
    return _out(await service.get(session, principal, namespace_id))


@router.put("", response_model=HistoryExportSinkOut, responses=Problems)
async def put_history_export_sink(
    namespace_id: str,
    body: HistoryExportSinkSet,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_UPDATE))],
) -> HistoryExportSinkOut:
    """Create or replace the sink: every workflow run that closes is exported after its UTC
    hour ends, one ``temporal.api.history.v1.History`` protobuf object per run at
    ``{prefix}/{namespace}/{YYYY}/{MM}/{DD}/{HH}/{workflow_id}/{run_id}.history.binpb`` (ids
    base64url). The endpoint must resolve to public addresses (or networks the operator
    allows): 400 ``address-not-allowed`` otherwise."""
    return _out(
        await service.put(
            session, principal, box, namespace_id, body, egress=settings.export_egress
        )
    )


@router.delete("", status_code=204, responses=Problems)
async def delete_history_export_sink(
    namespace_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_UPDATE))],
) -> Response:
    await service.delete(session, principal, namespace_id)
    return Response(status_code=204)


@router.post("/validate", response_model=HistoryExportSinkValidation, responses=Problems)
async def validate_history_export_sink(
    namespace_id: str,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_UPDATE))],
) -> HistoryExportSinkValidation:
    """Write a probe object to the sink and delete it: ``ok``, or the S3 error (its category
    and S3's error code, e.g. ``bucket not found (HTTP 404): NoSuchBucket``)."""
    probe = await service.validate(
        session, principal, box, namespace_id, egress=settings.export_egress
    )
    return HistoryExportSinkValidation(ok=probe.ok, probe_key=probe.key, error=probe.error)
