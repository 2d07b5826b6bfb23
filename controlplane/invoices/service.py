"""Invoices for the account's owners and finance admins; credit notes for the operator."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.audit import service as audit
from controlplane.invoices.documents import invoice_csv, invoice_json
from controlplane.invoices.repository import InvoiceRepository, SystemInvoiceRepository
from controlplane.invoices.schemas import (
    CreditAppliedOut,
    CreditNoteOut,
    InvoiceLineOut,
    InvoiceOut,
    InvoiceSummary,
    NamespaceUsageOut,
)
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.errors import Conflict, InvalidField, NotFound
from controlplane.kit.paging import PageRequest
from controlplane.models import CreditNote, Invoice, InvoiceStatus

CENT = Decimal("0.01")
DOWNLOAD_FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def parse_money(value: str, field: str) -> Decimal:
    """A positive amount with at most two decimals, or 400 naming ``field``."""
    try:
        amount = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise InvalidField(f"{field} must be a decimal amount like 12.50", field=field) from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidField(f"{field} must be greater than 0", field=field)
    if amount != amount.quantize(CENT):
        raise InvalidField(f"{field} must not have more than two decimals", field=field)
    return amount.quantize(CENT)


def _summary(invoice: Invoice, notes: list[CreditNote]) -> InvoiceSummary:
    return InvoiceSummary(
        id=invoice.id,
        account_id=invoice.account_id,
        period_start=invoice.period_start.date(),
        period_end=(invoice.period_end - dt.timedelta(days=1)).date(),
        status=invoice.status.value,
        currency=invoice.currency,
        plan=invoice.plan,
        subtotal=invoice.subtotal,
        credits_applied=invoice.credits_applied,
        total=invoice.total,
        amount_due=invoice.total - sum((note.amount for note in notes), Decimal(0)),
        rated_at=invoice.rated_at,
        finalized_at=invoice.finalized_at,
    )


def render(invoice: Invoice, notes: list[CreditNote]) -> InvoiceOut:
    """The whole invoice (``invoice.lines`` must be loaded)."""
    return InvoiceOut(
        **_summary(invoice, notes).model_dump(),
        price_book_version=invoice.price_book_version,
        lines=[
            InvoiceLineOut(
                kind=line.kind,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
            )
            for line in invoice.lines
            if line.line_type == "charge"
        ],
        usage=[
            NamespaceUsageOut(
                namespace_id=line.namespace_id or "",
                kind=line.kind,
                quantity=line.quantity,
                amount=line.amount,
            )
            for line in invoice.lines
            if line.line_type == "usage"
        ],
        credit_applications=[
            CreditAppliedOut(
                credit_id=applied["credit_id"],
                amount=Decimal(applied["amount"]),
                remaining=Decimal(applied["remaining"]),
            )
            for applied in invoice.credit_applications
        ],
        credit_notes=[
            CreditNoteOut(
                id=note.id,
                invoice_id=note.invoice_id,
                amount=note.amount,
                reason=note.reason,
                created_at=note.created_at,
            )
            for note in notes
        ],
    )


_MONTH = re.compile(r"(\d{4})-(\d{2})")


def _month(value: str) -> dt.datetime:
    match = _MONTH.fullmatch(value)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise InvalidField(f"month must be YYYY-MM, got {value!r}", field="month")
    start = dt.datetime(int(match[1]), int(match[2]), 1, tzinfo=dt.UTC)
    fields.day(start.date(), field="month")
    return start


async def page_invoices(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    status: str | None = None,
    month: str | None = None,
) -> tuple[list[InvoiceSummary], str]:
    """A page of the account's invoices, newest month first, and the next page's token;
    ``status`` (DRAFT or FINALIZED) and ``month`` (YYYY-MM) narrow it."""
    require(principal, Action.INVOICE_READ)
    wanted: InvoiceStatus | None = None
    if status is not None:
        try:
            wanted = InvoiceStatus(status.upper())
        except ValueError:
            choices = ", ".join(s.value for s in InvoiceStatus)
            raise InvalidField(
                f"status must be one of {choices}, got {status!r}", field="status"
            ) from None
    repository = InvoiceRepository(session, principal)
    found = await repository.page(
        page, status=wanted, month=_month(month) if month is not None else None
    )
    notes = await repository.credit_notes([invoice.id for invoice in found.rows])
    return [_summary(invoice, notes[invoice.id]) for invoice in found.rows], found.next_page_token


async def list_invoices(session: AsyncSession, principal: Principal) -> list[InvoiceSummary]:
    require(principal, Action.INVOICE_READ)
    repository = InvoiceRepository(session, principal)
    invoices = await repository.list_all()
    notes = await repository.credit_notes([invoice.id for invoice in invoices])
    return [_summary(invoice, notes[invoice.id]) for invoice in invoices]


async def get_invoice(session: AsyncSession, principal: Principal, invoice_id: str) -> InvoiceOut:
    """The caller's account's invoice; another account's or an unknown id is not found."""
    require(principal, Action.INVOICE_READ)
    repository = InvoiceRepository(session, principal)
    invoice = await repository.get(invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} not found")
    notes = await repository.credit_notes([invoice.id])
    return render(invoice, notes[invoice.id])


async def download(
    session: AsyncSession, principal: Principal, invoice_id: str, *, file_format: str
) -> tuple[bytes, str, str]:
    """(body, media type, file name) of the invoice as JSON or CSV."""
    if file_format not in DOWNLOAD_FORMATS:
        raise InvalidField(
            f"format must be one of {', '.join(DOWNLOAD_FORMATS)}, got {file_format!r}",
            field="format",
        )
    invoice = await get_invoice(session, principal, invoice_id)
    body = invoice_json(invoice) if file_format == "json" else invoice_csv(invoice)
    name = f"invoice-{invoice.account_id}-{invoice.period_start:%Y-%m}-{invoice.id}.{file_format}"
    return body, DOWNLOAD_FORMATS[file_format], name


async def create_credit_note(
    session: AsyncSession, principal: Principal, invoice_id: str, *, amount: str, reason: str
) -> CreditNote:
    """Operator only: correct a finalized invoice by lowering what is due on it. A draft is
    still being rated (fix its inputs instead); notes never take more than is due."""
    require(principal, Action.CREDIT_NOTE_CREATE)
    repository = SystemInvoiceRepository(session)
    invoice = await repository.get(invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} not found")
    value = parse_money(amount, "amount")
    reason = fields.free_text(reason, field="reason", min_length=1, max_length=2000)
    if invoice.status is not InvoiceStatus.FINALIZED:
        raise Conflict(
            f"invoice {invoice_id} is a draft and is re-rated until it is finalized; credit "
            "notes correct finalized invoices"
        )
    notes = (await repository.credit_notes([invoice.id]))[invoice.id]
    due = invoice.total - sum((note.amount for note in notes), Decimal(0))
    if value > due:
        raise InvalidField(
            f"amount {value} is more than the {due} still due on invoice {invoice_id}",
            field="amount",
        )
    note = CreditNote(
        id=str(uuid.uuid4()),
        invoice_id=invoice.id,
        account_id=invoice.account_id,
        amount=value,
        reason=reason,
    )
    repository.add_credit_note(note)
    # The exported invoice document shows its credit notes: deliver it again.
    await repository.forget_delivery(invoice.id)
    audit.record(
        session,
        principal,
        action="invoice.credit_note.create",
        target=invoice.id,
        account_id=invoice.account_id,
        details={"credit_note_id": note.id, "amount": str(value), "reason": reason},
    )
    await session.flush()
    return note
