"""The billing cycle: every account's monthly invoice rated from its usage rows, re-rated while
it is a draft, finalized once the month and its grace period are over.

Run by the control plane's worker every ``STRATUS_BILLING_INTERVAL_SECONDS``; each run is one
transaction, so a crash leaves the previous state. A finalized invoice never changes; credits
are consumed exactly when their invoice is finalized, in the same transaction (a second
finalizer fails on the credit's and the invoice's version counters and rolls back).
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing import (
    Credit as CreditBalance,
)
from billing import (
    InvoiceDraft,
    PlanPeriod,
    RatingError,
    rate_invoice,
)
from controlplane.audit import service as audit
from controlplane.invoices.repository import SystemInvoiceRepository, Usage
from controlplane.models import Account, AccountPlan, Credit, Invoice, InvoiceStatus
from controlplane.pricing import Pricing

logger = logging.getLogger(__name__)

DAY = dt.timedelta(days=1)
# Accounts rated between two flushes: their invoices are written in one flush and their lines in
# one bulk insert (a flush and two statements per account were most of a 1,000-account run).
_BATCH = 500


def month_start(moment: dt.datetime) -> dt.datetime:
    """Midnight UTC of the first day of ``moment``'s month."""
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)


def next_month(start: dt.datetime) -> dt.datetime:
    return (start + dt.timedelta(days=32)).replace(day=1)


def _midnight(moment: dt.datetime) -> dt.datetime:
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.UTC)


@dataclass
class CycleReport:
    """What one run did: invoices (account, month) drafted, finalized, and refused."""

    drafted: list[tuple[str, dt.date]] = field(default_factory=list)
    finalized: list[tuple[str, dt.date]] = field(default_factory=list)
    failed: dict[tuple[str, dt.date], str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Segment:
    plan: str
    start: dt.datetime
    end: dt.datetime


def _segments(
    account: Account,
    history: Sequence[AccountPlan],
    period_start: dt.datetime,
    period_end: dt.datetime,
    default_plan: str,
) -> list[_Segment]:
    """The plans of the account's active days of the month, split at plan changes."""
    start = max(period_start, _midnight(account.created_at))
    plan = default_plan
    changes: list[tuple[dt.datetime, str]] = []
    for row in history:
        if row.effective_from <= start:
            plan = row.plan
        elif row.effective_from < period_end:
            changes.append((row.effective_from, row.plan))
    segments = []
    for change_at, next_plan in changes:
        if next_plan != plan:
            segments.append(_Segment(plan, start, change_at))
            start, plan = change_at, next_plan
    segments.append(_Segment(plan, start, period_end))
    return segments


def _label(segment: _Segment) -> str:
    last = segment.end - DAY
    return f"days {segment.start.day}-{last.day}"


def _lines(draft: InvoiceDraft) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {
            "position": position,
            "line_type": "charge",
            "namespace_id": None,
            "kind": line.kind,
            "description": line.description,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "amount": line.amount,
        }
        for position, line in enumerate(draft.lines)
    ]
    offset = len(lines)
    lines.extend(
        {
            "position": offset + position,
            "line_type": "usage",
            "namespace_id": charge.namespace_id,
            "kind": charge.kind,
            "description": f"{charge.namespace_id}: {charge.kind}",
            "quantity": Decimal(charge.quantity),
            "unit_price": None,
            "amount": charge.amount,
        }
        for position, charge in enumerate(draft.usage)
    )
    return lines


async def bill_month(
    session: AsyncSession,
    pricing: Pricing,
    period_start: dt.datetime,
    *,
    now: dt.datetime,
    account_ids: Sequence[str] | None = None,
    report: CycleReport | None = None,
) -> CycleReport:
    """Rate the month starting at ``period_start`` for every account active in it (or those
    in ``account_ids``): drafts are (re)written, and finalized once ``now`` is past the month
    plus the grace period. Flushes, never commits."""
    report = report or CycleReport()
    period_end = next_month(period_start)
    days_in_month = calendar.monthrange(period_start.year, period_start.month)[1]
    finalize = now >= period_end + pricing.grace
    month = period_start.date()
    repository = SystemInvoiceRepository(session)
    accounts = await repository.accounts_active_before(period_end, account_ids)
    existing = await repository.invoices_of_month(period_start)
    open_accounts = [
        account
        for account in accounts
        if (invoice := existing.get(account.id)) is None or invoice.status is InvoiceStatus.DRAFT
    ]
    if not open_accounts:
        return report
    ids = [account.id for account in open_accounts]
    history = await repository.plan_history(ids)
    credits = await repository.usable_credits(ids, period_start, period_end)
    month_usage = await repository.usage_by_account(
        period_start, None if account_ids is None else ids
    )
    for first in range(0, len(open_accounts), _BATCH):
        rated: list[tuple[Account, Invoice, InvoiceDraft, list[Credit]]] = []
        for account in open_accounts[first : first + _BATCH]:
            segments = _segments(
                account, history.get(account.id, []), period_start, period_end, pricing.default_plan
            )
            try:
                periods = await _periods(repository, pricing, account, segments, month_usage)
                account_credits = credits.get(account.id, [])
                draft = rate_invoice(
                    periods,
                    days_in_month=days_in_month,
                    credits=[CreditBalance(c.id, c.remaining) for c in account_credits],
                )
            except RatingError as exc:
                logger.error("cannot rate %s for %s: %s", account.id, month, exc)
                report.failed[(account.id, month)] = str(exc)
                continue
            invoice = existing.get(account.id)
            if invoice is None:
                invoice = Invoice(
                    id=str(uuid.uuid4()),
                    account_id=account.id,
                    period_start=period_start,
                    period_end=period_end,
                    status=InvoiceStatus.DRAFT,
                )
                session.add(invoice)
            invoice.currency = pricing.book.currency
            invoice.price_book_version = pricing.book.version
            invoice.plan = " → ".join(segment.plan for segment in segments)
            invoice.subtotal = draft.subtotal
            invoice.credits_applied = draft.subtotal - draft.total
            invoice.total = draft.total
            invoice.credit_applications = [
                {"credit_id": a.credit_id, "amount": str(a.amount), "remaining": str(a.remaining)}
                for a in draft.credits
            ]
            invoice.rated_at = now
            rated.append((account, invoice, draft, account_credits))
        # The drafts' rows must exist before their lines (the lines' foreign key), and the lines
        # are written while the invoices are still drafts.
        await session.flush()
        await repository.replace_draft_lines(
            [(invoice, _lines(draft)) for _, invoice, draft, _ in rated]
        )
        for account, invoice, draft, account_credits in rated:
            if finalize:
                by_id = {credit.id: credit for credit in account_credits}
                for applied in draft.credits:
                    by_id[applied.credit_id].remaining = applied.remaining
                invoice.status = InvoiceStatus.FINALIZED
                invoice.finalized_at = now
                audit.record(
                    session,
                    None,
                    action="invoice.finalize",
                    target=invoice.id,
                    account_id=account.id,
                    details={
                        "period_start": month.isoformat(),
                        "total": str(invoice.total),
                        "credits_applied": invoice.credit_applications,
                    },
                )
                report.finalized.append((account.id, month))
            else:
                report.drafted.append((account.id, month))
    await session.flush()
    return report


async def _periods(
    repository: SystemInvoiceRepository,
    pricing: Pricing,
    account: Account,
    segments: list[_Segment],
    month_usage: dict[str, Usage],
) -> list[PlanPeriod]:
    plans = pricing.book.plans
    for segment in segments:
        if segment.plan not in plans:
            raise RatingError(
                f"plan {segment.plan!r} is not in price book {pricing.book.version!r}"
            )
    if len(segments) == 1:
        (segment,) = segments
        days = (segment.end - segment.start).days
        return [PlanPeriod(plans[segment.plan], days, month_usage.get(account.id, {}))]
    periods = []
    for index, segment in enumerate(segments):
        # The first and last periods reach the month's edges, so no usage row is left out.
        usage = (
            await repository.usage_by_account(
                month_start(segment.start),
                [account.id],
                since=segment.start if index else None,
                until=segment.end if index < len(segments) - 1 else None,
            )
        ).get(account.id, {})
        periods.append(
            PlanPeriod(
                plans[segment.plan],
                (segment.end - segment.start).days,
                usage,
                label=_label(segment),
            )
        )
    return periods


async def run_cycle(session: AsyncSession, pricing: Pricing, *, now: dt.datetime) -> CycleReport:
    """Rate every month that still has a draft (or no invoice) for some account, oldest first,
    up to the current one. Flushes, never commits."""
    report = CycleReport()
    current = month_start(now)
    latest_final = await SystemInvoiceRepository(session).first_open_months()
    accounts = await SystemInvoiceRepository(session).accounts_active_before(
        next_month(current), None
    )
    first_month: dict[str, dt.datetime] = {}
    for account in accounts:
        final = latest_final.get(account.id)
        first_month[account.id] = (
            next_month(final) if final is not None else month_start(account.created_at)
        )
    if not first_month:
        return report
    month = min(first_month.values())
    while month <= current:
        due = [account_id for account_id, first in first_month.items() if first <= month]
        await bill_month(
            session,
            pricing,
            month,
            now=now,
            account_ids=None if len(due) == len(first_month) else due,
            report=report,
        )
        month = next_month(month)
    return report
