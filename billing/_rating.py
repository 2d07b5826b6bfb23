"""Rating: one account's monthly usage totals, priced by a plan, as a draft invoice.

A pure function of its inputs (no clock, no database), so every rule is table-tested in
``tests/billing/test_rating.py``. The rules, in order (also in ``docs/billing.md``):

1. Actions (every kind ``actions.*``) are added up for the account and priced through the
   plan's volume tiers, whose bounds apply to that monthly total. The included actions are the
   first ones counted: they fill the lowest tiers at no charge.
2. Active and retained storage (kinds ``storage.active`` and ``storage.retained``, in
   byte-hours; 1 GB = 10^9 bytes) beyond the included GB-hours are charged per GB-hour.
3. Plan fee: ``flat``, or ``percent_of_usage`` of the usage lines (1 and 2) but at least
   ``minimum``.
4. Proration: an account active ``days_active`` of ``days_in_month`` days pays that share of
   the flat fee, of the minimum and of the included amounts (included actions rounded down to
   a whole action). Tier bounds and unit prices are not prorated.
5. Each line's amount is rounded half-up to the cent (``ROUND_HALF_UP``, 0.005 → 0.01), once,
   at the line; subtotal and total are sums of rounded lines, so they always add up.
6. Credits (prepaid balances, in the order given: the caller passes unexpired credits, soonest
   expiry first) are consumed before anything is charged: each pays what it can of what is
   still due. The total never goes below zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from billing._price_book import MILLION, Plan

CENT = Decimal("0.01")
BYTES_PER_GB = 10**9
ACTIONS_PREFIX = "actions."
ACTIVE_STORAGE_KIND = "storage.active"
RETAINED_STORAGE_KIND = "storage.retained"


class RatingError(ValueError):
    """Inputs that cannot be rated (negative usage, impossible day counts)."""


def round_cents(amount: Decimal) -> Decimal:
    """Half-up to the cent: the one rounding rule of invoices."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Credit:
    """A prepaid balance still available to this invoice."""

    id: str
    remaining: Decimal


@dataclass(frozen=True)
class LineItem:
    """``amount`` = ``quantity`` times ``unit_price``, rounded half-up to the cent. Action tiers are
    priced per million: their ``unit_price`` is the price of one million actions and
    ``quantity`` is in millions."""

    kind: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class CreditApplied:
    credit_id: str
    amount: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class InvoiceDraft:
    plan: str
    lines: tuple[LineItem, ...]
    subtotal: Decimal
    credits: tuple[CreditApplied, ...]
    total: Decimal


def _prorated(value: Decimal, days_active: int, days_in_month: int) -> Decimal:
    return value * days_active / days_in_month


def _action_lines(plan: Plan, total_actions: int, included: int) -> list[LineItem]:
    lines = []
    floor = 0
    for index, tier in enumerate(plan.action_tiers, start=1):
        ceiling = tier.up_to if tier.up_to is not None else max(total_actions, floor)
        in_tier = max(0, min(total_actions, ceiling) - max(floor, included))
        if in_tier:
            millions = Decimal(in_tier) / MILLION
            bound = f"{Decimal(floor) / MILLION}M-" + (
                f"{Decimal(tier.up_to) / MILLION}M" if tier.up_to is not None else ""
            )
            lines.append(
                LineItem(
                    kind="actions",
                    description=f"Actions, tier {index} ({bound})",
                    quantity=millions,
                    unit_price=tier.price_per_million,
                    amount=round_cents(millions * tier.price_per_million),
                )
            )
        floor = ceiling
    return lines


def _storage_line(
    kind: str, label: str, byte_hours: int, included_gbh: Decimal, price: Decimal
) -> LineItem | None:
    billable = Decimal(byte_hours) / BYTES_PER_GB - included_gbh
    if billable <= 0:
        return None
    return LineItem(
        kind=kind,
        description=f"{label} storage (GB-hours beyond {included_gbh.normalize():f} included)",
        quantity=billable,
        unit_price=price,
        amount=round_cents(billable * price),
    )


def rate_month(
    plan: Plan,
    usage_totals_by_kind: Mapping[str, int],
    *,
    days_active: int,
    days_in_month: int,
    credits: Sequence[Credit] = (),
) -> InvoiceDraft:
    """The draft invoice of one account for one month (see the module docstring for the
    rules). ``usage_totals_by_kind`` is the account's monthly total per usage kind."""
    if not 28 <= days_in_month <= 31:
        raise RatingError(f"days_in_month must be 28-31, got {days_in_month}")
    if not 1 <= days_active <= days_in_month:
        raise RatingError(f"days_active must be 1-{days_in_month}, got {days_active}")
    negative = sorted(kind for kind, quantity in usage_totals_by_kind.items() if quantity < 0)
    if negative:
        raise RatingError(f"usage must not be negative: {', '.join(negative)}")
    # An unknown kind is a metering change the price book does not cover yet: never drop it.
    unpriced = sorted(
        kind
        for kind in usage_totals_by_kind
        if not kind.startswith(ACTIONS_PREFIX)
        and kind not in (ACTIVE_STORAGE_KIND, RETAINED_STORAGE_KIND)
    )
    if unpriced:
        raise RatingError(f"no price for usage kinds: {', '.join(unpriced)}")

    def share(value: Decimal) -> Decimal:
        return _prorated(value, days_active, days_in_month)

    total_actions = sum(
        quantity
        for kind, quantity in usage_totals_by_kind.items()
        if kind.startswith(ACTIONS_PREFIX)
    )
    included_actions = int(
        share(Decimal(plan.included_actions)).to_integral_value(rounding=ROUND_FLOOR)
    )
    lines = _action_lines(plan, total_actions, included_actions)
    for kind, label, included, price in (
        (
            ACTIVE_STORAGE_KIND,
            "Active",
            plan.included_active_gbh,
            plan.active_storage_per_gbh,
        ),
        (
            RETAINED_STORAGE_KIND,
            "Retained",
            plan.included_retained_gbh,
            plan.retained_storage_per_gbh,
        ),
    ):
        line = _storage_line(kind, label, usage_totals_by_kind.get(kind, 0), share(included), price)
        if line is not None:
            lines.append(line)

    usage_amount = sum((line.amount for line in lines), Decimal(0))
    fee = plan.fee
    if fee.flat is not None:
        fee_amount = round_cents(share(fee.flat))
        fee_line = LineItem(
            kind="plan_fee",
            description=f"Plan {plan.name} ({days_active}/{days_in_month} days)",
            quantity=Decimal(days_active) / days_in_month,
            unit_price=fee.flat,
            amount=fee_amount,
        )
    else:
        assert fee.percent_of_usage is not None
        percent_amount = round_cents(usage_amount * fee.percent_of_usage / 100)
        minimum = round_cents(share(fee.minimum))
        fee_line = LineItem(
            kind="plan_fee",
            description=(
                f"Plan {plan.name}: {fee.percent_of_usage.normalize():f}% of usage"
                + (f", minimum {minimum}" if percent_amount < minimum else "")
            ),
            quantity=Decimal(1),
            unit_price=max(percent_amount, minimum),
            amount=max(percent_amount, minimum),
        )
    lines.insert(0, fee_line)

    subtotal = sum((line.amount for line in lines), Decimal(0))
    due = subtotal
    applied = []
    for credit in credits:
        if due <= 0:
            break
        used = min(credit.remaining, due)
        if used <= 0:
            continue
        due -= used
        applied.append(CreditApplied(credit.id, used, credit.remaining - used))
    return InvoiceDraft(
        plan=plan.name,
        lines=tuple(lines),
        subtotal=subtotal,
        credits=tuple(applied),
        total=due,
    )
