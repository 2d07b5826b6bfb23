from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, UTCDateTime


class InsightFinding(Base):
    """One finding of the workload insights about one namespace over one window, keyed by
    (kind, subject): the job updates it while the detectors report it (``last_seen``,
    evidence, severity, examples) and sets ``resolved_at`` when a run no longer does. Seen
    again after that, the same row is active again (``resolved_at`` cleared, ``first_seen``
    kept): a finding's history is one row, however often it comes and goes.

    Deleted with its namespace (its findings mean nothing without it)."""

    __tablename__ = "insight_findings"
    __table_args__ = (
        UniqueConstraint("namespace_id", "window", "kind", "subject_kind", "subject_name"),
        # The API's read: one namespace and window, active ones first.
        Index("ix_insight_findings_read", "namespace_id", "window", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    namespace_id: Mapped[str] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(16), index=True)
    window: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_name: Mapped[str] = mapped_column(String(1024))
    evidence: Mapped[dict[str, int | float | str]] = mapped_column(JSON)
    examples: Mapped[list[str]] = mapped_column(JSON)
    recommendation: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InsightAnalysis(Base):
    """The last analysis of one namespace over one window: when it ran, how long it took, the
    calls it made to the cell (RPC name → count) and its error (NULL after a success)."""

    __tablename__ = "insight_analyses"

    namespace_id: Mapped[str] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    window: Mapped[str] = mapped_column(String(8), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(16), index=True)
    analysed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int]
    calls: Mapped[dict[str, int]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class ThrottledHour(Base):
    """RESOURCE_EXHAUSTED answers the gateways gave one namespace's callers in one UTC hour,
    summed from the increases of each gateway's cumulative report (its route polls). No foreign
    key: a gateway may report a namespace deleted since."""

    __tablename__ = "throttled_hours"

    namespace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    answers: Mapped[int] = mapped_column(BigInteger)
