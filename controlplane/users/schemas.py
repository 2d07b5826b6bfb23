from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from auth import AccountRole, NamespacePermission
from controlplane.kit.page_schema import PagedList


class NamespacePermissionOut(BaseModel):
    namespace_id: str
    permission: NamespacePermission


class UserInvite(BaseModel):
    email: str
    account_role: AccountRole


class UserUpdate(BaseModel):
    resource_version: str = Field(description="The user's resource_version as last read")
    account_role: AccountRole


class NamespaceAccessSet(BaseModel):
    permission: NamespacePermission | None = Field(
        description="admin, write or read; null removes the user's access to the namespace"
    )


class UserGroupRef(BaseModel):
    """A group the user belongs to."""

    id: str
    name: str


class UserOut(BaseModel):
    id: str
    email: str
    account_role: AccountRole
    namespace_permissions: list[NamespacePermissionOut] = Field(
        description="The user's own permissions (its groups' are on each group)"
    )
    groups: list[UserGroupRef] = Field(
        default_factory=list,
        description="The user groups it belongs to (shown to those who may read groups)",
    )
    resource_version: str
    invitation_expires_at: dt.datetime | None = Field(
        description="Until the user first signs in: when the invitation expires (null: never)"
    )
    accepted_at: dt.datetime | None = Field(description="When the user first signed in")
    active: bool = Field(
        True, description="false: deprovisioned by the account's SCIM client (cannot sign in)"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class UserList(PagedList):
    users: list[UserOut]
