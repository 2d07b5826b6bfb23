from __future__ import annotations

import datetime as dt

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime
from controlplane.states import OperationState


class AsyncOperation(TimestampMixin, Base):
    """A data-plane change in flight. ``id`` is internal (and the id of the workflow that
    performs it); clients know it by ``async_operation_id``, their own idempotency id or a
    generated one, unique within the account only: another account's ids are none of theirs."""

    __tablename__ = "async_operations"
    __table_args__ = (
        # Counting an account's operations in flight (the concurrent-operations quota).
        Index("ix_async_operations_account_id_state", "account_id", "state"),
        UniqueConstraint(
            "account_id",
            "async_operation_id",
            name="uq_async_operations_account_id_async_operation_id",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    async_operation_id: Mapped[str] = mapped_column(String(64))
    operation_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[OperationState] = mapped_column(
        Enum(OperationState, native_enum=False, length=16), index=True
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
