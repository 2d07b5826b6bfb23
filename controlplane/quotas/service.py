"""Quotas: read, set by the operator, and enforced race-free where resources are created.

Every check locks the account (see :meth:`QuotaRepository.lock_account`) before counting, so
two concurrent creates at the limit cannot both pass: the second counts after the first has
committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, PrincipalKind, Resource, authorize
from controlplane.audit import service as audit
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import (
    InvalidField,
    NotFound,
    QuotaExceeded,
    TooManyOperations,
)
from controlplane.quotas.limits import DEFAULT_QUOTAS, MAX_QUOTA, Quota
from controlplane.quotas.repository import QuotaRepository

_WHAT = {
    Quota.NAMESPACES: "namespaces",
    Quota.USERS: "users",
    Quota.SERVICE_ACCOUNTS: "service accounts",
    Quota.API_KEYS_PER_PRINCIPAL: "API keys",
    Quota.CONCURRENT_OPERATIONS: "async operations in flight",
    Quota.TAGS_PER_NAMESPACE: "tags on one namespace",
    Quota.GROUPS: "user groups",
}


@dataclass(frozen=True)
class QuotaStatus:
    quota: Quota
    limit: int
    is_default: bool
    # For api_keys_per_principal: the most keys any one principal of the account holds.
    usage: int


async def _limit(repository: QuotaRepository, quota: Quota) -> int:
    override = await repository.override(quota.value)
    return DEFAULT_QUOTAS[quota] if override is None else override


async def _usage(
    repository: QuotaRepository, quota: Quota, owner: tuple[PrincipalKind, str] | None = None
) -> int:
    if quota is Quota.NAMESPACES:
        return await repository.count_namespaces()
    if quota is Quota.USERS:
        return await repository.count_users()
    if quota is Quota.SERVICE_ACCOUNTS:
        return await repository.count_service_accounts()
    if quota is Quota.CONCURRENT_OPERATIONS:
        return await repository.count_operations_in_flight()
    if quota is Quota.TAGS_PER_NAMESPACE:
        return await repository.most_tags_of_one_namespace()
    if quota is Quota.GROUPS:
        return await repository.count_groups()
    if owner is None:
        return await repository.most_keys_of_one_principal(utcnow())
    kind, owner_id = owner
    return await repository.count_keys_of(kind.value, owner_id, utcnow())


async def limit(session: AsyncSession, account_id: str, quota: Quota) -> int:
    """The account's limit for ``quota`` (the operator's override, else the default)."""
    return await _limit(QuotaRepository(session, account_id), quota)


async def lock_account(session: AsyncSession, account_id: str) -> None:
    """Serialize the account's count-then-change checks (every quota, the last-owner guard)
    until the unit of work ends (see :meth:`QuotaRepository.lock_account`)."""
    await QuotaRepository(session, account_id).lock_account()


async def enforce(
    session: AsyncSession,
    account_id: str,
    quota: Quota,
    *,
    owner: tuple[PrincipalKind, str] | None = None,
) -> None:
    """Refuse one more of ``quota``'s resources (``owner``: whose API key) when the account is
    at its limit: 409 ``quota-exceeded`` for counts, 429 for operations in flight. Call before
    adding the new row; the account stays locked until the unit of work ends."""
    repository = QuotaRepository(session, account_id)
    await repository.lock_account()
    limit = await _limit(repository, quota)
    usage = await _usage(repository, quota, owner)
    if usage < limit:
        return
    what = _WHAT[quota]
    if quota is Quota.CONCURRENT_OPERATIONS:
        raise TooManyOperations(
            f"quota {quota.value} exceeded: account {account_id} has {usage} {what} and its "
            f"limit is {limit}; retry when one has finished",
            quota=quota.value,
            limit=limit,
            usage=usage,
        )
    holder = f"account {account_id}"
    if owner is not None:
        holder = f"this {owner[0].value.replace('_', ' ')}"
    raise QuotaExceeded(
        f"quota {quota.value} exceeded: {holder} has {usage} {what} and its limit is {limit}; "
        "remove one (disabled keys count until deleted) or ask the operator to raise the quota",
        quota=quota.value,
        limit=limit,
        usage=usage,
    )


async def _readable(session: AsyncSession, principal: Principal, account_id: str) -> None:
    """The operator reads any account's quotas, a tenant only its own (another account is not
    found, as everywhere)."""
    require(principal, Action.ACCOUNT_QUOTAS_READ, refusal="this credential may not read quotas")
    if not authorize(principal, Action.ACCOUNT_QUOTAS_READ, Resource(account_id=account_id)):
        raise NotFound(f"account {account_id} not found")
    if not await QuotaRepository(session, account_id).account_exists():
        raise NotFound(f"account {account_id} not found")


async def get(session: AsyncSession, principal: Principal, account_id: str) -> list[QuotaStatus]:
    """Every quota of the account: its limit (and whether it is the default) and usage."""
    await _readable(session, principal, account_id)
    repository = QuotaRepository(session, account_id)
    overrides = await repository.overrides()
    return [
        QuotaStatus(
            quota=quota,
            limit=overrides.get(quota.value, DEFAULT_QUOTAS[quota]),
            is_default=quota.value not in overrides,
            usage=await _usage(repository, quota),
        )
        for quota in Quota
    ]


async def set_quotas(
    session: AsyncSession,
    principal: Principal,
    account_id: str,
    changes: Mapping[Quota, int | None],
) -> list[QuotaStatus]:
    """Operator only: set quotas of an account (None: back to the default). A limit below the
    current usage keeps what exists and refuses new ones."""
    require(principal, Action.ACCOUNT_QUOTAS_SET, refusal="only the operator may set quotas")
    for quota, maximum in changes.items():
        if maximum is not None and not 0 <= maximum <= MAX_QUOTA:
            raise InvalidField(f"{quota.value} must be between 0 and {MAX_QUOTA}", field=quota)
    repository = QuotaRepository(session, account_id)
    # The operator acts across accounts: no tenant scoping here, by design.
    if not await repository.lock_account():
        raise NotFound(f"account {account_id} not found")
    for quota, maximum in changes.items():
        if maximum is None:
            await repository.clear_override(quota.value)
        else:
            await repository.set_override(quota.value, maximum)
    audit.record(
        session,
        principal,
        action="account.quotas.set",
        target=account_id,
        account_id=account_id,
        details={quota.value: maximum for quota, maximum in changes.items()},
    )
    await session.flush()
    return await get(session, principal, account_id)
