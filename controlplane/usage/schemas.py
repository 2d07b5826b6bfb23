from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class DailyUsage(BaseModel):
    """What one namespace consumed of one kind on one UTC day."""

    date: dt.date = Field(description="The UTC day")
    namespace_id: str
    kind: str = Field(description="Billable kind, e.g. actions.workflow (see docs/billing.md)")
    quantity: int


class UsageOut(BaseModel):
    start: dt.date = Field(description="First UTC day of the range (inclusive)")
    end: dt.date = Field(description="Last UTC day of the range (inclusive)")
    usage: list[DailyUsage] = Field(
        description="Ordered by date, namespace and kind; days without usage are left out"
    )
