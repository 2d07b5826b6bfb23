from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, DecimalText, TimestampMixin, UTCDateTime


class Credit(TimestampMixin, Base):
    """A prepaid balance of an account, consumed by finalized invoices before anything is
    charged. It pays the invoices of months that start before ``expires_at`` (never, if None).
    ``version`` makes two finalizers that consume the same credit at once fail instead of both
    spending it."""

    __tablename__ = "credits"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    remaining: Mapped[Decimal] = mapped_column(DecimalText)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column()

    __mapper_args__: dict[str, Any] = {"version_id_col": version}  # noqa: RUF012
