"""Plans and prepaid credits: the operator sets them, owners and finance admins read them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.audit import service as audit
from controlplane.billing_account.repository import (
    BillingAccountRepository,
    SystemBillingAccountRepository,
)
from controlplane.billing_account.schemas import AccountPlanOut, PlanPeriodOut
from controlplane.invoices.service import parse_money
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import Conflict, InvalidField, NotFound
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import AccountPlan, Credit
from controlplane.pricing import Pricing

MAX_CREDIT_DESCRIPTION = 200


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def describe_plan(
    account_id: str, history: list[AccountPlan], pricing: Pricing, *, today: dt.date
) -> AccountPlanOut:
    in_force = [row for row in history if row.effective_from.date() <= today]
    return AccountPlanOut(
        account_id=account_id,
        plan=in_force[-1].plan if in_force else pricing.default_plan,
        is_default=not history,
        history=[
            PlanPeriodOut(plan=row.plan, effective_from=row.effective_from.date())
            for row in history
        ],
        price_book_version=pricing.book.version,
    )


async def get_plan(session: AsyncSession, principal: Principal, pricing: Pricing) -> AccountPlanOut:
    require(principal, Action.BILLING_READ)
    repository = BillingAccountRepository(session, principal)
    history = await repository.plans()
    return describe_plan(repository.account_id, history, pricing, today=utcnow().date())


async def set_plan(
    session: AsyncSession,
    principal: Principal,
    pricing: Pricing,
    account_id: str,
    *,
    plan: str,
    effective_from: dt.date | None,
) -> AccountPlanOut:
    """Operator only: put the account on ``plan`` from a UTC day on (default today). A day in
    a month already finalized is refused: that invoice never changes."""
    require(principal, Action.ACCOUNT_PLAN_SET)
    repository = SystemBillingAccountRepository(session)
    account = await repository.account(account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    if plan not in pricing.book.plans:
        raise InvalidField(
            f"plan {plan!r} is not in price book {pricing.book.version!r} "
            f"(plans: {', '.join(sorted(pricing.book.plans))})",
            field="plan",
        )
    day = fields.day(effective_from, field="effective_from") if effective_from else utcnow().date()
    start = _midnight(day)
    finalized_through = await repository.finalized_through(account_id)
    if finalized_through is not None and start < finalized_through:
        raise Conflict(
            f"{day} lies in a month whose invoice is finalized (through "
            f"{(finalized_through - dt.timedelta(days=1)).date()}); choose a later day"
        )
    row = await repository.plan_at(account_id, start)
    if row is None:
        repository.add(AccountPlan(account_id=account_id, plan=plan, effective_from=start))
    else:
        row.plan = plan
    audit.record(
        session,
        principal,
        action="account.plan.set",
        target=account_id,
        account_id=account_id,
        details={"plan": plan, "effective_from": day.isoformat()},
    )
    await session.flush()
    return describe_plan(
        account_id, await repository.plans_of(account_id), pricing, today=utcnow().date()
    )


async def grant_credit(
    session: AsyncSession,
    principal: Principal,
    account_id: str,
    *,
    amount: str,
    description: str,
    expires_on: dt.date | None,
) -> Credit:
    """Operator only: a prepaid balance that finalized invoices consume before charging."""
    require(principal, Action.CREDIT_GRANT)
    repository = SystemBillingAccountRepository(session)
    if await repository.account(account_id) is None:
        raise NotFound(f"account {account_id} not found")
    value = parse_money(amount, "amount")
    description = fields.free_text(
        description, field="description", min_length=1, max_length=MAX_CREDIT_DESCRIPTION
    )
    if expires_on is not None:
        fields.day(expires_on, field="expires_on")
    expires_at = _midnight(expires_on) if expires_on is not None else None
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidField(f"expires_on ({expires_on}) is not in the future", field="expires_on")
    credit = Credit(
        id=str(uuid.uuid4()),
        account_id=account_id,
        description=description,
        amount=value,
        remaining=value,
        expires_at=expires_at,
    )
    repository.add(credit)
    audit.record(
        session,
        principal,
        action="credit.grant",
        target=credit.id,
        account_id=account_id,
        details={
            "amount": str(value),
            "description": description,
            "expires_on": None if expires_on is None else expires_on.isoformat(),
        },
    )
    await session.flush()
    return credit


async def page_credits(
    session: AsyncSession, principal: Principal, page: PageRequest
) -> Page[Credit]:
    """A page of the account's credits, oldest first."""
    require(principal, Action.BILLING_READ)
    return await BillingAccountRepository(session, principal).credits_page(page)


async def list_credits(session: AsyncSession, principal: Principal) -> list[Credit]:
    require(principal, Action.BILLING_READ)
    return await BillingAccountRepository(session, principal).credits()


async def plans_of_accounts(
    session: AsyncSession, principal: Principal, pricing: Pricing, account_ids: list[str]
) -> dict[str, AccountPlanOut]:
    """Operator only: each account's plan today (the default plan where none was set)."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may read accounts' plans")
    history = await SystemBillingAccountRepository(session).plans_by_account()
    today = utcnow().date()
    return {
        account_id: describe_plan(account_id, history.get(account_id, []), pricing, today=today)
        for account_id in account_ids
    }


async def credits_of(session: AsyncSession, principal: Principal, account_id: str) -> list[Credit]:
    """Operator only: an account's prepaid credits and what remains of each."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may read accounts' credits")
    repository = SystemBillingAccountRepository(session)
    if await repository.account(account_id) is None:
        raise NotFound(f"account {account_id} not found")
    return await repository.credits_of(account_id)
