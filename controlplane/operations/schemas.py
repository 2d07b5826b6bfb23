from __future__ import annotations

import datetime as dt

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from controlplane.kit.page_schema import PagedList
from controlplane.states import OperationState


class AsyncOperationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    # What clients know the operation by (their async_operation_id, or a generated one);
    # unique within the account. Read from the ORM row's async_operation_id, from JSON's id.
    id: str = Field(validation_alias=AliasChoices("async_operation_id", "id"))
    operation_type: str
    resource_id: str
    state: OperationState
    failure_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class AsyncOperationList(PagedList):
    operations: list[AsyncOperationOut]
