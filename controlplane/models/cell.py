from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy import Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime
from controlplane.states import CellPlacement, CellProbeState, CellState
from dataplane.cells import CellEndpoint, CellTls


def _enum(kind: type[CellPlacement] | type[CellState] | type[CellProbeState]) -> Enum:
    return Enum(
        kind, native_enum=False, length=16, values_callable=lambda values: [v.value for v in values]
    )


class Cell(TimestampMixin, Base):
    """A Temporal cluster namespaces are placed on: an account's local cell (provisioned by the
    local provider on first use, ``account_id`` set) or a cluster the operator registered
    (provider ``external``), dedicated to one account (bound on first use) or shared by many.
    The endpoint is fixed when the cell is provisioned or registered, so routes to it survive
    restarts. ``id`` is also the cell's name."""

    __tablename__ = "cells"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The account a dedicated cell serves (set on first use); None for a shared cell.
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    # The cell's Temporal frontend (host:port), as the provider returned it or as registered.
    address: Mapped[str] = mapped_column(String(255))
    # "" when the operator registered no metrics endpoint (nothing is metered from the cell).
    metrics_url: Mapped[str] = mapped_column(String(255))
    placement: Mapped[CellPlacement] = mapped_column(
        _enum(CellPlacement), default=CellPlacement.DEDICATED
    )
    # None: no limit (a local cell holds its one account's namespaces).
    max_namespaces: Mapped[int | None] = mapped_column(default=None)
    state: Mapped[CellState] = mapped_column(_enum(CellState), default=CellState.ACTIVE)
    server_version: Mapped[str] = mapped_column(String(64), default="")
    # TLS to the frontend (None: plaintext). The client key is sealed with the installation's
    # SecretBox, bound to the cell id; the API never returns it.
    tls_ca_pem: Mapped[str | None] = mapped_column(Text, default=None)
    tls_cert_pem: Mapped[str | None] = mapped_column(Text, default=None)
    tls_key_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    # The last probe of the frontend (GetSystemInfo over the cell's TLS).
    health_state: Mapped[CellProbeState] = mapped_column(
        _enum(CellProbeState), default=CellProbeState.UNKNOWN
    )
    health_reason: Mapped[str] = mapped_column(Text, default="")
    health_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def has_tls(self) -> bool:
        return self.tls_key_sealed is not None

    def tls(self, open_key: KeyOpener | None) -> CellTls | None:
        """The cell's TLS with its key opened by ``open_key`` (None without TLS)."""
        if not self.has_tls:
            return None
        assert self.tls_ca_pem is not None
        assert self.tls_cert_pem is not None
        assert self.tls_key_sealed is not None
        if open_key is None:
            raise ValueError(f"cell {self.id} uses TLS: its key needs the secrets box")
        return CellTls(
            ca_pem=self.tls_ca_pem,
            cert_pem=self.tls_cert_pem,
            key_pem=open_key(self.tls_key_sealed, bound_to=key_binding(self.id)),
            server_name=self.server_name,
        )

    def endpoint_with(self, open_key: KeyOpener | None) -> CellEndpoint:
        return CellEndpoint(
            self.id, self.provider, self.address, self.metrics_url, self.tls(open_key)
        )

    @property
    def endpoint(self) -> CellEndpoint:
        """The endpoint of a cell without TLS (a local cell); a TLS cell needs ``endpoint_with``."""
        return self.endpoint_with(None)


class KeyOpener(Protocol):
    """``SecretBox.open``'s shape (kept here so the model does not import the box)."""

    def __call__(self, token: str, *, bound_to: str) -> str: ...


def key_binding(cell_id: str) -> str:
    """What a cell's sealed client key is bound to (it opens on no other row)."""
    return f"cell-tls:{cell_id}"
