from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class OidcLoginAttempt(TimestampMixin, Base):
    """One OIDC authorization request in flight, keyed by the SHA-256 of its ``state``.

    The callback consumes it (single use); it expires after a few minutes. A CLI sign-in keeps
    the row after the callback, holding the signed-in user until the CLI redeems the hand-off
    code with its verifier.
    """

    __tablename__ = "oidc_login_attempts"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(Text)
    # Sign into this account when the email is invited to several.
    account_hint: Mapped[str | None] = mapped_column(String(16))
    # CLI sign-in: loopback URL to hand the result to, and S256 of the CLI's verifier.
    cli_redirect: Mapped[str | None] = mapped_column(Text)
    cli_challenge: Mapped[str | None] = mapped_column(String(64))
    # Set by the callback of a CLI sign-in: the hash of the hand-off code and the user.
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # A one-time console link of the operator: the operator key that asked for it.
    operator_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE")
    )
    # Set when the callback consumed the state (single use).
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
