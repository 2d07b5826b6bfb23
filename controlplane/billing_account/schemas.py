from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, Field

from controlplane.kit.page_schema import PagedList


class PlanSet(BaseModel):
    plan: str = Field(description="A plan of the price book")
    effective_from: dt.date | None = Field(
        default=None, description="First UTC day on the plan (default: today)"
    )


class PlanPeriodOut(BaseModel):
    plan: str
    effective_from: dt.date


class AccountPlanOut(BaseModel):
    account_id: str
    plan: str = Field(description="The plan in force today")
    is_default: bool = Field(description="True while the operator has not chosen a plan")
    history: list[PlanPeriodOut]
    price_book_version: str


class CreditGrant(BaseModel):
    amount: str = Field(description="Decimal amount, e.g. '250.00'")
    description: str
    expires_on: dt.date | None = Field(
        default=None, description="Pays invoices of months starting before this UTC day"
    )


class CreditOut(BaseModel):
    id: str
    account_id: str
    description: str
    amount: Decimal
    remaining: Decimal
    expires_at: dt.datetime | None
    created_at: dt.datetime


class CreditList(PagedList):
    credits: list[CreditOut]
