from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


def month_of(hour_start: dt.datetime) -> dt.datetime:
    """Midnight UTC of the first day of the month ``hour_start`` falls in."""
    utc = hour_start.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)


class UsageRecord(TimestampMixin, Base):
    """Billable usage of one namespace in one UTC hour, one row per kind (``actions.workflow``,
    ``actions.activity``, …). Meters only ever add to ``quantity`` in the same transaction that
    advances their cursors, so a row is exact however often the meter restarts.

    ``period_start`` is the UTC month of ``hour_start``, kept on the row so that rating a month
    reads that month's index entries only, however much history the table holds.

    No foreign key to ``namespaces``: usage outlives a deleted namespace until it is invoiced.
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("namespace_id", "hour_start", "kind"),
        # Covers the rating query: one month, grouped by account, namespace and kind, read in
        # group order without visiting the table.
        Index(
            "ix_usage_records_rating",
            "period_start",
            "account_id",
            "namespace_id",
            "kind",
            "quantity",
        ),
        # One account's hours (the usage API, the hourly exports).
        Index("ix_usage_records_account_hour", "account_id", "hour_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    namespace_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str] = mapped_column(String(16), index=True)
    hour_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(BigInteger)
