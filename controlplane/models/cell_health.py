from __future__ import annotations

import datetime as dt

from sqlalchemy import Enum, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, UTCDateTime
from dataplane.cells import CellHealthState


class CellHealth(Base):
    """What the cell watchers last saw of a cell (the system cell or an account's), read by
    ``/readyz`` and ``/metrics``. Not a foreign key: the system cell has no ``cells`` row."""

    __tablename__ = "cell_health"

    cell_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[CellHealthState] = mapped_column(
        Enum(CellHealthState, native_enum=False, length=16)
    )
    # Restarts made by the watcher, in all and within the failure window.
    restarts: Mapped[int] = mapped_column(default=0)
    recent_restarts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Since when the cell's account has had no namespace (idle stop counts from here).
    idle_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
