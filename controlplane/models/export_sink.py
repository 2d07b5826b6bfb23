from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime
from controlplane.models.s3_sink import S3SinkColumns


class ExportSink(S3SinkColumns, TimestampMixin, Base):
    """Where an account's usage (hourly) and finalized invoices are exported: an S3 bucket.

    The secret access key is stored encrypted (``auth.SecretBox``, bound to the account id).
    ``usage_exported_through`` is the start of the last UTC hour written; the exporter goes on
    from the next hour (from ``export_from`` at first), so a crash repeats at most one hour,
    whose object is simply overwritten.
    """

    __tablename__ = "export_sinks"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    export_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    usage_exported_through: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
