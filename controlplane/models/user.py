from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


def _new_version() -> str:
    return str(uuid.uuid4())


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("account_id", "email"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    account_role: Mapped[str] = mapped_column(String(32))
    # Changes on every update, so a concurrent change is refused rather than overwritten.
    resource_version: Mapped[str] = mapped_column(String(36), default=_new_version)
    # An invitation is accepted by the user's first sign-in; until then it expires at
    # ``invitation_expires_at`` (None: no expiry, e.g. an account's first owner).
    invitation_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # SCIM (controlplane.scim): a deprovisioned user (``active`` false) keeps its row but can
    # no longer sign in, its web sessions are gone and its API keys disabled.
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    display_name: Mapped[str | None] = mapped_column(String(200), default=None)
    given_name: Mapped[str | None] = mapped_column(String(200), default=None)
    family_name: Mapped[str | None] = mapped_column(String(200), default=None)
