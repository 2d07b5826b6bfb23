"""Accounts: created by the operator with their first owner; listed, suspended, resumed and
deleted by the operator; read by their own principals.

Suspension is enforced in three places that each read the account's state: the gateway (the
routes of the account's namespaces carry the suspension, :mod:`controlplane.gateway_routes`),
the API (``controlplane.api.deps`` refuses every mutating route of a suspended account's
tenants) and nowhere in billing (meters keep running: storage is still billed).

Deletion: ``deleting`` (its namespaces are refused at the gateway and deleted through their
normal delete operation, a few at a time within the account's operations quota), then, once
none is left, ``deleted``: a tombstone whose API keys and sessions are gone, whose audit trail
stays, and whose cells' data is removed after ``account_data_retention_days``
(:func:`advance_deletions`, run by the worker's reconcile job).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import string
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, Action, Principal, PrincipalKind
from controlplane.accounts.repository import SystemAccountRepository
from controlplane.api_keys import service as api_keys
from controlplane.audit import service as audit
from controlplane.billing_account.repository import BillingAccountRepository
from controlplane.gateway_routes import service as routes
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import Conflict, InvalidField, NotFound, StratusError
from controlplane.kit.paging import PageRequest
from controlplane.models import Account, ApiKey, User
from controlplane.models.usage_record import month_of
from controlplane.namespaces import service as namespaces
from controlplane.operations.starter import OperationStarter
from controlplane.states import AccountState, NamespaceState

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500

_ID_ALPHABET = string.ascii_lowercase + string.digits
ACCOUNT_ID_LENGTH = 6


async def _new_account_id(repository: SystemAccountRepository) -> str:
    while True:
        # Starts with a letter so ids never look like numbers in a namespace id.
        candidate = secrets.choice(string.ascii_lowercase) + "".join(
            secrets.choice(_ID_ALPHABET) for _ in range(ACCOUNT_ID_LENGTH - 1)
        )
        if not await repository.exists(candidate):
            return candidate


async def create(
    session: AsyncSession, principal: Principal, *, name: str, owner_email: str
) -> tuple[Account, User, ApiKey, str]:
    """Create an account with its owner and the owner's first API key (token returned once)."""
    require(principal, Action.ACCOUNT_CREATE, refusal="only the operator may create accounts")
    name = fields.display_name(name, field="name")
    email = fields.email(owner_email, field="owner_email")
    repository = SystemAccountRepository(session)
    account = Account(id=await _new_account_id(repository), name=name, state=AccountState.ACTIVE)
    repository.add(account)
    # The first owner holds a key from the start: no invitation to expire.
    owner = User(
        id=str(uuid.uuid4()),
        account_id=account.id,
        email=email,
        account_role="owner",
        accepted_at=utcnow(),
    )
    repository.add_user(owner)
    await session.flush()
    api_key, token = await api_keys.issue_user_key(
        session, owner, display_name="owner bootstrap key", lifetime=api_keys.OWNER_KEY_LIFETIME
    )
    audit.record(
        session,
        principal,
        action="account.create",
        target=account.id,
        account_id=account.id,
        details={"owner_email": email, "owner_api_key_id": api_key.id},
    )
    await session.flush()
    return account, owner, api_key, token


async def list_all(session: AsyncSession, principal: Principal) -> list[tuple[Account, int]]:
    """Operator only: every account, with how many namespaces it has."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may list accounts")
    return await SystemAccountRepository(session).list_with_namespace_counts()


async def get(session: AsyncSession, principal: Principal, account_id: str) -> Account:
    """Operator only: one account."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may read accounts")
    account = await SystemAccountRepository(session).get(account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


@dataclass(frozen=True)
class AccountUsage:
    month: dt.date
    actions: int
    storage_byte_hours: int
    amount_so_far: Decimal


@dataclass(frozen=True)
class AccountDetail:
    """An account as the operator's list and get show it."""

    account: Account
    owner_email: str | None
    namespace_count: int
    usage: AccountUsage


async def _details(
    repository: SystemAccountRepository, rows: list[tuple[Account, int]], now: dt.datetime
) -> list[AccountDetail]:
    ids = [account.id for account, _ in rows]
    month = month_of(now)
    owners = await repository.owner_emails(ids)
    usage = await repository.usage_totals(ids, month)
    amounts = await repository.invoice_totals(ids, month)
    return [
        AccountDetail(
            account=account,
            owner_email=owners.get(account.id),
            namespace_count=count,
            usage=AccountUsage(
                month=month.date(),
                actions=usage.get(account.id, (0, 0))[0],
                storage_byte_hours=usage.get(account.id, (0, 0))[1],
                amount_so_far=amounts.get(account.id, Decimal("0.00")),
            ),
        )
        for account, count in rows
    ]


async def page(
    session: AsyncSession,
    principal: Principal,
    *,
    state: AccountState | None,
    name: str | None,
    page: PageRequest,
) -> tuple[list[AccountDetail], str]:
    """Operator only: one page of the accounts (oldest first), optionally of one state and
    with ``name`` in their name; and the next page's token ("" on the last page)."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may list accounts")
    if name is not None:
        name = fields.free_text(name, field="name", max_length=200)
    repository = SystemAccountRepository(session)
    found = await repository.page(state=state, name=name, page=page)
    return await _details(repository, found.rows, utcnow()), found.next_page_token


async def detail(session: AsyncSession, principal: Principal, account_id: str) -> AccountDetail:
    """Operator only: one account with its owner, namespaces and usage this month."""
    account = await get(session, principal, account_id)
    repository = SystemAccountRepository(session)
    count = len(await repository.namespaces_of(account.id))
    return (await _details(repository, [(account, count)], utcnow()))[0]


async def own(
    session: AsyncSession, principal: Principal, default_plan: str
) -> tuple[Account, str]:
    """The caller's own account and its plan today."""
    require(principal, Action.ACCOUNT_READ_OWN)
    if principal.account_id is None:
        raise NotFound("this credential belongs to no account")
    account = await SystemAccountRepository(session).get(principal.account_id)
    if account is None:
        raise NotFound(f"account {principal.account_id} not found")
    today = utcnow().date()
    plans = [
        row.plan
        for row in await BillingAccountRepository(session, principal).plans()
        if row.effective_from.date() <= today
    ]
    return account, plans[-1] if plans else default_plan


async def _publish_state(session: AsyncSession, account: Account) -> None:
    """Carry the account's state into its namespaces' gateway routes."""
    namespace_ids = [
        ns.id for ns in await SystemAccountRepository(session).namespaces_of(account.id)
    ]
    await routes.set_suspension(session, namespace_ids, routes.suspension_of(account))


async def suspend(
    session: AsyncSession, principal: Principal, account_id: str, *, reason: str
) -> Account:
    """Operator only: refuse the account's namespaces at the gateway (PERMISSION_DENIED naming
    the suspension) and make its API read-only. Usage meters keep running."""
    require(principal, Action.ACCOUNT_SUSPEND, refusal="only the operator may suspend accounts")
    reason = fields.free_text(reason, field="reason", max_length=MAX_REASON_LENGTH)
    if not reason:
        raise InvalidField("give the reason of the suspension", field="reason")
    account = await get(session, principal, account_id)
    if account.state is not AccountState.ACTIVE:
        raise Conflict(f"account {account_id} is {account.state.value}", field="state")
    account.state = AccountState.SUSPENDED
    account.suspension_reason = reason
    account.state_changed_at = utcnow()
    await _publish_state(session, account)
    audit.record(
        session,
        principal,
        action="account.suspend",
        target=account.id,
        account_id=account.id,
        details={"reason": reason},
    )
    await session.flush()
    return account


async def resume(session: AsyncSession, principal: Principal, account_id: str) -> Account:
    """Operator only: end a suspension (the gateway serves the namespaces again)."""
    require(principal, Action.ACCOUNT_SUSPEND, refusal="only the operator may resume accounts")
    account = await get(session, principal, account_id)
    if account.state is not AccountState.SUSPENDED:
        raise Conflict(
            f"account {account_id} is {account.state.value}, not suspended", field="state"
        )
    previous = account.suspension_reason
    account.state = AccountState.ACTIVE
    account.suspension_reason = ""
    account.state_changed_at = utcnow()
    await _publish_state(session, account)
    audit.record(
        session,
        principal,
        action="account.resume",
        target=account.id,
        account_id=account.id,
        details={"suspension_reason": previous},
    )
    await session.flush()
    return account


def _deleter(account_id: str) -> Principal:
    """Whom the account's namespaces are deleted as: the operator acting as an administrator
    of that one account (so the namespaces' own delete operation and checks apply)."""
    return Principal(
        kind=PrincipalKind.SERVICE_ACCOUNT,
        id="account-deletion",
        account_id=account_id,
        account_role=AccountRole.ADMIN.value,
        display="operator:account-deletion",
    )


async def delete(
    session: AsyncSession, principal: Principal, starter: OperationStarter, account_id: str
) -> Account:
    """Operator only: start deleting the account (see the module's docstring)."""
    require(principal, Action.ACCOUNT_DELETE, refusal="only the operator may delete accounts")
    account = await get(session, principal, account_id)
    if account.state in (AccountState.DELETING, AccountState.DELETED):
        raise Conflict(f"account {account_id} is already {account.state.value}", field="state")
    previous = account.state
    account.state = AccountState.DELETING
    account.state_changed_at = utcnow()
    await _publish_state(session, account)
    audit.record(
        session,
        principal,
        action="account.delete",
        target=account.id,
        account_id=account.id,
        details={"previous_state": previous.value},
    )
    await session.flush()
    await _delete_namespaces(session, starter, account)
    return account


async def _delete_namespaces(
    session: AsyncSession, starter: OperationStarter, account: Account
) -> int:
    """Start the delete operation of each of the account's namespaces that can start one now;
    returns how many namespaces are left."""
    deleter = _deleter(account.id)
    left = await SystemAccountRepository(session).namespaces_of(account.id)
    for namespace in left:
        if namespace.state is NamespaceState.DELETING:
            continue
        try:
            # A savepoint: a refusal (the operations quota, an operation in flight) leaves the
            # namespace for the next pass without undoing the others.
            async with session.begin_nested():
                await namespaces.delete(
                    session,
                    deleter,
                    starter,
                    namespace_id=namespace.id,
                    resource_version=None,
                    async_operation_id=None,
                    # The operator deletes the whole account: protection guards a namespace
                    # against its own tenants' mistakes, not against that.
                    override_delete_protection=True,
                )
        except StratusError as refused:
            logger.info("namespace %s not deleted yet: %s", namespace.id, refused.message)
    return len(left)


async def advance_deletions(
    session: AsyncSession,
    starter: OperationStarter,
    *,
    retention: dt.timedelta,
    now: dt.datetime,
) -> list[str]:
    """One pass over deleting accounts: start the deletes still to start; an account with no
    namespace left becomes ``deleted`` (its API keys and sessions go; cells' data is removed
    from ``now + retention``). Returns the accounts deleted in this pass."""
    repository = SystemAccountRepository(session)
    finished = []
    for account in await repository.in_state(AccountState.DELETING):
        if await _delete_namespaces(session, starter, account) > 0:
            continue
        await repository.revoke_credentials(account.id)
        account.state = AccountState.DELETED
        account.state_changed_at = now
        account.data_removal_after = now + retention
        audit.record(
            session,
            None,
            action="account.deleted",
            target=account.id,
            account_id=account.id,
            details={"data_removal_after": account.data_removal_after.isoformat()},
        )
        finished.append(account.id)
    await session.flush()
    return finished
