from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from controlplane.states import AccountState


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


class AccountUsageOut(BaseModel):
    """The account's usage so far this UTC month."""

    month: dt.date = Field(description="First day of the UTC month")
    actions: int = Field(description="Billable actions so far")
    storage_byte_hours: int = Field(description="Active and retained storage so far")
    amount_so_far: Decimal = Field(
        description="The month's invoice as last rated (0 before the first rating)"
    )


class AccountDetailOut(BaseModel):
    """An account as the operator sees it."""

    id: str
    name: str
    state: AccountState
    suspension_reason: str
    state_changed_at: dt.datetime | None
    data_removal_after: dt.datetime | None = Field(
        description="Deleted accounts: when their cells' data is removed"
    )
    data_removed_at: dt.datetime | None = Field(
        description="Deleted accounts: when their cells' data was removed"
    )
    created_at: dt.datetime
    owner_email: str | None = Field(description="The first owner's email")
    namespace_count: int
    usage_this_month: AccountUsageOut


class AccountPage(BaseModel):
    accounts: list[AccountDetailOut]
    next_page_token: str = Field(description='Pass as page_token for the next page; "" at the end')


class AccountSuspend(BaseModel):
    reason: str = Field(description="Why (1-500 characters); tenants and their workers see it")


class OwnAccountOut(BaseModel):
    """A tenant's own account."""

    id: str
    name: str
    state: AccountState
    suspension_reason: str
    created_at: dt.datetime
    plan: str
