from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin
from dataplane.cells import CellEndpoint


class Cell(TimestampMixin, Base):
    """An account's isolated Temporal cluster, where its provider put it. The endpoint is fixed
    when the provider provisions the cell, so its address (and the gateway's routes to it)
    survive restarts."""

    __tablename__ = "cells"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    # The cell's Temporal frontend (host:port), as the provider returned it.
    address: Mapped[str] = mapped_column(String(255))
    metrics_url: Mapped[str] = mapped_column(String(255))

    @property
    def endpoint(self) -> CellEndpoint:
        return CellEndpoint(self.id, self.provider, self.address, self.metrics_url)
