from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class AccountCreate(BaseModel):
    name: str
    owner_email: str


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    created_at: dt.datetime


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    account_role: str


class ApiKeySecretOut(BaseModel):
    id: str
    token: str
    expires_at: dt.datetime | None


class AccountCreated(BaseModel):
    account: AccountOut
    owner: UserOut
    owner_api_key: ApiKeySecretOut
