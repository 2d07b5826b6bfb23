"""Granting and removing namespace permissions (the callers check the policy first)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from auth import NamespacePermission, Principal
from controlplane.access.repository import GrantKind, NamespaceAccessRepository
from controlplane.audit import service as audit
from controlplane.models import Namespace, NamespaceAccess


async def grant(
    session: AsyncSession,
    principal: Principal,
    namespace: Namespace,
    kind: GrantKind,
    principal_id: str,
    permission: NamespacePermission | None,
) -> None:
    """Set (or with None remove) one namespace permission, with an audit event."""
    repository = NamespaceAccessRepository(session, principal)
    access = await repository.get(namespace.id, kind, principal_id)
    if access is None and permission is None:
        return
    if access is not None and access.permission == permission:
        return
    if permission is None:
        assert access is not None
        await repository.delete(access)
    elif access is None:
        repository.add(
            NamespaceAccess(
                namespace_id=namespace.id,
                principal_kind=str(kind),
                principal_id=principal_id,
                account_id=namespace.account_id,
                permission=permission,
            )
        )
    else:
        access.permission = permission
    audit.record(
        session,
        principal,
        action="namespace.access.update",
        target=namespace.id,
        account_id=namespace.account_id,
        details={
            "principal_kind": str(kind),
            "principal_id": principal_id,
            "permission": permission.value if permission else None,
        },
    )
    await session.flush()
