from __future__ import annotations

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from auth import AuthMethod
from controlplane.models.base import Base, TimestampMixin
from controlplane.models.namespace import auth_method_column
from dataplane.gateway import DEFAULT_ACTIONS_PER_SECOND, DEFAULT_REQUESTS_PER_SECOND


class GatewayRoute(TimestampMixin, Base):
    """What the gateway needs to admit and route a namespace's traffic.

    Every publish or removal takes a new, unique ``version``; the table's version is the maximum,
    so gateways detect any change with one cheap query. Removed routes stay as tombstones.
    """

    __tablename__ = "gateway_routes"

    namespace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cell_address: Mapped[str] = mapped_column(String(255))
    accepted_client_ca: Mapped[str] = mapped_column(Text)
    certificate_filters: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    auth_method: Mapped[AuthMethod] = mapped_column(auth_method_column(), default=AuthMethod.MTLS)
    requests_per_second: Mapped[int] = mapped_column(default=DEFAULT_REQUESTS_PER_SECOND)
    actions_per_second: Mapped[int] = mapped_column(default=DEFAULT_ACTIONS_PER_SECOND)
    cell_namespace_id: Mapped[str] = mapped_column(String(64), default="")
    # The cell the namespace is on (RouteDocument.cells names its address and TLS).
    cell_id: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(unique=True)
    removed: Mapped[bool] = mapped_column(default=False)
