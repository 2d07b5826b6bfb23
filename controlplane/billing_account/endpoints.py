"""Plans and credits: set by the operator per account, read by the account's owners and
finance admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.billing_account import service
from controlplane.billing_account.schemas import (
    AccountPlanOut,
    CreditGrant,
    CreditList,
    CreditOut,
    PlanSet,
)
from controlplane.kit.deps import PricingDep, SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import Credit

router = APIRouter(route_class=ApiRoute, tags=["billing"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


def _credit(credit: Credit) -> CreditOut:
    return CreditOut(
        id=credit.id,
        account_id=credit.account_id,
        description=credit.description,
        amount=credit.amount,
        remaining=credit.remaining,
        expires_at=credit.expires_at,
        created_at=credit.created_at,
    )


@router.post("/accounts/{account_id}/plan", response_model=AccountPlanOut, responses=Problems)
async def set_account_plan(
    account_id: str,
    body: PlanSet,
    session: SessionDep,
    pricing: PricingDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_PLAN_SET))],
) -> AccountPlanOut:
    """Operator only: the account's plan from a UTC day on; a change in the middle of a month
    splits that month's invoice into prorated periods."""
    return await service.set_plan(
        session,
        principal,
        pricing,
        account_id,
        plan=body.plan,
        effective_from=body.effective_from,
    )


@router.post(
    "/accounts/{account_id}/credits", status_code=201, response_model=CreditOut, responses=Problems
)
async def grant_credit(
    account_id: str,
    body: CreditGrant,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CREDIT_GRANT))],
) -> CreditOut:
    """Operator only: a prepaid balance, consumed by invoices before anything is charged."""
    credit = await service.grant_credit(
        session,
        principal,
        account_id,
        amount=body.amount,
        description=body.description,
        expires_on=body.expires_on,
    )
    return _credit(credit)


@router.get("/billing/plan", response_model=AccountPlanOut, responses=Problems)
async def get_plan(
    session: SessionDep,
    pricing: PricingDep,
    principal: Annotated[Principal, Depends(requires(Action.BILLING_READ))],
) -> AccountPlanOut:
    """The caller's account's plan today and its plan changes."""
    return await service.get_plan(session, principal, pricing)


@router.get("/billing/credits", response_model=CreditList, responses=Problems)
async def list_credits(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.BILLING_READ))],
    page: PageDep,
) -> CreditList:
    """The account's prepaid credits and what remains of each, oldest first."""
    found = await service.page_credits(session, principal, page)
    return CreditList(
        credits=[_credit(c) for c in found.rows], next_page_token=found.next_page_token
    )
