"""``stratus invoice``: invoices of your account, and the operator's credit notes."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context
from controlplane.cli._options import LimitOption, PageSizeOption

if TYPE_CHECKING:
    from controlplane.invoices.schemas import InvoiceOut

app = typer.Typer(no_args_is_help=True, help="Invoices of your account (owner, finance admin).")


class InvoiceFormat(StrEnum):
    json = "json"
    csv = "csv"


def _invoice_text(invoice: InvoiceOut) -> str:
    lines = [
        f"invoice {invoice.id}  {invoice.period_start} to {invoice.period_end}  {invoice.status}",
        f"plan {invoice.plan}, prices {invoice.price_book_version}, in {invoice.currency}",
    ]
    lines += [f"  {line.amount:>12}  {line.description}" for line in invoice.lines]
    lines.append(f"  {invoice.subtotal:>12}  subtotal")
    lines += [
        f"  {-applied.amount:>12}  credit {applied.credit_id}"
        for applied in invoice.credit_applications
    ]
    lines.append(f"  {invoice.total:>12}  total")
    lines += [f"  {-note.amount:>12}  credit note: {note.reason}" for note in invoice.credit_notes]
    lines.append(f"  {invoice.amount_due:>12}  amount due")
    if invoice.usage:
        lines.append("usage by namespace:")
        lines += [f"  {u.namespace_id}\t{u.kind}\t{u.quantity}\t{u.amount}" for u in invoice.usage]
    return "\n".join(lines)


@app.command("list")
def invoice_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="DRAFT or FINALIZED")] = None,
    month: Annotated[str | None, typer.Option(help="Only this month, YYYY-MM")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """The account's invoices, newest month first (every page unless --limit)."""
    c = Context.of(ctx)
    invoices = c.call(
        lambda client: list(
            client.iter_invoices(status=status, month=month, page_size=page_size, limit=limit)
        )
    )
    lines = [
        f"{i.id}\t{i.period_start:%Y-%m}\t{i.status}\t{i.amount_due} {i.currency}" for i in invoices
    ]
    c.emit_rows("invoices", invoices, "\n".join(lines) or "no invoices yet")


@app.command("get")
def invoice_get(ctx: typer.Context, invoice_id: str) -> None:
    """One invoice: charges, credits, credit notes and usage per namespace."""
    c = Context.of(ctx)
    invoice = c.call(lambda client: client.get_invoice(invoice_id))
    c.emit(invoice, _invoice_text(invoice))


@app.command("download")
def invoice_download(
    ctx: typer.Context,
    invoice_id: str,
    file_format: Annotated[InvoiceFormat, typer.Option("--format")] = InvoiceFormat.json,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output)")
    ] = None,
) -> None:
    """The invoice as JSON or FOCUS-style CSV."""
    c = Context.of(ctx)
    body = c.call(lambda client: client.download_invoice(invoice_id, file_format=file_format))
    if out is None:
        sys.stdout.buffer.write(body)
    else:
        out.write_bytes(body)
        typer.echo(f"wrote {out} ({len(body)} bytes)", err=True)


@app.command("credit-note")
def invoice_credit_note(
    ctx: typer.Context,
    invoice_id: str,
    amount: Annotated[str, typer.Option(help="Decimal amount, e.g. 12.50")],
    reason: Annotated[str, typer.Option(help="Why the invoice is corrected")],
) -> None:
    """Operator: correct a finalized invoice with a credit note."""
    c = Context.of(ctx)
    note = c.call(
        lambda client: client.create_credit_note(invoice_id, amount=amount, reason=reason)
    )
    c.emit(note, f"credit note {note.id}: {note.amount} on invoice {note.invoice_id}")
