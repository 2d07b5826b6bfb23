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


def _prorated(value: Decimal, days_active: int, days_in_month: int) -> Decimal:
    return value * days_active / days_in_month


@dataclass(frozen=True)
class PlanPeriod:
    """Part of a month spent on one plan: ``days`` of it, with the usage metered meanwhile per
    (namespace id, kind). A month without plan changes is one period; a new account's first
    period starts on the day it was created. ``label`` ("days 1-14") tells periods apart in the
    line descriptions when there are several."""

    plan: Plan
    days: int
    usage: Mapping[tuple[str, str], int]
    label: str = ""


@dataclass(frozen=True)
class NamespaceCharge:
    """One namespace's quantity of one kind over the month and its share of the usage charges
    (cents allocated by quantity, largest remainder first, so the shares add up exactly to the
    account-level usage lines). Plan fees are the account's and are not allocated."""

    namespace_id: str
    kind: str
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class InvoiceDraft:
    plan: str
    lines: tuple[LineItem, ...]
    subtotal: Decimal
    credits: tuple[CreditApplied, ...]
    total: Decimal
    usage: tuple[NamespaceCharge, ...] = ()


def _action_lines(plan: Plan, start: int, end: int, included: int, suffix: str) -> list[LineItem]:
    """Tier lines for the actions at positions ``start``..``end`` of the account's month (the
    tier bounds count from the month's first action); the first ``included`` of them are free."""
    lines = []
    floor = 0
    billable_from = start + included
    for index, tier in enumerate(plan.action_tiers, start=1):
        ceiling = tier.up_to if tier.up_to is not None else max(end, floor)
        in_tier = max(0, min(end, ceiling) - max(floor, billable_from))
        if in_tier:
            millions = Decimal(in_tier) / MILLION
            bound = f"{Decimal(floor) / MILLION}M-" + (
                f"{Decimal(tier.up_to) / MILLION}M" if tier.up_to is not None else ""
            )
            lines.append(
                LineItem(
                    kind="actions",
                    description=f"Actions, tier {index} ({bound}){suffix}",
                    quantity=millions,
                    unit_price=tier.price_per_million,
                    amount=round_cents(millions * tier.price_per_million),
                )
            )
        floor = ceiling
    return lines


def _storage_line(
    kind: str, label: str, byte_hours: int, included_gbh: Decimal, price: Decimal, suffix: str
) -> LineItem | None:
    billable = Decimal(byte_hours) / BYTES_PER_GB - included_gbh
    if billable <= 0:
        return None
    return LineItem(
        kind=kind,
        description=(
            f"{label} storage (GB-hours beyond {included_gbh.normalize():f} included){suffix}"
        ),
        quantity=billable,
        unit_price=price,
        amount=round_cents(billable * price),
    )


def _allocate(
    amount: Decimal, weights: Mapping[tuple[str, str], int]
) -> dict[tuple[str, str], Decimal]:
    """Split ``amount`` (whole cents) over ``weights`` in proportion, in whole cents that add up
    exactly: each gets the floor of its share, the cents left go to the largest remainders
    (ties by key, so the split is deterministic)."""
    total_weight = sum(weights.values())
    if not weights:
        return {}
    cents = int((amount / CENT).to_integral_value())
    if total_weight == 0 or cents == 0:
        return dict.fromkeys(weights, Decimal(0))
    floors: dict[tuple[str, str], int] = {}
    remainders: list[tuple[int, tuple[str, str]]] = []
    for key in sorted(weights):
        share, remainder = divmod(cents * weights[key], total_weight)
        floors[key] = share
        remainders.append((-remainder, key))
    left = cents - sum(floors.values())
    for _, key in sorted(remainders)[:left]:
        floors[key] += 1
    return {key: Decimal(value) * CENT for key, value in floors.items()}


def _check_usage(usage: Mapping[tuple[str, str], int]) -> None:
    negative = sorted({kind for (_, kind), quantity in usage.items() if quantity < 0})
    if negative:
        raise RatingError(f"usage must not be negative: {', '.join(negative)}")
    # An unknown kind is a metering change the price book does not cover yet: never drop it.
    unpriced = sorted(
        {
            kind
            for _, kind in usage
            if not kind.startswith(ACTIONS_PREFIX)
            and kind not in (ACTIVE_STORAGE_KIND, RETAINED_STORAGE_KIND)
        }
    )
    if unpriced:
        raise RatingError(f"no price for usage kinds: {', '.join(unpriced)}")


def rate_invoice(
    periods: Sequence[PlanPeriod],
    *,
    days_in_month: int,
    credits: Sequence[Credit] = (),
) -> InvoiceDraft:
    """The draft invoice of one account for one month spent on one or more plans (see the
    module docstring for the rules). Each period pays its plan's fee and gets its plan's
    included amounts for its share of the month; the action tiers count the account's actions
    from the start of the month across periods, each period pricing its own actions with its
    own plan's tier prices."""
    if not 28 <= days_in_month <= 31:
        raise RatingError(f"days_in_month must be 28-31, got {days_in_month}")
    if not periods:
        raise RatingError("an invoice needs at least one plan period")
    days_total = sum(period.days for period in periods)
    for period in periods:
        if not 1 <= period.days <= days_in_month:
            raise RatingError(f"days_active must be 1-{days_in_month}, got {period.days}")
        _check_usage(period.usage)
    if days_total > days_in_month:
        raise RatingError(f"the periods cover {days_total} days of a {days_in_month}-day month")

    fee_lines: list[LineItem] = []
    usage_lines: list[LineItem] = []
    shares: dict[tuple[str, str], Decimal] = {}
    quantities: dict[tuple[str, str], int] = {}
    position = 0  # actions of the month counted before this period
    for period in periods:
        plan = period.plan
        suffix = f", {period.label}" if period.label else ""

        def share(value: Decimal, days: int = period.days) -> Decimal:
            return _prorated(value, days, days_in_month)

        for key, quantity in period.usage.items():
            quantities[key] = quantities.get(key, 0) + quantity
        action_usage = {
            key: quantity
            for key, quantity in period.usage.items()
            if key[1].startswith(ACTIONS_PREFIX)
        }
        period_actions = sum(action_usage.values())
        included_actions = int(
            share(Decimal(plan.included_actions)).to_integral_value(rounding=ROUND_FLOOR)
        )
        action_lines = _action_lines(
            plan, position, position + period_actions, included_actions, suffix
        )
        position += period_actions
        period_lines = list(action_lines)
        allocations = [(sum((line.amount for line in action_lines), Decimal(0)), action_usage)]
        for kind, label, included, price in (
            (ACTIVE_STORAGE_KIND, "Active", plan.included_active_gbh, plan.active_storage_per_gbh),
            (
                RETAINED_STORAGE_KIND,
                "Retained",
                plan.included_retained_gbh,
                plan.retained_storage_per_gbh,
            ),
        ):
            kind_usage = {key: q for key, q in period.usage.items() if key[1] == kind}
            line = _storage_line(
                kind, label, sum(kind_usage.values()), share(included), price, suffix
            )
            if line is not None:
                period_lines.append(line)
                allocations.append((line.amount, kind_usage))
        for amount, weights in allocations:
            for key, allocated in _allocate(amount, weights).items():
                shares[key] = shares.get(key, Decimal(0)) + allocated

        usage_amount = sum((line.amount for line in period_lines), Decimal(0))
        fee = plan.fee
        if fee.flat is not None:
            fee_amount = round_cents(share(fee.flat))
            fee_lines.append(
                LineItem(
                    kind="plan_fee",
                    description=f"Plan {plan.name} ({period.days}/{days_in_month} days)",
                    quantity=Decimal(period.days) / days_in_month,
                    unit_price=fee.flat,
                    amount=fee_amount,
                )
            )
        else:
            assert fee.percent_of_usage is not None
            percent_amount = round_cents(usage_amount * fee.percent_of_usage / 100)
            minimum = round_cents(share(fee.minimum))
            fee_lines.append(
                LineItem(
                    kind="plan_fee",
                    description=(
                        f"Plan {plan.name}: {fee.percent_of_usage.normalize():f}% of usage"
                        + (f", minimum {minimum}" if percent_amount < minimum else "")
                        + suffix
                    ),
                    quantity=Decimal(1),
                    unit_price=max(percent_amount, minimum),
                    amount=max(percent_amount, minimum),
                )
            )
        usage_lines.extend(period_lines)

    lines = fee_lines + usage_lines
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
        plan=periods[-1].plan.name,
        lines=tuple(lines),
        subtotal=subtotal,
        credits=tuple(applied),
        total=due,
        usage=tuple(
            NamespaceCharge(
                namespace_id, kind, quantity, shares.get((namespace_id, kind), Decimal(0))
            )
            for (namespace_id, kind), quantity in sorted(quantities.items())
            if quantity
        ),
    )


ACCOUNT_WIDE = ""
"""The namespace id ``rate_month`` files account totals under."""


def rate_month(
    plan: Plan,
    usage_totals_by_kind: Mapping[str, int],
    *,
    days_active: int,
    days_in_month: int,
    credits: Sequence[Credit] = (),
) -> InvoiceDraft:
    """The draft invoice of one account for one month on one plan, from its monthly totals per
    usage kind (``rate_invoice`` with one period and no namespace breakdown)."""
    return rate_invoice(
        [
            PlanPeriod(
                plan,
                days_active,
                {(ACCOUNT_WIDE, kind): quantity for kind, quantity in usage_totals_by_kind.items()},
            )
        ],
        days_in_month=days_in_month,
        credits=credits,
    )
