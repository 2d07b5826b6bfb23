from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict

from controlplane.models import OperationState


class AsyncOperationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    operation_type: str
    resource_id: str
    state: OperationState
    failure_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class AsyncOperationList(BaseModel):
    operations: list[AsyncOperationOut]
