from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, UTCDateTime


class GatewayInstance(Base):
    """A running gateway, as seen by its route polls: the route-table version it has applied.

    A namespace becomes ACTIVE only once every live gateway has applied its route, so a client
    that sees ACTIVE can connect at once.
    """

    __tablename__ = "gateway_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    applied_version: Mapped[int]
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
