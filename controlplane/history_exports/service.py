"""A namespace's history export sink: set by the namespace's admins, the secret encrypted."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, Resource, SecretBox, authorize
from billing import EgressPolicy, S3ExportTarget
from controlplane.audit import service as audit
from controlplane.exports.service import (
    check_endpoint,
    open_target,
    store_target,
    validate_target,
)
from controlplane.history_exports import objects
from controlplane.history_exports.repository import HistoryExportSinkRepository
from controlplane.history_exports.schemas import HistoryExportSinkSet
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import NotFound
from controlplane.models import HistoryExportSink, Namespace
from controlplane.namespaces.repository import NamespaceRepository


def secret_binding(namespace_id: str) -> str:
    """What a sink's secret is bound to: it decrypts only on that namespace's row."""
    return f"history-export-sink:{namespace_id}"


def target(sink: HistoryExportSink, box: SecretBox) -> S3ExportTarget:
    """The sink as the S3 code takes it, its secret opened."""
    return open_target(sink, box, bound_to=secret_binding(sink.namespace_id))


async def _namespace(
    session: AsyncSession, principal: Principal, namespace_id: str, action: Action
) -> Namespace:
    """The namespace, checked for ``action``: one the caller may not even read is not found (as
    another account's), one it may read but not change is 403."""
    namespace = await NamespaceRepository(session, principal).get(namespace_id)
    resource = None if namespace is None else Resource(namespace.account_id, namespace.id)
    if resource is None or not authorize(principal, Action.NAMESPACE_READ, resource):
        raise NotFound(f"namespace {namespace_id} not found")
    require(
        principal,
        action,
        resource,
        refusal=f"this credential may not change the export sink of namespace {namespace_id}",
    )
    assert namespace is not None
    return namespace


async def _sink(
    session: AsyncSession, principal: Principal, namespace_id: str, action: Action
) -> HistoryExportSink:
    namespace = await _namespace(session, principal, namespace_id, action)
    sink = await HistoryExportSinkRepository(session, principal).get(namespace.id)
    if sink is None:
        raise NotFound(f"namespace {namespace.id} has no export sink")
    return sink


async def get(session: AsyncSession, principal: Principal, namespace_id: str) -> HistoryExportSink:
    require(principal, Action.NAMESPACE_READ)
    return await _sink(session, principal, namespace_id, Action.NAMESPACE_READ)


async def put(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    namespace_id: str,
    body: HistoryExportSinkSet,
    *,
    egress: EgressPolicy,
) -> HistoryExportSink:
    """Create or replace the namespace's sink. Replacing keeps the export's place unless
    ``export_from`` is given (then closed runs are exported again from that day). The
    endpoint must resolve to addresses ``egress`` allows."""
    require(principal, Action.NAMESPACE_UPDATE)
    namespace = await _namespace(session, principal, namespace_id, Action.NAMESPACE_UPDATE)
    if body.export_from is not None:
        fields.day(body.export_from, field="export_from")
    validate_target(body)
    if body.endpoint_url is not None:
        await check_endpoint(body.endpoint_url, egress)
    repository = HistoryExportSinkRepository(session, principal)
    sink = await repository.get(namespace.id)
    export_from = (
        dt.datetime.combine(body.export_from, dt.time(), tzinfo=dt.UTC)
        if body.export_from is not None
        else None
    )
    if sink is None:
        sink = HistoryExportSink(
            namespace_id=namespace.id,
            account_id=namespace.account_id,
            export_from=export_from or utcnow().replace(hour=0, minute=0, second=0, microsecond=0),
            exported_count=0,
        )
        repository.add(sink)
    elif export_from is not None:
        sink.export_from = export_from
        sink.exported_until = None
        sink.exported_count = 0
    details = store_target(sink, body, box, bound_to=secret_binding(namespace.id))
    audit.record(
        session,
        principal,
        action="namespace.export_sink.set",
        target=namespace.id,
        account_id=namespace.account_id,
        details={**details, "export_from": sink.export_from.isoformat()},
    )
    await session.flush()
    return sink


async def delete(session: AsyncSession, principal: Principal, namespace_id: str) -> None:
    require(principal, Action.NAMESPACE_UPDATE)
    sink = await _sink(session, principal, namespace_id, Action.NAMESPACE_UPDATE)
    await HistoryExportSinkRepository(session, principal).delete(sink)
    audit.record(
        session,
        principal,
        action="namespace.export_sink.delete",
        target=sink.namespace_id,
        account_id=sink.account_id,
    )
    await session.flush()


async def validate(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    namespace_id: str,
    *,
    egress: EgressPolicy,
) -> objects.Probe:
    """Write a probe object to the sink and delete it again: ``ok``, or what S3 answered."""
    require(principal, Action.NAMESPACE_UPDATE)
    sink = await _sink(session, principal, namespace_id, Action.NAMESPACE_UPDATE)
    config = target(sink, box)
    probe = await asyncio.to_thread(objects.probe, config, sink.namespace_id, egress=egress)
    audit.record(
        session,
        principal,
        action="namespace.export_sink.validate",
        target=sink.namespace_id,
        account_id=sink.account_id,
        details={"ok": probe.ok, "probe_key": probe.key, "error": probe.error},
    )
    await session.flush()
    return probe
