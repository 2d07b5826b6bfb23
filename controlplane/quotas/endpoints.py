"""An account's quotas: the operator reads and sets them, the account's admins read them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.kit.deps import SessionDep
from controlplane.quotas import service
from controlplane.quotas.schemas import AccountQuotasOut, AccountQuotasSet, QuotaOut

router = APIRouter(prefix="/accounts", tags=["quotas"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}}


def _out(account_id: str, statuses: list[service.QuotaStatus]) -> AccountQuotasOut:
    return AccountQuotasOut(
        account_id=account_id,
        quotas=[
            QuotaOut(quota=s.quota, limit=s.limit, is_default=s.is_default, usage=s.usage)
            for s in statuses
        ],
    )


@router.get("/{account_id}/quotas", response_model=AccountQuotasOut, responses=Problems)
async def get_quotas(
    account_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_QUOTAS_READ))],
) -> AccountQuotasOut:
    """The account's quotas with their current usage (the operator: any account)."""
    return _out(account_id, await service.get(session, principal, account_id))


@router.post("/{account_id}/quotas", response_model=AccountQuotasOut, responses=Problems)
async def set_quotas(
    account_id: str,
    body: AccountQuotasSet,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.ACCOUNT_QUOTAS_SET))],
) -> AccountQuotasOut:
    """Operator only: change quotas (fields left out keep their value, ``null`` restores the
    default). Lowering one below the usage keeps what exists and refuses new resources."""
    return _out(
        account_id, await service.set_quotas(session, principal, account_id, body.changes())
    )
