from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class UsageRecord(TimestampMixin, Base):
    """Billable usage of one namespace in one UTC hour, one row per kind (``actions.workflow``,
    ``actions.activity``, …). Meters only ever add to ``quantity`` in the same transaction that
    advances their cursors, so a row is exact however often the meter restarts.

    No foreign key to ``namespaces``: usage outlives a deleted namespace until it is invoiced.
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("namespace_id", "hour_start", "kind"),
        # Covers the rating query (a month grouped by account, namespace and kind).
        Index(
            "ix_usage_records_rating",
            "account_id",
            "namespace_id",
            "kind",
            "hour_start",
            "quantity",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    namespace_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(16), index=True)
    hour_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(BigInteger)
