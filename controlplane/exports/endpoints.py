"""The account's export sink (S3) for usage and invoices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.exports import service
from controlplane.exports.schemas import ExportSinkOut, ExportSinkSet
from controlplane.kit.deps import SecretBoxDep, SessionDep, SettingsDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import ExportSink

router = APIRouter(route_class=ApiRoute, prefix="/billing/export-sink", tags=["billing"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


def _out(sink: ExportSink) -> ExportSinkOut:
    return ExportSinkOut(
        account_id=sink.account_id,
        bucket=sink.bucket,
        prefix=sink.prefix,
        region=sink.region,
        endpoint_url=sink.endpoint_url,
        access_key_id=sink.access_key_id,
        export_from=sink.export_from,
        usage_exported_through=sink.usage_exported_through,
        last_error=sink.last_error,
        last_error_at=sink.last_error_at,
    )


@router.get("", response_model=ExportSinkOut, responses=Problems)
async def get_export_sink(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.BILLING_READ))],
) -> ExportSinkOut:
    """The sink and how far the export has got (the secret is never returned)."""
    return _out(await service.get(session, principal))


@router.put("", response_model=ExportSinkOut, responses=Problems)
async def put_export_sink(
    body: ExportSinkSet,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.EXPORT_SINK_UPDATE))],
) -> ExportSinkOut:
    """Create or replace the sink: usage is written hourly (one CSV per UTC hour) and every
    finalized invoice as JSON and CSV, at deterministic keys (a retry overwrites). The
    endpoint must resolve to public addresses (or networks the operator allows): 400
    ``address-not-allowed`` otherwise."""
    return _out(await service.put(session, principal, box, body, egress=settings.export_egress))


@router.delete("", status_code=204, responses=Problems)
async def delete_export_sink(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.EXPORT_SINK_UPDATE))],
) -> Response:
    await service.delete(session, principal)
    return Response(status_code=204)
