"""The audit sink exporter: each account's audit events of every closed UTC hour, written to
its sink as one JSON Lines object.

Delivery is at-least-once with deterministic keys and content. Per account, the events of each
hour are written (ordered by id, keys sorted) and then the cursor (``exported_through``)
committed; a crash in between writes that hour again, over the same key, with the same bytes.
An hour is written only once it is ``settle`` in the past, so the transactions that stamped
an event inside it have committed. Hours without events write nothing (the cursor and
``GET /audit-log-sink`` say how far the export has got).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import SecretBox
from billing import EgressPolicy, S3ExportTarget, failure_category, hour_of, s3_client
from controlplane.audit_sink.repository import SystemAuditSinkRepository
from controlplane.audit_sink.service import secret_binding
from controlplane.exports.service import open_target
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.models import AuditEvent, AuditSink

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
# Hours covered per account and run: a sink that starts far back catches up over a few runs.
MAX_HOURS_PER_RUN = 168
# How long after an hour ends its events are final: an event is stamped when its mutation
# flushes and is visible once that transaction commits, well within this.
DEFAULT_SETTLE = dt.timedelta(minutes=2)
CONTENT_TYPE = "application/x-ndjson; charset=utf-8"


def object_key(prefix: str, account_id: str, hour_start: dt.datetime) -> str:
    """``<prefix>/<account>/YYYY/MM/DD/HH.jsonl`` (no leading slash when the prefix is
    empty)."""
    key = f"{account_id}/{hour_start.astimezone(dt.UTC):%Y/%m/%d/%H}.jsonl"
    prefix = prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def event_lines(events: Iterable[AuditEvent]) -> bytes:
    """One JSON object per line, per event, in id order; the same events give the same bytes."""
    lines = [
        json.dumps(
            {
                "id": event.id,
                "at": _timestamp(event.at),
                "account_id": event.account_id,
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "request_id": event.request_id,
                "outcome": event.outcome,
                "details": event.details,
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for event in sorted(events, key=lambda event: event.id)
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


@dataclass
class AuditExportReport:
    # Account → the keys written this run.
    written: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class AuditSinkExporter:
    """Writes every audit sink's closed hours. Every connection to a sink goes through
    ``egress`` (see ``billing.EgressPolicy``), as for usage exports."""

    def __init__(
        self,
        box: SecretBox,
        *,
        egress: EgressPolicy,
        settle: dt.timedelta = DEFAULT_SETTLE,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._box = box
        self._egress = egress
        self._settle = settle
        self._clock = clock

    def _target(self, sink: AuditSink) -> S3ExportTarget:
        return open_target(sink, self._box, bound_to=secret_binding(sink.account_id))

    async def export_once(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> AuditExportReport:
        report = AuditExportReport()
        async with unit_of_work(sessionmaker) as session:
            account_ids = await SystemAuditSinkRepository(session).all_account_ids()
        for account_id in account_ids:
            try:
                await self._export_account(sessionmaker, account_id, report)
            except Exception as exc:
                # The operator's log has the details; the tenant sees a category only.
                logger.warning("audit export to the sink of %s failed: %r", account_id, exc)
                report.failed[account_id] = failure_category(exc)
                await _record_failure(sessionmaker, account_id, report.failed[account_id])
        return report

    async def _export_account(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        account_id: str,
        report: AuditExportReport,
    ) -> None:
        async with unit_of_work(sessionmaker) as session:
            repository = SystemAuditSinkRepository(session)
            sink = await repository.get(account_id)
            if sink is None:
                return
            target = self._target(sink)
            start = (
                sink.exported_through + HOUR
                if sink.exported_through is not None
                else sink.export_from
            )
            end = min(hour_of(self._clock() - self._settle), start + MAX_HOURS_PER_RUN * HOUR)
            if start >= end:
                return
            by_hour: dict[dt.datetime, list[AuditEvent]] = defaultdict(list)
            for event in await repository.events(account_id, start, end):
                if event.account_id != account_id:  # the query's job; a leak would be worse
                    raise ValueError(f"event {event.id} is not of account {account_id}")
                by_hour[hour_of(event.at)].append(event)
        s3 = await asyncio.to_thread(s3_client, target, egress=self._egress)
        for hour in sorted(by_hour):
            key = object_key(target.prefix, account_id, hour)
            body = event_lines(by_hour[hour])
            await asyncio.to_thread(
                s3.put_object, Bucket=target.bucket, Key=key, Body=body, ContentType=CONTENT_TYPE
            )
            if not await _advance(sessionmaker, account_id, hour, self._clock()):
                return  # the sink was removed meanwhile
            report.written.setdefault(account_id, []).append(key)
        await _advance(sessionmaker, account_id, end - HOUR, self._clock())


async def _advance(
    sessionmaker: async_sessionmaker[AsyncSession],
    account_id: str,
    hour: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Move the cursor to ``hour`` (never back: a concurrent replace with ``export_from``
    that reset it wins). False when the sink is gone."""
    async with unit_of_work(sessionmaker) as session:
        sink = await SystemAuditSinkRepository(session).get(account_id)
        if sink is None:
            return False
        behind = sink.exported_through is None or sink.exported_through < hour
        if behind and hour >= sink.export_from:
            sink.exported_through = hour
        sink.last_success_at = now
        sink.last_error = None
        sink.last_error_at = None
    return True


async def _record_failure(
    sessionmaker: async_sessionmaker[AsyncSession], account_id: str, reason: str
) -> None:
    try:
        async with unit_of_work(sessionmaker) as session:
            sink = await SystemAuditSinkRepository(session).get(account_id)
            if sink is not None:
                sink.last_error = reason[:2000]
                sink.last_error_at = utcnow()
    except Exception:
        logger.exception("could not record the audit export failure of %s", account_id)
