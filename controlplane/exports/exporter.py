"""The exporter: each account's closed usage hours and finalized invoices, written to its sink.

Delivery is at-least-once with deterministic keys. Per account, each usage hour is written and
then its position (``usage_exported_through``) committed; a crash in between writes that hour
again, over the same object. A finalized invoice is written (JSON, then CSV) and then its
delivery row committed; again a crash only repeats the same two objects. A credit note drops the
delivery row, so the invoice, now with its note and new amount due, is written again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import SecretBox
from billing import (
    EgressPolicy,
    S3ExportTarget,
    export_invoice,
    export_usage_hour,
    failure_category,
    hour_of,
    s3_client,
)
from controlplane.exports.repository import SystemExportSinkRepository
from controlplane.exports.service import open_target, secret_binding
from controlplane.invoices.documents import invoice_csv, invoice_json
from controlplane.invoices.service import render
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.models import ExportSink, InvoiceDelivery, UsageRecord
from controlplane.namespaces.repository import SystemNamespaceRepository

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
# Hours written per account and run: a new sink catches up over a few runs instead of one
# very long one.
MAX_HOURS_PER_RUN = 168


@dataclass
class ExportReport:
    usage_hours: dict[str, list[dt.datetime]] = field(default_factory=dict)
    invoices: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


ClientFactory = Callable[[S3ExportTarget], "S3Client"]


class Exporter:
    """Writes every sink's due exports. ``settle`` is how long after an hour ends its usage is
    taken as final: the meters write an hour's last deltas up to one interval after it.
    Every connection to a sink goes through ``egress`` (see ``billing.EgressPolicy``)."""

    def __init__(
        self,
        box: SecretBox,
        *,
        settle: dt.timedelta,
        egress: EgressPolicy,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._box = box
        self._settle = settle
        self._clock = clock
        self._client_factory: ClientFactory = functools.partial(s3_client, egress=egress)
        self._clients: dict[tuple[str, str, dt.datetime], S3Client] = {}

    def _config(self, sink: ExportSink) -> S3ExportTarget:
        return open_target(sink, self._box, bound_to=secret_binding(sink.account_id))

    def _client(self, sink: ExportSink, config: S3ExportTarget) -> S3Client:
        # One client per sink version: a changed sink (new keys, endpoint) gets a new client.
        key = (sink.account_id, sink.secret_access_key_encrypted, sink.updated_at)
        client = self._clients.get(key)
        if client is None:
            client = self._client_factory(config)
            self._clients[key] = client
        return client

    async def export_once(self, sessionmaker: async_sessionmaker[AsyncSession]) -> ExportReport:
        report = ExportReport()
        async with unit_of_work(sessionmaker) as session:
            account_ids = await SystemExportSinkRepository(session).all_account_ids()
        for account_id in account_ids:
            try:
                await self._export_account(sessionmaker, account_id, report)
            except Exception as exc:
                # The operator's log has the details; the tenant sees a category only (the
                # target's answer may be anything, e.g. a private service's response body).
                logger.warning("export to the sink of %s failed: %r", account_id, exc)
                report.failed[account_id] = failure_category(exc)
                await _record_failure(sessionmaker, account_id, report.failed[account_id])
        return report

    async def _export_account(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        account_id: str,
        report: ExportReport,
    ) -> None:
        last_final_hour = hour_of(self._clock() - self._settle) - HOUR
        async with unit_of_work(sessionmaker) as session:
            repository = SystemExportSinkRepository(session)
            sink = await repository.get(account_id)
            if sink is None:
                return
            config = self._config(sink)
            s3 = self._client(sink, config)
            start = (
                sink.usage_exported_through + HOUR
                if sink.usage_exported_through is not None
                else hour_of(sink.export_from)
            )
            end = min(last_final_hour + HOUR, start + MAX_HOURS_PER_RUN * HOUR)
            rows_by_hour: dict[dt.datetime, list[UsageRecord]] = defaultdict(list)
            tags: dict[str, dict[str, str]] = {}
            if start < end:
                for row in await repository.usage_hours(account_id, start, end):
                    rows_by_hour[row.hour_start].append(row)
                # The tags as they are now (chargeback by today's labels); a deleted
                # namespace's rows carry none.
                tags = await namespace_tags(session, account_id)
        hour = start
        while hour < end:
            await asyncio.to_thread(
                export_usage_hour, s3, config, account_id, hour, rows_by_hour.get(hour, []), tags
            )
            async with unit_of_work(sessionmaker) as session:
                stored = await SystemExportSinkRepository(session).get(account_id)
                if stored is None:
                    return  # the sink was removed meanwhile
                stored.usage_exported_through = hour
                stored.last_error = None
                stored.last_error_at = None
            report.usage_hours.setdefault(account_id, []).append(hour)
            hour += HOUR
        await self._export_invoices(sessionmaker, account_id, s3, config, report)

    async def _export_invoices(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        account_id: str,
        s3: S3Client,
        config: S3ExportTarget,
        report: ExportReport,
    ) -> None:
        async with unit_of_work(sessionmaker) as session:
            repository = SystemExportSinkRepository(session)
            pending = [
                (invoice, await repository.credit_notes(invoice.id))
                for invoice in await repository.undelivered_invoices(account_id)
            ]
        for invoice, notes in pending:
            document = render(invoice, notes)
            json_key, csv_key = await asyncio.to_thread(
                export_invoice,
                s3,
                config,
                account_id,
                document.period_start,
                invoice.id,
                json_document=invoice_json(document),
                csv_document=invoice_csv(document),
            )
            async with unit_of_work(sessionmaker) as session:
                SystemExportSinkRepository(session).add_delivery(
                    InvoiceDelivery(invoice_id=invoice.id, json_key=json_key, csv_key=csv_key)
                )
            report.invoices.setdefault(account_id, []).append(invoice.id)


async def _record_failure(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: str, reason: str
) -> None:
    try:
        async with unit_of_work(sessionmaker) as session:
            sink = await SystemExportSinkRepository(session).get(account_id)
            if sink is not None:
                sink.last_error = reason[:2000]
                sink.last_error_at = utcnow()
    except Exception:
        logger.exception("could not record the export failure of %s", account_id)


async def namespace_tags(session: AsyncSession, account_id: str) -> dict[str, dict[str, str]]:
    """The account's namespaces' tags by namespace id (for the usage export's Tags column)."""
    namespaces = await SystemNamespaceRepository(session).list_for_account(account_id)
    return {namespace.id: dict(namespace.tags) for namespace in namespaces}
