from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class SamlAuthnRequest(TimestampMixin, Base):
    """An AuthnRequest this SP issued, so the ACS accepts only responses to requests we sent
    (``InResponseTo``), each once, within a few minutes."""

    __tablename__ = "saml_authn_requests"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # Set when a response naming this request reached the ACS (single use).
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
