from __future__ import annotations

import secrets
import string
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.accounts.repository import SystemAccountRepository
from controlplane.api_keys import service as api_keys
from controlplane.audit import service as audit
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.errors import NotFound
from controlplane.models import Account, ApiKey, User

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
    account = Account(id=await _new_account_id(repository), name=name)
    repository.add(account)
    owner = User(id=str(uuid.uuid4()), account_id=account.id, email=email, account_role="owner")
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
