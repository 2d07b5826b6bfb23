"""The billing cycle against a real database: a new account's first month is prorated from
its creation day, credits are chosen by expiry and consumed exactly once even when two
finalizers race, and the cycle walks every open month up to the current one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from product_constants import INVOICE_GRACE
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from controlplane.config import Settings
from controlplane.invoices.cycle import bill_month, run_cycle
from controlplane.models import Account, Credit, Invoice, InvoiceStatus
from controlplane.pricing import Pricing, load_pricing
from controlplane.usage.repository import SystemUsageStore

D = Decimal
MARCH = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
AFTER_GRACE = APRIL + INVOICE_GRACE + dt.timedelta(hours=1)


@pytest.fixture
def pricing() -> Pricing:
    return load_pricing(Settings())


async def _account(
    sessions: async_sessionmaker[AsyncSession], account_id: str, created_at: dt.datetime
) -> None:
    async with sessions() as session, session.begin():
        session.add(Account(id=account_id, name=account_id, created_at=created_at))


async def _invoice(sessions: async_sessionmaker[AsyncSession], account_id: str) -> Invoice:
    async with sessions() as session:
        return (
            await session.execute(
                select(Invoice).where(
                    Invoice.account_id == account_id, Invoice.period_start == MARCH
                )
            )
        ).scalar_one()


async def test_a_new_accounts_first_month_is_prorated_from_its_creation_day(
    sessions: async_sessionmaker[AsyncSession], pricing: Pricing
) -> None:
    """Created on 11 March at 15:00: active 21 of 31 days. Fee 100 × 21/31 = 67.741… → 67.74;
    included ⌊1,000,000 × 21/31⌋ = 677,419, so 1,677,419 actions bill 1,000,000 × 50/M = 50.00.
    Subtotal 117.74."""
    await _account(sessions, "newbie1", MARCH.replace(day=11, hour=15))
    async with sessions() as session, session.begin():
        await SystemUsageStore(session).add_usage(
            MARCH.replace(day=12), {("app.newbie1", "actions.workflow"): 1_677_419}
        )
        await bill_month(session, pricing, MARCH, now=MARCH.replace(day=20))
    invoice = await _invoice(sessions, "newbie1")
    assert (invoice.subtotal, invoice.total, invoice.status) == (
        D("117.74"),
        D("117.74"),
        InvoiceStatus.DRAFT,
    )


async def test_credits_apply_soonest_expiry_first_and_only_while_valid(
    sessions: async_sessionmaker[AsyncSession], pricing: Pricing
) -> None:
    """Fee 100.00, no usage. Credits: one expired before March (unused), one granted after
    March (unused), 30.00 expiring in May (used first, all of it), 500.00 never expiring (pays
    the remaining 70.00). Total 0.00."""
    await _account(sessions, "credit1", MARCH - dt.timedelta(days=40))
    credits = [
        ("expired", D("40.00"), MARCH - dt.timedelta(days=1), MARCH - dt.timedelta(days=30)),
        ("later", D("40.00"), None, APRIL + dt.timedelta(days=1)),
        ("may", D("30.00"), dt.datetime(2027, 5, 1, tzinfo=dt.UTC), MARCH - dt.timedelta(days=9)),
        ("forever", D("500.00"), None, MARCH - dt.timedelta(days=10)),
    ]
    async with sessions() as session, session.begin():
        for credit_id, amount, expires_at, created_at in credits:
            session.add(
                Credit(
                    id=credit_id,
                    account_id="credit1",
                    description=credit_id,
                    amount=amount,
                    remaining=amount,
                    expires_at=expires_at,
                    created_at=created_at,
                )
            )
    async with sessions() as session, session.begin():
        await bill_month(session, pricing, MARCH, now=AFTER_GRACE, account_ids=["credit1"])
    invoice = await _invoice(sessions, "credit1")
    assert invoice.status is InvoiceStatus.FINALIZED
    assert invoice.credit_applications == [
        {"credit_id": "may", "amount": "30.00", "remaining": "0.00"},
        {"credit_id": "forever", "amount": "70.00", "remaining": "430.00"},
    ]
    assert invoice.total == D("0.00")
    async with sessions() as session:
        remaining = {c.id: c.remaining for c in (await session.execute(select(Credit))).scalars()}
    assert remaining == {
        "expired": D("40.00"),
        "later": D("40.00"),
        "may": D("0.00"),
        "forever": D("430.00"),
    }


async def test_two_finalizers_racing_spend_a_credit_once(
    sessions: async_sessionmaker[AsyncSession], pricing: Pricing
) -> None:
    """A second cycle that read the invoice as a draft before the first finalized it fails on
    the version counter when it tries to finalize too, and rolls back: the credit pays once."""
    await _account(sessions, "race1", MARCH - dt.timedelta(days=40))
    async with sessions() as session, session.begin():
        session.add(
            Credit(id="c", account_id="race1", description="c", amount=D("60.00"),
                   remaining=D("60.00"), expires_at=None, created_at=MARCH)
        )  # fmt: skip
        await bill_month(session, pricing, MARCH, now=MARCH.replace(day=5))
    late = sessions()
    # The late finalizer has already read the draft and the credit.
    draft = await _invoice_in(late)
    assert draft.status is InvoiceStatus.DRAFT
    assert (await late.get(Credit, "c")) is not None
    async with sessions() as session, session.begin():
        first = await bill_month(session, pricing, MARCH, now=AFTER_GRACE)
    assert first.finalized == [("race1", MARCH.date())]
    with pytest.raises(StaleDataError):
        await bill_month(late, pricing, MARCH, now=AFTER_GRACE)
    await late.rollback()
    await late.close()
    async with sessions() as session:
        credit = await session.get(Credit, "c")
        assert credit is not None
        assert credit.remaining == D("0.00")
    assert (await _invoice(sessions, "race1")).total == D("40.00")


async def _invoice_in(session: AsyncSession) -> Invoice:
    return (
        await session.execute(select(Invoice).where(Invoice.account_id == "race1"))
    ).scalar_one()


async def test_the_cycle_walks_every_open_month_and_finalizes_the_past_ones(
    sessions: async_sessionmaker[AsyncSession], pricing: Pricing
) -> None:
    """An account from January, the cycle run on 10 April: January to March finalized (their
    grace periods are over), April a draft; the next run leaves the finalized months alone."""
    await _account(sessions, "walker1", dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    now = APRIL.replace(day=10)
    async with sessions() as session, session.begin():
        report = await run_cycle(session, pricing, now=now)
    months = [dt.date(2027, m, 1) for m in (1, 2, 3)]
    assert report.finalized == [("walker1", month) for month in months]
    assert report.drafted == [("walker1", dt.date(2027, 4, 1))]
    async with sessions() as session, session.begin():
        again = await run_cycle(session, pricing, now=now)
    assert again.finalized == []
    assert again.drafted == [("walker1", dt.date(2027, 4, 1))]
