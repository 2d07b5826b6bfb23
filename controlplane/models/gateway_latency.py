from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base
from dataplane.gateway import NAMESPACE_LATENCY_BUCKETS

LATENCY_BUCKET_NAMES: tuple[str, ...] = (
    *(repr(float(bound)) for bound in NAMESPACE_LATENCY_BUCKETS),
    "+Inf",
)
"""The ``bucket`` of each latency bucket's row, in the gateways' order (their upper bounds as
Prometheus writes them)."""

SUM_BUCKET = "sum_us"
"""The ``bucket`` of the row holding the calls' total latency, in microseconds."""


class GatewayLatencyBucket(Base):
    """Calls the gateways forwarded to one namespace (long polls aside) whose latency fell in
    one bucket, since the namespace was first served: summed from the increases of each
    gateway's cumulative report (its route polls), like ``throttled_hours``. ``bucket`` is the
    upper bound as Prometheus writes it (``0.005`` ... ``+Inf``; not cumulative), or
    :data:`SUM_BUCKET`. No foreign key: a gateway may report a namespace deleted since."""

    __tablename__ = "gateway_latency_buckets"

    namespace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
