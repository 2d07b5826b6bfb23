"""Invoices as documents: the API's JSON and a FOCUS-style CSV (for downloads and exports)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from controlplane.invoices.schemas import InvoiceOut

INVOICE_CSV_COLUMNS: tuple[str, ...] = (
    "BillingAccountId",
    "InvoiceId",
    "InvoiceStatus",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "BillingCurrency",
    "LineType",
    "ChargeCategory",
    "SubAccountId",
    "SkuId",
    "ChargeDescription",
    "ConsumedQuantity",
    "ListUnitPrice",
    "BilledCost",
    "AllocatedCost",
)


def invoice_json(invoice: InvoiceOut) -> bytes:
    return invoice.model_dump_json(indent=2).encode("utf-8") + b"\n"


def _money(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def invoice_csv(invoice: InvoiceOut) -> bytes:
    """One row per charge, credit applied and credit note, whose ``BilledCost`` adds up to
    ``amount_due``; then one ``usage`` row per namespace and kind, whose ``AllocatedCost`` is
    that namespace's share of the charges (a breakdown, not billed again)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(INVOICE_CSV_COLUMNS)
    head = (
        invoice.account_id,
        invoice.id,
        invoice.status,
        invoice.period_start.isoformat(),
        invoice.period_end.isoformat(),
        invoice.currency,
    )
    for line in invoice.lines:
        category = "Purchase" if line.kind == "plan_fee" else "Usage"
        writer.writerow(
            (*head, "charge", category, "", line.kind, line.description,
             _money(line.quantity), _money(line.unit_price), _money(line.amount), "")
        )  # fmt: skip
    for applied in invoice.credit_applications:
        writer.writerow(
            (*head, "credit", "Credit", "", "credit", f"Prepaid credit {applied.credit_id}",
             "", "", _money(-applied.amount), "")
        )  # fmt: skip
    for note in invoice.credit_notes:
        writer.writerow(
            (*head, "credit_note", "Adjustment", "", "credit_note",
             f"Credit note {note.id}: {note.reason}", "", "", _money(-note.amount), "")
        )  # fmt: skip
    for usage in invoice.usage:
        writer.writerow(
            (*head, "usage", "Usage", usage.namespace_id, usage.kind,
             f"{usage.namespace_id}: {usage.kind}", _money(usage.quantity), "", "",
             _money(usage.amount))
        )  # fmt: skip
    return buffer.getvalue().encode("utf-8")
