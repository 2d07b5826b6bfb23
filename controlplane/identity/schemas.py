from __future__ import annotations

from pydantic import BaseModel, Field

from auth import PrincipalKind
from controlplane.users.schemas import NamespacePermissionOut


class CurrentIdentity(BaseModel):
    kind: PrincipalKind
    id: str
    account_id: str | None
    account_role: str | None
    group_roles: list[str] = Field(
        default_factory=list,
        description="The account roles of the user groups it belongs to (it may do what any "
        "of its roles allows); namespace_permissions already hold its groups' permissions",
    )
    display: str
    api_key_id: str | None
    namespace_scope: str | None
    namespace_permissions: list[NamespacePermissionOut]
