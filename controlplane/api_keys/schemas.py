from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from controlplane.kit.page_schema import PagedList


class ApiKeyCreate(BaseModel):
    display_name: str = Field(description="1-200 characters")
    expiry: dt.datetime = Field(description="When the key stops working; at most 2 years ahead")
    owner_type: Literal["user", "service_account"] | None = Field(
        None, description="Default: the caller. Admins may create keys for service accounts."
    )
    owner_id: str | None = Field(None, description="The service account's id")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str
    owner_type: str
    owner_id: str | None
    expires_at: dt.datetime | None
    disabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class ApiKeyCreated(BaseModel):
    api_key: ApiKeyOut
    token: str = Field(description="The secret, shown once; only its SHA-256 is stored")


class ApiKeyList(PagedList):
    api_keys: list[ApiKeyOut]
