from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime
from controlplane.models.s3_sink import S3SinkColumns


class AuditSink(S3SinkColumns, TimestampMixin, Base):
    """Where an account's audit events are exported: one JSON Lines object per UTC hour in an
    S3 bucket.

    The secret access key is stored encrypted (``auth.SecretBox``, bound to the account id).
    ``exported_through`` is the start of the last UTC hour written (the cursor); the exporter
    goes on from the next hour (from ``export_from`` at first), so a crash between a write and
    the cursor's update writes that hour again, over the same key with the same content.
    """

    __tablename__ = "audit_sinks"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    export_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    exported_through: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
