"""Service accounts: account-wide with a role (any but owner), or scoped to exactly one
namespace with a namespace permission. Their API keys are issued through ``api_keys``."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    AccountRole,
    Action,
    NamespacePermission,
    Principal,
    PrincipalKind,
)
from controlplane.access import service as access
from controlplane.access.repository import NamespaceAccessRepository
from controlplane.api_keys.repository import ApiKeyRepository
from controlplane.audit import service as audit
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.errors import (
    AlreadyExists,
    Conflict,
    InvalidField,
    NotFound,
    check_resource_version,
)
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import NamespaceAccess, ServiceAccount
from controlplane.namespaces.repository import NamespaceRepository
from controlplane.quotas import service as quotas
from controlplane.quotas.limits import Quota
from controlplane.service_accounts.repository import ServiceAccountRepository
from controlplane.users.service import grant_target


def _validate_text(name: str | None, description: str | None) -> tuple[str | None, str | None]:
    """``name`` and ``description`` as stored (trimmed, NFC), or 400 naming the field."""
    if name is not None:
        name = fields.display_name(name, field="name")
    if description is not None:
        description = fields.free_text(description, field="description", max_length=1000)
    return name, description


def _validate_role(role: AccountRole) -> None:
    if role is AccountRole.OWNER:
        raise InvalidField("a service account cannot be an owner", field="account_role")


async def create(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    description: str,
    account_role: AccountRole | None,
    namespace_id: str | None,
    namespace_permission: NamespacePermission | None,
) -> ServiceAccount:
    require(principal, Action.SERVICE_ACCOUNT_CREATE)
    name = fields.display_name(name, field="name")
    description = fields.free_text(description, field="description", max_length=1000)
    if (account_role is None) == (namespace_id is None):
        raise InvalidField(
            "give either account_role (account-wide) or namespace_scope (one namespace)",
            field="account_role",
        )
    if account_role is not None:
        _validate_role(account_role)
    repository = ServiceAccountRepository(session, principal)
    if await repository.get_by_name(name) is not None:
        raise AlreadyExists(f"service account {name} already exists", field="name")
    namespace = None
    if namespace_id is not None:
        namespace = await NamespaceRepository(session, principal).get(namespace_id)
        if namespace is None:
            raise NotFound(
                f"namespace {namespace_id} not found", field="namespace_scope.namespace_id"
            )
    await quotas.enforce(session, repository.account_id, Quota.SERVICE_ACCOUNTS)
    service_account = ServiceAccount(
        id=str(uuid.uuid4()),
        account_id=repository.account_id,
        name=name,
        description=description,
        account_role=account_role.value if account_role else None,
        namespace_id=namespace_id,
        resource_version=str(uuid.uuid4()),
    )
    repository.add(service_account)
    audit.record(
        session,
        principal,
        action="service_account.create",
        target=service_account.id,
        account_id=service_account.account_id,
        details={
            "name": name,
            "account_role": service_account.account_role,
            "namespace_id": namespace_id,
            "namespace_permission": namespace_permission.value if namespace_permission else None,
        },
    )
    await session.flush()
    if namespace is not None:
        await access.grant(
            session,
            principal,
            namespace,
            PrincipalKind.SERVICE_ACCOUNT,
            service_account.id,
            namespace_permission or NamespacePermission.READ,
        )
    return service_account


async def get(
    session: AsyncSession, principal: Principal, service_account_id: str
) -> ServiceAccount:
    require(principal, Action.SERVICE_ACCOUNT_READ)
    service_account = await ServiceAccountRepository(session, principal).get(service_account_id)
    if service_account is None:
        raise NotFound(f"service account {service_account_id} not found")
    return service_account


async def page(
    session: AsyncSession, principal: Principal, page: PageRequest, *, name: str | None = None
) -> Page[ServiceAccount]:
    """A page of the account's service accounts by name; ``name`` keeps those whose name
    starts with it (case-sensitive)."""
    require(principal, Action.SERVICE_ACCOUNT_READ)
    prefix = fields.display_name(name, field="name") if name else None
    return await ServiceAccountRepository(session, principal).page(page, name=prefix)


async def list_all(session: AsyncSession, principal: Principal) -> list[ServiceAccount]:
    require(principal, Action.SERVICE_ACCOUNT_READ)
    return await ServiceAccountRepository(session, principal).list_all()


async def scope_permissions(
    session: AsyncSession, principal: Principal, service_accounts: list[ServiceAccount]
) -> dict[str, NamespacePermission]:
    """Service account id → its permission on its namespace (scoped ones only)."""
    scoped_ids = [sa.id for sa in service_accounts if sa.namespace_id is not None]
    if not scoped_ids:
        return {}
    rows = await NamespaceAccessRepository(session, principal).list_for(
        PrincipalKind.SERVICE_ACCOUNT, scoped_ids
    )
    by_id = {sa.id: sa.namespace_id for sa in service_accounts}
    return {
        row.principal_id: row.permission
        for row in rows
        if by_id[row.principal_id] == row.namespace_id
    }


async def update(
    session: AsyncSession,
    principal: Principal,
    *,
    service_account_id: str,
    resource_version: str,
    name: str | None,
    description: str | None,
    account_role: AccountRole | None,
    namespace_permission: NamespacePermission | None,
) -> ServiceAccount:
    service_account = await get(session, principal, service_account_id)
    require(principal, Action.SERVICE_ACCOUNT_UPDATE)
    name, description = _validate_text(name, description)
    if account_role is not None:
        if service_account.namespace_id is not None:
            raise InvalidField(
                "a namespace-scoped service account has no account role; set namespace_permission",
                field="account_role",
            )
        _validate_role(account_role)
    if namespace_permission is not None and service_account.namespace_id is None:
        raise InvalidField(
            "an account-wide service account has no namespace scope; set account_role",
            field="namespace_permission",
        )
    check_resource_version(
        f"service account {service_account_id}", service_account.resource_version, resource_version
    )
    repository = ServiceAccountRepository(session, principal)
    if name is not None and name != service_account.name:
        if await repository.get_by_name(name) is not None:
            raise AlreadyExists(f"service account {name} already exists", field="name")
        service_account.name = name
    if description is not None:
        service_account.description = description
    if account_role is not None:
        service_account.account_role = account_role.value
    service_account.resource_version = str(uuid.uuid4())
    audit.record(
        session,
        principal,
        action="service_account.update",
        target=service_account.id,
        account_id=service_account.account_id,
        details={
            "name": name,
            "description": description,
            "account_role": account_role.value if account_role else None,
            "namespace_permission": namespace_permission.value if namespace_permission else None,
        },
    )
    await session.flush()
    if namespace_permission is not None and service_account.namespace_id is not None:
        namespace = await NamespaceRepository(session, principal).get(service_account.namespace_id)
        if namespace is None:
            raise NotFound(f"namespace {service_account.namespace_id} no longer exists")
        await access.grant(
            session,
            principal,
            namespace,
            PrincipalKind.SERVICE_ACCOUNT,
            service_account.id,
            namespace_permission,
        )
    return service_account


async def delete(
    session: AsyncSession,
    principal: Principal,
    *,
    service_account_id: str,
    resource_version: str | None,
) -> None:
    """Remove the service account with its API keys (which stop working at once)."""
    service_account = await get(session, principal, service_account_id)
    require(principal, Action.SERVICE_ACCOUNT_DELETE)
    check_resource_version(
        f"service account {service_account_id}", service_account.resource_version, resource_version
    )
    await ApiKeyRepository(session, principal).delete_all_of(
        owner_type=PrincipalKind.SERVICE_ACCOUNT.value, owner_id=service_account.id
    )
    await NamespaceAccessRepository(session, principal).delete_all_of(
        PrincipalKind.SERVICE_ACCOUNT, service_account.id
    )
    await ServiceAccountRepository(session, principal).delete(service_account)
    audit.record(
        session,
        principal,
        action="service_account.delete",
        target=service_account.id,
        account_id=service_account.account_id,
        details={"name": service_account.name},
    )
    await session.flush()


async def namespace_grants(
    session: AsyncSession, principal: Principal, service_accounts: list[ServiceAccount]
) -> dict[str, list[NamespaceAccess]]:
    """Account-wide service account id → its per-namespace grants the caller may see (on
    namespaces it may read)."""
    wide = [sa.id for sa in service_accounts if sa.namespace_id is None]
    grants: dict[str, list[NamespaceAccess]] = {sa_id: [] for sa_id in wide}
    if not wide:
        return grants
    rows = await NamespaceAccessRepository(session, principal).list_for(
        PrincipalKind.SERVICE_ACCOUNT, wide
    )
    for row in access.readable(principal, rows):
        grants[row.principal_id].append(row)
    return grants


async def set_namespace_access(
    session: AsyncSession,
    principal: Principal,
    *,
    namespace_id: str,
    service_account_id: str,
    permission: NamespacePermission | None,
) -> ServiceAccount:
    """Grant an account-wide service account ``permission`` on one namespace (on top of its
    account role: the policy takes the higher), or remove the grant (None). A namespace-scoped
    service account's one permission is changed with :func:`update` instead."""
    namespace, service_account = await grant_target(
        session,
        principal,
        namespace_id,
        lambda: ServiceAccountRepository(session, principal).get(service_account_id),
        f"service account {service_account_id} not found",
    )
    if service_account.namespace_id is not None:
        raise Conflict(
            f"service account {service_account.name} is scoped to namespace "
            f"{service_account.namespace_id}; change its permission with "
            "POST /service-accounts/{id} (namespace_permission)",
            field="service_account_id",
        )
    await access.grant(
        session,
        principal,
        namespace,
        PrincipalKind.SERVICE_ACCOUNT,
        service_account.id,
        permission,
    )
    return service_account
