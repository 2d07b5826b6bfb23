from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


def _new_version() -> str:
    return str(uuid.uuid4())


class UserGroup(TimestampMixin, Base):
    """A named set of users of one account holding an account role and namespace permissions.

    A member's effective access is the highest of their own and every group's they belong to
    (:func:`auth.effective_namespace_permissions`; the roles add up in :func:`auth.authorize`).
    ``account_role`` None: the group grants no account-wide role, only its namespace
    permissions (``NamespaceAccess`` rows with ``principal_kind`` ``"group"``). A group never
    holds the owner role: owners are users, so the last-owner guard counts people.
    ``external_id`` is the provisioning client's id (SCIM ``externalId``).
    """

    __tablename__ = "user_groups"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    account_role: Mapped[str | None] = mapped_column(String(32), default=None)
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    resource_version: Mapped[str] = mapped_column(String(36), default=_new_version)


class UserGroupMember(TimestampMixin, Base):
    """One user's membership of one group. ``source`` says who made it: ``"manual"`` (API,
    CLI, console, ``stratus apply``), ``"scim"`` (the account's SCIM client) or ``"idp"`` (the
    groups claim of the user's last sign-in, replaced at each sign-in)."""

    __tablename__ = "user_group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")
