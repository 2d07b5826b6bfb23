from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class WebSession(TimestampMixin, Base):
    """A signed-in user's server-side session (the ``stratus_session`` cookie).

    Only the SHA-256 of the session token is stored; ``id`` is a public handle for audit.
    Logout deletes the row, so the token stops working at once.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    # Sent back in X-CSRF-Token on every state-changing request made with the cookie.
    csrf_token: Mapped[str] = mapped_column(String(64))
    # The IdP the user signed in with (OIDC provider name).
    identity_provider: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
