from __future__ import annotations

import enum

from sqlalchemy import JSON, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin

DEFAULT_REQUESTS_PER_SECOND = 2000
DEFAULT_ACTIONS_PER_SECOND = 500


class NamespaceState(enum.StrEnum):
    ACTIVATING = "ACTIVATING"
    ACTIVE = "ACTIVE"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    FAILED = "FAILED"


class Namespace(TimestampMixin, Base):
    """``id`` is ``<name>.<account_id>``: also the Temporal namespace on the cell."""

    __tablename__ = "namespaces"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(39))
    retention_days: Mapped[int]
    accepted_client_ca: Mapped[str] = mapped_column(Text)
    # Validated filters as ``CertificateFilter.as_dict()`` objects; empty admits every
    # certificate of the accepted CAs.
    certificate_filters: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # Enforced by the gateway; the operator changes them per namespace.
    # How SDK clients authenticate at the gateway: "mtls", "api_key" or "mtls_or_api_key".
    auth_method: Mapped[str] = mapped_column(String(16), default="mtls")
    requests_per_second: Mapped[int] = mapped_column(default=DEFAULT_REQUESTS_PER_SECOND)
    actions_per_second: Mapped[int] = mapped_column(default=DEFAULT_ACTIONS_PER_SECOND)
    # Stored as VARCHAR; read back as the enum (a plain String column would hand out str).
    state: Mapped[NamespaceState] = mapped_column(
        Enum(NamespaceState, native_enum=False, length=16)
    )
    resource_version: Mapped[str] = mapped_column(String(36))
    cell_id: Mapped[str | None] = mapped_column(ForeignKey("cells.id"))
    # Temporal's own id for the namespace on its cell (task tokens carry it).
    cell_namespace_id: Mapped[str | None] = mapped_column(String(64))
