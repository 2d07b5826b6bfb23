from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class OperationState(enum.StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    FULFILLED = "FULFILLED"
    FAILED = "FAILED"


class AsyncOperation(TimestampMixin, Base):
    """A data-plane change in flight; its id is also the id of the workflow that performs it."""

    __tablename__ = "async_operations"
    # Counting an account's operations in flight (the concurrent-operations quota).
    __table_args__ = (Index("ix_async_operations_account_id_state", "account_id", "state"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    operation_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[OperationState] = mapped_column(
        Enum(OperationState, native_enum=False, length=16), index=True
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
