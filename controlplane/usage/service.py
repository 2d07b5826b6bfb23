"""Usage per namespace, UTC day and kind, summed from the hourly usage rows the meter writes."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.errors import InvalidField, NotFound
from controlplane.namespaces.repository import NamespaceRepository
from controlplane.usage.repository import UsageRepository
from controlplane.usage.schemas import DailyUsage

MAX_RANGE_DAYS = 90
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(value: str | None, field: str) -> dt.date:
    """A ``YYYY-MM-DD`` date, or 400 naming ``field``."""
    if value is None:
        raise InvalidField(f"{field} is required (YYYY-MM-DD)", field=field)
    try:
        if not _DATE_RE.match(value):
            raise ValueError(value)
        return fields.day(dt.date.fromisoformat(value), field=field)
    except ValueError:
        raise InvalidField(
            f"{field} must be a date as YYYY-MM-DD, got {value!r}", field=field
        ) from None


def validate_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise InvalidField(f"end ({end}) is before start ({start})", field="end")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise InvalidField(
            f"the range covers {days} days; at most {MAX_RANGE_DAYS} may be asked at once",
            field="end",
        )


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


async def daily(
    session: AsyncSession,
    principal: Principal,
    *,
    start: str | None,
    end: str | None,
    namespace_id: str | None,
) -> tuple[dt.date, dt.date, list[DailyUsage]]:
    """Usage of the caller's account from ``start`` to ``end`` (UTC days, both inclusive),
    optionally of one namespace. A namespace the account does not have (another account's or
    an unknown one) is not found."""
    require(principal, Action.USAGE_READ)
    first, last = parse_day(start, "start"), parse_day(end, "end")
    validate_range(first, last)
    usage = UsageRepository(session, principal)
    if namespace_id is not None:
        exists = await NamespaceRepository(session, principal).get(namespace_id)
        if exists is None and not await usage.has_namespace(namespace_id):
            raise NotFound(f"namespace {namespace_id} not found")
    totals = await usage.daily_totals(
        since=_midnight(first),
        until=_midnight(last + dt.timedelta(days=1)),
        namespace_id=namespace_id,
    )
    return (
        first,
        last,
        [
            DailyUsage(date=day, namespace_id=ns, kind=kind, quantity=quantity)
            for day, ns, kind, quantity in totals
        ],
    )
