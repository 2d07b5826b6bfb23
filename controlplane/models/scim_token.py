from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class ScimToken(TimestampMixin, Base):
    """The bearer token an account's SCIM client (Okta, Entra ID) presents at ``/scim/v2``.

    One per account (creating another replaces it); only the SHA-256 of the token is stored.
    The token alone names the account: SCIM requests carry no account id.
    """

    __tablename__ = "scim_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
