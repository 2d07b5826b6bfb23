"""Rating one account's month: tiers on the monthly action total, included amounts, storage,
flat and percentage plan fees with minimums, proration, half-up rounding at the line, and
credits consumed before charging. Every case carries its arithmetic, worked by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from billing import (
    ActionTier,
    Credit,
    CreditApplied,
    Plan,
    PlanFee,
    PlanPeriod,
    RatingError,
    parse_price_book,
    rate_invoice,
    rate_month,
)

D = Decimal
GB = 10**9

# Flat $100/month; 1M actions, 1,000 active GB-h and 40,000 retained GB-h included; actions
# $50/M up to 5M, $45/M up to 10M, $40/M above; storage $0.042 and $0.00105 per GB-h.
ESSENTIALS = Plan(
    name="essentials",
    fee=PlanFee(flat=D("100")),
    included_actions=1_000_000,
    included_active_gbh=D(1000),
    included_retained_gbh=D(40000),
    action_tiers=(
        ActionTier(up_to=5_000_000, price_per_million=D("50")),
        ActionTier(up_to=10_000_000, price_per_million=D("45")),
        ActionTier(up_to=None, price_per_million=D("40")),
    ),
    active_storage_per_gbh=D("0.042"),
    retained_storage_per_gbh=D("0.00105"),
)
# 10% of usage, at least $200/month; every action $25/M; nothing included.
USAGE_BASED = Plan(
    name="usage_based",
    fee=PlanFee(percent_of_usage=D(10), minimum=D(200)),
    included_actions=0,
    included_active_gbh=D(0),
    included_retained_gbh=D(0),
    action_tiers=(ActionTier(up_to=None, price_per_million=D("25")),),
    active_storage_per_gbh=D(0),
    retained_storage_per_gbh=D(0),
)


@dataclass(frozen=True)
class Case:
    plan: Plan
    usage: Mapping[str, int]
    lines: list[tuple[str, str]]  # (kind, amount) in invoice order
    subtotal: str
    total: str
    days_active: int = 30
    days_in_month: int = 30
    credits: list[Credit] = field(default_factory=list)
    applied: list[CreditApplied] = field(default_factory=list)


CASES = {
    # 600,000 + 400,000 = 1,000,000 actions = the included 1M: no action line. Fee 100.00.
    "included actions cover the month": Case(
        ESSENTIALS,
        {"actions.workflow": 600_000, "actions.activity": 400_000},
        [("plan_fee", "100.00")],
        "100.00",
        "100.00",
    ),
    # Total 10,000,000 + 2,345,678 = 12,345,678; the first 1M is included.
    # Tier 1 (0-5M):  5,000,000 - 1,000,000 = 4,000,000 → 4 * 50 = 200.00
    # Tier 2 (5-10M): 5,000,000 → 5 * 45 = 225.00
    # Tier 3 (10M-):  2,345,678 → 2.345678 * 40 = 93.82712 → 93.83
    # 100.00 + 200.00 + 225.00 + 93.83 = 618.83
    "tiers apply to the account's monthly total": Case(
        ESSENTIALS,
        {"actions.workflow": 10_000_000, "actions.activity": 2_345_678},
        [("plan_fee", "100.00"), ("actions", "200.00"), ("actions", "225.00"),
         ("actions", "93.83")],
        "618.83",
        "618.83",
    ),
    # Active 1,500 GB-h - 1,000 included = 500 * 0.042 = 21.00
    # Retained 50,000.5 GB-h - 40,000 = 10,000.5 * 0.00105 = 10.500525 → 10.50
    # 100.00 + 21.00 + 10.50 = 131.50
    "storage beyond the included GB-hours": Case(
        ESSENTIALS,
        {"storage.active": 1_500 * GB, "storage.retained": 50_000_500_000_000},
        [("plan_fee", "100.00"), ("storage.active", "21.00"), ("storage.retained", "10.50")],
        "131.50",
        "131.50",
    ),
    # Actions 1,000,100 - 1M = 100 * 50 / 1M = 0.005 → 0.01 (half-up; half-even gives 0.00)
    # Active 1,000.15 - 1,000 = 0.15 GB-h * 0.042 = 0.0063 → 0.01
    # Rounded per line: 100.00 + 0.01 + 0.01 = 100.02 (rounding the sum, 100.0113, would
    # give 100.01: lines are rounded once and the invoice adds them).
    "half-up rounding at each line": Case(
        ESSENTIALS,
        {"actions.signal": 1_000_100, "storage.active": 1_000_150_000_000},
        [("plan_fee", "100.00"), ("actions", "0.01"), ("storage.active", "0.01")],
        "100.02",
        "100.02",
    ),
    # Started on day 16 of a 30-day month: 15/30 = 1/2.
    # Fee 100 * 1/2 = 50.00; included actions 500,000; included active 500 GB-h.
    # Actions 3,000,000 - 500,000 = 2,500,000, all in tier 1 → 2.5 * 50 = 125.00
    # Active 600 - 500 = 100 GB-h * 0.042 = 4.20
    # 50.00 + 125.00 + 4.20 = 179.20
    "mid-month start prorates fee and included amounts": Case(
        ESSENTIALS,
        {"actions.workflow": 3_000_000, "storage.active": 600 * GB},
        [("plan_fee", "50.00"), ("actions", "125.00"), ("storage.active", "4.20")],
        "179.20",
        "179.20",
        days_active=15,
    ),
    # 10 of 31 days: 100 * 10 / 31 = 32.2580… → 32.26. Included actions
    # 1,000,000 * 10 / 31 = 322,580.6… → 322,580 (whole actions, rounded down), so
    # 322,581 actions bill exactly 1: 1 * 50 / 1M = 0.00005 → 0.00 (a line of 0.00).
    "proration rounds the fee and floors included actions": Case(
        ESSENTIALS,
        {"actions.timer": 322_581},
        [("plan_fee", "32.26"), ("actions", "0.00")],
        "32.26",
        "32.26",
        days_active=10,
        days_in_month=31,
    ),
    # 100,000,000 actions * 25/M = 2,500.00; fee 10% = 250.00 ≥ minimum 200.
    # 250.00 + 2,500.00 = 2,750.00
    "percentage fee above its minimum": Case(
        USAGE_BASED,
        {"actions.workflow": 100_000_000},
        [("plan_fee", "250.00"), ("actions", "2500.00")],
        "2750.00",
        "2750.00",
    ),
    # 4,000,000 * 25/M = 100.00; 10% = 10.00 < minimum 200.00 → fee 200.00. Total 300.00.
    "percentage fee raised to its minimum": Case(
        USAGE_BASED,
        {"actions.workflow": 4_000_000},
        [("plan_fee", "200.00"), ("actions", "100.00")],
        "300.00",
        "300.00",
    ),
    # Half the month: minimum 200 * 15/30 = 100.00 > 10% of 100.00 = 10.00. Total 200.00.
    "the minimum is prorated": Case(
        USAGE_BASED,
        {"actions.workflow": 4_000_000},
        [("plan_fee", "100.00"), ("actions", "100.00")],
        "200.00",
        "200.00",
        days_active=15,
    ),
    # No usage: 10% of 0 = 0.00 < 200.00 → the minimum is the whole invoice.
    "no usage pays the minimum": Case(
        USAGE_BASED, {}, [("plan_fee", "200.00")], "200.00", "200.00"
    ),
    # Subtotal 618.83 (tiers case). Credit a pays 500.00 (remaining 0.00, due 118.83);
    # credit b pays 118.83 of its 200.00 (remaining 81.17, due 0.00); credit c is untouched.
    "credits are consumed in order before charging": Case(
        ESSENTIALS,
        {"actions.workflow": 10_000_000, "actions.activity": 2_345_678},
        [("plan_fee", "100.00"), ("actions", "200.00"), ("actions", "225.00"),
         ("actions", "93.83")],
        "618.83",
        "0.00",
        credits=[Credit("a", D("500.00")), Credit("b", D("200.00")), Credit("c", D("50.00"))],
        applied=[CreditApplied("a", D("500.00"), D("0.00")),
                 CreditApplied("b", D("118.83"), D("81.17"))],
    ),
    # 100.00 due; an exhausted credit (0.00) pays nothing, then 30.00 → 70.00 to charge.
    "a credit smaller than the invoice": Case(
        ESSENTIALS,
        {},
        [("plan_fee", "100.00")],
        "100.00",
        "70.00",
        credits=[Credit("empty", D("0.00")), Credit("small", D("30.00"))],
        applied=[CreditApplied("small", D("30.00"), D("0.00"))],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_rate_month(case: Case) -> None:
    invoice = rate_month(
        case.plan,
        case.usage,
        days_active=case.days_active,
        days_in_month=case.days_in_month,
        credits=case.credits,
    )
    assert [(line.kind, line.amount) for line in invoice.lines] == [
        (kind, D(amount)) for kind, amount in case.lines
    ]
    assert invoice.subtotal == D(case.subtotal)
    assert list(invoice.credits) == case.applied
    assert invoice.total == D(case.total)
    # Every amount is in whole cents: a sum of rounded lines never needs rounding again.
    for amount in [line.amount for line in invoice.lines] + [invoice.subtotal, invoice.total]:
        assert amount == amount.quantize(D("0.01"))


def test_tier_lines_say_which_millions_they_price() -> None:
    """The tiers case, line by line: quantity in millions, unit price per million."""
    invoice = rate_month(
        ESSENTIALS,
        {"actions.workflow": 12_345_678},
        days_active=30,
        days_in_month=30,
    )
    assert [(line.description, line.quantity, line.unit_price) for line in invoice.lines[1:]] == [
        ("Actions, tier 1 (0M-5M)", D(4), D(50)),
        ("Actions, tier 2 (5M-10M)", D(5), D(45)),
        ("Actions, tier 3 (10M-)", D("2.345678"), D(40)),
    ]


def test_a_plan_from_the_price_book_rates_like_the_table() -> None:
    """The same numbers, with the plan read from YAML: 618.83 as in the tiers case."""
    book = parse_price_book(
        """\
version: 1
currency: USD
plans:
  essentials:
    fee: {flat: 100}
    included: {actions: 1000000}
    action_tiers:
      - {up_to_millions: 5, price_per_million: 50}
      - {up_to_millions: 10, price_per_million: 45}
      - {price_per_million: 40}
"""
    )
    invoice = rate_month(
        book.plans["essentials"], {"actions.workflow": 12_345_678}, days_active=30, days_in_month=30
    )
    assert invoice.total == D("618.83")


@pytest.mark.parametrize(
    ("usage", "days_active", "days_in_month", "reason"),
    [
        ({"actions.workflow": -1}, 30, 30, "must not be negative: actions.workflow"),
        ({"storage.cold": 1}, 30, 30, "no price for usage kinds: storage.cold"),
        ({}, 0, 30, "days_active must be 1-30"),
        ({}, 31, 30, "days_active must be 1-30"),
        ({}, 1, 32, "days_in_month must be 28-31"),
    ],
)
def test_inputs_that_cannot_be_rated_are_refused(
    usage: dict[str, int], days_active: int, days_in_month: int, reason: str
) -> None:
    with pytest.raises(RatingError, match=reason):
        rate_month(ESSENTIALS, usage, days_active=days_active, days_in_month=days_in_month)


def test_usage_charges_are_shared_by_namespace_in_cents_that_add_up() -> None:
    """3 namespaces with 1M actions each beyond the included 1M: 3M billable in tier 1 = 150.00,
    shared 50.00 each. Storage 0.01 over three equal namespaces cannot split evenly: the cent
    goes to the first by (namespace, kind) order, the others get 0.00."""
    usage = {
        ("a.acct1", "actions.workflow"): 1_000_000,
        ("b.acct1", "actions.workflow"): 1_000_000,
        ("c.acct1", "actions.activity"): 1_000_000,
        ("d.acct1", "actions.signal"): 1_000_000,
        ("a.acct1", "storage.active"): 1_000_080_000_000,
        ("b.acct1", "storage.active"): 1_000_080_000_000,
        ("c.acct1", "storage.active"): 1_000_080_000_000,
    }
    plan = Plan(
        name="p",
        fee=PlanFee(flat=D(0)),
        included_actions=1_000_000,
        included_active_gbh=D(3000),
        included_retained_gbh=D(0),
        action_tiers=(ActionTier(up_to=None, price_per_million=D(50)),),
        active_storage_per_gbh=D("0.042"),
        retained_storage_per_gbh=D(0),
    )
    # Storage: 3,000.24 GB-h - 3,000 = 0.24 * 0.042 = 0.01008 -> 0.01.
    invoice = rate_invoice([PlanPeriod(plan, 30, usage)], days_in_month=30)
    assert [(line.kind, line.amount) for line in invoice.lines] == [
        ("plan_fee", D("0.00")),
        ("actions", D("150.00")),
        ("storage.active", D("0.01")),
    ]
    shares = {(c.namespace_id, c.kind): c.amount for c in invoice.usage}
    assert shares == {
        ("a.acct1", "actions.workflow"): D("37.50"),
        ("b.acct1", "actions.workflow"): D("37.50"),
        ("c.acct1", "actions.activity"): D("37.50"),
        ("d.acct1", "actions.signal"): D("37.50"),
        ("a.acct1", "storage.active"): D("0.01"),
        ("b.acct1", "storage.active"): D("0.00"),
        ("c.acct1", "storage.active"): D("0.00"),
    }
    assert sum(shares.values()) == D("150.01")


def test_periods_of_two_plans_share_the_monthly_tiers() -> None:
    """ESSENTIALS for 10 of 30 days, then USAGE_BASED for 20, with 4M and 2M actions.
    Essentials: fee 100 * 10/30 = 33.33; included 1,000,000 * 10/30 = 333,333; 4,000,000 -
    333,333 = 3,666,667 in tier 1 (0-5M): 3.666667 * 50 = 183.33335 -> 183.33.
    Usage-based: its actions are the month's 4M-6M, one tier at 25/M: 2 * 25 = 50.00; fee
    10% = 5.00 < minimum 200 * 20/30 = 133.33 -> 133.33.
    Subtotal 33.33 + 133.33 + 183.33 + 50.00 = 399.99."""
    invoice = rate_invoice(
        [
            PlanPeriod(ESSENTIALS, 10, {("n.acct1", "actions.workflow"): 4_000_000}, "days 1-10"),
            PlanPeriod(USAGE_BASED, 20, {("n.acct1", "actions.workflow"): 2_000_000}, "days 11-30"),
        ],
        days_in_month=30,
    )
    assert [(line.kind, line.amount) for line in invoice.lines] == [
        ("plan_fee", D("33.33")),
        ("plan_fee", D("133.33")),
        ("actions", D("183.33")),
        ("actions", D("50.00")),
    ]
    assert invoice.subtotal == D("399.99")
    assert invoice.lines[3].description == "Actions, tier 1 (0M-), days 11-30"
    (share,) = invoice.usage
    assert (share.quantity, share.amount) == (6_000_000, D("233.33"))


def test_periods_longer_than_the_month_are_refused() -> None:
    with pytest.raises(RatingError, match="the periods cover 31 days of a 30-day month"):
        rate_invoice(
            [PlanPeriod(ESSENTIALS, 15, {}), PlanPeriod(USAGE_BASED, 16, {})], days_in_month=30
        )
