"""Accounts (tenants) and their owners: the operator creates, lists, suspends, resumes and
deletes them; a tenant reads its own (``GET /account``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from auth import Action, Principal
from controlplane.accounts import service
from controlplane.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    AccountDetailOut,
    AccountOut,
    AccountPage,
    AccountSuspend,
    AccountUsageOut,
    ApiKeySecretOut,
    OwnAccountOut,
    UserOut,
)
from controlplane.api.deps import StarterDep, requires
from controlplane.kit.deps import PricingDep, SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.states import AccountState

router = APIRouter(route_class=ApiRoute, prefix="/accounts", tags=["accounts"])
own_router = APIRouter(route_class=ApiRoute, tags=["accounts"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


def _detail_out(detail: service.AccountDetail) -> AccountDetailOut:
    account = detail.account
    return AccountDetailOut(
        id=account.id,
        name=account.name,
        state=account.state,
        suspension_reason=account.suspension_reason,
        state_changed_at=account.state_changed_at,
        data_removal_after=account.data_removal_after,
        data_removed_at=account.data_removed_at,
        created_at=account.created_at,
        owner_email=detail.owner_email,
        namespace_count=detail.namespace_count,
        usage_this_month=AccountUsageOut(
            month=detail.usage.month,
            actions=detail.usage.actions,
            storage_byte_hours=detail.usage.storage_byte_hours,
            amount_so_far=detail.usage.amount_so_far,
        ),
    )


@router.post(
    "", status_code=201, response_model=AccountCreated, responses={400: {}, 401: {}, 403: {}}
)
async def create_account(
    body: AccountCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_CREATE))],
) -> AccountCreated:
    """Operator only. Returns the owner's API key once; it is stored only as a hash."""
    account, owner, api_key, token = await service.create(
        session, principal, name=body.name, owner_email=body.owner_email
    )
    return AccountCreated(
        account=AccountOut.model_validate(account),
        owner=UserOut.model_validate(owner),
        owner_api_key=ApiKeySecretOut(id=api_key.id, token=token, expires_at=api_key.expires_at),
    )


@router.get("", response_model=AccountPage, responses=Problems)
async def list_accounts(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_READ))],
    page: PageDep,
    state: Annotated[AccountState | None, Query(description="Only accounts in this state")] = None,
    name: Annotated[
        str | None, Query(description="Only accounts whose name contains this (any case)")
    ] = None,
) -> AccountPage:
    """Operator only: accounts, oldest first, with state, owner, namespace count and usage
    this month; pass ``next_page_token`` back as ``page_token`` (same filters) for the next
    page."""
    details, next_token = await service.page(session, principal, state=state, name=name, page=page)
    return AccountPage(
        accounts=[_detail_out(detail) for detail in details], next_page_token=next_token
    )


@router.get("/{account_id}", response_model=AccountDetailOut, responses=Problems)
async def get_account(
    account_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_READ))],
) -> AccountDetailOut:
    """Operator only: one account."""
    return _detail_out(await service.detail(session, principal, account_id))


@router.post("/{account_id}/suspend", response_model=AccountDetailOut, responses=Problems)
async def suspend_account(
    account_id: str,
    body: AccountSuspend,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_SUSPEND))],
) -> AccountDetailOut:
    """Operator only: the gateway refuses the account's namespaces (PERMISSION_DENIED naming
    the suspension) from its next route poll, and the account's API is read-only (403
    ``account-suspended``). Storage and usage are still metered and billed."""
    await service.suspend(session, principal, account_id, reason=body.reason)
    return _detail_out(await service.detail(session, principal, account_id))


@router.post("/{account_id}/resume", response_model=AccountDetailOut, responses=Problems)
async def resume_account(
    account_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_SUSPEND))],
) -> AccountDetailOut:
    """Operator only: end the suspension."""
    await service.resume(session, principal, account_id)
    return _detail_out(await service.detail(session, principal, account_id))


@router.delete(
    "/{account_id}", status_code=202, response_model=AccountDetailOut, responses=Problems
)
async def delete_account(
    account_id: str,
    session: SessionDep,
    starter: StarterDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_DELETE))],
) -> AccountDetailOut:
    """Operator only: the account becomes ``deleting`` (its namespaces are refused at the
    gateway and deleted through their delete operations), then ``deleted`` (a tombstone with
    its audit trail; its cells' data removed after the configured retention)."""
    await service.delete(session, principal, starter, account_id)
    return _detail_out(await service.detail(session, principal, account_id))


@own_router.get("/account", response_model=OwnAccountOut, responses=Problems)
async def get_own_account(
    session: SessionDep,
    pricing: PricingDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_READ_OWN))],
) -> OwnAccountOut:
    """The caller's own account: id, name, state, created, plan."""
    account, plan = await service.own(session, principal, pricing.default_plan)
    return OwnAccountOut(
        id=account.id,
        name=account.name,
        state=account.state,
        suspension_reason=account.suspension_reason,
        created_at=account.created_at,
        plan=plan,
    )
