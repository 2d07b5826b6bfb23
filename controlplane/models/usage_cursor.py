from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


class UsageCursor(TimestampMixin, Base):
    """The last value a meter saw of one counter series on one cell: Temporal's ``action``
    counter for (namespace, action type). The next scrape bills only what lies beyond it."""

    __tablename__ = "usage_cursors"

    cell_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    action_type: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
