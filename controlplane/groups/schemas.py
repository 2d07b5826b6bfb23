"""The groups' API shapes (no FastAPI or ORM here: the typed client and the CLI read these)."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, Field

from auth import AccountRole, NamespacePermission
from controlplane.kit.page_schema import PagedList

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 1000
MAX_MEMBERS_PER_REQUEST = 1000


class MemberSource(enum.StrEnum):
    """Who made a membership: the API, CLI, console or ``stratus apply`` (manual), the
    account's SCIM client (scim), or the groups claim of the user's last sign-in (idp)."""

    MANUAL = "manual"
    SCIM = "scim"
    IDP = "idp"


class GroupNamespacePermissionOut(BaseModel):
    namespace_id: str
    permission: NamespacePermission


class GroupCreate(BaseModel):
    name: str = Field(description=f"Unique in the account, 1-{MAX_NAME_LENGTH} characters")
    description: str = ""
    account_role: AccountRole | None = Field(
        default=None,
        description="The account role every member holds through the group (never owner); "
        "null: none, only the group's namespace permissions",
    )


class GroupUpdate(BaseModel):
    """The fields to change; a field left out keeps its value (``account_role: null`` removes
    the group's account role)."""

    name: str | None = None
    description: str | None = None
    account_role: AccountRole | None = None
    resource_version: str | None = Field(
        default=None, description="The group's resource_version as last read (409 if stale)"
    )


class GroupMembersChange(BaseModel):
    add: list[str] = Field(default_factory=list, description="User ids to add (idempotent)")
    remove: list[str] = Field(default_factory=list, description="User ids to remove (idempotent)")


class GroupAccessSet(BaseModel):
    permission: NamespacePermission | None = Field(
        description="admin, write or read; null removes the group's access to the namespace"
    )


class GroupOut(BaseModel):
    id: str
    name: str
    description: str
    account_role: AccountRole | None
    external_id: str | None = Field(description="The provisioning client's id (SCIM externalId)")
    member_count: int
    namespace_permissions: list[GroupNamespacePermissionOut]
    resource_version: str
    created_at: dt.datetime
    updated_at: dt.datetime


class GroupList(PagedList):
    groups: list[GroupOut]


class GroupMemberOut(BaseModel):
    user_id: str
    email: str
    source: MemberSource


class GroupMemberList(PagedList):
    members: list[GroupMemberOut]


class GroupRef(BaseModel):
    """A group a user belongs to."""

    id: str
    name: str
