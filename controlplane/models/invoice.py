from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from controlplane.models.base import Base, DecimalText, TimestampMixin, UTCDateTime


class InvoiceStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"


class FinalizedInvoiceChanged(RuntimeError):
    """Something tried to change or delete a finalized invoice (corrections are credit notes)."""


class Invoice(TimestampMixin, Base):
    """One account's invoice for one UTC calendar month. A draft is re-rated from usage until
    the month plus the grace period for late usage has passed; then it is finalized and never
    changes again (enforced on every flush, see ``_refuse_finalized_changes``)."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("account_id", "period_start"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[InvoiceStatus] = mapped_column(Enum(InvoiceStatus, native_enum=False, length=16))
    currency: Mapped[str] = mapped_column(String(3))
    price_book_version: Mapped[str] = mapped_column(String(64))
    # The plan(s) of the month, "essentials" or "essentials → business".
    plan: Mapped[str] = mapped_column(String(200))
    subtotal: Mapped[Decimal] = mapped_column(DecimalText)
    credits_applied: Mapped[Decimal] = mapped_column(DecimalText)
    total: Mapped[Decimal] = mapped_column(DecimalText)
    # [{"credit_id", "amount", "remaining"}] as decimal strings, in the order applied.
    credit_applications: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # Usage up to this moment was rated (drafts are refreshed; a finalized one is final).
    rated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finalized_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    lines: Mapped[list[InvoiceLine]] = relationship(
        lazy="raise", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )

    __mapper_args__: dict[str, Any] = {"version_id_col": version}  # noqa: RUF012


class InvoiceLine(Base):
    """A line of an invoice. ``line_type`` ``charge``: what the account pays (plan fee, action
    tiers, storage), adding up to the subtotal; ``usage``: one namespace's quantity of one kind
    with its share of the usage charges (the breakdown, adding up to the usage charges)."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    line_type: Mapped[str] = mapped_column(String(16))
    namespace_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(DecimalText)
    unit_price: Mapped[Decimal | None] = mapped_column(DecimalText)
    amount: Mapped[Decimal] = mapped_column(DecimalText)


def _was_finalized(invoice: Invoice) -> bool:
    history = sa_inspect(invoice).attrs.status.history
    before = history.deleted[0] if history.deleted else invoice.status
    return bool(before == InvoiceStatus.FINALIZED)


@event.listens_for(Session, "before_flush")
def _refuse_finalized_changes(session: Session, _context: object, _instances: object) -> None:
    """A finalized invoice never changes: no update or delete of it or its lines gets flushed."""
    for instance in list(session.dirty) + list(session.deleted):
        if (
            isinstance(instance, Invoice)
            and _was_finalized(instance)
            and (instance in session.deleted or session.is_modified(instance))
        ):
            raise FinalizedInvoiceChanged(
                f"invoice {instance.id} is finalized; issue a credit note instead"
            )
        if isinstance(instance, InvoiceLine):
            parent = session.get(Invoice, instance.invoice_id)
            if parent is not None and _was_finalized(parent):
                raise FinalizedInvoiceChanged(
                    f"invoice {instance.invoice_id} is finalized; its lines cannot change"
                )
