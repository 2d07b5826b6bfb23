from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import UTCDateTime


class S3SinkColumns:
    """The S3 target every sink has (usage export, audit log, history export): bucket, key
    prefix, region, an endpoint for S3-compatible stores, the access key id and its secret
    stored encrypted (``auth.SecretBox``, bound to the sink's owner), and the last error."""

    bucket: Mapped[str] = mapped_column(String(63))
    prefix: Mapped[str] = mapped_column(String(512))
    region: Mapped[str] = mapped_column(String(32))
    endpoint_url: Mapped[str | None] = mapped_column(String(512))
    access_key_id: Mapped[str] = mapped_column(String(128))
    secret_access_key_encrypted: Mapped[str] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
