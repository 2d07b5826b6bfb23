from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, Field

from controlplane.kit.page_schema import PagedList

# Money and quantities are exact decimals, sent as JSON strings ("618.83").


class InvoiceLineOut(BaseModel):
    """A charge: what the account pays. The charges add up to ``subtotal``."""

    kind: str = Field(description="plan_fee, actions, storage.active or storage.retained")
    description: str
    quantity: Decimal = Field(description="Millions of actions, GB-hours, or share of the fee")
    unit_price: Decimal | None
    amount: Decimal


class NamespaceUsageOut(BaseModel):
    """One namespace's usage of one kind in the month and its share of the usage charges."""

    namespace_id: str
    kind: str
    quantity: Decimal = Field(description="Actions, or byte-hours for storage kinds")
    amount: Decimal = Field(description="Allocated by quantity; the shares add up exactly")


class CreditAppliedOut(BaseModel):
    credit_id: str
    amount: Decimal
    remaining: Decimal = Field(description="What the credit holds after this invoice")


class CreditNoteOut(BaseModel):
    id: str
    invoice_id: str
    amount: Decimal
    reason: str
    created_at: dt.datetime


class CreditNoteCreate(BaseModel):
    amount: str = Field(description="Decimal amount in the invoice's currency, e.g. '12.50'")
    reason: str


class InvoiceSummary(BaseModel):
    id: str
    account_id: str
    period_start: dt.date = Field(description="First UTC day of the month")
    period_end: dt.date = Field(description="Last UTC day of the month (inclusive)")
    status: str = Field(description="DRAFT until the month plus the grace period has passed")
    currency: str
    plan: str
    subtotal: Decimal
    credits_applied: Decimal
    total: Decimal = Field(description="Subtotal less credits")
    amount_due: Decimal = Field(description="Total less credit notes")
    rated_at: dt.datetime = Field(description="Usage metered until this moment is included")
    finalized_at: dt.datetime | None


class InvoiceOut(InvoiceSummary):
    price_book_version: str
    lines: list[InvoiceLineOut]
    usage: list[NamespaceUsageOut]
    credit_applications: list[CreditAppliedOut]
    credit_notes: list[CreditNoteOut]


class InvoiceList(PagedList):
    invoices: list[InvoiceSummary] = Field(description="Newest month first")
