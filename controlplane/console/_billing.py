"""Billing pages: usage (per day by kind and per namespace, drawn as server-rendered SVG with
the same figures as a table; the month so far against the plan) and invoices (list, detail,
CSV/JSON downloads). Every figure comes from the services the API's endpoints call
(``usage``, ``invoices``, ``billing_account``): the console prices nothing itself. The
projected cost is the month's draft invoice, as the billing cycle last rated it."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from billing import Plan
from controlplane.billing_account import service as billing_account
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.invoices import service as invoices
from controlplane.invoices.schemas import InvoiceSummary
from controlplane.kit.db import utcnow
from controlplane.kit.deps import PricingDep, SessionDep
from controlplane.kit.errors import InvalidField
from controlplane.usage import service as usage
from controlplane.usage.schemas import DailyUsage

router = APIRouter(include_in_schema=False)

ACTIONS_PREFIX = "actions."
STORAGE_PREFIX = "storage."
BYTES_PER_GB = Decimal(10**9)  # the billing code's GB (docs/billing.md): 10^9 bytes
MONTHS_OFFERED = 12
SERIES_CLASSES = 8  # .series-0 ... .series-7 in console.css
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")

# The daily chart's geometry, in SVG user units (the SVG scales to its container).
CHART_WIDTH = 640
CHART_HEIGHT = 220
PLOT_LEFT = 72  # room for the axis's largest figure, e.g. 1,234,567
PLOT_TOP = 12
PLOT_BOTTOM = 190
CHART_NAMESPACES = 20  # the per-namespace chart's bars; the others share one
ROW_HEIGHT = 28  # half a namespace's row in the per-namespace chart: its label, then its bar


@dataclass(frozen=True)
class Bar:
    """One rectangle of a chart, with the figure it stands for."""

    x: float
    y: float
    width: float
    height: float
    series: int
    label: str
    day: str
    kind: str
    quantity: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class DailyChart:
    """Stacked bars per day by kind, and the same figures as rows (day, value per kind)."""

    id: str
    title: str
    description: str
    unit: str
    kinds: list[str]
    bars: list[Bar]
    ticks: list[Tick]
    maximum: str
    rows: list[tuple[str, list[str], str]]  # day, value per kind, day total
    left: int = PLOT_LEFT
    top: int = PLOT_TOP
    bottom: int = PLOT_BOTTOM
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT

    @property
    def series(self) -> list[tuple[int, str]]:
        return [(index % SERIES_CLASSES, kind) for index, kind in enumerate(self.kinds)]


@dataclass(frozen=True)
class NamespaceChart:
    """Horizontal bars: each namespace's month total of actions."""

    id: str
    title: str
    description: str
    height: int
    bars: list[Bar]


@dataclass(frozen=True)
class Allowance:
    """The month so far against one included amount of the plan."""

    label: str
    used: str
    included: str
    used_value: float
    included_value: float
    unit: str


def _month(value: str | None, today: dt.date) -> dt.date:
    """The first day of ``value`` (YYYY-MM), or of this month."""
    if not value:
        return today.replace(day=1)
    match = _MONTH_RE.match(value)
    month = int(match.group(2)) if match else 0
    if match is None or not 1 <= month <= 12:
        raise InvalidField(f"month must be YYYY-MM, got {value!r}", field="month")
    try:
        return usage.parse_day(f"{match.group(1)}-{match.group(2)}-01", "month")
    except InvalidField:
        raise InvalidField(f"month must be YYYY-MM, got {value!r}", field="month") from None


def _months_before(first: dt.date, count: int) -> list[dt.date]:
    months = [first]
    while len(months) < count:
        previous = months[-1] - dt.timedelta(days=1)
        months.append(previous.replace(day=1))
    return months


def _gb_hours(byte_hours: int | Decimal) -> Decimal:
    return (Decimal(byte_hours) / BYTES_PER_GB).quantize(Decimal("0.01"))


def _figure(kind: str, quantity: int) -> str:
    """How a day's quantity of ``kind`` is written: actions as counted, storage in GB-hours."""
    if kind.startswith(STORAGE_PREFIX):
        return f"{_gb_hours(quantity):f}"
    return f"{quantity:,}"


def _daily_chart(
    chart_id: str,
    title: str,
    unit: str,
    days: list[dt.date],
    rows: Iterable[DailyUsage],
) -> DailyChart:
    per_day: dict[tuple[dt.date, str], int] = {}
    for row in rows:
        per_day[(row.date, row.kind)] = per_day.get((row.date, row.kind), 0) + row.quantity
    kinds = sorted({kind for _, kind in per_day})
    totals = {day: sum(per_day.get((day, kind), 0) for kind in kinds) for day in days}
    peak = max(totals.values(), default=0)
    step = (CHART_WIDTH - PLOT_LEFT - 4) / max(len(days), 1)
    plot_height = PLOT_BOTTOM - PLOT_TOP
    bars: list[Bar] = []
    for index, day in enumerate(days):
        top = float(PLOT_BOTTOM)
        for series, kind in enumerate(kinds):
            quantity = per_day.get((day, kind), 0)
            if not quantity:
                continue
            height = plot_height * quantity / peak
            top -= height
            bars.append(
                Bar(
                    x=round(PLOT_LEFT + index * step + step * 0.15, 1),
                    y=round(top, 1),
                    width=round(step * 0.7, 1),
                    height=round(height, 1),
                    series=series % SERIES_CLASSES,
                    label=f"{day.isoformat()} {kind}: {_figure(kind, quantity)} {unit}",
                    day=day.isoformat(),
                    kind=kind,
                    quantity=str(quantity),
                )
            )
    ticks = [
        Tick(x=round(PLOT_LEFT + index * step + step / 2, 1), y=PLOT_BOTTOM + 16, text=str(day.day))
        for index, day in enumerate(days)
        if day.day == 1 or (day.day % 7 == 1 and day.day < 29) or day == days[-1]
    ]
    maximum = _total(kinds, peak)
    table = [
        (
            day.isoformat(),
            [_figure(kind, per_day.get((day, kind), 0)) for kind in kinds],
            _total(kinds, totals[day]),
        )
        for day in days
        if totals[day]
    ]
    first, last = days[0], days[-1]
    described = (
        f"{title} from {first.isoformat()} to {last.isoformat()}, one stacked bar per day "
        f"by kind ({', '.join(kinds) or 'none'}); the highest day is {maximum} {unit}. "
        "The table below holds the same figures."
    )
    return DailyChart(
        id=chart_id,
        title=title,
        description=described,
        unit=unit,
        kinds=kinds,
        bars=bars,
        ticks=ticks,
        maximum=maximum,
        rows=table,
    )


def _total(kinds: list[str], total: int) -> str:
    if any(kind.startswith(STORAGE_PREFIX) for kind in kinds):
        return f"{_gb_hours(total):f}"
    return f"{total:,}"


def _namespace_chart(totals: dict[str, int]) -> NamespaceChart:
    """The largest namespaces, one bar each, and the rest as one bar: an account may have
    thousands (the table below the chart lists every one)."""
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    ordered = ranked[:CHART_NAMESPACES]
    rest = ranked[CHART_NAMESPACES:]
    if rest:
        ordered.append((f"{len(rest):,} other namespaces", sum(q for _, q in rest)))
    peak = max((quantity for _, quantity in ordered), default=0)
    width = CHART_WIDTH - 8
    bars = [
        Bar(
            x=0,
            y=index * ROW_HEIGHT * 2 + ROW_HEIGHT,
            width=round(max(width * quantity / peak, 1), 1) if peak else 0,
            height=ROW_HEIGHT - 6,
            series=0,
            label=f"{namespace_id}: {quantity:,} actions",
            day="",
            kind=namespace_id,
            quantity=str(quantity),
        )
        for index, (namespace_id, quantity) in enumerate(ordered)
    ]
    return NamespaceChart(
        id="actions-per-namespace",
        title="Actions per namespace",
        description=(
            "Each namespace's actions in the month, largest first: "
            + "; ".join(f"{ns} {quantity:,}" for ns, quantity in ordered)
        ),
        height=max(len(ordered), 1) * ROW_HEIGHT * 2,
        bars=bars,
    )


def _allowances(plan: Plan, actions: int, active: int, retained: int) -> list[Allowance]:
    return [
        Allowance(
            "Actions",
            f"{actions:,}",
            f"{plan.included_actions:,}",
            float(actions),
            float(plan.included_actions),
            "actions",
        ),
        Allowance(
            "Active storage",
            f"{_gb_hours(active):f}",
            f"{plan.included_active_gbh:f}",
            float(_gb_hours(active)),
            float(plan.included_active_gbh),
            "GB-hours",
        ),
        Allowance(
            "Retained storage",
            f"{_gb_hours(retained):f}",
            f"{plan.included_retained_gbh:f}",
            float(_gb_hours(retained)),
            float(plan.included_retained_gbh),
            "GB-hours",
        ),
    ]


@router.get("/usage")
async def usage_page(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    pricing: PricingDep,
    month: Annotated[str | None, Query()] = None,
) -> Response:
    """The month's usage per day by kind and per namespace, and the month against the plan."""
    today = utcnow().date()
    first = _month(month, today)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    _, _, rows = await usage.daily(
        session,
        viewer.principal,
        start=first.isoformat(),
        end=last.isoformat(),
        namespace_id=None,
    )
    plan = await billing_account.get_plan(session, viewer.principal, pricing)
    month_invoice: InvoiceSummary | None = next(
        (
            invoice
            for invoice in await invoices.list_invoices(session, viewer.principal)
            if invoice.period_start == first
        ),
        None,
    )
    days = [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]
    action_rows = [row for row in rows if row.kind.startswith(ACTIONS_PREFIX)]
    storage_rows = [row for row in rows if row.kind.startswith(STORAGE_PREFIX)]
    per_namespace: dict[str, dict[str, int]] = {}
    for row in rows:
        kinds = per_namespace.setdefault(row.namespace_id, {})
        kinds[row.kind] = kinds.get(row.kind, 0) + row.quantity
    action_totals = {
        ns: sum(q for kind, q in kinds.items() if kind.startswith(ACTIONS_PREFIX))
        for ns, kinds in per_namespace.items()
    }
    namespace_rows = [
        (
            ns,
            f"{action_totals[ns]:,}",
            f"{_gb_hours(kinds.get('storage.active', 0)):f}",
            f"{_gb_hours(kinds.get('storage.retained', 0)):f}",
        )
        for ns, kinds in sorted(per_namespace.items())
    ]
    book_plan = pricing.book.plans.get(plan.plan)
    return render(
        request,
        "usage.html",
        month=first,
        months=sorted({first, *_months_before(today.replace(day=1), MONTHS_OFFERED)}, reverse=True),
        current=first == today.replace(day=1),
        actions_chart=_daily_chart(
            "actions-per-day", "Actions per day", "actions", days, action_rows
        ),
        storage_chart=_daily_chart(
            "storage-per-day", "Storage per day", "GB-hours", days, storage_rows
        ),
        namespace_chart=_namespace_chart({ns: q for ns, q in action_totals.items() if q}),
        namespace_rows=namespace_rows,
        total_actions=f"{sum(action_totals.values()):,}",
        plan=plan,
        book_plan=book_plan,
        currency=pricing.book.currency,
        allowances=(
            _allowances(
                book_plan,
                sum(action_totals.values()),
                sum(kinds.get("storage.active", 0) for kinds in per_namespace.values()),
                sum(kinds.get("storage.retained", 0) for kinds in per_namespace.values()),
            )
            if book_plan
            else []
        ),
        invoice=month_invoice,
    )


@router.get("/invoices")
async def invoice_list(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    return render(
        request,
        "invoices.html",
        invoices=await invoices.list_invoices(session, viewer.principal),
    )


@router.get("/invoices/{invoice_id}")
async def invoice_detail(
    request: Request, invoice_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    """One invoice: charges, per-namespace usage, credits, credit notes and totals."""
    invoice = await invoices.get_invoice(session, viewer.principal, invoice_id)
    return render(request, "invoice.html", invoice=invoice)


@router.get("/invoices/{invoice_id}/download")
async def invoice_download(
    invoice_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    file_format: Annotated[str, Query(alias="format")] = "json",
) -> Response:
    """The API's own file (``GET /api/v1/invoices/{id}/download``): JSON or FOCUS-style CSV."""
    body, media_type, name = await invoices.download(
        session, viewer.principal, invoice_id, file_format=file_format
    )
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
