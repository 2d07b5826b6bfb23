from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


class ServiceAccount(TimestampMixin, Base):
    """A non-human principal of an account (CI, workers with API keys).

    Either account-wide (``account_role`` set) or scoped to exactly one namespace
    (``namespace_id`` set; its permission there is a ``NamespaceAccess`` row).
    """

    __tablename__ = "service_accounts"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    account_role: Mapped[str | None] = mapped_column(String(32))
    namespace_id: Mapped[str | None] = mapped_column(String(64))
    resource_version: Mapped[str] = mapped_column(String(36))
