from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class SamlAssertionSeen(TimestampMixin, Base):
    """The replay cache: ids of assertions that signed someone in, kept until the assertion
    would have expired anyway (its ``NotOnOrAfter``)."""

    __tablename__ = "saml_assertions_seen"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    assertion_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
