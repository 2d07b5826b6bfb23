from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from controlplane.kit.page_schema import PagedList


class GatewayOut(BaseModel):
    """A registered gateway: what it has applied and what it could not serve."""

    id: str
    applied_version: int
    last_seen_at: dt.datetime
    # Namespaces of the applied version this gateway could not serve ("*": too many to name).
    rejected: list[str]


class GatewayList(PagedList):
    gateways: list[GatewayOut]
