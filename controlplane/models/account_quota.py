from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


class AccountQuota(TimestampMixin, Base):
    """An operator-set limit of one account (a quota without a row has its default)."""

    __tablename__ = "account_quotas"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    # One of ``controlplane.quotas.Quota``.
    quota: Mapped[str] = mapped_column(String(32), primary_key=True)
    maximum: Mapped[int] = mapped_column(Integer)
