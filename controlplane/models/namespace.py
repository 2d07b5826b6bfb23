from __future__ import annotations

from typing import Protocol

from sqlalchemy import JSON, Enum, ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from auth import AuthMethod
from controlplane.models.base import Base, TimestampMixin
from controlplane.states import NamespaceState
from dataplane.gateway import DEFAULT_ACTIONS_PER_SECOND, DEFAULT_REQUESTS_PER_SECOND


def auth_method_column() -> Enum:
    """VARCHAR(16) holding the enum's values ("mtls", ...), as rows have always stored them
    (a bare ``Enum`` would store the member names)."""
    return Enum(
        AuthMethod,
        native_enum=False,
        length=16,
        values_callable=lambda methods: [method.value for method in methods],
    )


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
    # How SDK clients authenticate at the gateway.
    auth_method: Mapped[AuthMethod] = mapped_column(auth_method_column(), default=AuthMethod.MTLS)
    # Enforced by the gateway; the operator changes them per namespace.
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
    # DELETE is refused while set (Temporal Cloud's lifecycle.enable_delete_protection).
    delete_protection: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Key/value labels (chargeback: they travel with the usage exports).
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Custom search attributes, name -> SearchAttributeType value, as the cell should have them.
    search_attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # What the next update operation must change on the cell besides adding what is missing:
    # {"rename": {old: new}, "remove": [name, ...]}; emptied once applied.
    search_attribute_pending: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    # The codec server the console's browser decodes payloads with: {endpoint,
    # pass_access_token, include_cross_origin_credentials}; None: none.
    codec_server: Mapped[dict[str, object] | None] = mapped_column(JSON, default=None)


class NamespaceView(Protocol):
    """What showing a namespace reads of its row: a :class:`Namespace`, or its columns read as a
    plain row (``Row`` of ``select(Namespace.__table__)``; the hottest read loads no ORM
    entity). The API's output reads the rest of its fields by column name."""

    @property
    def id(self) -> str: ...

    @property
    def account_id(self) -> str: ...

    @property
    def auth_method(self) -> AuthMethod: ...

    @property
    def delete_protection(self) -> bool: ...

    @property
    def codec_server(self) -> dict[str, object] | None: ...
