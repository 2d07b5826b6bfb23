from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.kit.db import utcnow
from controlplane.models.base import Base, UTCDateTime


class InvoiceDelivery(Base):
    """A finalized invoice written to its account's sink (JSON and CSV). Kept apart from the
    invoice, which never changes once finalized; a missing row means "still to deliver"."""

    __tablename__ = "invoice_deliveries"

    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True
    )
    json_key: Mapped[str] = mapped_column(String(1024))
    csv_key: Mapped[str] = mapped_column(String(1024))
    delivered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
