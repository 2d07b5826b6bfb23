from __future__ import annotations

from decimal import Decimal

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, DecimalText, TimestampMixin


class CreditNote(TimestampMixin, Base):
    """A correction of a finalized invoice: it lowers what the account owes on that invoice
    (``amount_due``) without touching the invoice itself."""

    __tablename__ = "credit_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str] = mapped_column(String(16), index=True)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    reason: Mapped[str] = mapped_column(Text)
