from __future__ import annotations

from pydantic import BaseModel

from auth import PrincipalKind
from controlplane.users.schemas import NamespacePermissionOut


class CurrentIdentity(BaseModel):
    kind: PrincipalKind
    id: str
    account_id: str | None
    account_role: str | None
    display: str
    api_key_id: str | None
    namespace_scope: str | None
    namespace_permissions: list[NamespacePermissionOut]
