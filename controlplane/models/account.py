from __future__ import annotations

import datetime as dt

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime
from controlplane.states import AccountState


class Account(TimestampMixin, Base):
    """A tenant. Everything a tenant owns carries its ``account_id``.

    A deleted account keeps its row (a tombstone): audit events and invoices name it."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[AccountState] = mapped_column(
        Enum(
            AccountState,
            native_enum=False,
            length=16,
            values_callable=lambda values: [v.value for v in values],
        ),
        default=AccountState.ACTIVE,
    )
    # Why the operator suspended the account ("" unless suspended); tenants and their
    # workers are told it.
    suspension_reason: Mapped[str] = mapped_column(String(500), default="")
    state_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # Deleted accounts: when their cells are stopped and their data removed.
    data_removal_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    data_removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
