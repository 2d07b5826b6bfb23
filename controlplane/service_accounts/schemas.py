from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from auth import AccountRole, NamespacePermission
from controlplane.kit.page_schema import PagedList


class NamespaceScope(BaseModel):
    namespace_id: str
    permission: NamespacePermission


class ServiceAccountCreate(BaseModel):
    """Exactly one of ``account_role`` (account-wide) and ``namespace_scope``."""

    name: str = Field(description="1-200 characters, unique in the account")
    description: str = Field("", description="At most 1000 characters")
    account_role: AccountRole | None = Field(None, description="Account-wide role (any but owner)")
    namespace_scope: NamespaceScope | None = Field(
        None, description="Scope the service account to one namespace with this permission"
    )


class ServiceAccountUpdate(BaseModel):
    """A partial update; a service account stays account-wide or namespace-scoped."""

    resource_version: str
    name: str | None = None
    description: str | None = None
    account_role: AccountRole | None = None
    namespace_permission: NamespacePermission | None = Field(
        None, description="New permission of a namespace-scoped service account"
    )


class NamespaceGrantOut(BaseModel):
    namespace_id: str
    permission: NamespacePermission


class NamespaceGrantSet(BaseModel):
    permission: NamespacePermission | None = Field(
        description="admin, write or read; null removes the grant"
    )


class ServiceAccountOut(BaseModel):
    id: str
    name: str
    description: str
    account_role: AccountRole | None
    namespace_scope: NamespaceScope | None
    namespace_permissions: list[NamespaceGrantOut] = Field(
        default_factory=list,
        description="An account-wide service account's grants on single namespaces, on top "
        "of its account role",
    )
    resource_version: str
    created_at: dt.datetime
    updated_at: dt.datetime


class ServiceAccountList(PagedList):
    service_accounts: list[ServiceAccountOut]
