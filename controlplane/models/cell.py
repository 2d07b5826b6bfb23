from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin


class Cell(TimestampMixin, Base):
    """An account's isolated Temporal cluster. Ports are fixed at creation so its address (and
    the gateway's routes to it) survive restarts."""

    __tablename__ = "cells"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    grpc_port: Mapped[int]
    metrics_port: Mapped[int]
    http_port: Mapped[int]
    address: Mapped[str] = mapped_column(String(255))
