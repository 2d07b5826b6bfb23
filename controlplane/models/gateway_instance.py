from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, UTCDateTime


class GatewayInstance(Base):
    """A registered gateway, as seen by its route polls: the route-table version it has
    applied and the namespaces of that version it could not serve.

    A gateway registers with its first poll and stays registered, up or down, until it stops
    cleanly or the operator deregisters it. A namespace becomes ACTIVE only once every
    registered gateway serves it with its CAs in force, so a client that sees ACTIVE can
    connect at once.
    """

    __tablename__ = "gateway_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    applied_version: Mapped[int]
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # Comma-separated namespace ids of ``applied_version`` it does not serve; "*" for many.
    rejected: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The RESOURCE_EXHAUSTED answers it reported per namespace since it started, as its last
    # poll said ("<namespace id>=<count>,..."): the next report's increase is counted.
    throttled: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The latency of the calls it forwarded per namespace since it started, as its last poll
    # said (X-Stratus-Gateway-Latency): the next report's increase is counted.
    latency: Mapped[str] = mapped_column(Text, default="", server_default="")
