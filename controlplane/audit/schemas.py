from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict

from controlplane.kit.page_schema import PagedList


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    request_id: str | None
    outcome: str
    details: dict[str, Any]


class AuditEventPage(PagedList):
    audit_logs: list[AuditEventOut]
