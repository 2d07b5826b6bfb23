from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime

# Who a web session signs in: a user of an account, or the installation's operator.
SESSION_OF_USER = "user"
SESSION_OF_OPERATOR = "operator"


class WebSession(TimestampMixin, Base):
    """A signed-in user's (or the operator's) server-side session (the ``stratus_session``
    cookie).

    Only the SHA-256 of the session token is stored; ``id`` is a public handle for audit.
    Logout deletes the row, so the token stops working at once. A user's session names its
    user and account; the operator's names the operator key whose one-time link created it
    (and ends with that key), never a user or an account: the check constraint keeps the two
    kinds apart in the database itself.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (
        CheckConstraint(
            "(principal_kind = 'user' AND user_id IS NOT NULL AND account_id IS NOT NULL "
            "AND operator_key_id IS NULL) OR (principal_kind = 'operator' AND user_id IS NULL "
            "AND account_id IS NULL AND operator_key_id IS NOT NULL)",
            name="principal",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    principal_kind: Mapped[str] = mapped_column(String(16), server_default=SESSION_OF_USER)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    operator_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE")
    )
    # Sent back in X-CSRF-Token on every state-changing request made with the cookie.
    csrf_token: Mapped[str] = mapped_column(String(64))
    # The IdP the user signed in with (OIDC provider name), or ``console-link``.
    identity_provider: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
