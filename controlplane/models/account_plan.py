from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class AccountPlan(TimestampMixin, Base):
    """The plan an account is on from ``effective_from`` (a UTC midnight) until the next row's
    ``effective_from``. An account without rows is on the operator's default plan; a change in
    the middle of a month splits that month's invoice into prorated periods."""

    __tablename__ = "account_plans"
    __table_args__ = (UniqueConstraint("account_id", "effective_from"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    plan: Mapped[str] = mapped_column(String(64))
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
