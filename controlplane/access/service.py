"""Granting and removing namespace permissions (the callers check the policy first), and the
grants of several users, groups or service accounts at once."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, NamespacePermission, Principal, Resource, authorize
from controlplane.access.repository import GrantKind, NamespaceAccessRepository
from controlplane.audit import service as audit
from controlplane.models import Namespace, NamespaceAccess


async def grants_of(
    session: AsyncSession, principal: Principal, kind: GrantKind, principal_ids: list[str]
) -> dict[str, list[NamespaceAccess]]:
    """Principal id (each of ``principal_ids``) → its namespace access rows."""
    rows = await NamespaceAccessRepository(session, principal).list_for(kind, principal_ids)
    by_id: dict[str, list[NamespaceAccess]] = {principal_id: [] for principal_id in principal_ids}
    for row in rows:
        by_id[row.principal_id].append(row)
    return by_id


def readable(principal: Principal, rows: Iterable[NamespaceAccess]) -> list[NamespaceAccess]:
    """The rows on namespaces ``principal`` may read: a namespace admin sees another
    principal's permissions only there."""
    return [
        row
        for row in rows
        if authorize(principal, Action.NAMESPACE_READ, Resource(row.account_id, row.namespace_id))
    ]


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
