"""Driving billing in a running Stratus's database: usage rows through the meter's own writer
and billing cycles with a chosen clock (the worker's own cycles run on the real clock)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from support import StratusUp

from auth import SecretBox
from billing import EgressPolicy
from controlplane.config import Settings
from controlplane.exports.exporter import Exporter, ExportReport
from controlplane.invoices.cycle import CycleReport, bill_month, month_start, run_cycle
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.pricing import load_pricing
from controlplane.usage.repository import SystemUsageStore

UsageRows = Sequence[tuple[str, dt.datetime, str, int]]


def settings_of(stratus: StratusUp) -> Settings:
    """The settings of ``stratus``'s processes (its data dir and its extra settings)."""
    extra = {
        name.removeprefix("STRATUS_").lower(): json.loads(value)
        for name, value in stratus.extra_env.items()
        if name == "STRATUS_EXPORT_SINK_ALLOWED_NETWORKS"
    }
    return Settings(data_dir=stratus.data_dir, database_url=stratus.database_url, **extra)


async def record_usage(stratus: StratusUp, rows: UsageRows) -> None:
    """Usage rows written through the meters' store (``SystemUsageStore``), committed in
    Stratus's database."""
    engine = create_engine(settings_of(stratus).sqlalchemy_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            for namespace_id, hour_start, kind, quantity in rows:
                await SystemUsageStore(session).add_usage(
                    hour_start, {(namespace_id, kind): quantity}
                )
    finally:
        await engine.dispose()


async def bill(
    stratus: StratusUp,
    *,
    now: dt.datetime,
    account_ids: Sequence[str] | None = None,
    month: dt.datetime | None = None,
) -> CycleReport:
    """One billing cycle as the worker runs it, at ``now``: every open month of every account,
    or, with ``account_ids``, only theirs for ``month`` (default: the month of ``now``), so
    tests sharing a Stratus never finalize each other's invoices. Retried when it collides
    with the worker's own cycle (the loser of two concurrent cycles rolls back)."""
    settings = settings_of(stratus)
    pricing = load_pricing(settings)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        sessionmaker = create_sessionmaker(engine)
        for attempt in range(5):
            try:
                async with sessionmaker() as session, session.begin():
                    if account_ids is None:
                        return await run_cycle(session, pricing, now=now)
                    return await bill_month(
                        session,
                        pricing,
                        month or month_start(now),
                        now=now,
                        account_ids=account_ids,
                    )
            except (IntegrityError, StaleDataError, OperationalError):
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        await engine.dispose()


async def export(
    stratus: StratusUp,
    *,
    now: dt.datetime,
    settle: dt.timedelta = dt.timedelta(minutes=2),
    egress: EgressPolicy | None = None,
) -> ExportReport:
    """One exporter run at ``now`` (the worker's own run on the real clock is the same code),
    with ``stratus``'s egress policy unless ``egress`` is given (e.g. with a resolver that
    stands in for DNS, to rebind a name)."""
    settings = settings_of(stratus)
    egress = egress or settings.export_egress
    engine = create_engine(settings.sqlalchemy_url)
    try:
        exporter = Exporter(
            SecretBox.from_file(settings.secrets_key_path, create=False),
            settle=settle,
            egress=egress,
            clock=lambda: now,
        )
        return await exporter.export_once(create_sessionmaker(engine))
    finally:
        await engine.dispose()
