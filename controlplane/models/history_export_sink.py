from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime
from controlplane.models.s3_sink import S3SinkColumns


class HistoryExportSink(S3SinkColumns, TimestampMixin, Base):
    """Where a namespace's closed workflow histories are exported: an S3 bucket.

    The secret access key is stored encrypted (``auth.SecretBox``, bound to the namespace id).
    ``exported_until`` is the close-time watermark: every run that closed before it is in the
    bucket (one object per run, at a key that depends only on the run); the exporter goes on
    from there (from ``export_from`` at first). A crash between writing objects and moving the
    watermark writes the same runs again, at the same keys, with the same bytes.
    """

    __tablename__ = "history_export_sinks"

    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    export_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    exported_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    exported_count: Mapped[int] = mapped_column(Integer, default=0)
    last_exported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
