from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from controlplane.models import NamespaceState
from controlplane.operations.schemas import AsyncOperationOut


class NamespaceCreate(BaseModel):
    name: str = Field(description="2-39 chars, ^[a-z][a-z0-9-]*[a-z0-9]$, no '--'")
    retention_days: int = Field(30, description="Closed-workflow retention, 1-90 days")
    accepted_client_ca: str = Field(description="PEM bundle of CA certificates for mTLS clients")
    async_operation_id: str | None = Field(None, description="Client-chosen id for idempotency")


class NamespaceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    account_id: str
    retention_days: int
    accepted_client_ca: str
    state: NamespaceState
    resource_version: str
    created_at: dt.datetime
    updated_at: dt.datetime


class NamespaceOperation(BaseModel):
    namespace: NamespaceOut
    async_operation: AsyncOperationOut


class NamespaceList(BaseModel):
    namespaces: list[NamespaceOut]
