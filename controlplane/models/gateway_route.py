from __future__ import annotations

from typing import Any

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
    ``version`` is also the row's version counter (set by the publisher, checked by the ORM on
    every UPDATE): two concurrent changes of one route cannot both commit with the same new
    version (the unique constraint only guards changes of different routes).
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
    # Why the namespace's account is suspended ("": it is not): gateways refuse its traffic.
    suspended: Mapped[str] = mapped_column(String(600), default="")
    version: Mapped[int] = mapped_column(unique=True)
    removed: Mapped[bool] = mapped_column(default=False)

    __mapper_args__: dict[str, Any] = {  # noqa: RUF012
        "version_id_col": version,
        "version_id_generator": False,
    }
