"""Service accounts of the caller's account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.kit.deps import SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import ServiceAccount
from controlplane.service_accounts import service
from controlplane.service_accounts.schemas import (
    NamespaceGrantOut,
    NamespaceGrantSet,
    NamespaceScope,
    ServiceAccountCreate,
    ServiceAccountList,
    ServiceAccountOut,
    ServiceAccountUpdate,
)

router = APIRouter(route_class=ApiRoute, prefix="/service-accounts", tags=["service-accounts"])
grants_router = APIRouter(route_class=ApiRoute, tags=["service-accounts"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


async def _out(
    session: AsyncSession, principal: Principal, service_accounts: list[ServiceAccount]
) -> list[ServiceAccountOut]:
    permissions = await service.scope_permissions(session, principal, service_accounts)
    grants = await service.namespace_grants(session, principal, service_accounts)
    out = []
    for sa in service_accounts:
        scope = None
        if sa.namespace_id is not None and sa.id in permissions:
            scope = NamespaceScope(namespace_id=sa.namespace_id, permission=permissions[sa.id])
        out.append(
            ServiceAccountOut(
                id=sa.id,
                name=sa.name,
                description=sa.description,
                account_role=sa.account_role,
                namespace_scope=scope,
                namespace_permissions=[
                    NamespaceGrantOut(namespace_id=row.namespace_id, permission=row.permission)
                    for row in grants.get(sa.id, [])
                ],
                resource_version=sa.resource_version,
                created_at=sa.created_at,
                updated_at=sa.updated_at,
            )
        )
    return out


@router.post("", status_code=201, response_model=ServiceAccountOut, responses=Problems)
async def create_service_account(
    body: ServiceAccountCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SERVICE_ACCOUNT_CREATE))],
) -> ServiceAccountOut:
    """Create an account-wide (``account_role``) or namespace-scoped (``namespace_scope``)
    service account; give it API keys with ``POST /api/v1/api-keys``."""
    scope = body.namespace_scope
    service_account = await service.create(
        session,
        principal,
        name=body.name,
        description=body.description,
        account_role=body.account_role,
        namespace_id=scope.namespace_id if scope else None,
        namespace_permission=scope.permission if scope else None,
    )
    return (await _out(session, principal, [service_account]))[0]


@router.get("", response_model=ServiceAccountList, responses=Problems)
async def list_service_accounts(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SERVICE_ACCOUNT_READ))],
    page: PageDep,
    name: Annotated[
        str | None, Query(description="Only service accounts whose name starts with this")
    ] = None,
) -> ServiceAccountList:
    """The account's service accounts by name, a page at a time."""
    found = await service.page(session, principal, page, name=name)
    return ServiceAccountList(
        service_accounts=await _out(session, principal, found.rows),
        next_page_token=found.next_page_token,
    )


@router.get("/{service_account_id}", response_model=ServiceAccountOut, responses=Problems)
async def get_service_account(
    service_account_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SERVICE_ACCOUNT_READ))],
) -> ServiceAccountOut:
    service_account = await service.get(session, principal, service_account_id)
    return (await _out(session, principal, [service_account]))[0]


@router.post("/{service_account_id}", response_model=ServiceAccountOut, responses=Problems)
async def update_service_account(
    service_account_id: str,
    body: ServiceAccountUpdate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SERVICE_ACCOUNT_UPDATE))],
) -> ServiceAccountOut:
    service_account = await service.update(
        session,
        principal,
        service_account_id=service_account_id,
        resource_version=body.resource_version,
        name=body.name,
        description=body.description,
        account_role=body.account_role,
        namespace_permission=body.namespace_permission,
    )
    return (await _out(session, principal, [service_account]))[0]


@router.delete(
    "/{service_account_id}", status_code=204, response_class=Response, responses=Problems
)
async def delete_service_account(
    service_account_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.SERVICE_ACCOUNT_DELETE))],
    resource_version: Annotated[str | None, Query()] = None,
) -> Response:
    """Remove the service account and its API keys."""
    await service.delete(
        session,
        principal,
        service_account_id=service_account_id,
        resource_version=resource_version,
    )
    return Response(status_code=204)


@grants_router.post(
    "/namespaces/{namespace_id}/service-accounts/{service_account_id}/access",
    response_model=ServiceAccountOut,
    responses=Problems,
)
async def set_service_account_namespace_access(
    namespace_id: str,
    service_account_id: str,
    body: NamespaceGrantSet,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.NAMESPACE_ACCESS_UPDATE))],
) -> ServiceAccountOut:
    """Grant an account-wide service account a permission on this namespace (admin, write,
    read) on top of its account role, or remove the grant (null). Account owners and admins,
    and admins of the namespace, may do this."""
    service_account = await service.set_namespace_access(
        session,
        principal,
        namespace_id=namespace_id,
        service_account_id=service_account_id,
        permission=body.permission,
    )
    return (await _out(session, principal, [service_account]))[0]
